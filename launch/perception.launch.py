"""Start the stemseg perception node: `ros2 launch stemseg_ros perception.launch.py`.

Arguments (all optional; stemseg_ros/launch_config.py declares them)::

    params_file   node parameters (default: the installed config/perception.yaml)
    image_topic   camera topic to segment (default /camera/image_raw); with
                  input_transport: compressed the node reads <image_topic>/compressed
    checkpoint    model checkpoint (default: the params file's)
    device        auto | cuda | cpu (default: the params file's)
    namespace     the node's namespace
    cameras       one node, several cameras: e.g. cameras:=front,rear (node parameter cameras)
    image_topics  with cameras: their topics in order, e.g. /front/image_raw,/rear/image_raw
    use_sim_time  true when replaying a bag with --clock

Arguments given here override the params file; arguments not given leave it alone. The node
runs with its shipped Fast DDS profile (config/fastdds_node.xml) unless
FASTDDS_DEFAULT_PROFILES_FILE is set; the camera driver's process needs
config/fastdds_large_images.xml (docs/node.md).

Example, two cameras, one node and one network (outputs ~/left/instances, ~/right/instances)::

    ros2 launch stemseg_ros perception.launch.py cameras:=left,right \
        image_topics:=/left/image_raw,/right/image_raw
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode

from stemseg_ros import launch_config, names


def _node(context):
    share = get_package_share_directory(names.PACKAGE)
    values = {name: LaunchConfiguration(name).perform(context)
              for name, _, _ in launch_config.ARGUMENTS}
    return [LifecycleNode(
        package=names.PACKAGE, executable=names.EXECUTABLE, name=names.NODE_NAME,
        namespace=values["namespace"], output="screen", emulate_tty=True,
        parameters=launch_config.node_parameters(values, share),
        remappings=launch_config.remappings(values["image_topic"], values["cameras"],
                                            values["image_topics"]),
        additional_env=launch_config.environment(os.environ, share))]


def generate_launch_description():
    args = [DeclareLaunchArgument(name, default_value=default, description=text)
            for name, default, text in launch_config.ARGUMENTS]
    return LaunchDescription([*args, OpaqueFunction(function=_node)])
