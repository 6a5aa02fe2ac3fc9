"""A real 1280x720 JPEG camera in ANOTHER process, answered from its first frame (issue 40).

The node starts as the README tells camera users (the shipped model, the CPU default backend,
``input_transport: compressed``, the model input scaled into 640x192) with an EMPTY engine
cache; the camera process publishes camera_info from the start, as drivers do, and begins
playback once the node's subscription matches (the node is active). A synthetic drive at 10 Hz
for 20 s, JPEG quality 95: >= 95 % of the frames answered (ros_helpers.REAL_TIME_SHARE: a
measurement with ``STEMSEG_MEASURE_RATE=1``; half in the suite) and track IDs carried between
consecutive results (>= 75 % of the instances). 15 Hz: measured and printed, not asserted
(only with ``STEMSEG_MEASURE_15HZ=1``: it costs the suite another engine build and 20 s).

Timing figures need the machine to itself (2 cores): run under ``bash /tmp/quiet.sh`` or with
nothing else busy, ``-s`` to see them.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest
from ros_helpers import REAL_TIME_SHARE, REPO, ros_env

from stemseg_ros import dds, names

CAMERA = REPO / "test" / "ros" / "publish_camera.py"
SECONDS = 20
#: Seconds after the last frame within which its answer counts: its clip completes only
#: through the idle flush (idle_flush_sec 1 s) and publishing takes a moment.
GRACE_SEC = 2.5
#: /diagnostics values printed with the figures (where the frames went, the worker's cost).
DIAG_KEYS = ("frames_in", "frames_out", "frames_skipped", "dropped_frames",
             "worker_time_per_frame_s", "max_input_rate_hz")


def carried_share(results: list) -> float:
    """Of the instances in each result after the first, the share whose track ID was in the
    result before it (results in stamp order); 0.0 without any."""
    carried = total = 0
    for prev, cur in zip(results, results[1:]):
        before = {i.track_id for i in prev.instances}
        total += len(cur.instances)
        carried += sum(i.track_id in before for i in cur.instances)
    return carried / total if total else 0.0


def test_carried_share_counts_ids_seen_in_the_result_before():
    class R:
        def __init__(self, *ids):
            self.instances = [type("I", (), {"track_id": i})() for i in ids]

    assert carried_share([R(1, 2), R(1, 2, 3), R(3), R()]) == pytest.approx(3 / 4)
    assert carried_share([R(1)]) == 0.0


def run_camera(ros_client, start_node, namespace: str, domain_id: int, tmp_path,
               hz: float) -> dict:
    """One run: the node with an empty engine cache, the camera at ``hz``; the figures."""
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from stemseg_ros.msg import TrackedInstanceArray

    camera = f"{namespace}/camera/image_raw"
    got: list[tuple[float, object]] = []
    diag: dict[str, str] = {}

    def on_diag(arr) -> None:
        for st in arr.status:
            if names.is_status_of(st.name, namespace):
                diag.clear()
                diag.update({kv.key: kv.value for kv in st.values})

    ros_client.node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)
    ros_client.node.create_subscription(
        TrackedInstanceArray, names.node_topic(names.INSTANCES, namespace),
        lambda m: got.append((time.time(), m)),
        QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
    env = ros_env(domain_id)
    env.update(dds.environment(env))
    cam = subprocess.Popen([sys.executable, str(CAMERA), "drive", camera, "1280", "720",
                            str(hz), str(SECONDS), "95"], cwd=REPO, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    first = cam.stdout.readline()  # "ready": camera_info is published, as by a running driver
    assert first.strip() == "ready", first + cam.stdout.read()
    cache = tmp_path / f"engines_{hz:g}"
    cache.mkdir(mode=0o700)
    node = start_node(["--params-file", "config/perception.yaml", "-r", f"image:={camera}",
                       "-r", f"__ns:={namespace}", "-p", "input_transport:=compressed",
                       "-p", "input_width:=640", "-p", "input_height:=192",
                       "-p", f"engine_cache_dir:={cache}", "-p", "device:=cpu",
                       "-p", "backend:=openvino", "-p", "precision:=bf16"])
    deadline = time.monotonic() + 240
    try:
        while cam.poll() is None and time.monotonic() < deadline:
            ros_client.spin_for(0.05)  # results are timed as they arrive
        out = first + cam.communicate(timeout=5)[0]
    finally:
        if cam.poll() is None:
            cam.kill()
    playing = re.search(r"playing ([\d.]+)", out)
    sent = re.search(r"sent (\d+)", out)
    assert playing and sent, (out, node.log())
    t0, n_sent = float(playing.group(1)), int(sent.group(1))
    ros_client.spin_for(GRACE_SEC + 1.0)
    end = t0 + n_sent / hz + GRACE_SEC
    stamp0 = 1000 * 10**9
    answered = {}
    for arrived, m in got:
        k = round(((m.header.stamp.sec * 10**9 + m.header.stamp.nanosec) - stamp0) * hz / 1e9)
        if arrived <= end and 0 <= k < n_sent:
            answered.setdefault(k, (arrived, m))
    lat = sorted(a - (t0 + k / hz) for k, (a, _) in answered.items())
    results = [m for _, (_, m) in sorted(answered.items())]
    log = node.log()
    build = re.search(r"warming up for 1280x720 frames \(size from ([^)]*)\)", log)
    return {"hz": hz, "sent": n_sent, "answered": len(answered),
            "share": len(answered) / n_sent, "carried": carried_share(results),
            "instances": sum(len(m.instances) for m in results),
            "latency_p50": lat[len(lat) // 2] if lat else float("nan"),
            "latency_p90": lat[int(len(lat) * 0.9)] if lat else float("nan"),
            "engines_from": build.group(1) if build else None, "log": log,
            "diagnostics": {k: diag.get(k) for k in DIAG_KEYS}}


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.parametrize("hz", [10.0, pytest.param(15.0, marks=pytest.mark.skipif(
    not os.environ.get("STEMSEG_MEASURE_15HZ"),
    reason="a measurement, not a check (no assertion on the share): STEMSEG_MEASURE_15HZ=1"))])
def test_720p_jpeg_camera_from_another_process_with_an_empty_engine_cache(
        ros_client, start_node, namespace, domain_id, tmp_path, hz):
    r = run_camera(ros_client, start_node, namespace, domain_id, tmp_path, hz)
    print(f"\n720p jpeg q95 at {hz:g} Hz, empty engine cache: answered {r['answered']} of "
          f"{r['sent']} ({100 * r['share']:.1f} %), IDs carried {100 * r['carried']:.1f} % of "
          f"{r['instances']} instances, latency p50 {r['latency_p50']:.3f} s p90 "
          f"{r['latency_p90']:.3f} s, engines built on activate from {r['engines_from']}; "
          f"node: {r['diagnostics']}")
    assert r["engines_from"], r["log"]  # built before the first frame, not mid-stream
    assert "Traceback" not in r["log"], r["log"]
    assert r["instances"] > 0 and r["carried"] >= 0.75, r
    if hz == 10.0:
        assert r["share"] >= REAL_TIME_SHARE, r
