"""The one KITTI layout module: sequence folders, frames, seqmaps; and the camera facts."""
from __future__ import annotations

from pathlib import Path

import pytest

from stemseg_core.data import kitti_camera, kitti_layout
from stemseg_core.errors import DataFormatError


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


@pytest.mark.parametrize("parent", ["training/image_02", "testing/image_02", "image_02", "."])
@pytest.mark.parametrize("seq", [7, "7", "0007"])
def test_sequence_dir_in_every_place(tmp_path, parent, seq):
    d = tmp_path / parent / "0007"
    _touch(d / "000000.png")
    assert kitti_layout.sequence_dir(tmp_path, seq) == d
    assert kitti_layout.sequence_frames(tmp_path, seq) == [d / "000000.png"]


def test_training_wins_and_errors_name_the_places(tmp_path):
    _touch(tmp_path / "training" / "image_02" / "0001" / "000000.png")
    _touch(tmp_path / "image_02" / "0001" / "000000.png")
    assert kitti_layout.sequence_dir(tmp_path, 1).parts[-3:] == ("training", "image_02", "0001")
    with pytest.raises(FileNotFoundError, match=r"sequence 0002 not found under .*training/"
                                                r"image_02/0002"):
        kitti_layout.sequence_dir(tmp_path, 2)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        kitti_layout.sequence_dir(tmp_path / "nope", 1)


def test_frame_files_prefer_png_and_sort(tmp_path):
    for name in ("000002.png", "000000.png", "000001.png", "000000.jpg", "notes.txt"):
        _touch(tmp_path / name)
    assert [p.name for p in kitti_layout.frame_files(tmp_path)] == [
        "000000.png", "000001.png", "000002.png"]
    for p in tmp_path.glob("*.png"):
        p.unlink()
    assert [p.name for p in kitti_layout.frame_files(tmp_path)] == ["000000.jpg"]
    (tmp_path / "000000.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="no PNG/JPG frames"):
        kitti_layout.frame_files(tmp_path)
    assert kitti_layout.frame_number(Path("000012.png"), 3) == 12
    assert kitti_layout.frame_number(Path("left.png"), 3) == 3


def test_one_seqmap_reader_for_every_caller(tmp_path):
    (tmp_path / "evaluate_mots.seqmap.val").write_text("# seqmap\n0003 empty 000000 000009\n")
    path = kitti_layout.find_seqmap(tmp_path, "val")
    assert path.name == "evaluate_mots.seqmap.val"
    assert kitti_layout.read_seqmap(path) == {"0003": 10}
    assert kitti_layout.list_sequences(tmp_path, "val") == ["0003"]
    with pytest.raises(FileNotFoundError, match=r"no seqmap for split 'test': looked for "
                                                r".*test.seqmap"):
        kitti_layout.find_seqmap(tmp_path, "test")
    # the writer's output reads back, also as one sequence with TrackEval's comment line
    kitti_layout.write_seqmap(tmp_path / "one.seqmap", [(12, 30)], trackeval=True)
    assert (tmp_path / "one.seqmap").read_text() == "# seqmap\n0012 empty 000000 000029\n"
    assert kitti_layout.read_seqmap(tmp_path / "one.seqmap") == {"0012": 30}


def test_frame_stamps_and_bad_timestamps(tmp_path):
    assert kitti_camera.frame_stamps([0, 1, 3], rate=10.0, start_ns=0) == [
        0, 100_000_000, 300_000_000]
    times = tmp_path / "times.txt"
    times.write_text("2011-09-26 13:02:25.9\nnoon\n")
    with pytest.raises(DataFormatError, match=rf"{times}:2: cannot parse timestamp"):
        kitti_camera.frame_stamps([0, 1], timestamps_file=times)
    with pytest.raises(DataFormatError, match=rf"{times}: has 2 times but frame 4 exists"):
        kitti_camera.frame_stamps([4], timestamps_file=times)
    calib = tmp_path / "calib.txt"
    calib.write_text("P2: 1 2 three\n")
    with pytest.raises(DataFormatError, match=rf"{calib}:1: P2 must be 12 numbers"):
        kitti_camera.read_projection(calib)


def test_ground_truth_sha256_names_the_drives_and_their_labels(tmp_path):
    (tmp_path / "0000.txt").write_text("0 1001 1 2 2 4\n")
    (tmp_path / "0001.txt").write_text("0 1001 1 2 2 4\n")
    digest = kitti_layout.ground_truth_sha256(tmp_path, ["0000", "0001"])
    assert len(digest) == 64 and digest == kitti_layout.ground_truth_sha256(
        tmp_path, ["0000", "0001"])
    # the same labels under one name only, or in another order, are other drives
    assert kitti_layout.ground_truth_sha256(tmp_path, ["0000"]) != digest
    assert kitti_layout.ground_truth_sha256(tmp_path, ["0001", "0000"]) != digest
    (tmp_path / "0001.txt").write_text("0 1001 1 2 2 5\n")
    assert kitti_layout.ground_truth_sha256(tmp_path, ["0000", "0001"]) != digest
