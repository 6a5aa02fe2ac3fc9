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
    ("namespace", "", "Node namespace"),
    ("cameras", "", "Comma-separated camera names for one node serving several cameras, e.g. "
     "front,rear (the node parameter cameras); \"\" = the params file's"),
    ("image_topics", "", "With cameras: comma-separated camera topics in the same order, each "
     "remapping <name>/image; \"\" = <namespace>/<name>/image"),
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
    if values.get("cameras", ""):
        set_by_user["cameras"] = split_list(values["cameras"])
    return [params_file, set_by_user] if set_by_user else [params_file]


def split_list(text: str) -> list[str]:
    """"front, rear" -> ["front", "rear"] (empty items left out)."""
    return [item.strip() for item in text.split(",") if item.strip()]


def remappings(image_topic: str, cameras: str = "", image_topics: str = ""
               ) -> list[tuple[str, str]]:
    """Only the image topics: the node derives `<image>/compressed` from each. Without cameras
    `image`; with them `<name>/image` for each name that `image_topics` gives a topic
    (ValueError when there are more topics than cameras)."""
    if not cameras:
        return [(names.IMAGE, image_topic)]
    cams, topics = split_list(cameras), split_list(image_topics)
    if len(topics) > len(cams):
        raise ValueError(f"image_topics: {len(topics)} topics for {len(cams)} cameras "
                         f"({', '.join(cams)}); give one per camera, in the same order")
    return [(names.camera_topic(names.IMAGE, c), t) for c, t in zip(cams, topics)]


def environment(environ: Mapping[str, str], share_dir: str | None) -> dict[str, str]:
    """Extra environment of the node process (its shipped Fast DDS profile, unless chosen)."""
    return dds.environment(environ, share_dir, dds.NODE_PROFILE)
