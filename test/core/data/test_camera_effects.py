"""Camera-pipeline effects (data/camera_effects.py) and their use in training clips."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from stemseg_core.config import ConfigError, load_config
from stemseg_core.config.schema import CameraEffectConfig
from stemseg_core.data import camera_effects as ce


def _scene(h: int = 96, w: int = 128) -> np.ndarray:
    """A textured RGB test image: colour gradients, sharp edges, fine stripes."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 // w, y * 255 // h, (x + y) * 255 // (h + w)], -1).astype(np.uint8)
    img[20:50, 30:60] = (220, 40, 40)
    img[60:90, 70:120:2] = (20, 200, 240)  # one-pixel chroma stripes
    return img


def _err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


def test_registry_holds_every_effect_in_camera_order():
    names = ce.effect_names()
    assert set(names) == set(ce.LEVELS)
    assert names.index("vignetting") < names.index("noise") < names.index("jpeg")
    assert names.index("noise") < names.index("demosaic") < names.index("gamma")  # raw first
    assert names[-1] == "jpeg"  # transport last


def test_jpeg_quality_orders_the_error():
    img = _scene()[:55]  # no one-pixel chroma stripes (JPEG's 4:2:0 averages them away)
    e100 = _err(ce.jpeg_round_trip(img, 100), img)
    e95 = _err(ce.jpeg_round_trip(img, 95), img)
    e10 = _err(ce.jpeg_round_trip(img, 10), img)
    assert e100 < e95 < e10
    assert e100 < 1.5 and e10 > 4 * e95
    assert ce.level("jpeg", 1) == 95  # severity 1 = image_transport's default quality


def test_chroma_420_keeps_luma_and_loses_chroma_detail():
    img = _scene()
    out = ce.chroma_round_trip(img, "420")
    luma = cv2.cvtColor(img, cv2.COLOR_RGB2YCrCb)[..., 0].astype(int)
    luma_out = cv2.cvtColor(out, cv2.COLOR_RGB2YCrCb)[..., 0].astype(int)
    assert np.abs(luma - luma_out)[8:-8, 8:-8].mean() <= 1.0  # within a grey level
    cr = cv2.cvtColor(img, cv2.COLOR_RGB2YCrCb)[60:90, 70:120, 1].astype(float)
    cr_out = cv2.cvtColor(out, cv2.COLOR_RGB2YCrCb)[60:90, 70:120, 1].astype(float)
    # one-pixel chroma stripes are averaged away: far less column-to-column chroma contrast
    assert np.abs(np.diff(cr_out, axis=1)).mean() < 0.5 * np.abs(np.diff(cr, axis=1)).mean()
    flat = np.full((32, 32, 3), (90, 140, 200), np.uint8)
    assert np.abs(ce.chroma_round_trip(flat, "420").astype(int) - flat).max() <= 2
    # rows of alternating colour: 4:2:2 keeps all rows' chroma, 4:2:0 averages row pairs
    rows = np.zeros((32, 32, 3), np.uint8)
    rows[::2], rows[1::2] = (200, 30, 30), (30, 30, 200)
    assert _err(ce.chroma_round_trip(rows, "422"), rows) < 1.0
    assert _err(ce.chroma_round_trip(rows, "420"), rows) > 30
    smooth = _scene()[:55]  # 4:1:0 loses more than 4:2:0; odd sizes come back whole
    assert _err(ce.chroma_round_trip(smooth, "410"), smooth) > \
        _err(ce.chroma_round_trip(smooth, "420"), smooth)
    assert ce.chroma_round_trip(img[:33, :45], "422").shape == (33, 45, 3)


