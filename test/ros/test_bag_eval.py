"""`stemseg bag eval`: a bag replayed through the node in lockstep equals `stemseg infer`."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from ros_helpers import LOW_THRESHOLDS, make_frames

from stemseg_core.cli import main
from stemseg_core.data import rosbag_io as rio
from stemseg_core.data.rle import mask_to_kitti_string

N = 8
SEQ = "0001"


def _write_kitti(root: Path, frames: list[np.ndarray], sixteen_bit: bool = False) -> None:
    """KITTI MOTS layout: images, GT of the two rectangles (car, pedestrian), val.seqmap."""
    d = root / "training" / "image_02" / SEQ
    d.mkdir(parents=True)
    gt = []
    for k, rgb in enumerate(frames):
        if sixteen_bit:
            cv2.imwrite(str(d / f"{k:06d}.png"),
                        cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257)
        else:
            cv2.imwrite(str(d / f"{k:06d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        h, w = rgb.shape[:2]
        car = np.all(rgb == (220, 30, 30), axis=2)
        ped = np.all(rgb == (30, 200, 40), axis=2)
        gt.append(f"{k} 1001 1 {h} {w} {mask_to_kitti_string(car)}")
        gt.append(f"{k} 2001 2 {h} {w} {mask_to_kitti_string(ped)}")
    (root / "instances_txt").mkdir()
    (root / "instances_txt" / f"{SEQ}.txt").write_text("\n".join(gt) + "\n")
    (root / "val.seqmap").write_text(f"{SEQ} empty 000000 {len(frames) - 1:06d}\n")


def _eval_args(bag: Path, out: Path, ckpt: Path, domain_id: int, extra=()) -> list[str]:
    args = ["bag", "eval", "--bag", str(bag), "--out", str(out), "--lockstep",
            "--checkpoint", str(ckpt), "--device", "cpu", "--domain-id", str(domain_id),
            "--timeout", "60", "--node-arg", "backend=torch"]
    for k, v in LOW_THRESHOLDS.items():
        args += ["--node-arg", f"{k}={v}"]
    return args + list(extra)


def _check_every_frame(out: Path, bag: Path) -> dict:
    replay = json.loads((out / "replay.json").read_text())
    assert replay["sent"] == replay["received"] == N
    assert replay["lost_frames"] == []
    assert replay["frame_numbers"] == list(range(N))
    # results were matched by header stamp: every bag stamp got exactly its own result
    assert replay["extra"]["unmatched results"] == 0
    assert replay["extra"]["duplicate results"] == 0
    assert len(rio.read_image_frames(bag)) == N
    for name in ("report.md", "latency.png", "contact_sheet.png", "memory.png"):
        assert (out / name).is_file(), name
    mem = replay["memory_summary_mb"]  # from the node's /diagnostics (torch alone is > 100 MiB)
    assert mem and 100 < mem["first"] <= mem["max"] < 20_000
    return replay


def test_lockstep_replay_equals_infer_and_evaluate(tmp_path, tiny_overrides, domain_id):
    """The promise of `stemseg bag eval --help`: lockstep = `stemseg infer --min-track-length 0
    --set inference.flip_test=false`, here with a checkpoint whose own settings differ (flip
    test on, short tracks dropped), so both flags matter."""
    import torch

    from stemseg_core.checkpoint import file_sha256, save_checkpoint
    from stemseg_core.config import load_config
    from stemseg_core.model import build_model

    torch.manual_seed(0)
    cfg = load_config(None, tiny_overrides + ["inference.flip_test=true",
                                              "inference.min_track_length=6"])
    ckpt = save_checkpoint(tmp_path / "flip.pt", build_model(cfg).state_dict(), cfg)
    data = tmp_path / "kitti"
    _write_kitti(data, make_frames(N))
    bag = tmp_path / "drive.mcap"
    assert main(["bag", "from-kitti", "--kitti", str(data), "--seq", SEQ, "--out",
                 str(bag)]) == 0

    out = tmp_path / "bag_out"
    rec = tmp_path / "outputs"
    assert main(_eval_args(bag, out, ckpt, domain_id,
                           ["--gt", str(data), "--record", str(rec)])) == 0
    replay = _check_every_frame(out, bag)
    assert replay["extra"]["weights SHA-256"] == file_sha256(ckpt)
    assert file_sha256(ckpt) in (out / "report.md").read_text()

    ref = tmp_path / "infer_out"
    sets = ["inference.flip_test=false"]
    for k, v in LOW_THRESHOLDS.items():
        sets.append(f"inference.{k}={v}")
    assert main(["infer", "--checkpoint", str(ckpt), "--data", str(data), "--seq", SEQ,
                 "--out", str(ref), "--device", "cpu", "--min-track-length", "0",
                 "--set", *sets]) == 0
    ours = (out / f"{SEQ}.txt").read_text()
    assert ours, "the tiny model at low thresholds should find instances"
    assert ours == (ref / f"{SEQ}.txt").read_text()

    assert main(["evaluate", "--gt", str(data), "--results", str(ref), "--seq", SEQ,
                 "--no-plot"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"car", "pedestrian"}
    assert metrics == json.loads((ref / "metrics.json").read_text())
    assert "sMOTSA" in (out / "report.md").read_text()

    topics = rio.list_topics(rec)
    assert topics["/stemseg_perception/instances"].count == N
    assert topics["/stemseg_perception/instances"].msgtype == \
        "stemseg_ros/msg/TrackedInstanceArray"


def test_lockstep_without_checkpoint_uses_the_node_default(tmp_path, tiny_checkpoint,
                                                           domain_id):
    """No --checkpoint: the clip length comes from the checkpoint the node reports having
    loaded (here its `checkpoint` parameter, as a params file or the default would set it)."""
    from stemseg_core.checkpoint import file_sha256

    data = tmp_path / "kitti"
    _write_kitti(data, make_frames(N))
    bag = tmp_path / "drive.mcap"
    rio.write_kitti_bag(data, SEQ, bag, progress=False)
    out = tmp_path / "out"
    args = _eval_args(bag, out, tiny_checkpoint, domain_id)
    i = args.index("--checkpoint")
    args[i:i + 2] = ["--node-arg", f"checkpoint={tiny_checkpoint}"]
    assert main(args) == 0
    replay = _check_every_frame(out, bag)
    assert replay["extra"]["checkpoint"] == str(tiny_checkpoint)
    assert replay["extra"]["weights SHA-256"] == file_sha256(tiny_checkpoint)


@pytest.mark.parametrize("kind", ["compressed", "mono16"])
def test_compressed_and_16bit_bags_replay(tmp_path, tiny_checkpoint, domain_id, kind):
    data = tmp_path / "kitti"
    _write_kitti(data, make_frames(N), sixteen_bit=kind == "mono16")
    bag = tmp_path / "drive"
    rio.write_kitti_bag(data, SEQ, bag, compressed=kind == "compressed",
                        storage="sqlite3" if kind == "mono16" else "mcap", progress=False)
    out = tmp_path / "out"
    assert main(_eval_args(bag, out, tiny_checkpoint, domain_id)) == 0
    _check_every_frame(out, bag)
    assert (out / f"{SEQ}.txt").is_file()


def test_bag_errors_before_starting_the_node(tmp_path, capsys, tiny_checkpoint, domain_id):
    bag = tmp_path / "bag"
    data = tmp_path / "kitti"
    _write_kitti(data, make_frames(2))
    rio.write_kitti_bag(data, SEQ, bag, progress=False)
    assert main(_eval_args(bag, tmp_path / "o", tiny_checkpoint, domain_id,
                           ["--topic", "/nope"])) == 2
    assert "is not in" in capsys.readouterr().err
    f = bag / "bag.mcap"
    f.write_bytes(f.read_bytes()[:200])
    assert main(_eval_args(bag, tmp_path / "o", tiny_checkpoint, domain_id)) == 2
    assert "truncated or corrupt" in capsys.readouterr().err


def test_rate_mode_counts_sent_received_and_lost(tmp_path, tiny_checkpoint, domain_id):
    data = tmp_path / "kitti"
    _write_kitti(data, make_frames(N))
    bag = tmp_path / "drive"
    rio.write_kitti_bag(data, SEQ, bag, progress=False)
    out = tmp_path / "out"
    args = _eval_args(bag, out, tiny_checkpoint, domain_id)
    args[args.index("--lockstep")] = "--rate=4"
    assert main(args) == 0
    replay = json.loads((out / "replay.json").read_text())
    assert replay["mode"] == "rate 4x" and replay["sent"] == N
    assert replay["received"] + len(replay["lost_frames"]) == N
    assert replay["received"] > 0
    send = [s for s in replay["send_s"] if s is not None]
    # 10 Hz bag at 4x: 25 ms apart (sleep granularity aside)
    assert send[-1] - send[0] >= (N - 1) * 0.025 - 0.005
    assert "Lost frames" in (out / "report.md").read_text() or not replay["lost_frames"]


@pytest.mark.parametrize("seq", ["../../x", "..", "a/b"])
def test_sequence_name_from_the_bag_must_be_a_plain_name(tmp_path, capsys, tiny_checkpoint,
                                                         domain_id, seq):
    """frames.csv names the sequence, and <out>/<seq>.txt is written: '../../x' is refused
    naming the value, before the node starts, and nothing is written (issue 35)."""
    import csv

    data = tmp_path / "kitti"
    _write_kitti(data, make_frames(2))
    bag = tmp_path / "work" / "bags" / "bag"
    rio.write_kitti_bag(data, SEQ, bag, progress=False)
    index = bag / "frames.csv"
    rows = list(csv.DictReader(index.open(newline="")))
    assert rows and all(r["seq"] == SEQ for r in rows)
    with index.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows({**r, "seq": seq} for r in rows)
    before = sorted(p for p in tmp_path.rglob("*"))
    out = tmp_path / "work" / "bags" / "out"
    assert main(_eval_args(bag, out, tiny_checkpoint, domain_id)) == 2
    err = capsys.readouterr().err
    assert f"sequence name {seq!r} from the bag's frames.csv" in err and "--seq" in err
    assert sorted(p for p in tmp_path.rglob("*")) == before  # nothing written, not even --out
    # --seq with a plain name overrides the bag's (checked the same way)
    assert main(_eval_args(bag, out, tiny_checkpoint, domain_id, ["--seq", "../y"])) == 2
    assert "sequence name '../y' from --seq" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("sensor", ["depth", "lidar"])
def test_a_bag_with_depth_or_lidar_gets_the_3d_error_table(tmp_path, domain_id, sensor):
    """`stemseg synth --depth` (or `--lidar`, no depth) -> bag -> bag eval: positions.json and
    the report's 3-D section, per class, with the demo model's masks lifted close to the ground
    truth; a LiDAR-only bag is scored against its scans and the report says so."""
    from ros_helpers import REPO

    data, bag, out = tmp_path / "synth", tmp_path / "d.mcap", tmp_path / "out"
    assert main(["synth", "--out", str(data), "--sequences", "1", "--frames", "12", "--seed",
                 "0", "--height", "192", "--width", "640", "--val-fraction", "0", f"--{sensor}",
                 "--quiet"]) == 0
    assert main(["bag", "from-kitti", "--kitti", str(data), "--seq", "0000", "--out",
                 str(bag)]) == 0
    assert main(["bag", "eval", "--bag", str(bag), "--out", str(out), "--lockstep", "--gt",
                 str(data), "--seq", "0000", "--checkpoint",
                 str(REPO / "checkpoints" / "stemseg_demo.pt"), "--device", "cpu",
                 "--domain-id", str(domain_id), "--node-arg", "backend=torch",
                 "--no-overlays"]) == 0
    pos = json.loads((out / "positions.json").read_text())
    max_median = {"depth": 0.3, "lidar": 0.4}[sensor]
    assert pos["all"]["n"] >= 10 and pos["all"]["median_m"] < max_median, pos
    assert {"car", "coverage"} <= set(pos) and 0.5 < pos["coverage"][
        "share_with_position"] <= 1
    report = (out / "report.md").read_text()
    assert "3-D position error" in report and "| car |" in report
    if sensor == "lidar":
        assert "Against the lidar ground truth (/velodyne_points in the bag" in report
        assert "use_lidar lifter" in report
