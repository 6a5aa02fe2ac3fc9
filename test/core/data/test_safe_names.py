"""Names from data never become paths outside the output folder (issue 35): a sequence name
``../../x`` from a bag's frames.csv or a seqmap is an error naming it, and nothing is written."""
from __future__ import annotations

import numpy as np
import pytest

from stemseg_core.data.safe_names import check_plain_name, child_path


@pytest.mark.parametrize("name", ["0002", "seq 1", "a.b", "..x", "x..", "dog_cat-2", "é"])
def test_plain_names_pass(name):
    assert check_plain_name(name, "sequence name") == name


@pytest.mark.parametrize(("name", "why"), [
    ("../../x", "path separator"), ("/etc/x", "path separator"), ("a\\b", "path separator"),
    ("..", "names a folder"), (".", "names a folder"), ("", "empty"),
    ("a\x00b", "control character"), ("a\nb", "control character"),
    ("x" * 256, "longer than 255"), (7, "expected a string"),
])
def test_other_names_are_errors_naming_the_value(name, why):
    with pytest.raises(ValueError, match=why) as e:
        check_plain_name(name, "sequence name", source="bag/frames.csv")
    msg = str(e.value)
    assert msg.startswith("sequence name ") and "from bag/frames.csv" in msg
    assert "is not a plain file name" in msg and len(msg) < 500
    if name == "../../x":
        assert "sequence name '../../x' from bag/frames.csv is not a plain file name" in msg


def test_child_path_stays_inside(tmp_path):
    assert child_path(tmp_path, "0002", "sequence name", ".txt") == tmp_path / "0002.txt"
    with pytest.raises(ValueError):
        child_path(tmp_path, "../0002", "sequence name", ".txt")


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_bag_eval_scoring_refuses_a_bag_sequence_name_and_writes_nothing(tmp_path):
    """`stemseg bag eval` takes the name from the bag's frames.csv; scoring (the core writer
    it calls) refuses it before writing."""
    from stemseg_core.data.bag_format import FRAMES_CSV, read_frame_index
    from stemseg_core.evaluation.replay_scoring import ReplayOutcome, ReplaySetup, score_replay
    from stemseg_core.inference.types import FrameResult, TrackedInstance

    bag = tmp_path / "bag"
    bag.mkdir()
    (bag / FRAMES_CSV).write_text("frame,stamp_ns,file,seq\n0,1000,000000.png,../../x\n")
    index = read_frame_index(bag)
    assert index.seq == "../../x"
    mask = np.zeros((6, 8), bool)
    mask[1:3, 1:3] = True
    outcome = ReplayOutcome([1000], [0.0], [0.1],
                            [FrameResult(0, 1000, (6, 8), [TrackedInstance(1, 1, "car", .9,
                                                                           mask)])], 0.1)
    setup = ReplaySetup(str(bag), "/cam", "sensor_msgs/msg/Image", index.seq, "lockstep", 1)
    out = tmp_path / "runs" / "out"
    with pytest.raises(ValueError, match=r"sequence name '\.\./\.\./x' from --seq, the bag's "
                                         r"frames.csv or the bag's name is not a plain file"):
        score_replay(out, setup, outcome, index.stamp_to_frame)
    assert _files(tmp_path) == ["bag/frames.csv"]  # no x.txt anywhere, no out/ either


def test_infer_refuses_a_seqmap_name_before_loading_anything(tmp_path, capsys):
    from stemseg_core.cli import main

    data = tmp_path / "kitti"
    data.mkdir()
    (data / "val.seqmap").write_text("0002 empty 000000 000003\n../../x empty 000000 000003\n")
    out = tmp_path / "a" / "out"
    rc = main(["infer", "--checkpoint", str(tmp_path / "missing.pt"), "--data", str(data),
               "--split", "val", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert "sequence name '../../x' from the val seqmap of" in err and "not a plain file" in err
    assert _files(tmp_path) == ["kitti/val.seqmap"]
    rc = main(["infer", "--checkpoint", str(tmp_path / "missing.pt"), "--data", str(data),
               "--seq", "..", "--out", str(out)])
    assert rc == 2 and "sequence name '..' from --seq" in capsys.readouterr().err


def test_evaluation_and_davis_writers_refuse_bad_names(tmp_path):
    from stemseg_core.evaluation.davis_jf import write_davis_masks
    from stemseg_core.evaluation.trackeval_kitti import evaluate_kitti_mots
    from stemseg_core.inference.types import FrameResult

    gt = tmp_path / "gt" / "instances_txt"
    gt.mkdir(parents=True)
    (gt / "0002.txt").write_text("")
    res = tmp_path / "res"
    res.mkdir()
    with pytest.raises(ValueError, match=r"sequence name '\.\./gt/instances_txt/0002'"):
        evaluate_kitti_mots(tmp_path / "gt", res, sequences=["../gt/instances_txt/0002"])
    frames = [FrameResult(0, 0, (4, 4), [])]
    with pytest.raises(ValueError, match=r"frame name '\.\./\.\./evil'"):
        write_davis_masks(tmp_path / "davis" / "seq", frames, names=["../../evil"])
    assert not (tmp_path / "evil.png").exists()
    write_davis_masks(tmp_path / "davis" / "seq", frames, names=["00000"])
    assert (tmp_path / "davis" / "seq" / "00000.png").is_file()
