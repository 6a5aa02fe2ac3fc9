"""The size of the frames the camera will send, known before the first one arrives, so that
activate builds the engines for it (issue 40): the camera's ``camera_info`` (the image topic's
sibling, as image_transport places it, unless ``camera_info`` is remapped) when a publisher
answers within a moment, else the ``expected_input_size`` parameter, else None (the worker
warms up on the first frame and says so in the log and /diagnostics)."""
from __future__ import annotations

from typing import Any

#: Seconds activate waits for one camera_info message when a publisher of it exists.
CAMERA_INFO_WAIT_SEC = 2.0


def camera_info_topic(resolved_image_topic: str) -> str:
    """/camera/image_raw -> /camera/camera_info (image_transport's convention)."""
    ns = resolved_image_topic.rsplit("/", 1)[0]
    return f"{ns}/camera_info"


def sibling_topic(node: Any, name: str, image_topic: str, default_leaf: str) -> str:
    """`name` resolved when it is remapped, else ``<image ns>/<default_leaf>`` (beside the
    resolved image topic, as image_transport places camera_info)."""
    resolved = node.resolve_topic_name(name)
    if resolved != node.get_namespace().rstrip("/") + "/" + name:
        return resolved
    return image_topic.rsplit("/", 1)[0] + "/" + default_leaf


def parse_size(text: str) -> tuple[int, int] | None:
    """"1280x720" -> (720, 1280) (H, W); "" -> None. ValueError for anything else."""
    text = str(text).strip().lower()
    if not text:
        return None
    parts = text.split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"expected WIDTHxHEIGHT such as 1280x720 or \"\", got {text[:40]!r}")
    w, h = (int(p) for p in parts)
    if not (1 <= w <= 16384 and 1 <= h <= 16384):
        raise ValueError(f"width and height must be in 1..16384, got {w}x{h}")
    return h, w


def expected_camera_size(node: Any, image_topic: str, expected: str,
                         wait_sec: float = CAMERA_INFO_WAIT_SEC
                         ) -> tuple[tuple[int, int], str] | None:
    """((H, W), where it came from) of the frames to expect, or None when unknown."""
    topic = sibling_topic(node, "camera_info", image_topic, "camera_info")  # remap wins
    try:
        if node.count_publishers(topic) > 0:
            from rclpy.wait_for_message import wait_for_message
            from sensor_msgs.msg import CameraInfo

            ok, msg = wait_for_message(CameraInfo, node, topic, time_to_wait=wait_sec)
            if ok and msg.width > 0 and msg.height > 0:
                return (int(msg.height), int(msg.width)), topic
    except Exception as e:  # noqa: BLE001 - a missing or odd camera_info falls back
        node.get_logger().warning(f"camera_info on {topic} not used: {type(e).__name__}: "
                                  f"{str(e)[:200]}")
    size = parse_size(expected)
    return (size, "expected_input_size") if size else None
