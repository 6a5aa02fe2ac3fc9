"""Faults in offline data give one clear error naming file and line, never a traceback:
malformed KITTI MOTS lines, missing frames, masks of the wrong size, truncated or empty bags,
results for an unknown sequence (library errors and the CLI's exit status 2)."""
from __future__ import annotations

import os
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from stemseg_core.cli import main
from stemseg_core.data import kitti_layout
from stemseg_core.data import rosbag_io as rio
from stemseg_core.data.formats import kitti_mots
from stemseg_core.data.rle import mask_to_kitti_string
from stemseg_core.data.sources import load_training_sequences
from stemseg_core.errors import DataFormatError

H, W, N = 16, 24, 3
SEQ = "0004"


def _car(t: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[4:10, 3 + t:12 + t] = True
    return m


def _line(t: int, mask: np.ndarray | None = None, oid: int = 1001) -> str:
    mask = _car(t) if mask is None else mask
    h, w = mask.shape
    return f"{t} {oid} {oid // 1000} {h} {w} {mask_to_kitti_string(mask)}"


@pytest.fixture
def kitti(tmp_path) -> Path:
    """KITTI MOTS tree: 3 frames of one car, instances_txt, train/val seqmaps."""
    root = tmp_path / "kitti"
    img_dir = root / "training" / "image_02" / SEQ
    img_dir.mkdir(parents=True)
    for t in range(N):
        cv2.imwrite(str(img_dir / f"{t:06d}.png"), np.full((H, W, 3), 40 * t, np.uint8))
    (root / "instances_txt").mkdir()
    (root / "instances_txt" / f"{SEQ}.txt").write_text(
        "".join(_line(t) + "\n" for t in range(N)))
    for split in ("train", "val"):
        (root / f"{split}.seqmap").write_text(f"{SEQ} empty 000000 {N - 1:06d}\n")
    return root


def _gt_txt(root: Path) -> Path:
    return root / "instances_txt" / f"{SEQ}.txt"


def _set_line(path: Path, n: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[n - 1] = text
    path.write_text("\n".join(lines) + "\n")


def test_a_good_tree_reads(kitti):
    (seq,) = load_training_sequences(kitti, "train")
    ann = seq.annotations(2)
    assert [i.track_id for i in ann.instances] == [1001]
    np.testing.assert_array_equal(ann.instances[0].mask, _car(2))


@pytest.mark.parametrize("bad,message", [
    ("1 1001 1 16 24", r"expected 6 fields .* got 5"),
    ("1 x1001 1 16 24 abc", r"fields 1-5 .* must be integers: '1 x1001"),
    ("-1 1001 1 16 24 abc", r"frame must be >= 0"),
])
def test_malformed_gt_line_names_file_and_line(kitti, bad, message):
    _set_line(_gt_txt(kitti), 2, bad)
    with pytest.raises(DataFormatError, match=rf"{_gt_txt(kitti)}:2: {message}") as e:
        load_training_sequences(kitti, "train")
    assert e.value.path == _gt_txt(kitti) and e.value.line == 2


def test_gt_mask_of_another_size(kitti):
    _set_line(_gt_txt(kitti), 3, _line(2, np.zeros((H + 2, W), bool)))
    with pytest.raises(DataFormatError, match=rf"{_gt_txt(kitti)}:3: mask is 24x18 \(w x h\) "
                                              rf"but the sequence's images are 24x16"):
        kitti_mots.load_sequence(kitti, SEQ)


def test_gt_line_for_a_frame_without_image(kitti):
    with open(_gt_txt(kitti), "a") as f:
        f.write(_line(7) + "\n")
    with pytest.raises(DataFormatError, match=rf"{_gt_txt(kitti)}:4: frame 7 has no image "
                                              rf"\(the sequence's images are frames 0..2\)"):
        kitti_mots.load_sequence(kitti, SEQ)


def test_missing_frame_image(kitti):
    seq_dir = kitti / "training" / "image_02" / SEQ
    os.remove(seq_dir / "000001.png")
    with pytest.raises(DataFormatError, match=rf"{seq_dir}: frames missing: 000001.png "
                                              rf"\(the sequence has 2 images numbered 0..2"):
        kitti_mots.load_sequence(kitti, SEQ)


def test_unreadable_image(kitti):
    bad = kitti / "training" / "image_02" / SEQ / "000000.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(DataFormatError, match=rf"{bad}: cannot read the image"):
        kitti_mots.load_sequence(kitti, SEQ)


def test_seqmap_errors(tmp_path):
    bad = tmp_path / "val.seqmap"
    bad.write_text("0001 empty 000000 000009\n0002 empty 000000 last\n")
    with pytest.raises(DataFormatError, match=rf"{bad}:2: last frame 'last' is not an integer"):
        kitti_layout.read_seqmap(bad)
    bad.write_text("# only a comment\n\n")
    with pytest.raises(DataFormatError, match=rf"{bad}: the seqmap lists no sequences"):
        kitti_layout.read_seqmap(bad)
    bad.write_text("2\n0003 empty 000000 000004\n")
    assert kitti_layout.read_seqmap(bad) == {"0002": None, "0003": 5}


def test_cli_train_on_malformed_data_exits_2_without_traceback(kitti, tmp_path, capsys):
    _set_line(_gt_txt(kitti), 2, "1 1001 1 16")
    code = main(["train", "--config", "config/model/demo_cpu.yaml", "--data", str(kitti),
                 "--out", str(tmp_path / "run"), "--max-steps", "1", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{_gt_txt(kitti)}:2: expected 6 fields" in err and "Traceback" not in err


# ----------------------------------------------------------------------------- evaluation


def _results(kitti: Path, tmp_path: Path) -> Path:
    res = tmp_path / "res"
    res.mkdir()
    (res / f"{SEQ}.txt").write_text(_gt_txt(kitti).read_text())
    return res


def _evaluate(kitti: Path, res: Path, capsys) -> tuple[int, str]:
    code = main(["evaluate", "--gt", str(kitti), "--results", str(res), "--split", "val",
                 "--no-plot"])
    return code, capsys.readouterr().err


def test_evaluate_good_results(kitti, tmp_path, capsys):
    res = _results(kitti, tmp_path)
    code, err = _evaluate(kitti, res, capsys)
    assert code == 0, err


@pytest.mark.parametrize("bad,message", [
    ("1 1001 1 16 24", r"expected 6 fields"),
    (_line(1, np.zeros((H, W + 1), bool)), r"mask is 25x16 \(w x h\) but the sequence's "
                                           r"images are 24x16"),
    (_line(5), r"frame 5 is beyond the sequence's 3 frames"),
])
def test_evaluate_bad_results_line(kitti, tmp_path, capsys, bad, message):
    res = _results(kitti, tmp_path)
    _set_line(res / f"{SEQ}.txt", 2, bad)
    code, err = _evaluate(kitti, res, capsys)
    assert code == 2 and "Traceback" not in err
    assert f"{res / (SEQ + '.txt')}:2: " in err
    assert re.search(message, err), err


def test_evaluate_results_for_an_unknown_sequence(kitti, tmp_path, capsys):
    res = _results(kitti, tmp_path)
    (res / "0042.txt").write_text(_line(0) + "\n")
    code, err = _evaluate(kitti, res, capsys)
    assert code == 2 and "Traceback" not in err
    assert f"{res / '0042.txt'}: results for sequence 0042, which has no ground truth" in err


# ----------------------------------------------------------------------------------- bags


def test_truncated_bag_through_the_reader(kitti, tmp_path):
    bag = tmp_path / "bag"
    rio.write_kitti_bag(kitti, SEQ, bag, progress=False)
    f = bag / "bag.mcap"
    os.truncate(f, f.stat().st_size - 200)
    with pytest.raises(rio.CorruptBagError, match=rf"bag {bag}.*truncated"):
        rio.read_image_frames(bag)


def test_empty_bag(tmp_path):
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_KILTED)
    with Writer(tmp_path / "empty", version=9, storage_plugin=StoragePlugin.MCAP) as w:
        w.add_connection("/camera/image_raw", rio.IMAGE_MSGTYPE, typestore=ts)
    with pytest.raises(rio.EmptyBagError, match=r"no messages on /camera/image_raw: the "
                                                r"recording is empty"):
        rio.read_image_frames(tmp_path / "empty")
    assert rio.list_topics(tmp_path / "empty")["/camera/image_raw"].count == 0
    (tmp_path / "zero.mcap").write_bytes(b"")
    with pytest.raises(rio.CorruptBagError, match="zero.mcap"):
        rio.read_image_frames(tmp_path / "zero.mcap")


def test_bag_errors_are_data_errors_for_the_cli():
    assert issubclass(rio.BagError, DataFormatError)
    assert issubclass(rio.EmptyBagError, rio.BagError)
