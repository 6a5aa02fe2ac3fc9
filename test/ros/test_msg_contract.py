"""The message contract across processes: what one process publishes, another receives intact."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from publish_instances import HEIGHT, WIDTH, sample, sample_3d
from ros_helpers import REPO, ros_env

from stemseg_core.data.rle import counts_to_mask, mask_to_kitti_string


@pytest.mark.ros
def test_tracked_instance_array_received_intact(ros_client, domain_id, namespace, tmp_path):
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from stemseg_ros.msg import TrackedInstanceArray

    from stemseg_ros import conversions as cv

    topic = f"{namespace}/instances"
    got = []
    ros_client.node.create_subscription(
        TrackedInstanceArray, topic, got.append,
        QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
    with open(tmp_path / "pub.log", "w") as log:
        proc = subprocess.Popen([sys.executable, str(REPO / "test/ros/publish_instances.py"),
                                 topic], cwd=REPO, env=ros_env(domain_id), stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            ok = ros_client.spin_until(lambda: len(got) > 0, 60)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
    assert ok, (tmp_path / "pub.log").read_text()
    msg = got[0]
    assert msg.header.frame_id == "cam_left"
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (1_700_000_000, 999_999_999)
    assert (msg.height, msg.width) == (HEIGHT, WIDTH)
    want = sample()
    assert len(msg.instances) == len(want.instances)
    for m, w in zip(msg.instances, want.instances):
        assert (m.track_id, m.class_id, m.class_name) == (w.track_id, w.class_id, w.class_name)
        assert m.score == pytest.approx(w.score)
        assert (m.bbox.x_offset, m.bbox.y_offset, m.bbox.width, m.bbox.height) == w.bbox()
        assert sum(m.mask_counts) == HEIGHT * WIDTH
        # Decoded with the few lines the .msg documents (no stemseg code) ...
        flat = np.zeros(HEIGHT * WIDTH, np.uint8)
        pos = 0
        for k, n in enumerate(m.mask_counts):
            flat[pos:pos + n] = k % 2
            pos += n
        np.testing.assert_array_equal(flat.reshape(WIDTH, HEIGHT).T.astype(bool), w.mask)
        # ... and into the KITTI MOTS string with pycocotools.
        got = mask_to_kitti_string(counts_to_mask(m.mask_counts, HEIGHT, WIDTH))
        assert got == mask_to_kitti_string(w.mask)
    # 3-D (issue 36): metres in the camera optical frame; without a position all zero
    for m, t in zip(msg.instances, sample_3d()):
        assert m.has_position == t.object.has_position
        assert m.has_velocity == t.has_velocity
        pos, size = (m.position.x, m.position.y, m.position.z), (m.size.x, m.size.y, m.size.z)
        vel = (m.velocity.x, m.velocity.y, m.velocity.z)
        want_pos = tuple(t.object.position) if t.object.has_position else (0.0, 0.0, 0.0)
        want_size = tuple(t.object.size) if t.object.has_position else (0.0, 0.0, 0.0)
        assert pos == want_pos and size == want_size and vel == tuple(t.velocity)
    assert msg.instances[0].velocity.z == -1.5 and msg.instances[1].position.z == 30.5
    back = cv.msg_to_frame_result(msg)
    for b, w in zip(back.instances, want.instances):
        np.testing.assert_array_equal(b.mask, w.mask)