def test_poisson_gauss_variance_matches_the_model():
    rng = np.random.default_rng(0)
    for x, gain, read in ((100.0, 0.2, 2.0), (30.0, 0.6, 4.0), (200.0, 0.05, 1.0)):
        z = ce.poisson_gauss(np.full((200, 200), x), gain, read, rng)
        assert z.mean() == pytest.approx(x, abs=0.1)
        assert z.var() == pytest.approx(gain * x + read ** 2, rel=0.03)
    # through the effect (rounded to uint8): + 1/12 of quantisation, per frame a new draw
    img = np.full((200, 200, 3), 120, np.uint8)
    p = ce.CAMERA_EFFECTS.get("noise").draw(rng, 2.0)
    a = ce.CAMERA_EFFECTS.get("noise").apply(img, p, rng).astype(float)
    b = ce.CAMERA_EFFECTS.get("noise").apply(img, p, rng).astype(float)
    want = p["gain"] * 120 + p["read_sigma"] ** 2 + 1 / 12
    assert a.var() == pytest.approx(want, rel=0.05)
    assert not np.array_equal(a, b)


def test_same_seed_same_output_and_clip_parameters_shared_by_frames():
    frames = np.stack([_scene()] * 4)
    settings = {n: CameraEffectConfig(prob=1.0, severity=[1.0, 3.0]) for n in ce.effect_names()}

    def run(seed):
        rng = np.random.default_rng(seed)
        plan = ce.draw_clip_plan(settings, rng)
        return plan, ce.apply_plan(frames, plan, rng)

    plan_a, out_a = run(7)
    plan_b, out_b = run(7)
    _plan_c, out_c = run(8)
    assert plan_a == plan_b and np.array_equal(out_a, out_b)
    assert not np.array_equal(out_a, out_c)
    assert [n for n, _p in plan_a] == ce.effect_names()  # one draw per clip, camera order
    # identical input frames differ only by the per-frame noise: clip parameters are shared
    no_noise = [(n, p) for n, p in plan_a if n != "noise"]
    same = ce.apply_plan(frames, no_noise, np.random.default_rng(1))
    assert all(np.array_equal(same[0], same[t]) for t in range(1, 4))
    assert not np.array_equal(out_a[0], out_a[1])


def test_probability_zero_is_the_identity():
    frames = np.stack([_scene()] * 2)
    settings = {n: CameraEffectConfig(prob=0.0) for n in ce.effect_names()}
    rng = np.random.default_rng(3)
    plan = ce.draw_clip_plan(settings, rng)
    assert plan == []
    assert ce.apply_plan(frames, plan, rng) is frames


def test_severity_grows_the_error_for_every_effect():
    img = _scene()[:55]
    for name in ce.effect_names():
        errs = [_err(np.stack(list(ce.apply_effect([img], name, s, ce.effect_rng(0, name, s))))[0],
                     img) for s in (1, 2, 3)]
        assert 0 < errs[0] <= errs[1] <= errs[2], (name, errs)


def test_config_checks_names_probabilities_and_ranges():
    cfg = load_config(None, ["data.camera_effects={jpeg: {prob: 0.5}}"])
    assert cfg.data.camera_effects["jpeg"].prob == 0.5
    assert load_config(None).data.camera_effects == {}  # off by default
    with pytest.raises(ConfigError, match="allowed: .*jpeg"):
        load_config(None, ["data.camera_effects.jpg.prob=0.5"])
    with pytest.raises(ConfigError, match=r"prob must be in \[0, 1\]"):
        load_config(None, ["data.camera_effects.noise.prob=2"])
    with pytest.raises(ConfigError, match="severity must be"):
        load_config(None, ["data.camera_effects.noise.severity=[2, 4]"])


