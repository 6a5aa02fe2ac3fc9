"""The shipped demo checkpoint loads and finds the objects of a held-out synthetic drive."""
from pathlib import Path

import numpy as np
import pytest

from stemseg_core.cli import main as cli

CKPT = Path(__file__).resolve().parents[2] / "checkpoints" / "stemseg_demo.pt"


@pytest.mark.skipif(not CKPT.is_file(), reason="checkpoints/stemseg_demo.pt not present")
def test_demo_checkpoint_tracks_a_held_out_car(tmp_path):
    from stemseg_core.data.formats.kitti_mots import load_split
    from stemseg_core.inference.tracker import StreamingTracker

    # seed 4242 is not used by the demo model's training data (seed 0)
    assert cli(["synth", "--out", str(tmp_path), "--sequences", "2", "--val-fraction", "0.5",
                "--frames", "8", "--seed", "4242", "--quiet"]) == 0
    seq = load_split(tmp_path, "val")[0]
    tracker = StreamingTracker.from_checkpoint(CKPT, device="cpu")
    results = []
    for t in range(len(seq)):
        results += tracker.push(seq.load_image(t), t)
    results += tracker.flush()
    assert [r.stamp for r in results] == list(range(len(seq)))
    # the largest ground-truth car of the middle frame is found with a good mask
    ann = seq.annotations(4)
    cars = [i for i in ann.instances if i.class_id == 1]
    assert cars, "the synthetic frame has no car"
    big = max(cars, key=lambda i: i.mask.sum())
    best = 0.0
    for inst in results[4].instances:
        inter = np.logical_and(inst.mask, big.mask).sum()
        union = np.logical_or(inst.mask, big.mask).sum()
        if inst.class_name == "car":
            best = max(best, inter / union)
    assert best > 0.5, f"best IoU with the largest car: {best:.2f}"
