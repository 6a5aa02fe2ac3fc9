"""QoS of the perception node: the profiles it uses and the warnings when a peer cannot match."""
from __future__ import annotations

from typing import Any

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_policy_name_from_kind,
)


def qos_for(reliability: str, depth: int) -> QoSProfile:
    """Keep-last `depth`, volatile, reliable or best effort (`reliability` as the parameter)."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=depth, durability=DurabilityPolicy.VOLATILE,
        reliability=(ReliabilityPolicy.RELIABLE if reliability == "reliable"
                     else ReliabilityPolicy.BEST_EFFORT))


def matching_reliability(publisher_reliabilities: list[ReliabilityPolicy]) -> str:
    """`qos_reliability: auto`: reliable when every publisher found offers reliable (like
    rosbag2 does), best_effort otherwise (which also matches reliable publishers)."""
    if publisher_reliabilities and all(r == ReliabilityPolicy.RELIABLE
                                       for r in publisher_reliabilities):
        return "reliable"
    return "best_effort"


def input_incompatible_message(info: Any, topic: str, reliability: str, depth: int) -> str:
    policy = qos_policy_name_from_kind(info.last_policy_kind)
    return (f"incompatible QoS on input '{topic}': a publisher cannot give what this node "
            f"requests ({policy}: we request {reliability}, depth {depth}); no images will "
            f"arrive from it. Set qos_reliability to best_effort or auto "
            f"({info.total_count} incompatible publisher(s) so far)")


def output_incompatible_message(info: Any) -> str:
    policy = qos_policy_name_from_kind(info.last_policy_kind)
    return (f"incompatible QoS on an output topic: a subscriber requests more than this node "
            f"offers ({policy}; we offer reliable, volatile); it will receive nothing "
            f"({info.total_count} so far)")
