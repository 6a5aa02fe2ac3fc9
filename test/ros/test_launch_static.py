"""launch/perception.launch.py: its structure (launch/launch_ros are not installable here, so it
is read with ast) and, through stemseg_ros/launch_config.py, the parameter precedence that rcl
gives the command line launch_ros builds (later --params-file wins)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from stemseg_ros import dds, launch_config, names

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "launch" / "perception.launch.py"
INSTALLED = REPO / "install" / "stemseg_ros" / "share" / "stemseg_ros"


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and getattr(n.func, "id", getattr(n.func, "attr", None)) == name]


def test_launch_file_starts_a_lifecycle_node_from_launch_config():
    tree = ast.parse(SOURCE.read_text(), str(SOURCE))
    assert not _calls(tree, "Node"), "a plain Node for a lifecycle node"
    (node,) = _calls(tree, "LifecycleNode")
    kw = {k.arg: ast.unparse(k.value) for k in node.keywords}
    assert kw["package"] == "names.PACKAGE" and kw["executable"] == "names.EXECUTABLE"
    assert kw["name"] == "names.NODE_NAME"
    assert kw["parameters"].startswith("launch_config.node_parameters(")
    assert kw["remappings"].startswith("launch_config.remappings(")
    assert kw["additional_env"].startswith("launch_config.environment(")
    assert _calls(tree, "OpaqueFunction") and _calls(tree, "DeclareLaunchArgument")


def test_launch_file_is_installed():
    installed = INSTALLED / "launch" / "perception.launch.py"
    if not installed.exists():
        pytest.skip("package not built; run `make setup`")
    assert installed.read_text() == SOURCE.read_text()
    assert (INSTALLED / "config" / "perception.yaml").is_file()
    assert (INSTALLED / "config" / dds.PROFILE).is_file()
    assert (INSTALLED / "config" / dds.NODE_PROFILE).is_file()


def test_unset_launch_arguments_leave_the_params_file_alone():
    defaults = {name: default for name, default, _ in launch_config.ARGUMENTS}
    assert launch_config.node_parameters(defaults, "/share") == ["/share/config/perception.yaml"]
    got = launch_config.node_parameters({**defaults, "device": "cpu", "use_sim_time": "true",
                                         "params_file": "/my.yaml"}, "/share")
    assert got == ["/my.yaml", {"device": "cpu", "use_sim_time": True}]
    assert launch_config.remappings("/cam/image_raw") == [("image", "/cam/image_raw")]


def test_cameras_launch_arguments_give_the_parameter_and_a_remap_per_camera():
    defaults = {name: default for name, default, _ in launch_config.ARGUMENTS}
    got = launch_config.node_parameters({**defaults, "cameras": "front, rear"}, "/share")
    assert got == ["/share/config/perception.yaml", {"cameras": ["front", "rear"]}]
    assert launch_config.remappings("/cam/image_raw", "front,rear", "/f/raw,/r/raw") == [
        ("front/image", "/f/raw"), ("rear/image", "/r/raw")]
    assert launch_config.remappings("/cam/image_raw", "front,rear") == []  # <ns>/<name>/image
    with pytest.raises(ValueError, match="3 topics for 2 cameras"):
        launch_config.remappings("/x", "front,rear", "/a,/b,/c")


def _launch_ros_args(parameters: list, node_name: str, tmp_path: Path) -> list[str]:
    """The parameter part of the command line launch_ros builds for `parameters`: a file path
    as it is, a dict written to a file under the node's full name (launch_ros
    Node._create_params_file_from_dict), each as --params-file, in order."""
    args = ["--ros-args"]
    for i, entry in enumerate(parameters):
        if isinstance(entry, dict):
            path = tmp_path / f"launch_params_{i}.yaml"
            path.write_text(yaml.dump({node_name: {"ros__parameters": entry}}))
            entry = str(path)
        args += ["--params-file", str(entry)]
    return args


@pytest.mark.parametrize("device_arg,want", [("", "cuda"), ("cpu", "cpu")])
def test_params_file_precedence_in_real_rcl(tmp_path, device_arg, want):
    import rclpy
    from ros_helpers import unique_domain

    from stemseg_ros import param_io

    user = tmp_path / "user.yaml"
    user.write_text("/**:\n  ros__parameters:\n    device: cuda\n    checkpoint: mine.pt\n")
    values = {name: default for name, default, _ in launch_config.ARGUMENTS}
    values.update(params_file=str(user), device=device_arg)
    ros_args = _launch_ros_args(launch_config.node_parameters(values, "/share"),
                                f"/{names.NODE_NAME}", tmp_path)
    ctx = rclpy.Context()
    rclpy.init(args=ros_args, context=ctx, domain_id=unique_domain())
    try:
        node = rclpy.create_node(names.NODE_NAME, context=ctx)
        assert param_io.declare(node) == {}
        assert node.get_parameter("device").value == want
        assert node.get_parameter("checkpoint").value == "mine.pt"  # no launch default over it
        node.destroy_node()
    finally:
        rclpy.shutdown(context=ctx)


def test_dds_profile_is_applied_unless_the_user_chose_one(tmp_path):
    """The node runs with its own profile (a 16 MiB segment: Fast DDS makes all of it
    resident); its warnings name the camera's (64 MiB, for the large images it sends)."""
    path, node_path = dds.profile_path(), dds.profile_path(name=dds.NODE_PROFILE)
    assert path and node_path and Path(path).is_file() and Path(node_path).is_file()
    assert "<segment_size>67108864</segment_size>" in Path(path).read_text()
    assert "<segment_size>16777216</segment_size>" in Path(node_path).read_text()
    assert dds.environment({}) == {dds.PROFILE_VARIABLE: path}  # a camera's process
    assert launch_config.environment({}, None) == {dds.PROFILE_VARIABLE: node_path}
    assert dds.environment({"FASTDDS_DEFAULT_PROFILES_FILE": "/x.xml"}) == {}
    assert dds.environment({"FASTRTPS_DEFAULT_PROFILES_FILE": "/x.xml"}, None,
                           dds.NODE_PROFILE) == {}
    assert dds.camera_profile(launch_config.environment({}, None)) == path
    assert dds.camera_profile({}) == path
    assert dds.camera_profile({"FASTDDS_DEFAULT_PROFILES_FILE": "/x.xml"}) == "/x.xml"
    # a process that inherits the camera's shipped profile (a bag player's child) gets its own
    inherited = {dds.PROFILE_VARIABLE: path}
    assert launch_config.environment(inherited, None) == {dds.PROFILE_VARIABLE: node_path}
    assert dds.environment({"FASTRTPS_DEFAULT_PROFILES_FILE": path}, None, dds.NODE_PROFILE) \
        == {dds.PROFILE_VARIABLE: node_path}
    assert dds.environment({dds.PROFILE_VARIABLE: node_path}) == {dds.PROFILE_VARIABLE: path}
    assert dds.environment({dds.PROFILE_VARIABLE: path}) == {}  # already the camera's
    mine = tmp_path / dds.PROFILE  # a user's own file of the shipped name is a choice
    mine.write_text(Path(path).read_text())
    assert launch_config.environment({dds.PROFILE_VARIABLE: str(mine)}, None) == {}
