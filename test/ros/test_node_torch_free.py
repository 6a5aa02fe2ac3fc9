"""The node on OpenVINO from a prebuilt engine cache maps no libtorch (issue 37); its resident
memory after warm-up and a 20-frame stream, read from /proc, is printed and bounded, and the
parts that were cut from it stay out: the 64 MiB Fast DDS segment of the camera
profile, the compiled decoders of flush lengths. The demo model's figure (docs/node.md) is a
measurement, run on demand: ``STEMSEG_MEASURE_DEMO=1 pytest -s -k demo`` (its graph build takes
minutes; set ``STEMSEG_DEMO_ENGINES=DIR`` to keep them between runs)."""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
from ros_helpers import LOW_THRESHOLDS, REPO, make_frames

from stemseg_ros import conversions as cv
from stemseg_ros import dds, names

N_FRAMES = 20
#: The tiny model's bound after warm-up and 20 frames: measured 244-322 MiB (2026-12-07, the
#: higher figure in a fresh-clone CI run; Python, numpy, scipy, OpenCV, OpenVINO, rclpy and the
#: node's DDS segment are most of it), with headroom; libtorch alone would add ~500 MiB. The
#: issue's 600 MiB is for the demo model at 192x640 (docs/node.md).
MAX_RSS_MIB = 400
#: The issue's bound for the CPU default (OpenVINO BF16) with the demo model at 192x640.
DEMO_MAX_RSS_MIB = 600
#: Shared memory resident in the node: its own Fast DDS segment (config/fastdds_node.xml,
#: 16 MiB, all resident from the start) and what it maps of the test process's (512 KiB).
MAX_SHMEM_MIB = 24


def _status_mib(pid: int, key: str = "VmRSS") -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"{key}:\s+(\d+) kB", status).group(1)) / 1024


def _prebuild(checkpoint: Path, cache: Path, height: int, width: int) -> None:
    """What `stemseg export --format openvino` builds for a camera of height x width, with
    torch, here."""
    from stemseg_core.inference.graph_build import build_graphs
    from stemseg_core.inference.preprocess import geometry
    from stemseg_core.inference.tracker import StreamingTracker

    trk = StreamingTracker.from_checkpoint(
        checkpoint, device="cpu", load_model=True,
        overrides=[f"inference.engine_cache_dir={cache}", "inference.backend=openvino"])
    geo = geometry(height, width, trk.cfg.input.min_side, trk.cfg.input.max_side)
    build_graphs(trk, "openvino", "fp32", (3, *geo.padded_size), str(cache))


