"""`stemseg bag eval` on a bag with LiDAR scans and no depth: the 3-D table against the scans."""
from __future__ import annotations

import json

import pytest

from stemseg_core.cli import main


@pytest.mark.slow
def test_a_bag_with_lidar_only_gets_the_3d_error_table(tmp_path, domain_id):
    """`stemseg synth --lidar` -> bag with /velodyne_points, no depth -> bag eval: positions.json
    and the report's 3-D section say LiDAR, with the demo model's masks close to the truth."""
    from ros_helpers import REPO

    data, bag, out = tmp_path / "synth", tmp_path / "l.mcap", tmp_path / "out"
    assert main(["synth", "--out", str(data), "--sequences", "1", "--frames", "12", "--seed",
                 "0", "--height", "192", "--width", "640", "--val-fraction", "0", "--lidar",
                 "--quiet"]) == 0
    assert main(["bag", "from-kitti", "--kitti", str(data), "--seq", "0000", "--out",
                 str(bag)]) == 0
    assert main(["bag", "eval", "--bag", str(bag), "--out", str(out), "--lockstep", "--gt",
                 str(data), "--seq", "0000", "--checkpoint",
                 str(REPO / "checkpoints" / "stemseg_demo.pt"), "--device", "cpu",
                 "--domain-id", str(domain_id), "--node-arg", "backend=torch",
                 "--no-overlays"]) == 0
    pos = json.loads((out / "positions.json").read_text())
    assert pos["all"]["n"] >= 10 and pos["all"]["median_m"] < 0.4, pos
    assert {"car", "coverage"} <= set(pos) and 0.5 < pos["coverage"][
        "share_with_position"] <= 1
    report = (out / "report.md").read_text()
    assert "Against the lidar ground truth (/velodyne_points in the bag" in report
    assert "use_lidar lifter" in report and "| car |" in report
    print(f"\nbag eval against LiDAR: {json.dumps(pos)}")
