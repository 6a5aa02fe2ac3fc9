"""Names of the perception node, its topics and services: the one place they are declared.

Used by the node, the launch file and the bag evaluation. Topic names are relative to the node
(``image``) or private (``~/instances``); :func:`node_topic` gives the absolute name a client
subscribes to.
"""
from __future__ import annotations

PACKAGE = "stemseg_ros"
EXECUTABLE = "perception"  # `ros2 run stemseg_ros perception` (also `stemseg-perception`)
NODE_NAME = "stemseg_perception"

#: Input (remap it: ``-r image:=/camera/image_raw``); compressed input is ``<image>/compressed``.
IMAGE = "image"
COMPRESSED_SUFFIX = "compressed"
#: Outputs (private topics of the node).
INSTANCES = "~/instances"
OVERLAY = "~/overlay"
TRACK_IDS = "~/track_ids"
#: Standard outputs (stemseg_ros/standard_outputs.py): vision_msgs and RViz markers.
DETECTIONS = "~/detections"
DETECTIONS_3D = "~/detections_3d"
LABEL_INFO = "~/label_info"
MARKERS = "~/markers"
FLUSH = "~/flush"
DIAGNOSTICS = "/diagnostics"
#: Suffix of the node's /diagnostics status name (after the node's full name).
STATUS_SUFFIX = ": pipeline"


def camera_topic(name: str, camera: str = "") -> str:
    """A topic of one camera of a multi-camera node (parameter ``cameras``): ``image`` ->
    ``<camera>/image``, ``~/instances`` -> ``~/<camera>/instances``; unchanged for "" (the
    single-camera node)."""
    if not camera:
        return name
    if name.startswith("~/"):
        return f"~/{camera}/{name[2:]}"
    return f"{camera}/{name}"


def compressed_topic(resolved_image_topic: str) -> str:
    """The CompressedImage topic of an image topic, as image_transport names it."""
    return f"{resolved_image_topic.rstrip('/')}/{COMPRESSED_SUFFIX}"


def node_topic(name: str, namespace: str = "/", node_name: str = NODE_NAME) -> str:
    """Absolute name of a private topic/service (``~/x``) of the node in `namespace`."""
    ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
    return f"{ns}/{node_name}/{name.removeprefix('~/')}"


def status_name(node_full_name: str, camera: str = "") -> str:
    """The node's /diagnostics status name, e.g. ``/cam1/stemseg_perception: pipeline``; one
    camera's of a multi-camera node: ``/stemseg_perception/front: pipeline``."""
    return f"{node_full_name}{'/' + camera if camera else ''}{STATUS_SUFFIX}"


def is_status_of(status: str, namespace: str = "/", node_name: str = NODE_NAME,
                 camera: str = "") -> bool:
    """Whether a /diagnostics status name is the one of the node in `namespace` (of its
    `camera` where the node has several)."""
    return status == status_name(node_topic("", namespace, node_name).rstrip("/"), camera)
