"""Training data in any supported layout: format detection, split/annotation choices, class
checks, and `stemseg train` on DAVIS and YouTube-VIS folders."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from PIL import Image

from stemseg_core.cli import main
from stemseg_core.config import load_config
from stemseg_core.data.clips import build_dataset
from stemseg_core.data.rle import mask_to_counts
from stemseg_core.data.sources import DataFormatError, detect_format, load_training_sequences
from stemseg_core.data.synth import generate_dataset

H, W = 48, 80


def _box(y0, y1, x0, x1):
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


def _write_davis(root, seqs=("bear", "cows"), frames=6, years=("2017",),
                 annotations="Annotations", val=("cows",)):
    for y in years:
        (root / "ImageSets" / y).mkdir(parents=True, exist_ok=True)
        (root / "ImageSets" / y / "train.txt").write_text(
            "".join(f"{s}\n" for s in seqs if s not in val))
        (root / "ImageSets" / y / "val.txt").write_text("".join(f"{s}\n" for s in val))
    for s in seqs:
        img_dir, ann_dir = root / "JPEGImages" / "480p" / s, root / annotations / "480p" / s
        img_dir.mkdir(parents=True)
        ann_dir.mkdir(parents=True)
        for t in range(frames):
            img = np.full((H, W, 3), 90, np.uint8)
            idx = np.zeros((H, W), np.uint8)
            idx[_box(5, 20, 4 + 2 * t, 20 + 2 * t)] = 1
            idx[_box(25, 45, 50 - 2 * t, 70 - 2 * t)] = 2
            img[idx == 1] = (200, 40, 40)
            img[idx == 2] = (40, 200, 40)
            cv2.imwrite(str(img_dir / f"{t:05d}.jpg"), img)
            im = Image.fromarray(idx, mode="P")
            im.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (253 * 3))
            im.save(ann_dir / f"{t:05d}.png")


def _write_youtube_vis(json_path, image_root, frames=6, category_ids=(1, 2)):
    (image_root / "vid_a").mkdir(parents=True)
    names = [f"vid_a/{t:05d}.jpg" for t in range(frames)]
    segs = {c: [] for c in category_ids}
    for t, n in enumerate(names):
        cv2.imwrite(str(image_root / n), np.full((H, W, 3), 60, np.uint8))
        for k, c in enumerate(category_ids):
            m = _box(5 + 20 * k, 20 + 20 * k, 5 + 3 * t, 25 + 3 * t)
            segs[c].append({"size": [H, W], "counts": [int(x) for x in mask_to_counts(m)]})
    data = {"videos": [{"id": 1, "file_names": names, "height": H, "width": W,
                        "length": frames}],
            "categories": [{"id": c, "name": f"cat{c}"} for c in category_ids],
            "annotations": [{"id": 10 + c, "video_id": 1, "category_id": c, "iscrowd": 0,
                             "segmentations": segs[c]} for c in category_ids]}
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(data))


def test_detect_format(tmp_path):
    _write_davis(tmp_path / "davis")
    _write_youtube_vis(tmp_path / "yt" / "instances.json", tmp_path / "yt" / "JPEGImages")
    generate_dataset(tmp_path / "kitti", sequences=1, frames=4, height=64, width=128, seed=0,
                     val_fraction=0.0)
    assert detect_format(tmp_path / "davis") == "davis"
    assert detect_format(tmp_path / "yt") == "youtube_vis"
    assert detect_format(tmp_path / "yt" / "instances.json") == "youtube_vis"
    assert detect_format(tmp_path / "kitti") == "kitti_mots"
    with pytest.raises(FileNotFoundError, match="nope"):
        detect_format(tmp_path / "nope")


def test_davis_split_year_and_unsupervised_annotations(tmp_path):
    _write_davis(tmp_path, years=("2017", "2019"), annotations="Annotations_unsupervised")
    seqs = load_training_sequences(tmp_path, "train")
    assert [s.name for s in seqs] == ["bear"]
    assert [s.name for s in load_training_sequences(tmp_path, "val", "davis")] == ["cows"]
    ann = seqs[0].annotations(2)
    assert sorted((i.track_id, i.class_id) for i in ann.instances) == [(1, 1), (2, 1)]
    np.testing.assert_array_equal(ann.instances[0].mask, _box(5, 20, 8, 24))
    with pytest.raises(DataFormatError, match=r"ImageSets/<year>/test-dev.txt"):
        load_training_sequences(tmp_path, "test-dev")
    with pytest.raises(DataFormatError, match="model.class_names has 1 entries"):
        load_training_sequences(tmp_path, "train", class_names=["background"])


def test_youtube_vis_layouts_and_class_check(tmp_path):
    # 2019 layout: train.json beside train/JPEGImages
    _write_youtube_vis(tmp_path / "train.json", tmp_path / "train" / "JPEGImages",
                       category_ids=(1, 7))
    seqs = load_training_sequences(tmp_path / "train.json", class_names=[f"c{i}" for i in
                                                                           range(8)])
    assert len(seqs) == 1 and len(seqs[0]) == 6
    assert seqs[0].load_image(0).shape == (H, W, 3)
    assert sorted(i.class_id for i in seqs[0].annotations(0).instances) == [1, 7]
    with pytest.raises(DataFormatError, match=r"categories 7 'cat7' have no model class"):
        load_training_sequences(tmp_path / "train.json", class_names=["bg", "a", "b"])
    lone = tmp_path / "lone" / "train.json"  # annotations but no image folder
    lone.parent.mkdir()
    lone.write_text((tmp_path / "train.json").read_text())
    with pytest.raises(FileNotFoundError, match=r"lone/JPEGImages or .*lone/train/JPEGImages"):
        load_training_sequences(lone)
    empty = tmp_path / "valid" / "valid.json"
    empty.parent.mkdir()
    empty.write_text(json.dumps({"videos": [], "categories": [], "annotations": []}))
    with pytest.raises(DataFormatError, match="has no annotations"):
        load_training_sequences(empty)
    (tmp_path / "two").mkdir()
    for n in ("train.json", "instances.json"):
        (tmp_path / "two" / n).write_text('{"videos": []}')
    with pytest.raises(DataFormatError, match="several YouTube-VIS JSON files"):
        detect_format(tmp_path / "two")


def test_bad_format_value_is_a_config_error(tiny_overrides):
    from stemseg_core.config import ConfigError

    with pytest.raises(ConfigError, match="data.format: 'coco' .* allowed: auto, davis, kitti"):
        load_config(None, [*tiny_overrides, "data.format=coco"])


def test_build_dataset_from_youtube_vis(tmp_path, tiny_overrides):
    _write_youtube_vis(tmp_path / "instances.json", tmp_path / "JPEGImages")
    cfg = load_config(None, [*tiny_overrides, "model.class_names=[background,cat1,cat2]"])
    item = build_dataset(cfg, tmp_path / "instances.json")[0]
    assert item["images"].shape == (4, 3, 64, 128)
    assert sorted(item["classes"].tolist()) == [1, 2]  # category ids kept as classes
    assert item["masks"].shape[0] == 2 and item["masks"].any()


@pytest.mark.slow
def test_train_cli_on_davis(tmp_path, tiny_overrides):
    from stemseg_core.checkpoint import load_checkpoint

    _write_davis(tmp_path / "DAVIS", val=())
    run = tmp_path / "run"
    rc = main(["train", "--config", "config/model/stemseg_r101_davis.yaml", "--data",
               str(tmp_path / "DAVIS"), "--out", str(run), "--device", "cpu", "--no-progress",
               "--max-steps", "2", "--set", *tiny_overrides, "train.batch_size=1",
               "data.num_workers=0", "train.checkpoint_every=2", "train.image_log_every=2"])
    assert rc == 0
    cfg, payload = load_checkpoint(run / "last.pt")
    assert payload["train_state"]["step"] == 2 and cfg.model.class_names == ["background",
                                                                            "object"]
