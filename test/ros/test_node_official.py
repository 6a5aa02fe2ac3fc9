"""The authors' KITTI MOTS network, imported with `stemseg import-official`, in the perception
node over real DDS: the node publishes what StreamingTracker gives offline on the same frames.

The weights are random values in the authors' key layout and shapes (from
test/core/commands/test_import_official.py), saved as their trainer saves.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from ros_helpers import offline_results
from test_node import Collector, _assert_matches_offline, _flush, _header, _stream, _wait_connected

from stemseg_core.cli import main
from stemseg_ros import conversions as cv

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core" / "commands"))
from test_import_official import authors_state, save_like_their_trainer  # noqa: E402

N_FRAMES = 12  # T=8, Tc=4: clips at frames 8 and 12
#: Every pixel is a candidate and no instance is too small: random weights still give
#: instances to compare (the authors' own thresholds would give none).
THRESHOLDS = {"seediness_threshold": 0.0, "foreground_threshold": 0.0}


@pytest.mark.ros
@pytest.mark.slow  # ResNet-101 on 8-frame clips: warm-up, two clips, the offline reference
def test_imported_official_model_runs_in_the_node(tmp_path, ros_client, start_node, namespace,
                                                  capsys):
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    src = tmp_path / "kitti_mots.pth"
    save_like_their_trainer(authors_state("kitti_mots"), src)
    ckpt = tmp_path / "official.pt"
    # native size (no resize to 800 px, padded to 96x160): ResNet-101 stays at seconds per clip
    assert main(["import-official", "--checkpoint", str(src), "--dataset", "kitti_mots",
                 "--out", str(ckpt), "--set", "input.min_side=0", "input.max_side=0"]) == 0
    capsys.readouterr()
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, (90, 150, 3), dtype=np.uint8) for _ in range(N_FRAMES)]
    reference = offline_results(ckpt, frames, THRESHOLDS)

    camera = f"{namespace}/camera/image_raw"
    pub = ros_client.node.create_publisher(
        Image, camera, QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
    collector = Collector(ros_client, namespace)
    node = start_node(["-r", f"image:={camera}", "-r", f"__ns:={namespace}",
                       "-p", f"checkpoint:={ckpt}", "-p", "device:=cpu",
                       "-p", "qos_reliability:=reliable", "-p", "idle_flush_sec:=0.0",
                       "-p", "max_queue_clips:=50", "-p", "qos_depth:=50",
                       "-p", "max_input_rate:=-1.0",
                       *sum([["-p", f"{k}:={v}"] for k, v in THRESHOLDS.items()], [])])
    assert _wait_connected(ros_client, pub, collector, timeout=180), node.log()
    diag = collector.diag_values()
    assert diag["checkpoint"] == str(ckpt), diag

    headers = [_header(i) for i in range(N_FRAMES)]
    msgs = [cv.array_to_image(f, "rgb8", h) for f, h in zip(frames, headers)]
    _stream(ros_client, pub, msgs, collector, N_FRAMES)
    _flush(ros_client, namespace)
    assert ros_client.spin_until(lambda: len(collector.instances) >= N_FRAMES, 120), (
        f"{len(collector.instances)} results\n{node.log()}")
    assert node.alive(), node.log()
    _assert_matches_offline(collector.instances, reference, headers)
    names = {i.class_name for m in collector.instances for i in m.instances}
    assert names <= {"car", "pedestrian"}, names
