"""Resize/pad geometry, mask mapping back to the image, and `stemseg bench` end to end."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stemseg_core.inference.preprocess import (
    geometry,
    prepare_frame,
    resized_size,
    upsample_labels,
    upsample_masks,
)


def test_resized_size_rules():
    assert resized_size(375, 1242) == (375, 1242)
    assert resized_size(375, 1242, min_side=736) == (736, 2438)
    assert resized_size(375, 1242, min_side=736, max_side=1948) == (588, 1948)
    assert resized_size(100, 50, max_side=80) == (80, 40)
    g = geometry(375, 1242, 0, 0)
    assert g.padded_size == (384, 1248)


def test_prepare_and_map_back():
    g = geometry(40, 72, min_side=80)  # x2 up, then pad 80x144 -> 96x160
    assert g.resized_size == (80, 144) and g.padded_size == (96, 160)
    img = np.full((40, 72, 3), 200, np.uint8)
    x = prepare_frame(img, g, [1.0, 2.0, 3.0])
    assert x.shape == (3, 96, 160) and x.dtype == np.float32
    np.testing.assert_allclose(x[:, :80, :144], 200.0, rtol=1e-6)
    assert x[2, 90, 150] == 3.0  # padded with the pixel mean
    # a mask over the valid region at 1/4 of the padded input maps back to the whole image
    low = np.zeros((1, 24, 40), bool)
    low[0, :20, :36] = True
    up = upsample_masks(low, g) > 0.5
    assert up.shape == (1, 40, 72) and bool(up.all())
    low2 = np.zeros((1, 24, 40), bool)
    low2[0, :10, :18] = True  # top-left quarter of the valid region
    up2 = (upsample_masks(low2, g) > 0.5)[0]
    assert up2[:20, :36].all() and not up2[20:].any() and not up2[:, 36:].any()


def test_upsample_labels_equals_per_mask_bilinear():
    rng = np.random.default_rng(0)
    for size, min_side, max_side in [((40, 72), 0, 0), ((40, 72), 80, 0), ((300, 500), 0, 400)]:
        g = geometry(*size, min_side, max_side)
        h, w = g.padded_size[0] // 4, g.padded_size[1] // 4
        lab = rng.integers(-1, 5, (2, h // 3 + 1, w // 3 + 1))
        lab = lab.repeat(3, 1).repeat(3, 2)[:, :h, :w]
        got = upsample_labels(lab, g)
        for t in range(2):
            up = upsample_masks(lab[t][None] == np.arange(5)[:, None, None], g) > 0.5
            assert int(up.sum(0).max()) <= 1  # disjoint masks stay disjoint
            ref = np.where(up.any(0), up.astype(np.uint8).argmax(0), -1)
            np.testing.assert_array_equal(got[t], ref)
        # the same masks as torch's own bilinear upsampling
        masks = torch.from_numpy(lab[0][None] == np.arange(5)[:, None, None]).float()[None]
        ref = F.interpolate(masks, size=g.output_frame_size(h, w), mode="bilinear",
                            align_corners=False)[0, :, :size[0], :size[1]].numpy()
        np.testing.assert_allclose(upsample_masks(lab[0][None] == np.arange(5)[:, None, None],
                                                  g), ref, atol=1e-5)


#: (image size, min_side, max_side): shrinking (antialiased), growing, one side each way.
RESIZES = [((720, 1280), 192, 640), ((375, 1242), 192, 640), ((480, 640), 200, 0),
           ((100, 333), 0, 160), ((40, 72), 80, 0), ((64, 96), 32, 48)]


@pytest.mark.parametrize("size,min_side,max_side", RESIZES)
@pytest.mark.parametrize("antialias", [True, False])
def test_prepare_frame_equals_torch_interpolate(size, min_side, max_side, antialias):
    """The numpy resize gives torch's F.interpolate (the model was trained on it) within 1e-4
    on 0..255 values (measured max 4.6e-5: float32 rounding of the weights)."""
    img = np.random.default_rng(size[1]).integers(0, 256, (*size, 3), dtype=np.uint8)
    g = geometry(*size, min_side, max_side)
    got = prepare_frame(img, g, [1.0, 2.0, 3.0], antialias=antialias)
    src = torch.from_numpy(img).permute(2, 0, 1).float()[None]
    nh, nw = g.resized_size
    ref = F.interpolate(src, size=(nh, nw), mode="bilinear", align_corners=False,
                        antialias=antialias and nh < size[0])[0].clamp(0, 255).numpy()
    assert got.shape == (3, *g.padded_size)
    assert float(np.abs(got[:, :nh, :nw] - ref).max()) <= 1e-4


def test_bench_command(tmp_path, tiny_config, capsys):
    from stemseg_core.cli import main
    from stemseg_core.config import save_config

    cfg_path = tmp_path / "tiny.yaml"
    save_config(tiny_config, cfg_path)
    out_json = tmp_path / "b.json"
    rc = main(["bench", "--config", str(cfg_path), "--height", "64", "--width", "96",
               "--iters", "1", "--warmup", "1", "--device", "cpu", "--clip-length", "2",
               "--json", str(out_json)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "backbone + FPN" in text and "fps" in text
    assert "flip test off (the node's default is off)" in text
    fig = json.loads(out_json.read_text())
    assert fig["clip_length"] == 2 and fig["clip_overlap"] == 1  # overlap capped at T - 1
    assert fig["flip_test"] is False
    (run,) = fig["runs"]
    assert (run["backend"], run["precision"]) == ("torch", "fp32")
    for k in ("backbone_fpn", "decoders_heads", "clustering", "stitching", "clip_total"):
        assert run["median_seconds"][k] >= 0
    assert run["fps"] > 0
    # T=2, Tc=1: each clip after the first has one new frame; its features are computed once
    assert run["frames_encoded_per_clip"] == 1.0
    assert (tmp_path / "b.png").is_file()  # the plot, next to the JSON


def test_bench_compares_backends_in_one_run(tmp_path, tiny_config, capsys):
    from stemseg_core.cli import main
    from stemseg_core.config import save_config

    cfg_path = tmp_path / "tiny.yaml"
    save_config(tiny_config, cfg_path)
    out_json = tmp_path / "cmp.json"
    rc = main(["bench", "--config", str(cfg_path), "--height", "64", "--width", "96",
               "--iters", "1", "--warmup", "0", "--device", "cpu", "--backend", "torch",
               "onnxruntime", "--precision", "fp32", "int8", "--json", str(out_json),
               "--set", f"inference.engine_cache_dir={tmp_path / 'engines'}"])
    assert rc == 0
    fig = json.loads(out_json.read_text())
    assert [(r["backend"], r["precision"]) for r in fig["runs"]] == [("torch", "fp32"),
                                                                     ("onnxruntime", "fp32")]
    assert len(fig["skipped"]) == 2 and all("int8" in s for s in fig["skipped"])
    onnx = fig["runs"][1]
    assert onnx["artifacts_built"] == 2 and onnx["artifacts_loaded"] == 0  # encoder, decoder
    text = capsys.readouterr().out
    assert "onnxruntime fp32" in text and "build/load s" in text