def _stream(ros_client, start_node, namespace: str, checkpoint: Path, cache: Path,
            height: int, width: int, node_args: list[str]) -> tuple[dict, str, object]:
    """The node on openvino bf16 from ``cache``; RSS after warm-up, then N_FRAMES frames of
    height x width sent with at most 4 waiting, all answered; returns ({"warm", "after",
    "peak", "shmem"} MiB, /proc maps, the node)."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header
    from stemseg_ros.msg import TrackedInstanceArray

    camera = f"{namespace}/camera/image_raw"
    qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    pub = ros_client.node.create_publisher(Image, camera, qos)
    got: list = []
    ros_client.node.create_subscription(
        TrackedInstanceArray, names.node_topic(names.INSTANCES, namespace), got.append, qos)
    node = start_node(["--params-file", "config/perception.yaml", "-r", f"image:={camera}",
                       "-r", f"__ns:={namespace}", "-p", f"checkpoint:={checkpoint}",
                       "-p", "device:=cpu", "-p", "backend:=openvino", "-p", "precision:=bf16",
                       "-p", f"engine_cache_dir:={cache}", "-p", "qos_reliability:=reliable",
                       "-p", "max_input_rate:=-1.0", "-p", "idle_flush_sec:=0.5", *node_args])
    assert ros_client.spin_until(lambda: pub.get_subscription_count() > 0, 300), node.log()
    ros_client.spin_for(1.0)
    pid = node.proc.pid
    warm = _status_mib(pid)
    for i, f in enumerate(make_frames(N_FRAMES, height, width)):
        assert ros_client.spin_until(lambda i=i: i - len(got) <= 3, 60), (i, node.log())
        h = Header(frame_id="camera_optical")
        h.stamp.sec, h.stamp.nanosec = 100 + i // 10, (i % 10) * 100_000_000
        pub.publish(cv.array_to_image(np.ascontiguousarray(f[..., ::-1]), "bgr8", h))
        ros_client.spin_for(0.05)
    assert ros_client.spin_until(lambda: len(got) >= N_FRAMES, 120), (len(got), node.log())
    assert sum(len(m.instances) for m in got) > 0  # the network ran: instances came out
    ros_client.spin_for(1.0)  # the idle flush
    mib = {"warm": warm, "after": _status_mib(pid), "peak": _status_mib(pid, "VmHWM"),
           "shmem": _status_mib(pid, "RssShmem")}
    return mib, Path(f"/proc/{pid}/maps").read_text(), node


def _check_cuts(maps: str, node) -> None:
    """What the node no longer holds: libtorch, flush decoders."""
    assert "libtorch" not in maps, [ln for ln in maps.splitlines() if "torch" in ln][:3]
    assert "from the engine cache" in node.log()  # loaded without a torch model
    # the decoders of flush lengths are compiled for a flush and freed: only one IR is mapped
    held = set(re.findall(r"/decoder-L(\d+)-", maps))
    assert len(held) == 1, held


@pytest.mark.ros
@pytest.mark.slow
def test_openvino_node_maps_no_libtorch(tiny_checkpoint, tmp_path, ros_client, start_node,
                                        namespace, monkeypatch):
    # started as `stemseg bag eval` starts it: from a process that set the camera's profile
    monkeypatch.setenv(dds.PROFILE_VARIABLE, dds.profile_path())
    cache = tmp_path / "engines"
    cache.mkdir(mode=0o700)
    _prebuild(tiny_checkpoint, cache, 64, 128)
    low = sum([["-p", f"{k}:={v}"] for k, v in LOW_THRESHOLDS.items()], [])
    mib, maps, node = _stream(ros_client, start_node, namespace, tiny_checkpoint, cache, 64, 128,
                              low)
    print(f"\nnode on openvino bf16 (tiny model, 64x128): RSS {mib['after']:.0f} MiB after "
          f"warm-up and {N_FRAMES} frames ({mib['shmem']:.0f} MiB of it shared memory)")
    _check_cuts(maps, node)
    assert mib["after"] <= MAX_RSS_MIB
    assert mib["shmem"] <= MAX_SHMEM_MIB  # 66 MiB when the node kept the camera's profile
    assert node.stop() == 0, node.log()


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("STEMSEG_MEASURE_DEMO"),
                    reason="a measurement of minutes (see the module doc): STEMSEG_MEASURE_DEMO=1")
def test_demo_model_node_rss_at_192x640(tmp_path, ros_client, start_node, namespace):
    """The issue's figure: the shipped model, 192x640, <= DEMO_MAX_RSS_MIB after 20 frames."""
    checkpoint = REPO / "checkpoints" / "stemseg_demo.pt"
    if not checkpoint.is_file():
        pytest.skip(f"no {checkpoint}")
    cache = Path(os.environ.get("STEMSEG_DEMO_ENGINES") or tmp_path / "engines")
    cache.mkdir(mode=0o700, parents=True, exist_ok=True)
    _prebuild(checkpoint, cache, 192, 640)
    mib, maps, node = _stream(ros_client, start_node, namespace, checkpoint, cache, 192, 640, [])
    print(f"\nnode on openvino bf16 (demo model, 192x640): RSS {mib['warm']:.0f} MiB after "
          f"warm-up, {mib['after']:.0f} after {N_FRAMES} frames, peak {mib['peak']:.0f} "
          f"({mib['shmem']:.0f} MiB of it shared memory)")
    _check_cuts(maps, node)
    assert mib["after"] <= DEMO_MAX_RSS_MIB
    assert node.stop() == 0, node.log()
