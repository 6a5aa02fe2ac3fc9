"""Class-aware clip oversampling: small-instance counts, KITTI areas, sampling frequencies."""
from __future__ import annotations

import numpy as np
import pytest

from stemseg_core.config import ConfigError, load_config
from stemseg_core.data.clips import ClipDataset, build_dataset
from stemseg_core.data.formats.kitti_mots import FrameAnnotation, Instance, Sequence, load_sequence
from stemseg_core.data.oversample import small_instance_counts, start_weights
from stemseg_core.data.synth import generate_dataset

H, W, N = 64, 128, 10


def _box(t: int, side: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[10:10 + side, 5 * t:5 * t + side] = True
    return m


def _sequence(with_meta: bool) -> Sequence:
    """Frames 6-9 hold one small pedestrian (6x6 = 36 px); every frame a big car (20x20) and a
    big pedestrian (15x15 = 225 px)."""
    def ann(t):
        inst = [Instance(1001, 1, _box(t, 20)), Instance(2002, 2, _box(t, 15))]
        if t >= 6:
            inst.append(Instance(2001, 2, _box(t, 6)))
        return FrameAnnotation(inst, np.zeros((H, W), bool))

    meta = {}
    if with_meta:
        meta["instance_areas"] = lambda t: [(i.class_id, int(i.mask.sum()))
                                            for i in ann(t).instances]
    return Sequence("toy", [f"{t:06d}.png" for t in range(N)], H, W, ann, meta)


@pytest.mark.parametrize("with_meta", [True, False])
def test_small_instance_counts(with_meta):
    seq = _sequence(with_meta)
    assert small_instance_counts(seq, 2, 100).tolist() == [0] * 6 + [1] * 4
    assert small_instance_counts(seq, 2, 300).tolist() == [1] * 6 + [2] * 4
    assert small_instance_counts(seq, 1, 100).tolist() == [0] * N
    # at a quarter of the source size the 225 px pedestrian is 56 px
    assert small_instance_counts(seq, 2, 100, area_scale=0.25).tolist() == [1] * 6 + [2] * 4
    assert start_weights(np.array([0, 1, 2]), 3.0).tolist() == [1.0, 4.0, 7.0]


def test_kitti_txt_areas_match_decoded_masks(tmp_path):
    generate_dataset(tmp_path, sequences=1, frames=4, seed=7, height=64, width=192,
                     val_fraction=0.0)
    seq = load_sequence(tmp_path, "0000")
    for t in range(4):
        decoded = sorted((i.class_id, int(i.mask.sum())) for i in seq.annotations(t).instances)
        assert sorted(seq.meta["instance_areas"](t)) == decoded
    assert any(seq.meta["instance_areas"](t) for t in range(4))


def _cfg(tiny_config, **data):
    for k, v in data.items():
        setattr(tiny_config.data, k, v)
    tiny_config.data.height, tiny_config.data.width = H, W
    return tiny_config


def test_sampling_follows_the_weights(tiny_config):
    seq = _sequence(True)
    T = tiny_config.model.clip_length
    n_starts = N - T + 1
    cfg = _cfg(tiny_config, oversample_weight=4.0, oversample_max_area=100, max_frame_stride=1)
    ds = ClipDataset([seq], cfg, seed=3, samples_per_epoch=2000)
    starts = np.array([ds.sample(i)["frames"][0] for i in range(2000)])
    w = np.array([1.0 + 4.0 * (t >= 6) for t in range(n_starts)])
    expected = w[6:].sum() / w.sum()  # starts 6.. hold the small pedestrian
    assert abs((starts >= 6).mean() - expected) < 0.04
    assert "drawn" in ds.oversample_summary and "pedestrian" in ds.oversample_summary


def test_weight_zero_keeps_the_old_draws(tiny_config):
    seq = _sequence(True)
    plain = ClipDataset([seq], _cfg(tiny_config, max_frame_stride=2), seed=5)
    assert plain.start_weights is None and plain.oversample_summary == ""
    draws = [plain.sample(i)["frames"] for i in range(8)]
    again = ClipDataset([seq], _cfg(tiny_config, oversample_weight=0.0), seed=5)
    assert [again.sample(i)["frames"] for i in range(8)] == draws


def test_build_dataset_oversamples_kitti(tmp_path):
    generate_dataset(tmp_path, sequences=2, frames=8, seed=1, height=64, width=192,
                     val_fraction=0.0)
    cfg = load_config(None, ["model.clip_length=4", "inference.clip_overlap=2", "data.height=64",
                             "data.width=192", "data.oversample_weight=2",
                             "data.oversample_max_area=400"])
    ds = build_dataset(cfg, tmp_path, "train")
    assert ds.start_weights is not None and len(ds.start_weights) == 2
    assert all(len(w) == 8 and (w >= 1).all() for w in ds.start_weights)
    assert ds[0]["images"].shape == (4, 3, 64, 192)


@pytest.mark.parametrize("override,message", [
    ("data.oversample_weight=-1", "data.oversample_weight must be >= 0"),
    ("data.oversample_max_area=0", "data.oversample_max_area must be >= 1"),
])
def test_bad_oversampling_settings(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_unknown_oversample_class():
    with pytest.raises(ConfigError, match="data.oversample_class"):
        load_config(None, ["data.oversample_weight=1", "data.oversample_class=bicycle"])
