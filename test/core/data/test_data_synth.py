"""Synthetic KITTI MOTS generator: determinism, annotation consistency, TrackEval compatibility."""
from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from stemseg_core.data.rle import kitti_string_to_mask
from stemseg_core.data.synth import (
    IGNORE_ID,
    SynthParams,
    generate_dataset,
    sequence_generator,
)

H, W, F = 96, 320, 6


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    generate_dataset(out, sequences=2, frames=F, seed=3, height=H, width=W, val_fraction=0.5)
    return out


def test_layout_and_seqmaps(synth_dir):
    assert (synth_dir / "training/image_02/0000/000000.png").is_file()
    assert (synth_dir / "instances/0001/000005.png").is_file()
    assert (synth_dir / "instances_txt/0000.txt").is_file()
    assert (synth_dir / "label_02/0001.txt").read_text() == \
        (synth_dir / "instances_txt/0001.txt").read_text()
    assert (synth_dir / "train.seqmap").read_text() == f"0000 empty 000000 {F - 1:06d}\n"
    assert (synth_dir / "val.seqmap").read_text() == f"0001 empty 000000 {F - 1:06d}\n"
    assert (synth_dir / "evaluate_mots.seqmap.val").read_text().endswith(
        (synth_dir / "val.seqmap").read_text())
    assert len((synth_dir / "fulltrain.seqmap").read_text().splitlines()) == 2
    img = cv2.imread(str(synth_dir / "training/image_02/0000/000003.png"), cv2.IMREAD_UNCHANGED)
    assert img.shape == (H, W, 3) and img.dtype == np.uint8
    ins = cv2.imread(str(synth_dir / "instances/0000/000003.png"), cv2.IMREAD_UNCHANGED)
    assert ins.shape == (H, W) and ins.dtype == np.uint16


def test_deterministic_by_seed(synth_dir, tmp_path):
    generate_dataset(tmp_path / "a", sequences=2, frames=F, seed=3, height=H, width=W,
                     val_fraction=0.5)
    assert _digest(tmp_path / "a") == _digest(synth_dir)
    generate_dataset(tmp_path / "b", sequences=2, frames=F, seed=4, height=H, width=W,
                     val_fraction=0.5)
    a, b = _digest(tmp_path / "a"), _digest(tmp_path / "b")
    assert a["training/image_02/0000/000000.png"] != b["training/image_02/0000/000000.png"]


def test_val_uses_other_seed_space():
    p = SynthParams(height=H, width=W, frames=1)
    a = next(sequence_generator(0, 1, "train", p).frames()).image
    b = next(sequence_generator(0, 1, "val", p).frames()).image
    assert not np.array_equal(a, b)


def test_txt_matches_png_and_ids_encode_class(synth_dir):
    n_objects = []
    for seq in ("0000", "0001"):
        lines = (synth_dir / "instances_txt" / f"{seq}.txt").read_text().splitlines()
        by_frame: dict[int, list[list[str]]] = {}
        for line in lines:
            parts = line.split(" ")
            by_frame.setdefault(int(parts[0]), []).append(parts)
        for t in range(F):
            ins = cv2.imread(str(synth_dir / "instances" / seq / f"{t:06d}.png"),
                             cv2.IMREAD_UNCHANGED)
            rebuilt = np.zeros((H, W), np.uint16)
            count = np.zeros((H, W), np.int32)
            for _t, oid, cls, h, w, rle in by_frame.get(t, []):
                oid, cls = int(oid), int(cls)
                assert (int(h), int(w)) == (H, W)
                assert cls == (10 if oid == IGNORE_ID else oid // 1000)
                assert cls in (1, 2, 10) and (oid == IGNORE_ID or 1 <= oid % 1000 <= 999)
                m = kitti_string_to_mask(rle, H, W)
                assert m.any()
                rebuilt[m] = oid
                count += m
            assert count.max() <= 1, "masks overlap"
            np.testing.assert_array_equal(rebuilt, ins)
            n_objects.append(sum(1 for p in by_frame.get(t, []) if p[2] != "10"))
    assert max(n_objects) <= 8 and np.mean(n_objects) >= 1.5


def test_nearer_objects_occlude_farther():
    # sequence 4: objects overlap in some 20 (nearer, farther) pairs over its 8 frames
    gen = sequence_generator(4, 0, "train", SynthParams(height=H, width=W, frames=8))
    checked = 0
    for fr in gen.frames(full_masks=True):
        objs = [o for o in fr.objects if o.obj_id != IGNORE_ID]
        for o in objs:  # an object's pixels lie inside its own silhouette
            assert not ((fr.instance_map == o.obj_id) & ~o.full_mask).any()
        for a in objs:
            for b in objs:
                if a.depth < b.depth:
                    overlap = a.full_mask & b.full_mask
                    checked += int(overlap.any())
                    assert not (fr.instance_map[overlap] == b.obj_id).any()
                    # the overlap shows the nearer object, unless a third one is nearer still
                    nearer = {o.obj_id for o in objs if o.depth <= a.depth}
                    assert np.isin(fr.instance_map[overlap], list(nearer)).all()
    assert checked >= 5, f"only {checked} overlapping pairs: the test checks too little"


def test_trackeval_reads_gt_as_perfect_results(synth_dir, tmp_path):
    import trackeval  # a hard dependency (setup.py): no skip when it is missing

    data = tmp_path / "trackers" / "gt_copy" / "data"
    data.mkdir(parents=True)
    lines = (synth_dir / "instances_txt" / "0001.txt").read_text().splitlines()
    (data / "0001.txt").write_text("".join(x + "\n" for x in lines if x.split()[2] != "10"))
    eval_cfg = trackeval.Evaluator.get_default_eval_config()
    eval_cfg.update({"USE_PARALLEL": False, "PRINT_RESULTS": False, "PRINT_CONFIG": False,
                     "TIME_PROGRESS": False, "OUTPUT_SUMMARY": False, "OUTPUT_DETAILED": False,
                     "PLOT_CURVES": False, "DISPLAY_LESS_PROGRESS": True})
    ds_cfg = {"GT_FOLDER": str(synth_dir), "TRACKERS_FOLDER": str(tmp_path / "trackers"),
              "SPLIT_TO_EVAL": "val", "PRINT_CONFIG": False}
    evaluator = trackeval.Evaluator(eval_cfg)
    res, _ = evaluator.evaluate([trackeval.datasets.KittiMOTS(ds_cfg)],
                                [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR()])
    combined = res["KittiMOTS"]["gt_copy"]["COMBINED_SEQ"]
    present = {int(x.split()[2]) for x in lines}
    for cls, cid in (("car", 1), ("pedestrian", 2)):
        if cid in present:
            assert float(np.mean(combined[cls]["HOTA"]["HOTA"])) == pytest.approx(1.0)
            assert float(combined[cls]["CLEAR"]["sMOTA"]) == pytest.approx(1.0)
