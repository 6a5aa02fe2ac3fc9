"""Clip stitching: IDs through appear / disappear / crossing / occlusion, built by hand."""
from __future__ import annotations

import numpy as np
import pytest

from stemseg_core.inference.stitching import (
    ClipStitcher,
    iou_from_labels,
    labels_from_masks,
    link_by_iou,
)

H, W = 20, 40


def update_masks(s: ClipStitcher, masks: np.ndarray, n_shared: int | None = None,
                 class_ids: list[int] | None = None) -> list[int]:
    """ClipStitcher.update from (N, L, H, W) bool masks that are disjoint in every frame."""
    masks = np.asarray(masks, dtype=bool)
    return s.update(labels_from_masks(masks), masks.shape[0], n_shared, class_ids)


def box(x: int, y: int = 5, size: int = 6) -> np.ndarray:
    m = np.zeros((H, W), dtype=bool)
    m[y:y + size, max(0, x):max(0, x + size)] = True
    return m


def clip(*tracks: list) -> np.ndarray:
    """tracks: per instance, a list of per-frame x positions (None = absent) -> (N, L, H, W)."""
    return np.stack([np.stack([box(x) if x is not None else np.zeros((H, W), bool)
                               for x in xs]) for xs in tracks]) if tracks else \
        np.zeros((0, 4, H, W), bool)


def test_appear_and_disappear_never_reuse_ids():
    s = ClipStitcher(overlap=2, min_iou=0.1)
    # clip 1: A moving right
    assert update_masks(s, clip([0, 1, 2, 3])) == [1]
    # clip 2 shares 2 frames: A continues, B appears in the new frames
    assert update_masks(s, clip([2, 3, 4, 5], [None, None, 30, 30])) == [1, 2]
    # clip 3: B only (listed first), A gone
    assert update_masks(s, clip([None, 30, 30, 30])) == [2]
    # clip 4: A's place is taken by a new object; B gone then back -> all new, nothing reused
    assert update_masks(s, clip([None, None, 5, 5])) == [3]
    assert update_masks(s, clip([30, 30, 30, 30], [5, 5, 5, 5])) == [4, 3]
    assert s.next_id == 5


def test_crossing_objects_keep_ids():
    s = ClipStitcher(overlap=2, min_iou=0.1)
    # A moves right, B moves left; they pass each other during clip 2 (masks kept disjoint)
    assert update_masks(s, clip([0, 3, 6, 9], [30, 27, 24, 21])) == [1, 2]
    a2 = [6, 9, 21, 24]
    b2 = [24, 21, 9, 6]
    # listed in the other order in the new clip: IDs follow the overlap, not the order
    assert update_masks(s, clip(b2, a2)) == [2, 1]
    # clip 3: after the crossing, A is on the right
    assert update_masks(s, clip([9, 6, 3, 0], [21, 24, 27, 30])) == [2, 1]


def test_occlusion_within_the_overlap_still_links():
    s = ClipStitcher(overlap=2, min_iou=0.1)
    ids1 = update_masks(s, clip([10, 10, 10, None]))  # occluded in the last frame
    ids2 = update_masks(s, clip([10, None, None, 10]))  # visible in the first shared frame only
    assert ids1 == ids2 == [1]
    # occluded during the whole overlap: it cannot be linked (a new ID, documented limitation)
    update_masks(s, clip([None, None, 10, 10]))
    assert update_masks(s, clip([None, None, 10, 10])) == [3]


def test_partial_occlusion_and_min_iou():
    s = ClipStitcher(overlap=1, min_iou=0.5)
    update_masks(s, clip([0, 0]))
    assert update_masks(s, clip([1, 1])) == [1]  # IoU 30/42 = 0.71
    assert update_masks(s, clip([4, 4])) == [2]  # IoU 12/60 = 0.2 < 0.5
    s.min_iou = 0.1
    assert update_masks(s, clip([7, 7])) == [2]  # 0.2 >= 0.1


def test_no_overlap_gives_new_ids():
    s = ClipStitcher(overlap=0)
    assert update_masks(s, clip([0, 0], [20, 20])) == [1, 2]
    assert update_masks(s, clip([0, 0], [20, 20])) == [3, 4]
    assert s.stored_frames == 0


def test_reset_restarts_ids_and_empty_clips():
    s = ClipStitcher(overlap=2)
    assert update_masks(s, clip([0, 0, 0, 0])) == [1]
    assert update_masks(s, clip()) == []
    assert update_masks(s, clip([0, 0, 0, 0])) == [2]
    s.reset()
    assert update_masks(s, clip([0, 0, 0, 0])) == [1]


