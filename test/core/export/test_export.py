"""Exports give the same outputs as eager PyTorch."""
import re

import pytest
import torch

from stemseg_core.cli import main
from stemseg_core.export.onnx_export import check_onnx, export_onnx
from stemseg_core.export.torchscript import export_torchscript, load_torchscript
from stemseg_core.model import build_model


@pytest.fixture
def tiny_model(tiny_config):
    torch.manual_seed(0)
    return build_model(tiny_config).eval()


def test_torchscript_round_trip_matches_eager(tiny_model, tmp_path):
    x = torch.rand(1, 4, 3, 64, 128) * 255
    path = export_torchscript(tiny_model, x, tmp_path / "m.ts")
    loaded, meta = load_torchscript(path)
    assert meta["input_shape"] == [1, 4, 3, 64, 128]
    assert meta["config"]["model"]["clip_length"] == 4
    y = torch.rand(1, 4, 3, 64, 128) * 255  # another input of the same shape
    with torch.inference_mode():
        ref, got = tiny_model(y), loaded(y)
    assert set(got) == {"embeddings", "precisions", "seediness", "semantic"}
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], rtol=1e-4, atol=1e-5)


def test_onnx_matches_eager_in_onnxruntime(tiny_model, tmp_path):
    x = torch.rand(1, 4, 3, 64, 128) * 255
    path = export_onnx(tiny_model, x, tmp_path / "m.onnx")
    diffs = check_onnx(tiny_model, x, path)
    assert set(diffs) == {"embeddings", "precisions", "seediness", "semantic"}
    assert max(diffs.values()) < 1e-3, diffs


def test_stride_two_model_exports_match_eager(tiny_config, tmp_path):
    """The stride-2 refiners (bilinear x2 + 2D convs) trace and run in onnxruntime too."""
    from stemseg_core.config import config_from_dict

    d = tiny_config.to_dict()
    d["model"]["output_stride"] = 2
    torch.manual_seed(0)
    model = build_model(config_from_dict(d)).eval()
    for p in model.refiners.parameters():  # leave the zero init: the refiners must matter
        torch.nn.init.normal_(p, std=0.05)
    x = torch.rand(1, 4, 3, 64, 128) * 255
    diffs = check_onnx(model, x, export_onnx(model, x, tmp_path / "m2.onnx"))
    assert max(diffs.values()) < 1e-3, diffs
    loaded, _ = load_torchscript(export_torchscript(model, x, tmp_path / "m2.ts"))
    with torch.inference_mode():
        ref, got = model(x), loaded(x)
    assert got["embeddings"].shape[-2:] == (32, 64)
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], rtol=1e-4, atol=1e-5)


def test_cli_rejects_bad_size(tiny_checkpoint, tmp_path, capsys):
    rc = main(["export", "--checkpoint", str(tiny_checkpoint), "--format", "torchscript",
               "--out", str(tmp_path / "m.ts"), "--height", "50"])
    assert rc == 2
    assert "multiples of 32" in capsys.readouterr().err


def test_cli_torchscript(tiny_checkpoint, tmp_path, capsys):
    rc = main(["export", "--checkpoint", str(tiny_checkpoint), "--format", "torchscript",
               "--out", str(tmp_path / "m.ts"), "--height", "64", "--width", "96"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "max |eager - torchscript|" in out and (tmp_path / "m.ts").is_file()


def test_cli_checkpoint_drops_training_state(tiny_config, tmp_path):
    from stemseg_core.checkpoint import load_checkpoint, save_checkpoint

    model = build_model(tiny_config)
    src = save_checkpoint(tmp_path / "run.pt", model.state_dict(), tiny_config,
                          train_state={"step": 5, "optimizer": {"big": torch.zeros(1000)}})
    dst = tmp_path / "ship.pt"
    assert main(["export", "--checkpoint", str(src), "--format", "checkpoint",
                 "--out", str(dst), "--set", "inference.seediness_threshold=0.7"]) == 0
    cfg, payload = load_checkpoint(dst)
    assert "train_state" not in payload
    assert cfg.inference.seediness_threshold == 0.7
    assert cfg.model == tiny_config.model
    assert all(torch.equal(payload["model"][k], v) for k, v in model.state_dict().items())


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error path")
def test_cli_tensorrt_without_gpu_is_a_clear_error(tiny_checkpoint, tmp_path, capsys):
    rc = main(["export", "--checkpoint", str(tiny_checkpoint), "--format", "tensorrt",
               "--out", str(tmp_path / "engines")])
    assert rc == 2
    assert "--format tensorrt: TensorRT needs a CUDA GPU" in capsys.readouterr().err
    assert not (tmp_path / "engines").exists()


def test_cli_onnx_does_not_warn_about_training_mode(tiny_checkpoint, tmp_path, recwarn):
    """Issue 25: the exported wrapper is in eval mode, so no 'training mode' warning."""
    import warnings

    warnings.simplefilter("always")
    rc = main(["export", "--checkpoint", str(tiny_checkpoint), "--format", "onnx",
               "--out", str(tmp_path / "m.onnx"), "--height", "64", "--width", "96"])
    assert rc == 0
    texts = [str(w.message) for w in recwarn]
    assert not [t for t in texts if "training mode" in t], texts


def test_cli_openvino_int8_calibrated_and_used_by_the_tracker(tiny_checkpoint, tmp_path,
                                                              capsys):
    """export --format openvino --precision int8 --calibration DATA writes the INT8 graphs
    into the cache; a tracker with backend openvino/int8 then runs them, close to eager."""
    import cv2
    import numpy as np

    from stemseg_core.inference.tracker import StreamingTracker

    rng = np.random.default_rng(0)
    for seq in ("0000", "0001"):
        d = tmp_path / "calib" / seq
        d.mkdir(parents=True)
        for i in range(8):
            img = np.kron(rng.integers(0, 256, (4, 6, 3)), np.ones((16, 16, 1)))
            cv2.imwrite(str(d / f"{i:06d}.png"), img.astype(np.uint8))
    cache = tmp_path / "engines"
    rc = main(["export", "--checkpoint", str(tiny_checkpoint), "--format", "openvino",
               "--precision", "int8", "--calibration", str(tmp_path / "calib"),
               "--calibration-clips", "4", "--engine-cache-dir", str(cache),
               "--out", str(tmp_path / "ir")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "max |eager - openvino int8|" in out
    # checked on a calibration clip, as decisions other than eager fp32's (the tiny model's
    # class probabilities are near uniform, so only its seediness decisions are held)
    other = re.search(r"on a calibration clip: class ([\d.]+) %, seediness > 0.5 ([\d.]+) %",
                      out)
    assert other and 0 <= float(other[1]) <= 100 and float(other[2]) < 10, out
    assert len(list((tmp_path / "ir").glob("openvino/*/model.xml"))) == 2  # encoder, decoder
    tr = StreamingTracker.from_checkpoint(tiny_checkpoint, device="cpu", overrides=[
        "inference.backend=openvino", "inference.precision=int8",
        f"inference.engine_cache_dir={cache}"])
    frames = [rng.integers(0, 256, (64, 96, 3), dtype=np.uint8) for _ in range(4)]
    got = tr.predict_clip(frames)
    ref = StreamingTracker.from_checkpoint(tiny_checkpoint, device="cpu").predict_clip(frames)
    assert np.abs(got["seediness"] - ref["seediness"]).max() < 0.1
    assert not np.array_equal(got["seediness"], ref["seediness"])  # really quantized
