"""`stemseg infer --positions`: <seq>.positions.txt beside the KITTI results, from depth or LiDAR
(stemseg_core/geometry/positions_file.py)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from stemseg_core.cli import main
from stemseg_core.data.bag_writer import read_png
from stemseg_core.data.formats.kitti_mots import decode_instance_png
from stemseg_core.data.kitti_camera import read_calib
from stemseg_core.geometry import intrinsics_of, lift_from_depth

REPO = Path(__file__).resolve().parents[3]
N = 8


@pytest.fixture(scope="module")
def drive(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth3d")
    assert main(["synth", "--out", str(root), "--sequences", "1", "--frames", str(N), "--seed",
                 "0", "--height", "192", "--width", "640", "--val-fraction", "0", "--depth",
                 "--lidar", "--quiet"]) == 0
    return root


def _infer(data: Path, out: Path) -> int:
    return main(["infer", "--checkpoint", str(REPO / "checkpoints" / "stemseg_demo.pt"),
                 "--data", str(data), "--seq", "0000", "--out", str(out), "--device", "cpu",
                 "--min-track-length", "0", "--positions"])


def _lines(path: Path) -> list[list[float]]:
    return [[float(v) for v in line.split()] for line in path.read_text().splitlines()
            if not line.startswith("#")]


@pytest.mark.slow
@pytest.mark.parametrize("sensor", ["depth", "velodyne"])
def test_positions_are_written_for_the_results_and_near_the_ground_truth(drive, tmp_path,
                                                                          capsys, sensor):
    data = drive
    if sensor == "velodyne":  # the same drive without its depth images
        data = tmp_path / "data"
        shutil.copytree(drive, data)
        shutil.rmtree(data / "training" / "depth_02")
    assert _infer(data, tmp_path / "out") == 0
    assert f"(from {sensor})" in capsys.readouterr().out
    rows = _lines(tmp_path / "out" / "0000.positions.txt")
    results = {(int(f), int(t)) for f, t, *_ in
               (line.split() for line in (tmp_path / "out" / "0000.txt").read_text().splitlines())}
    assert len(rows) >= 10 and {(int(r[0]), int(r[1])) for r in rows} <= results
    tr = drive / "training"
    K = intrinsics_of(read_calib(tr / "calib" / "0000.txt")["P2"])
    near = 0
    for frame, _tid, _cls, x, y, z, *size in rows:
        assert z > 0 and all(s >= 0 for s in size)
        i = int(frame)
        gt = decode_instance_png(read_png(drive / "instances" / "0000" / f"{i:06d}.png"))
        depth = read_png(tr / "depth_02" / "0000" / f"{i:06d}.png")
        refs = [o.position for o in lift_from_depth([g.mask for g in gt.instances], depth, K)
                if o.has_position]
        near += min(np.linalg.norm(np.array([x, y, z]) - r) for r in refs) < 0.5
    assert near >= 0.8 * len(rows)


def test_without_depth_or_lidar_no_file_and_a_reason(drive, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(drive / "training" / "image_02", data / "training" / "image_02")
    shutil.copytree(drive / "training" / "calib", data / "training" / "calib")
    assert _infer(data, tmp_path / "out") == 0
    assert "no positions written" in capsys.readouterr().err
    assert not (tmp_path / "out" / "0000.positions.txt").exists()
