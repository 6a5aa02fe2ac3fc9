"""A hostile peer on the node's DDS domain (issue 35): this test process, as any other process
on the domain could, sends the attacks of the issue to the node running in its own process, and
then shows that the node still answers every good frame.

Attacks: a 3000-bracket parameter string, a parameter of a type rclpy does not know, a
transition that does not exist, live thresholds that would exhaust memory, a 140 KB PNG of
12000x12000 pixels, and, after a remote deactivate, changing the trust switches and the model.
"""
from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from ros_helpers import make_frames
from test_node import Collector, _change_state, _flush, _header, _set_params, _state

from stemseg_ros import conversions as cv

BOMB_SIDE = 12000  # 144 Mpx: 432 MB as RGB, 1.7 GB as the model's float copy
N_GOOD = 12


def png_bomb(side: int = BOMB_SIDE) -> bytes:
    """A valid greyscale PNG of side x side zeros (~140 KB): IHDR, one IDAT of zlib-compressed
    rows (filter byte 0 + zeros), IEND, written row by row (never the whole image in memory)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    z = zlib.compressobj(9)
    row = bytes(side + 1)
    idat = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit grey, no interlace
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def test_png_bomb_is_small_valid_and_huge():
    data = png_bomb()
    assert len(data) < 200_000
    from stemseg_core.data.image_codec import compressed_size

    assert compressed_size("png", data) == (BOMB_SIDE, BOMB_SIDE)
    small = png_bomb(64)  # the same writer, decodable: proves the bomb is a valid PNG
    import cv2

    img = cv2.imdecode(np.frombuffer(small, np.uint8), cv2.IMREAD_UNCHANGED)
    assert img.shape == (64, 64) and not img.any()


def _call_raw_set(client, ns: str, type_id: int, timeout: float):
    """set_parameters with a ParameterValue of any type id (rclpy's own service raises on an
    unknown one before any callback of the node runs)."""
    from rcl_interfaces.msg import Parameter, ParameterValue
    from rcl_interfaces.srv import SetParameters

    req = SetParameters.Request()
    req.parameters = [Parameter(name="mask_threshold", value=ParameterValue(type=type_id))]
    return client.call(SetParameters, f"{ns}/stemseg_perception/set_parameters", req, timeout)


@pytest.mark.ros
@pytest.mark.slow
def test_hostile_peer_cannot_crash_exhaust_or_take_over_the_node(
        tiny_checkpoint, ros_client, start_node, namespace):
    from lifecycle_msgs.msg import Transition
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CompressedImage

    ns = namespace
    pin = hashlib.sha256(Path(tiny_checkpoint).read_bytes()).hexdigest()
    node = start_node(["-r", f"__ns:={ns}", "-p", f"checkpoint:={tiny_checkpoint}",
                       "-p", f"checkpoint_sha256:='{pin}'", "-p", "device:=cpu",
                       "-p", "input_transport:=compressed", "-p", "qos_reliability:=reliable",
                       "-p", "qos_depth:=50", "-p", "max_queue_clips:=50",
                       "-p", "publish_overlay:=false", "-p", "max_input_rate:=-1.0",
                       "-p", "idle_flush_sec:=0.0", "-p", "diagnostics_period_sec:=0.2"])
    collector = Collector(ros_client, ns)
    assert ros_client.spin_until(lambda: collector.diag_values().get("state") == "active",
                                 120), node.log()

    # (a) one parameter set used to end the process (RecursionError out of yaml.safe_load)
    res = _set_params(ros_client, ns, seediness_threshold_per_class="[" * 3000)
    assert not res[0].successful and "nested" in res[0].reason and len(res[0].reason) < 400
    # a ParameterValue type rclpy does not know: rclpy's service raises (no answer), the node
    # goes on; a NOT_SET value (would undeclare the parameter) is refused
    assert _call_raw_set(ros_client, ns, 10, timeout=3.0) is None
    res = _call_raw_set(ros_client, ns, 0, timeout=30.0)
    assert res is not None and not res.results[0].successful, node.log()
    assert not _change_state(ros_client, ns, 99)  # no such transition
    assert node.alive() and _state(ros_client, ns) == "active"
    assert "[[[[" * 100 not in node.log()  # a hostile value is logged by a short prefix only

    # (e) live thresholds that would exhaust memory
    for name, value in (("max_instances", 100_000_000), ("mask_threshold", 1.0)):
        res = _set_params(ros_client, ns, **{name: value})
        assert not res[0].successful and name in res[0].reason, res[0].reason

    # (b) a 140 KB PNG of 12000x12000 on the input: dropped from its header, RSS flat
    pub = ros_client.node.create_publisher(
        CompressedImage, f"{ns}/image/compressed",
        QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
    assert ros_client.spin_until(
        lambda: pub.get_subscription_count() > 0
        and int(collector.diag_values().get("input_publishers", "0")) > 0, 60), node.log()
    before = rss_mb(node.proc.pid)
    bomb = CompressedImage(format="png")
    bomb.header = _header(0)
    bomb.data = png_bomb()
    pub.publish(bomb)
    assert ros_client.spin_until(
        lambda: collector.diag_values().get("frames_too_large") == "1", 60), (
        collector.diag_values(), node.log())
    grown = rss_mb(node.proc.pid) - before
    print(f"\nnode RSS {before:.0f} MB before the PNG bomb, {grown:+.1f} MB after it")
    assert grown < 100, f"node RSS grew {grown:.0f} MB on the PNG bomb"
    assert "12000x12000" in node.log() and "max_image_pixels" in node.log()

    # (c) good frames afterwards: every one answered
    headers = [_header(1 + i) for i in range(N_GOOD)]
    for frame, h in zip(make_frames(N_GOOD), headers):
        pub.publish(cv.rgb_to_compressed(frame, "jpeg", h))
        ros_client.spin_for(0.03)
    assert ros_client.spin_until(
        lambda: collector.diag_values().get("frames_in") == str(N_GOOD + 1), 60), (
        collector.diag_values())
    _flush(ros_client, ns)
    assert ros_client.spin_until(lambda: len(collector.instances) >= N_GOOD, 60), node.log()
    got = [(m.header.stamp.sec, m.header.stamp.nanosec) for m in collector.instances]
    assert got == [(h.stamp.sec, h.stamp.nanosec) for h in headers]
    assert all((m.height, m.width) == (64, 128) for m in collector.instances)

    # (d) after a remote deactivate the trust switches and the model stay as started
    assert _change_state(ros_client, ns, Transition.TRANSITION_DEACTIVATE), node.log()
    assert _state(ros_client, ns) == "inactive"
    for name, value, why in (("allow_pickle", True, "read-only"),
                             ("checkpoint_sha256", "", "read-only"),
                             ("max_image_pixels", 10**9, "read-only"),
                             ("allow_remote_model_change", True, "read-only"),
                             ("checkpoint", "/tmp/planted.pt", "allow_remote_model_change"),
                             ("engine_cache_dir", "/tmp/planted", "allow_remote_model_change"),
                             ("backend", "onnxruntime", "allow_remote_model_change")):
        res = _set_params(ros_client, ns, **{name: value})
        assert not res[0].successful and why in res[0].reason, (name, res[0].reason)
    assert _change_state(ros_client, ns, Transition.TRANSITION_ACTIVATE), node.log()
    assert node.alive() and f"checkpoint {tiny_checkpoint}" in node.log()
    assert node.stop() == 0, node.log()