def test_training_clips_with_camera_effects_differ_and_keep_their_labels(tmp_path):
    from stemseg_core.data.clips import build_dataset
    from stemseg_core.data.synth import generate_dataset

    generate_dataset(tmp_path / "d", 2, 8, 3, 64, 192, val_fraction=0.0)
    base = ["model.clip_length=4", "inference.clip_overlap=2", "data.height=64",
            "data.width=192", "data.max_frame_stride=1"]
    on = base + ["data.camera_effects={jpeg: {prob: 1, severity: [2, 3]}, "
                 "noise: {prob: 1, severity: [1, 2]}, exposure: {prob: 0.5}}"]
    plain = build_dataset(load_config(None, base), tmp_path / "d", "train", seed=4)
    aug = build_dataset(load_config(None, on), tmp_path / "d", "train", seed=4)
    for i in range(3):
        a, b = plain[i], aug[i]
        assert a["meta"]["frames"] == b["meta"]["frames"]
        assert a["meta"]["flipped"] == b["meta"]["flipped"]
        assert {"jpeg", "noise"} <= set(b["meta"]["camera_effects"])
        assert not np.array_equal(a["images"].numpy(), b["images"].numpy())
        for k in ("masks", "classes", "ignore"):
            assert np.array_equal(a[k].numpy(), b[k].numpy()), k
        again = aug[i]  # an item is a pure function of seed, epoch and index
        assert np.array_equal(again["images"].numpy(), b["images"].numpy())


def test_demosaic_keeps_flat_colour_and_orders_the_methods():
    """A Bayer sensor's round trip: exact on a flat colour (any method); edge-aware is the
    node's own decoding of bayer_rggb8 and beats bilinear, which beats one colour per 2x2
    cell, at the edges of coloured boxes (away from the image border)."""
    from stemseg_core.data import image_codec

    flat = np.full((7, 9, 3), (200, 60, 30), np.uint8)  # odd size: padded, then cut back
    for method in ("edge_aware", "bilinear", "cell"):
        np.testing.assert_array_equal(ce.demosaic_round_trip(flat, method), flat)
    img = _scene()[:56]  # colour boxes, no one-pixel stripes
    inner = (slice(2, -2), slice(2, -2))
    errs = {m: _err(ce.demosaic_round_trip(img, m)[inner], img[inner])
            for m in ("edge_aware", "bilinear", "cell")}
    assert 0 < errs["edge_aware"] < 0.95 * errs["bilinear"] < 0.95 * errs["cell"], errs
    enc, step, data = image_codec.encode_image(img, "bayer_rggb8")
    np.testing.assert_array_equal(ce.demosaic_round_trip(img, "edge_aware"),
                                  image_codec.decode_image(enc, 56, 128, step, False, data))
    cell = ce.demosaic_round_trip(img, "cell")
    np.testing.assert_array_equal(cell[0::2], cell[1::2])  # one colour per 2x2 cell
    np.testing.assert_array_equal(cell[:, 0::2], cell[:, 1::2])
    assert [ce.CAMERA_EFFECTS.get("demosaic").draw(None, s)["method"] for s in (1, 2, 3)] == \
        ["edge_aware", "bilinear", "cell"]
    with pytest.raises(ValueError, match="allowed edge_aware, bilinear, cell"):
        ce.demosaic_round_trip(img, "vng")


def test_a_pipeline_is_its_effects_in_turn_each_with_its_own_generator():
    frames = [_scene(), _scene()[::-1].copy()]
    alone = list(ce.apply_effect(frames, "demosaic", 1.0, ce.effect_rng(3, "demosaic", 1.0, "s")))
    both = list(ce.apply_pipeline(frames, "demosaic+jpeg", 1.0, 3, "s"))
    by_hand = [ce.jpeg_round_trip(f, 95) for f in alone]  # jpeg severity 1 is quality 95
    assert all(np.array_equal(a, b) for a, b in zip(both, by_hand))
    # one effect as a pipeline of one: the benchmark's frames as before
    one = list(ce.apply_pipeline(frames, "jpeg", 1.0, 3, "s"))
    assert all(np.array_equal(a, ce.jpeg_round_trip(f, 95)) for a, f in zip(one, frames))
    assert ce.pipeline_effects("demosaic+jpeg") == ["demosaic", "jpeg"]
    for bad, why in (("fog", "unknown effect 'fog'"), ("jpeg+jpeg", "appears twice"),
                     ("demosaic+", "unknown effect ''")):
        with pytest.raises(ValueError, match=why):
            ce.pipeline_effects(bad)
