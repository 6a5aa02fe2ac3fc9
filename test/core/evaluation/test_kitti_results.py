"""KITTI MOTS result writer: round trip through the reader, overlaps, post-processing."""
from __future__ import annotations

import numpy as np
import pytest

from stemseg_core.data.rle import kitti_string_to_mask
from stemseg_core.evaluation.kitti_results import (
    postprocess,
    read_kitti_mots,
    resolve_overlaps,
    write_kitti_mots,
)
from stemseg_core.inference.types import FrameResult, TrackedInstance

H, W = 20, 30


def _inst(tid, cls, score, mask, name=None):
    name = name or {1: "car", 2: "pedestrian"}[cls]
    return TrackedInstance(tid, cls, name, score, mask)


def _rand_mask(rng, p=0.3):
    return rng.random((H, W)) < p


def test_round_trip_exact(tmp_path):
    rng = np.random.default_rng(1)
    frames = []
    for t in range(4):
        a = _rand_mask(rng)
        b = _rand_mask(rng) & ~a
        frames.append(FrameResult(t, t, (H, W), [_inst(3, 1, 0.9, a), _inst(7, 2, 0.8, b)]))
    path = write_kitti_mots(tmp_path / "0000.txt", frames, frame_numbers=[10, 11, 12, 13])
    back = read_kitti_mots(path)
    assert sorted(back) == [10, 11, 12, 13]
    for t, fr in enumerate(frames):
        objs = {o.obj_id: o for o in back[10 + t]}
        assert set(objs) == {3, 7}
        for inst in fr.instances:
            assert objs[inst.track_id].class_id == inst.class_id
            assert np.array_equal(objs[inst.track_id].mask, inst.mask)
    # The raw line is exactly "frame id class h w rle".
    first = path.read_text().splitlines()[0].split(" ")
    assert first[:5] == ["10", "3", "1", str(H), str(W)]
    assert np.array_equal(kitti_string_to_mask(first[5], H, W), frames[0].instances[0].mask)


def test_overlaps_resolved_higher_score_wins(tmp_path):
    a = np.zeros((H, W), bool)
    a[2:10, 2:12] = True
    b = np.zeros((H, W), bool)
    b[5:15, 8:20] = True
    low, high = _inst(1, 1, 0.3, a), _inst(2, 2, 0.9, b)
    out = resolve_overlaps([low, high])
    assert [i.track_id for i in out] == [2, 1]
    assert np.array_equal(out[0].mask, b)
    assert np.array_equal(out[1].mask, a & ~b)
    assert np.array_equal(low.mask, a)  # input untouched
    # A fully covered lower-score instance disappears; a duplicated id keeps the best copy.
    inner = np.zeros((H, W), bool)
    inner[6:8, 10:12] = True
    out = resolve_overlaps([_inst(5, 1, 0.1, inner), high, _inst(2, 2, 0.5, a)])
    assert [i.track_id for i in out] == [2]
    path = write_kitti_mots(tmp_path / "s.txt", [FrameResult(0, 0, (H, W), [low, high])])
    objs = read_kitti_mots(path)[0]
    assert not (objs[0].mask & objs[1].mask).any()
    assert (objs[0].mask | objs[1].mask).sum() == (a | b).sum()


def test_class_id_from_name_and_empty_file(tmp_path):
    m = np.zeros((H, W), bool)
    m[1:4, 1:4] = True
    # A model whose class list puts pedestrian at id 1 still writes KITTI id 2.
    fr = FrameResult(0, 0, (H, W), [TrackedInstance(4, 1, "pedestrian", 0.5, m)])
    objs = read_kitti_mots(write_kitti_mots(tmp_path / "a.txt", [fr]))
    assert objs[0][0].class_id == 2
    empty = write_kitti_mots(tmp_path / "b.txt", [FrameResult(0, 0, (H, W), [])])
    assert empty.read_text() == ""


def test_postprocess_min_area_and_track_length():
    small = np.zeros((H, W), bool)
    small[0:2, 0:2] = True  # 4 px
    big = np.zeros((H, W), bool)
    big[10:20, 10:20] = True  # 100 px
    frames = []
    for t in range(5):
        insts = [_inst(1, 1, 0.9, big), _inst(2, 2, 0.8, small)]
        if t < 2:
            insts.append(_inst(3, 1, 0.7, np.roll(big, -10, axis=1)))
        frames.append(FrameResult(t, t, (H, W), insts))
    out = postprocess(frames, min_area={"car": 10, "pedestrian": 5})
    assert all({i.track_id for i in f.instances} <= {1, 3} for f in out)
    out = postprocess(frames, min_track_length={"car": 3, "pedestrian": 10})
    assert all({i.track_id for i in f.instances} == {1} for f in out)
    out = postprocess(frames, min_track_length=2)
    assert {i.track_id for i in out[0].instances} == {1, 2, 3}
    assert postprocess(frames)[0].instances[0].track_id == 1


def test_mask_size_mismatch_raises(tmp_path):
    fr = FrameResult(0, 0, (H, W), [_inst(1, 1, 0.5, np.ones((H + 1, W), bool))])
    with pytest.raises(ValueError, match="mask shape"):
        write_kitti_mots(tmp_path / "x.txt", [fr])
