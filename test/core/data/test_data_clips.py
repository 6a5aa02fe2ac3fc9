"""ClipDataset: shapes, dtypes, padding -> ignore, flip consistency, determinism, collate."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from stemseg_core.config import load_config
from stemseg_core.data.clips import ClipDataset, build_dataset, collate_clips, zoom_clip
from stemseg_core.data.formats.kitti_mots import FrameAnnotation, Instance, Sequence
from stemseg_core.data.synth import generate_dataset

SH, SW, N_FRAMES = 30, 40, 6  # source frames (aspect 4:3 -> padded in a 64x128 canvas)


def _square(t):
    m = np.zeros((SH, SW), bool)
    m[5:15, 3 + 2 * t:13 + 2 * t] = True  # moves right; asymmetric in x
    return m


def _late(t):
    m = np.zeros((SH, SW), bool)
    if t >= 3:
        m[20:28, 25:35] = True
    return m


def _sequence(tmp_path) -> Sequence:
    paths = []
    for t in range(N_FRAMES):
        img = np.full((SH, SW, 3), 20, np.uint8)
        img[_square(t)] = (250, 200, 30)
        img[_late(t)] = (30, 220, 250)
        p = tmp_path / f"{t:06d}.png"
        cv2.imwrite(str(p), img[..., ::-1])
        paths.append(str(p))

    def fn(t):
        ign = np.zeros((SH, SW), bool)
        ign[0, :] = True
        inst = [Instance(1001, 1, _square(t))]
        if t >= 3:
            inst.append(Instance(2001, 2, _late(t)))
        weird = np.zeros((SH, SW), bool)
        weird[25:, :3] = True
        inst.append(Instance(5001, 5, weird))  # class outside the model -> ignore
        return FrameAnnotation(inst, ign)

    return Sequence("toy", paths, SH, SW, fn)


def _cfg(tiny_config, **data):
    for k, v in data.items():
        setattr(tiny_config.data, k, v)
    return tiny_config


def test_item_shapes_dtypes_and_padding(tmp_path, tiny_config):
    cfg = _cfg(tiny_config, horizontal_flip=False, max_frame_stride=1)
    ds = ClipDataset([_sequence(tmp_path)], cfg, train=True, seed=0)
    assert len(ds) == N_FRAMES - cfg.model.clip_length + 1
    item = ds.load_clip(0, [0, 1, 2, 3])
    T, H, W = 4, 64, 128
    assert item["images"].shape == (T, 3, H, W) and item["images"].dtype == torch.uint8
    assert item["masks"].dtype == torch.bool and item["masks"].shape == (2, T, H, W)
    assert item["classes"].dtype == torch.long and item["classes"].tolist() == [1, 2]
    assert item["ignore"].shape == (T, H, W) and item["ignore"].dtype == torch.bool
    content_w = round(SW * 64 / SH)  # 85 columns of content, the rest is padding
    assert item["ignore"][:, :, content_w + 1:].all()
    assert not item["ignore"][:, 10:50, 10:content_w - 1].any()
    assert item["ignore"][:, 0, :content_w].all()  # the ignore row, resized
    assert item["ignore"][:, 55:, :5].all()  # the class-5 instance went to ignore
    assert (item["images"][:, :, :, content_w + 1:] == 0).all()
    # the pedestrian appears at frame 3 only: all-False before
    assert not item["masks"][1, :3].any() and item["masks"][1, 3].any()
    # masks sit on the coloured pixels
    img = item["images"].permute(0, 2, 3, 1).numpy()
    m = item["masks"][0].numpy()
    assert (img[m][:, 0] > 120).mean() > 0.95


def test_flip_consistency(tmp_path, tiny_config):
    cfg = _cfg(tiny_config, horizontal_flip=True)
    ds = ClipDataset([_sequence(tmp_path)], cfg, train=True, seed=1)
    a = ds.load_clip(0, [1, 2, 3, 4], flip=False)
    b = ds.load_clip(0, [1, 2, 3, 4], flip=True)
    assert torch.equal(b["images"], a["images"].flip(-1))
    assert torch.equal(b["masks"], a["masks"].flip(-1))
    assert torch.equal(b["ignore"], a["ignore"].flip(-1))
    img = b["images"].permute(0, 2, 3, 1).numpy()
    assert (img[b["masks"][0].numpy()][:, 0] > 120).mean() > 0.95
    flips = {ds[i]["meta"]["flipped"] for i in range(len(ds))} | {
        ClipDataset([_sequence(tmp_path)], cfg, seed=s)[0]["meta"]["flipped"] for s in range(8)}
    assert flips == {True, False}


def test_deterministic_per_index_and_seed(tmp_path, tiny_config):
    cfg = _cfg(tiny_config, max_frame_stride=2, image_augmented_fraction=0.5)
    seqs = [_sequence(tmp_path)]
    a, b = ClipDataset(seqs, cfg, seed=7), ClipDataset(seqs, cfg, seed=7)
    for i in range(len(a)):
        x, y = a[i], b[i]
        assert x["meta"] == y["meta"]
        assert torch.equal(x["images"], y["images"]) and torch.equal(x["masks"], y["masks"])
    metas = [str(ClipDataset(seqs, cfg, seed=s)[0]["meta"]) for s in range(6)]
    assert len(set(metas)) > 1


def test_image_augmented_clip(tmp_path, tiny_config):
    cfg = _cfg(tiny_config, image_augmented_fraction=1.0, horizontal_flip=False)
    ds = ClipDataset([_sequence(tmp_path)], cfg, seed=3)
    item = ds[0]
    assert item["meta"]["augmented"] and len(set(item["meta"]["frames"])) == 1
    assert item["images"].shape == (4, 3, 64, 128) and item["masks"].shape[1:] == (4, 64, 128)
    # frames differ (independent warps) but each mask still covers its own object
    assert not torch.equal(item["images"][0], item["images"][1])
    for n in range(item["masks"].shape[0]):
        for t in range(4):
            m = item["masks"][n, t].numpy()
            if m.sum() > 20:
                img = item["images"][t].permute(1, 2, 0).numpy().astype(int)
                assert (np.abs(img[m] - 20).sum(1) > 60).mean() > 0.8


def test_collate_and_eval_mode(tmp_path, tiny_config):
    ds = ClipDataset([_sequence(tmp_path)], tiny_config, train=False)
    assert len(ds) == 1 and ds[0]["meta"]["frames"] == [0, 1, 2, 3]
    images, targets = collate_clips([ds[0], ds[0]])
    assert images.shape == (2, 4, 3, 64, 128) and images.dtype == torch.float32
    assert float(images.max()) > 200
    assert set(targets[0]) == {"masks", "classes", "ignore"}


def test_build_dataset_on_synth(tmp_path):
    generate_dataset(tmp_path, sequences=2, frames=5, seed=1, height=64, width=192,
                     val_fraction=0.5)
    cfg = load_config(None, ["model.clip_length=4", "inference.clip_overlap=2", "data.height=64",
                               "data.width=192"])
    ds = build_dataset(cfg, tmp_path, "train")
    assert ds.train and len(ds) == 2
    item = ds[0]
    assert item["images"].shape == (4, 3, 64, 192)
    assert set(item["classes"].tolist()) <= {1, 2}
    assert not item["ignore"][:, 40:, :].all()  # same aspect ratio: no padding
    val = build_dataset(cfg, tmp_path, "val")
    assert not val.train and val[0]["meta"]["sequence"] == "0001"


def test_later_epochs_draw_fresh_clips(tmp_path):
    from stemseg_core.cli import main as cli
    from stemseg_core.config import load_config
    from stemseg_core.data.clips import build_dataset

    assert cli(["synth", "--out", str(tmp_path), "--sequences", "2", "--frames", "12",
                "--height", "64", "--width", "96", "--quiet"]) == 0
    cfg = load_config(None, ["data.height=64", "data.width=96", "model.clip_length=4",
                             "inference.clip_overlap=2"])
    ds = build_dataset(cfg, tmp_path, "train")
    n = len(ds)
    draws0 = [tuple(ds.sample(i)["frames"]) + (ds.sample(i)["flip"],) for i in range(n)]
    draws1 = [tuple(ds.sample(n + i)["frames"]) + (ds.sample(n + i)["flip"],) for i in range(n)]
    assert draws0 != draws1  # epoch 1 is not a replay of epoch 0
    ds.epoch = 1  # index n + i is item i of epoch 1
    assert [tuple(ds.sample(i)["frames"]) + (ds.sample(i)["flip"],) for i in range(n)] == draws1


def test_zoom_clip_geometry():
    images = np.zeros((2, 20, 40, 3), np.uint8)
    masks = np.zeros((1, 2, 20, 40), bool)
    masks[0, :, 4:8, 10:14] = True  # 4 x 4 box
    images[:, 4:8, 10:14] = 200
    ignore = np.zeros((2, 20, 40), bool)
    # x2 from the top-left corner: the box doubles to 8 x 8 at twice the coordinates.
    img, m, ign = zoom_clip(images, masks, ignore, 2.0, 0.0, 0.0)
    ys, xs = np.nonzero(m[0, 0])
    assert m[0, 0].sum() == 64 and (ys.min(), ys.max(), xs.min(), xs.max()) == (8, 15, 20, 27)
    assert not ign.any() and img[1, 11, 23].tolist() == [200] * 3
    # x2 at the bottom-right window: offset = room (20, 40); the box falls outside.
    _img, m, _ign = zoom_clip(images, masks, ignore, 2.0, 1.0, 1.0)
    assert not m.any()
    # x0.5 into the bottom-right corner: box 2 x 2, uncovered canvas is ignore and black.
    img, m, ign = zoom_clip(images, masks, ignore, 0.5, 1.0, 1.0)
    assert m[0, 0].sum() == 4 and m[0, 0, 12:14, 25:27].all()
    assert ign[0, :10].all() and ign[0, :, :20].all() and not ign[0, 10:, 20:].any()
    assert img[0, :10].max() == 0


def test_scale_range_zooms_items_and_keeps_old_draws(tmp_path, tiny_config):
    seqs = [_sequence(tmp_path)]
    plain = [ClipDataset(seqs, _cfg(tiny_config, max_frame_stride=2), seed=5)[i]["meta"]
             for i in range(4)]
    cfg = _cfg(tiny_config, scale_range=[1.5, 2.0])
    items = [ClipDataset(seqs, cfg, seed=5)[i] for i in range(4)]
    for p, it in zip(plain, items):
        assert 1.5 <= it["meta"]["zoom"] <= 2.0
        assert (p["frames"], p["flipped"]) == (it["meta"]["frames"], it["meta"]["flipped"])
    assert all(p["zoom"] is None for p in plain)


def test_build_dataset_pools_several_folders(tmp_path):
    cfg = load_config(None, ["model.clip_length=4", "inference.clip_overlap=2", "data.height=64",
                             "data.width=192"])
    for name, seed, n in (("a", 1, 2), ("b", 2, 1)):
        generate_dataset(tmp_path / name, sequences=n, frames=5, seed=seed, height=64,
                         width=192, val_fraction=0.0)
    one = build_dataset(cfg, tmp_path / "a", "train")
    pooled = build_dataset(cfg, [tmp_path / "a", tmp_path / "b"], "train")
    only_b = build_dataset(cfg, tmp_path / "b", "train")
    assert len(one) > 0 and len(pooled) == len(one) + len(only_b)
    assert [s.name for s in pooled.sequences] == ["a/0000", "a/0001", "b/0000"]
    # The pooled b/0000 is b's own drive, not a's drive of the same number.
    b_img = pooled.sequences[2].load_image(0)
    assert not np.array_equal(b_img, pooled.sequences[0].load_image(0))
    assert np.array_equal(b_img, only_b.sequences[0].load_image(0))
    (tmp_path / "c").mkdir()
    generate_dataset(tmp_path / "c" / "a", sequences=1, frames=5, seed=3, height=64, width=192,
                     val_fraction=0.0)
    with pytest.raises(ValueError, match="a/0000"):
        build_dataset(cfg, [tmp_path / "a", tmp_path / "c" / "a"], "train")


def test_clean_images_are_the_clip_without_its_camera_effects(tmp_path, tiny_overrides):
    """loss.distill > 0: each item also carries its frames before the camera effects, zoomed and
    flipped like the corrupted ones; they equal the item drawn with the effects switched off."""
    seqs = [_sequence(tmp_path)]
    common = [*tiny_overrides, "data.scale_range=[1.2, 1.6]", "data.max_frame_stride=2"]
    teach = ["loss.distill=1", "train.teacher=t.pt"]
    jpeg = "data.camera_effects={jpeg: {prob: 1.0, severity: [3, 3]}}"
    with_fx = ClipDataset(seqs, load_config(None, [*common, *teach, jpeg]), seed=3)
    without = ClipDataset(seqs, load_config(None, [*common, *teach]), seed=3)
    plain = ClipDataset(seqs, load_config(None, [*common, jpeg]), seed=3)
    flips = set()
    for i in range(6):
        a, b = with_fx[i], without[i]
        flips.add(a["meta"]["flipped"])
        assert a["meta"]["camera_effects"] == ["jpeg"] and a["meta"]["zoom"] > 1.0
        assert torch.equal(a["clean_images"], b["images"])  # same draws, no JPEG
        assert not torch.equal(a["clean_images"], a["images"])
        assert torch.equal(b["clean_images"], b["images"])
        assert torch.equal(a["images"], plain[i]["images"]) and "clean_images" not in plain[i]
    assert flips == {True, False}
    _, targets = collate_clips([with_fx[0], with_fx[1]])
    assert targets[1]["clean_images"].dtype == torch.float32
    assert torch.equal(targets[1]["clean_images"], with_fx[1]["clean_images"].float())
