"""Readers (KITTI MOTS, DAVIS, YouTube-VIS) on tiny fixtures written in the real formats."""
from __future__ import annotations

import json

import cv2
import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from stemseg_core.data.formats import davis, kitti_mots, youtube_vis
from stemseg_core.data.rle import mask_to_counts, mask_to_kitti_string

H, W = 12, 20


def _rect(y0, y1, x0, x1):
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


def _write_kitti(root):
    img_dir = root / "training" / "image_02" / "0007"
    ins_dir = root / "instances" / "0007"
    img_dir.mkdir(parents=True)
    ins_dir.mkdir(parents=True)
    (root / "instances_txt").mkdir()
    frames = {0: [(1003, 1, _rect(1, 5, 2, 8)), (2001, 2, _rect(6, 11, 10, 13)),
                  (10000, 10, _rect(0, 2, 15, 20))],
              1: [(2001, 2, _rect(5, 11, 11, 14))]}
    lines = []
    for t in range(3):
        img = np.full((H, W, 3), 10 * t, np.uint8)
        img[0, 0] = (255, 0, 0)  # RGB red marker
        cv2.imwrite(str(img_dir / f"{t:06d}.png"), img[..., ::-1])
        ids = np.zeros((H, W), np.uint16)
        for oid, cls, m in frames.get(t, []):
            ids[m] = oid
            lines.append(f"{t} {oid} {cls} {H} {W} {mask_to_kitti_string(m)}")
        cv2.imwrite(str(ins_dir / f"{t:06d}.png"), ids)
    (root / "instances_txt" / "0007.txt").write_text("\n".join(lines) + "\n")
    (root / "val.seqmap").write_text("0007 empty 000000 000002\n")
    return frames


def test_kitti_mots_txt_and_png(tmp_path):
    frames = _write_kitti(tmp_path)
    assert kitti_mots.list_sequences(tmp_path, "val") == ["0007"]
    assert kitti_mots.list_sequences(tmp_path) == ["0007"]
    for source in ("txt", "png", "auto"):
        seq = kitti_mots.load_split(tmp_path, "val", source)[0]
        assert len(seq) == 3 and (seq.height, seq.width) == (H, W)
        assert seq.load_image(0)[0, 0].tolist() == [255, 0, 0]
        a0 = seq.annotations(0)
        got = {i.track_id: (i.class_id, i.mask) for i in a0.instances}
        assert set(got) == {1003, 2001}
        assert got[1003][0] == 1 and got[2001][0] == 2
        np.testing.assert_array_equal(got[1003][1], frames[0][0][2])
        np.testing.assert_array_equal(got[2001][1], frames[0][1][2])
        np.testing.assert_array_equal(a0.ignore, frames[0][2][2])
        a1 = seq.annotations(1)
        assert [(i.track_id, i.class_id) for i in a1.instances] == [(2001, 2)]
        np.testing.assert_array_equal(a1.instances[0].mask, _rect(5, 11, 11, 14))
        assert not a1.ignore.any()
        assert seq.annotations(2).instances == []


def _palette_png(path, idx):
    im = Image.fromarray(idx.astype(np.uint8), mode="P")
    pal = [0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (256 * 3 - 9)
    pal[255 * 3: 256 * 3] = [224, 224, 192]
    im.putpalette(pal)
    im.save(path)


def test_davis(tmp_path):
    img_dir = tmp_path / "JPEGImages" / "480p" / "bear"
    ann_dir = tmp_path / "Annotations" / "480p" / "bear"
    img_dir.mkdir(parents=True)
    ann_dir.mkdir(parents=True)
    (tmp_path / "ImageSets" / "2017").mkdir(parents=True)
    (tmp_path / "ImageSets" / "2017" / "train.txt").write_text("bear\n")
    for t in range(2):
        cv2.imwrite(str(img_dir / f"{t:05d}.jpg"), np.full((H, W, 3), 100, np.uint8))
    idx = np.zeros((H, W), np.uint8)
    idx[_rect(2, 6, 2, 6)] = 1
    idx[_rect(7, 10, 12, 18)] = 2
    idx[0, :] = 255
    _palette_png(ann_dir / "00000.png", idx)
    seq = davis.load_split(tmp_path, "train", 2017)[0]
    assert seq.name == "bear" and len(seq) == 2 and (seq.height, seq.width) == (H, W)
    a = seq.annotations(0)
    got = {i.track_id: i for i in a.instances}
    assert set(got) == {1, 2} and got[1].class_id == 1
    np.testing.assert_array_equal(got[1].mask, _rect(2, 6, 2, 6))
    np.testing.assert_array_equal(got[2].mask, _rect(7, 10, 12, 18))
    assert a.ignore[0].all() and a.ignore.sum() == W
    assert seq.annotations(1).instances == []  # no annotation PNG for frame 1
    assert seq.load_image(1).shape == (H, W, 3)


def test_youtube_vis(tmp_path):
    (tmp_path / "JPEGImages" / "vid1").mkdir(parents=True)
    names = [f"vid1/{t:05d}.jpg" for t in range(3)]
    for n in names:
        cv2.imwrite(str(tmp_path / "JPEGImages" / n), np.zeros((H, W, 3), np.uint8))
    m_a = _rect(1, 4, 1, 5)
    comp = mask_utils.encode(np.asfortranarray(m_a.astype(np.uint8)))
    comp = {"size": [H, W], "counts": comp["counts"].decode("ascii")}
    m_b = _rect(6, 10, 3, 9)
    uncomp = {"size": [H, W], "counts": [int(c) for c in mask_to_counts(m_b)]}
    poly = [[10.0, 2.0, 16.0, 2.0, 16.0, 8.0, 10.0, 8.0]]
    data = {
        "videos": [{"id": 5, "file_names": names, "height": H, "width": W, "length": 3}],
        "categories": [{"id": 1, "name": "person"}, {"id": 7, "name": "car"}],
        "annotations": [
            {"id": 11, "video_id": 5, "category_id": 1, "iscrowd": 0,
             "segmentations": [comp, None, comp]},
            {"id": 12, "video_id": 5, "category_id": 7, "iscrowd": 0,
             "segmentations": [None, uncomp, poly]},
            {"id": 13, "video_id": 5, "category_id": 7, "iscrowd": 1,
             "segmentations": [None, None, {"size": [H, W],
                                            "counts": [int(c) for c in
                                                       mask_to_counts(_rect(0, 1, 0, W))]}]},
        ]}
    path = tmp_path / "train.json"
    path.write_text(json.dumps(data))
    seqs, cats = youtube_vis.load(path)
    assert cats == {1: "person", 7: "car"}
    seq = seqs[0]
    assert len(seq) == 3 and seq.name == "vid1" and seq.load_image(2).shape == (H, W, 3)
    a0 = seq.annotations(0)
    assert [(i.track_id, i.class_id) for i in a0.instances] == [(11, 1)]
    np.testing.assert_array_equal(a0.instances[0].mask, m_a)
    a1 = seq.annotations(1)
    assert [(i.track_id, i.class_id) for i in a1.instances] == [(12, 7)]
    np.testing.assert_array_equal(a1.instances[0].mask, m_b)
    a2 = seq.annotations(2)
    got = {i.track_id: i.mask for i in a2.instances}
    assert set(got) == {11, 12}
    assert got[12][4, 12] and got[12][3:8, 11:16].all() and not got[12][10, 3]
    assert a2.ignore[0].all() and a2.ignore.sum() == W
