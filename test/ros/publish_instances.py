"""Helper process of test_msg_contract.py: publishes one known TrackedInstanceArray repeatedly.

    python test/ros/publish_instances.py TOPIC   (ROS_DOMAIN_ID from the environment)

Runs until SIGINT/SIGTERM. `sample()` is the message content; the test rebuilds it to compare.
"""
from __future__ import annotations

import sys

import numpy as np

from stemseg_core.inference.types import FrameResult, TrackedInstance

HEIGHT, WIDTH = 37, 53


def sample() -> FrameResult:
    """Three instances: one ragged random mask, one touching both image corners, one empty."""
    rng = np.random.default_rng(1234)
    ragged = rng.random((HEIGHT, WIDTH)) > 0.7
    corners = np.zeros((HEIGHT, WIDTH), bool)
    corners[0, 0] = corners[-1, -1] = True
    empty = np.zeros((HEIGHT, WIDTH), bool)
    return FrameResult(index=0, stamp=None, image_size=(HEIGHT, WIDTH), instances=[
        TrackedInstance(4_000_000_000, 2, "pedestrian", 0.875, ragged),
        TrackedInstance(1, 1, "car ünïcode", 1.0, corners),
        TrackedInstance(65536, 65535, "", 0.0, empty),
    ])


def sample_3d() -> list:
    """Core Track3D per instance of `sample()`: a position with a velocity, a position without
    one, none."""
    from stemseg_core.geometry import Track3D
    from stemseg_core.geometry.objects3d import Object3D

    nan3 = np.full(3, np.nan)
    return [Track3D(4_000_000_000, Object3D(True, np.array([-1.25, 0.5, 12.0]),
                                            np.array([0.6, 1.7, 0.5]), 40), True,
                    np.array([0.25, 0.0, -1.5])),
            Track3D(1, Object3D(True, np.array([3.0, 1.0, 30.5]), np.array([1.8, 1.5, 4.0]), 9),
                    False, np.zeros(3)),
            Track3D(65536, Object3D(False, nan3, nan3, 0), False, np.zeros(3))]


def main(topic: str) -> None:
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from std_msgs.msg import Header
    from stemseg_ros.msg import TrackedInstanceArray

    from stemseg_ros.conversions import frame_result_to_msg

    rclpy.init()
    node = rclpy.create_node("instances_publisher")
    pub = node.create_publisher(TrackedInstanceArray, topic,
                                QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
    header = Header(frame_id="cam_left")
    header.stamp.sec, header.stamp.nanosec = 1_700_000_000, 999_999_999
    msg = frame_result_to_msg(sample(), header, tracks3d=sample_3d())
    node.create_timer(0.1, lambda: pub.publish(msg))
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
