"""The node fed by a camera in ANOTHER process (test/ros/publish_camera.py) over real DDS: bad
inputs interleaved with good frames, the stream policy's resets with track-ID continuity, a
1280x720 best-effort camera for 20 s (raw, then compressed with the same remap), and a clean
stop on SIGTERM or SIGINT that leaves no shared memory behind."""
from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import pytest
from ros_helpers import (
    LOW_THRESHOLDS,
    REPO,
    orphaned_segments,
    ros_env,
    shm_segments_mapped_by,
)
from test_node import Collector, _assert_matches_offline, _flush

from stemseg_ros import dds

CAMERA = REPO / "test" / "ros" / "publish_camera.py"
_LOW = sum([["-p", f"{k}:={v}"] for k, v in LOW_THRESHOLDS.items()], [])


def start_camera(domain_id: int, *args: str) -> subprocess.Popen:
    """The camera process, with the Fast DDS profile as docs/node.md tells camera users."""
    env = ros_env(domain_id)
    env.update(dds.environment(env))
    return subprocess.Popen([sys.executable, str(CAMERA), *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _sent(proc: subprocess.Popen, timeout: float) -> int:
    out, _ = proc.communicate(timeout=timeout)
    m = re.search(r"sent (\d+)", out)
    assert m, out
    return int(m.group(1))


def _header(stamp: int):
    from std_msgs.msg import Header

    h = Header(frame_id="cam")
    h.stamp.sec, h.stamp.nanosec = stamp // 10**9, stamp % 10**9
    return h


@pytest.mark.ros
@pytest.mark.slow
def test_bad_inputs_interleaved_and_resets_keep_ids(tiny_checkpoint, ros_client, start_node,
                                                     namespace, domain_id):
    sys.path.insert(0, str(CAMERA.parent))
    from publish_camera import faults

    from stemseg_core.inference.stream_policy import StreamSession
    from stemseg_core.inference.tracker import StreamingTracker

    # The reference: the core's stream policy over the good frames, as the node runs it.
    tr = StreamingTracker.from_checkpoint(tiny_checkpoint, device="cpu",
                                          overrides=["inference.flip_test=false"])
    tr.set_thresholds(**LOW_THRESHOLDS)
    session, prev, reference = StreamSession(tr, gap_reset_sec=1.0), None, []
    good = [(stamp, rgb) for kind, stamp, rgb in faults() if kind == "good"]
    for stamp, rgb in good:
        reference += session.push(rgb, stamp, stamp, prev)
        prev = stamp
    reference += session.flush()
    assert session.resets == 3

    camera = f"{namespace}/camera/image_raw"
    collector = Collector(ros_client, namespace)
    node = start_node(["--params-file", "config/perception.yaml", "-r", f"image:={camera}",
                       "-r", f"__ns:={namespace}", "-p", f"checkpoint:={tiny_checkpoint}",
                       "-p", "device:=cpu", "-p", "qos_reliability:=reliable",
                       "-p", "qos_depth:=100", "-p", "max_queue_clips:=100",
                       "-p", "idle_flush_sec:=0.0", "-p", "gap_reset_sec:=1.0",
                       "-p", "max_input_rate:=-1.0", *_LOW])
    assert node.wait_for_log("subscribed to", 90), node.log()
    n_sent = _sent(start_camera(domain_id, "faults", camera), 120)
    assert n_sent == len(faults())
    assert ros_client.spin_until(
        lambda: collector.diag_values().get("frames_in") == str(n_sent), 60), node.log()
    _flush(ros_client, namespace)
    assert ros_client.spin_until(lambda: len(collector.instances) >= len(good), 60), node.log()
    ros_client.spin_for(0.3)
    _assert_matches_offline(collector.instances, reference, [_header(s) for s, _ in good])
    # Track IDs go on across the three resets: never reused.
    seqs = [collector.instances[a:b] for a, b in ((0, 5), (5, 9), (9, 13), (13, 17))]
    ids = [{i.track_id for m in seq for i in m.instances} for seq in seqs]
    assert all(ids) and all(max(a) < min(b) for a, b in zip(ids, ids[1:])), ids
    log = node.log()
    for text in ("image size changed from 128x64 to 144x80", "jumped back in time",
                 "gap of 3.000 s", "unsupported image encoding 'yuv999'"):
        assert text in log, text
    assert collector.diag_values()["conversion_errors"] == "5"
    assert "Traceback" not in log and node.alive()


@pytest.mark.ros
@pytest.mark.slow
def test_720p_best_effort_camera_in_another_process(tiny_checkpoint, ros_client, start_node,
                                                     namespace, domain_id):
    camera = f"{namespace}/camera/image_raw"
    # As the README says, plus the test's small model and namespace.
    base = ["--params-file", "config/perception.yaml", "-r", f"image:={camera}",
            "-r", f"__ns:={namespace}", "-p", f"checkpoint:={tiny_checkpoint}",
            "-p", "device:=cpu"]
    collector = Collector(ros_client, namespace)
    node = start_node(base)
    assert node.wait_for_log("subscribed to", 90), node.log()
    n_sent = _sent(start_camera(domain_id, "stream", camera, "1280", "720", "15", "20"), 60)
    ros_client.spin_until(lambda: collector.diag_values().get("frames_in") == str(n_sent), 5)
    ros_client.spin_until(lambda: int(collector.diag_values()["frames_out"]) > 0, 30)
    diag = collector.diag_values()
    frames_in = int(diag["frames_in"])
    print(f"\n720p raw: sent {n_sent}, frames_in {frames_in}, answered {diag['frames_out']}, "
          f"skipped {diag['frames_skipped']}, dropped {diag['dropped_frames']}, receive to "
          f"publish p50 {diag['latency_receive_to_publish_p50_s']} s, model rate "
          f"{diag['max_input_rate_hz']}")
    assert n_sent == 300 and frames_in >= 0.95 * n_sent, diag
    assert int(diag["frames_out"]) > 0 and len(collector.instances) > 0
    assert diag["tracker_resets"] == "0" and "new track sequence" not in node.log(), node.log()
    assert node.stop() == 0

    # Compressed input: the same remap, the node reads <image topic>/compressed.
    node = start_node([*base, "-p", "input_transport:=compressed"])
    assert node.wait_for_log(f"subscribed to {camera}/compressed", 90), node.log()
    n_sent = _sent(start_camera(domain_id, "stream", camera, "1280", "720", "15", "4",
                                "compressed"), 60)
    ros_client.spin_until(lambda: collector.diag_values().get("frames_in") == str(n_sent), 5)
    # Only that it arrives: jpeg decoding runs in the callback and competes with the model for
    # the CPU, so on a loaded 2-core machine the input history overflows at times (measured 46
    # to 60 of 60 at load 13); raw images are what the 95 % above is about.
    frames_in = int(collector.diag_values()["frames_in"])
    print(f"720p jpeg: sent {n_sent}, frames_in {frames_in}")
    assert frames_in >= 0.5 * n_sent, collector.diag_values()
    # answered once the model has run (the idle flush finalises the last partial clip)
    assert ros_client.spin_until(lambda: int(collector.diag_values()["frames_out"]) > 0, 60)


@pytest.mark.ros
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly_within_2_s(tiny_checkpoint, start_node, namespace, sig):
    node = start_node(["-r", f"__ns:={namespace}", "-p", f"checkpoint:={tiny_checkpoint}",
                       "-p", "device:=cpu"])
    assert node.wait_for_log("active:", 90), node.log()
    segments = shm_segments_mapped_by(node.proc.pid)
    assert segments, "the node maps no Fast DDS segment: the SHM transport is off"
    t0 = time.monotonic()
    node.proc.send_signal(sig)
    node.proc.wait(timeout=10)
    took = time.monotonic() - t0
    log = node.log()
    assert node.proc.returncode == 0 and took < 2.0, (took, log)
    assert "Traceback" not in log and "[ERROR]" not in log and "context is invalid" not in log
    # its own segment goes with it (a leftover stays in memory until the next reboot)
    assert orphaned_segments(segments) == []