def test_explicit_n_shared_and_errors():
    s = ClipStitcher(overlap=2)
    update_masks(s, clip([0, 0, 0, 0]))
    with pytest.raises(ValueError, match="n_shared"):
        update_masks(s, clip([0, 0, 0, 0]), n_shared=3)
    assert update_masks(s, clip([0, 0, 0]), n_shared=1) == [1]
    with pytest.raises(ValueError, match="overlap"):
        labels_from_masks(np.ones((2, 1, 3, 3), bool))


def test_iou_from_labels_matches_brute_force():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 4, (3, 9, 11))
    b = rng.integers(0, 6, (3, 9, 11))
    iou = iou_from_labels(a, 3, b, 5)
    for i in range(3):
        for j in range(5):
            ma, mb = a == i + 1, b == j + 1
            assert iou[i, j] == pytest.approx((ma & mb).sum() / (ma | mb).sum())
    assert link_by_iou(np.zeros((2, 2)), 0.0) == []  # never link instances that do not touch


def test_relink_gives_a_missed_object_its_id_back():
    # A moves right 1 px/frame, is missed in clip 2 (frames 2-5) and back in clip 3 (4-7) at the
    # position its velocity predicts; B (another class) reappears at the same place.
    clips = [clip([0, 1, 2, 3]), clip(), clip([4, 5, 6, 7]), clip([6, 7, None, None])]
    off = ClipStitcher(overlap=2, min_iou=0.1)
    assert [update_masks(off, c) for c in clips] == [[1], [], [2], [2]]
    on = ClipStitcher(overlap=2, min_iou=0.1, relink_max_gap=4, relink_max_distance=0.5)
    assert [update_masks(on, c, class_ids=[1] * len(c)) for c in clips] == [[1], [], [1], [1]]
    other_class = ClipStitcher(overlap=2, relink_max_gap=4, relink_max_distance=0.5)
    update_masks(other_class, clips[0], class_ids=[1])
    update_masks(other_class, clips[1], class_ids=[])
    assert update_masks(other_class, clips[2], class_ids=[2]) == [2]


def test_relink_limits_gap_distance_and_active_tracks():
    # Gap: last seen at frame 3, back at frame 4 + 4 = 8 in clip 4 (frames 6-9): gap 5.
    s = ClipStitcher(overlap=2, relink_max_gap=4, relink_max_distance=0.5)
    assert update_masks(s, clip([0, 1, 2, 3])) == [1]
    assert update_masks(s, clip()) == []
    assert update_masks(s, clip()) == []
    assert update_masks(s, clip([None, None, 8, 9])) == [2]
    s = ClipStitcher(overlap=2, relink_max_gap=8, relink_max_distance=0.5)
    update_masks(s, clip([0, 1, 2, 3]))
    update_masks(s, clip())
    update_masks(s, clip())
    assert update_masks(s, clip([None, None, 8, 9])) == [1]  # within 8 frames: linked
    # Distance: 6 px boxes (sqrt(area) = 6); 6 px off the prediction (x 4) is 1.0 > 0.5.
    s = ClipStitcher(overlap=2, relink_max_gap=8, relink_max_distance=0.5)
    update_masks(s, clip([0, 1, 2, 3]))
    update_masks(s, clip())
    assert update_masks(s, clip([10, 11, 12, 13])) == [2]
    # A track linked by IoU in this clip keeps its ID; a second object beside it gets a new one.
    s = ClipStitcher(overlap=2, relink_max_gap=8, relink_max_distance=5.0)
    update_masks(s, clip([0, 1, 2, 3]))
    assert update_masks(s, clip([2, 3, 4, 5], [None, None, 14, 15])) == [1, 2]


def test_relink_rejects_bad_settings():
    with pytest.raises(ValueError, match="relink_max_gap"):
        ClipStitcher(overlap=2, relink_max_gap=-1)
    s = ClipStitcher(overlap=2, relink_max_gap=4)
    with pytest.raises(ValueError, match="class_ids"):
        update_masks(s, clip([0, 1, 2, 3]), class_ids=[1, 2])


def test_relink_only_for_listed_classes():
    clips = [clip([0, 1, 2, 3]), clip(), clip([4, 5, 6, 7])]
    cases = ((None, [[1], [], [1]]), ({2}, [[1], [], [2]]), ({1}, [[1], [], [1]]))
    for classes, expected in cases:
        s = ClipStitcher(overlap=2, relink_max_gap=4, relink_max_distance=0.5,
                         relink_classes=classes)
        assert [update_masks(s, c, class_ids=[1] * len(c)) for c in clips] == expected
