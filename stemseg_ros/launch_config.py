"""What launch/perception.launch.py hands to launch_ros, as plain data (testable without launch).

Launch arguments left empty are not passed, so the params file decides; arguments the user sets
come after the params file and win (launch_ros turns each entry of ``parameters`` into a
``--params-file`` in order, and rcl lets later files override earlier ones).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stemseg_ros import dds, names

#: (name, default, description) of the launch arguments.
ARGUMENTS: tuple[tuple[str, str, str], ...] = (
    ("params_file", "", "Node parameters (YAML); \"\" = the installed config/perception.yaml"),
    ("image_topic", "/camera/image_raw", "Input camera topic (sensor_msgs/Image); with "
     "input_transport: compressed the node reads <image_topic>/compressed"),
    ("checkpoint", "", "stemseg checkpoint (.pt); \"\" = the params file's"),
    ("device", "", "Inference device auto | cuda | cpu; \"\" = the params file's"),
    ("namespace", "", "Node namespace (one node per camera)"),
    ("use_sim_time", "", "true when replaying a bag with --clock; \"\" = the params file's"),
)
#: Launch arguments that are node parameters (passed only when set).
PARAMETER_ARGUMENTS = ("checkpoint", "device", "use_sim_time")


def node_parameters(values: Mapping[str, str], share_dir: str) -> list[Any]:
    """`parameters` of the node: the params file, then the parameters the user set."""
    params_file = values.get("params_file") or f"{share_dir}/config/perception.yaml"
    set_by_user: dict[str, Any] = {}
    for name in PARAMETER_ARGUMENTS:
        v = values.get(name, "")
        if v != "":
            set_by_user[name] = v.lower() == "true" if name == "use_sim_time" else v
    return [params_file, set_by_user] if set_by_user else [params_file]


def remappings(image_topic: str) -> list[tuple[str, str]]:
    """Only `image`: the node derives `<image>/compressed` from it."""
    return [(names.IMAGE, image_topic)]


def environment(environ: Mapping[str, str], share_dir: str) -> dict[str, str]:
    """Extra environment of the node process (the shipped Fast DDS profile, unless chosen)."""
    return dds.environment(environ, share_dir)
