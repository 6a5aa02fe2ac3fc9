"""Start the stemseg perception node: `ros2 launch stemseg_ros perception.launch.py`.

Arguments (all optional)::

    params_file   node parameters (default: the installed config/perception.yaml)
    image_topic   camera topic to segment (default /camera/image_raw); with
                  input_transport: compressed the node reads <image_topic>/compressed
    checkpoint    model checkpoint (default: the shipped demo model in the package share)
    device        auto | cuda | cpu
    namespace     one node per camera: e.g. namespace:=front image_topic:=/front/image_raw
    use_sim_time  true when replaying a bag with --clock

Example, two cameras::

    ros2 launch stemseg_ros perception.launch.py namespace:=left image_topic:=/left/image_raw
    ros2 launch stemseg_ros perception.launch.py namespace:=right image_topic:=/right/image_raw
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue


def generate_launch_description():
    share = get_package_share_directory("stemseg_ros")
    default_params = os.path.join(share, "config", "perception.yaml")
    default_checkpoint = os.path.join(share, "checkpoints", "stemseg_demo.pt")

    args = [
        DeclareLaunchArgument("params_file", default_value=default_params,
                              description="Node parameters (YAML)"),
        DeclareLaunchArgument("image_topic", default_value="/camera/image_raw",
                              description="Input camera topic (sensor_msgs/Image)"),
        DeclareLaunchArgument("checkpoint", default_value=default_checkpoint,
                              description="stemseg checkpoint (.pt)"),
        DeclareLaunchArgument("device", default_value="auto",
                              description="Inference device: auto | cuda | cpu"),
        DeclareLaunchArgument("namespace", default_value="",
                              description="Node namespace (one node per camera)"),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="Use /clock (bag replay with --clock)"),
    ]
    image_topic = LaunchConfiguration("image_topic")
    node = Node(
        package="stemseg_ros",
        executable="perception",
        name="stemseg_perception",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        emulate_tty=True,
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "checkpoint": LaunchConfiguration("checkpoint"),
                "device": LaunchConfiguration("device"),
                "use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"),
                                               value_type=bool),
            },
        ],
        remappings=[
            ("image", image_topic),
            ("image/compressed", [image_topic, "/compressed"]),
        ],
    )
    return LaunchDescription([*args, node])
