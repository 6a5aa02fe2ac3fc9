"""`stemseg import-official`: state dicts with the authors' key layout and shapes (written out
here from shared/notes/official-weights.md, not from our model), saved as their trainer saves
(legacy serialization from CUDA, training state beside the weights), import with nothing
missing or left over and run through StreamingTracker and `stemseg infer`."""
from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
import torch
from torch import serialization

from stemseg_core.checkpoint import load_checkpoint
from stemseg_core.cli import main
from stemseg_core.inference.tracker import StreamingTracker
from stemseg_core.model.official_weights import OfficialWeightsError, import_official

# --- the authors' layout, from the facts --------------------------------------------------------

STAGES = ((3, 64), (4, 128), (23, 256), (3, 512))  # ResNet-101: blocks, width (output 4x)
DATASETS = {  # inter channels of the heads, embedding dims (E, variance V), semseg channels
    "kitti_mots": dict(E=3, V=3, seediness_in_embedding=True, semseg=4, semseg_widths=None,
                       free=False),
    "davis": dict(E=4, V=2, seediness_in_embedding=False, semseg=None, semseg_widths=None,
                  free=True),
    "youtube_vis": dict(E=4, V=2, seediness_in_embedding=True, semseg=42,
                        semseg_widths=(256, 256, 256, 256), free=True),
}


def _bn(prefix: str, n: int) -> dict[str, tuple]:
    return {f"{prefix}.{k}": (n,) for k in ("weight", "bias", "running_mean", "running_var")}


def _decoder(prefix: str, widths=(256, 256, 128, 128)) -> dict[str, tuple]:
    w0, w1, w2, w3 = widths
    keys: dict[str, tuple] = {}
    for block, width, n in (("block_32x", w0, 3), ("block_16x", w1, 2), ("block_8x", w2, 1),
                            ("block_4x", w3, 1)):
        for i in range(n):
            cin = 256 if i == 0 else width
            keys[f"{prefix}.{block}.{4 * i}.weight"] = (width, cin, 3, 3, 3)
            keys[f"{prefix}.{block}.{4 * i}.bias"] = (width,)
            keys[f"{prefix}.{block}.{4 * i + 1}.weight"] = (width,)
            keys[f"{prefix}.{block}.{4 * i + 1}.bias"] = (width,)
    keys[f"{prefix}.conv_16.weight"] = (w1, w0 + w1, 1, 1, 1)
    keys[f"{prefix}.conv_8.weight"] = (w2, w1 + w2, 1, 1, 1)
    keys[f"{prefix}.conv_4.weight"] = (w3, w2 + w3, 1, 1, 1)
    return keys


def authors_shapes(dataset: str) -> dict[str, tuple]:
    d = DATASETS[dataset]
    s: dict[str, tuple] = {"backbone.body.stem.conv1.weight": (64, 3, 7, 7),
                           **_bn("backbone.body.stem.bn1", 64)}
    cin = 64
    for stage, (blocks, width) in enumerate(STAGES, 1):
        out = 4 * width
        for b in range(blocks):
            p = f"backbone.body.layer{stage}.{b}"
            s[f"{p}.conv1.weight"] = (width, cin if b == 0 else out, 1, 1)
            s.update(_bn(f"{p}.bn1", width))
            s[f"{p}.conv2.weight"] = (width, width, 3, 3)
            s.update(_bn(f"{p}.bn2", width))
            s[f"{p}.conv3.weight"] = (out, width, 1, 1)
            s.update(_bn(f"{p}.bn3", out))
            if b == 0:
                s[f"{p}.downsample.0.weight"] = (out, cin, 1, 1)
                s.update(_bn(f"{p}.downsample.1", out))
        cin = out
    for i, c in enumerate((256, 512, 1024, 2048), 1):
        s[f"backbone.fpn.fpn_inner{i}.weight"] = (256, c, 1, 1)
        s[f"backbone.fpn.fpn_inner{i}.bias"] = (256,)
        s[f"backbone.fpn.fpn_layer{i}.weight"] = (256, 256, 3, 3)
        s[f"backbone.fpn.fpn_layer{i}.bias"] = (256,)
    s.update(_decoder("embedding_head"))
    s["embedding_head.conv_embedding.weight"] = (d["E"], 128, 1, 1, 1)
    s["embedding_head.conv_variance.weight"] = (d["V"], 128, 1, 1, 1)
    s["embedding_head.conv_variance.bias"] = (d["V"],)
    if d["seediness_in_embedding"]:
        s["embedding_head.conv_seediness.weight"] = (1, 128, 1, 1, 1)
    s["embedding_head.time_scale"] = ()
    if not d["seediness_in_embedding"]:
        s.update(_decoder("seediness_head"))
        s["seediness_head.conv_out.weight"] = (1, 128, 1, 1, 1)
    if d["semseg"]:
        widths = d["semseg_widths"] or (256, 256, 128, 128)
        s.update(_decoder("semseg_head", widths))
        s["semseg_head.conv_out.weight"] = (d["semseg"], widths[3], 1, 1, 1)
    if d["free"]:
        s["embedding_loss_criterion.free_dim_bandwidths"] = (1, 2)
    return s


def authors_state(dataset: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random values of a sane scale (kaiming-like convs, BN close to identity)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for k, shape in authors_shapes(dataset).items():
        if k.endswith("running_var"):
            v = 0.5 + torch.rand(shape, generator=g)
        elif k.endswith("time_scale"):
            v = torch.tensor(1.0)
        elif k.endswith("free_dim_bandwidths"):
            v = torch.full(shape, 1 / 0.3 ** 2)
        elif len(shape) >= 2:
            fan_in = int(np.prod(shape[1:]))
            v = torch.randn(shape, generator=g) * (1.0 / fan_in) ** 0.5
        elif k.endswith("bn1.weight") or ".bn" in k or "downsample.1" in k:
            v = 0.5 + 0.5 * torch.rand(shape, generator=g) if k.endswith("weight") else \
                0.1 * torch.randn(shape, generator=g)
        else:
            v = (1.0 if k.endswith("weight") and "block" in k else 0.0) + \
                0.1 * torch.randn(shape, generator=g)
        state[k] = v.float()
    return state


_SAVE_AS_CUDA = {"on": False}


def _cuda_tag(obj):
    """Location tag 'cuda:0' while saving, as on the authors' GPUs (no GPU needed here)."""
    return "cuda:0" if _SAVE_AS_CUDA["on"] else None


serialization.register_package(0, _cuda_tag, lambda obj, location: None)


def save_like_their_trainer(state: dict[str, torch.Tensor], path) -> None:
    """Their backup_session(): legacy torch.save of model/optimizer/lr_scheduler/logger/iters."""
    param = torch.zeros(3)
    payload = {
        "model": state,
        "optimizer": {"state": {0: {"momentum_buffer": param.clone()}},
                      "param_groups": [{"lr": 0.001, "momentum": 0.9, "dampening": 0,
                                        "weight_decay": 0.0001, "nesterov": True,
                                        "params": [0]}]},
        "lr_scheduler": {"base_lrs": [0.001], "last_epoch": 20000, "lr_lambdas": [None]},
        "logger": {"total_iterations": 20000,
                   "_TrainingLogger__train_start_time": 1.58e9,
                   "_TrainingLogger__latest_timestamp": 1.59e9,
                   "_TrainingLogger__latest_iteration_num": 20000,
                   "_TrainingLogger__pause_duration": 0.0},
        "iterations": 20000,
    }
    _SAVE_AS_CUDA["on"] = True
    try:
        torch.save(payload, path, _use_new_zipfile_serialization=False)
    finally:
        _SAVE_AS_CUDA["on"] = False


# --- tests ---------------------------------------------------------------------------------


def test_facts_kitti_layout_counts():
    shapes = authors_shapes("kitti_mots")
    assert len(shapes) == 604
    assert sum(int(np.prod(s)) for s in shapes.values()) == 67_620_164  # 67.62 M values
    prefixes = {p: sum(k.startswith(p) for k in shapes) for p in
                ("backbone.body", "backbone.fpn", "embedding_head", "semseg_head")}
    assert prefixes == {"backbone.body": 520, "backbone.fpn": 16, "embedding_head": 36,
                        "semseg_head": 32}


def test_saved_like_their_trainer_needs_map_location(tmp_path):
    path = tmp_path / "tiny.pth"
    save_like_their_trainer({"a": torch.ones(2)}, path)
    data = path.read_bytes()
    assert not data.startswith(b"PK") and b"cuda:0" in data  # legacy format, CUDA tags
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(io.BytesIO(data), weights_only=True)
    assert torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)["iterations"]


@pytest.mark.parametrize("dataset", [
    "kitti_mots", pytest.param("davis", marks=pytest.mark.slow),
    pytest.param("youtube_vis", marks=pytest.mark.slow)])
def test_import_places_every_key(tmp_path, dataset):
    theirs = authors_state(dataset)
    src = tmp_path / f"{dataset}.pth"
    save_like_their_trainer(theirs, src)
    cfg, state, report = import_official(src, dataset)
    assert report.n_keys == len(theirs) and len(state) == len(theirs)
    assert report.ignored_entries == ["optimizer", "lr_scheduler", "logger", "iterations"]
    renamed = {"embedding_loss_criterion.free_dim_bandwidths": "mixing.free_dim_bandwidths"}
    for k, v in theirs.items():
        assert torch.equal(state[renamed.get(k, k)], v), k
    assert cfg.model.architecture == "official" and cfg.input.channel_order == "bgr"


def test_import_refuses_what_does_not_fit(tmp_path):
    theirs = authors_state("kitti_mots")
    src = tmp_path / "kitti.pth"
    save_like_their_trainer(theirs, src)
    with pytest.raises(OfficialWeightsError, match="looks like the authors' 'kitti_mots' model"):
        import_official(src, "youtube_vis")
    theirs["extra.weight"] = torch.zeros(1)
    theirs.pop("embedding_head.time_scale")
    save_like_their_trainer(theirs, src)
    with pytest.raises(OfficialWeightsError) as err:
        import_official(src, "kitti_mots")
    msg = str(err.value)
    assert "keys it could not place: 1\n    extra.weight" in msg
    assert "keys of the network the file lacks: 1\n    embedding_head.time_scale" in msg
    backbone_only = tmp_path / "backbone.pth"
    torch.save({"body.stem.conv1.weight": torch.zeros(1), "fpn.fpn_inner1.bias": torch.zeros(1)},
               backbone_only)
    with pytest.raises(OfficialWeightsError, match="backbone-only file"):
        import_official(backbone_only, "kitti_mots")
    weird = tmp_path / "weird.pth"
    torch.save([1, 2], weird)
    with pytest.raises(OfficialWeightsError, match="holds a list"):
        import_official(weird, "kitti_mots")


def _frames(n: int, h: int = 90, w: int = 150) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


@pytest.mark.slow  # ResNet-101 + 3 heads on 8 frames, three times: ~1 min on 2 cores
def test_imported_kitti_model_runs_in_tracker_and_infer(tmp_path, capsys):
    theirs = authors_state("kitti_mots")
    src = tmp_path / "kitti_mots.pth"
    save_like_their_trainer(theirs, src)
    ckpt = tmp_path / "kitti.pt"
    assert main(["import-official", "--checkpoint", str(src), "--dataset", "kitti_mots",
                 "--out", str(ckpt), "--set", "input.min_side=0", "input.max_side=0"]) == 0
    assert "imported 604 tensors (67.62 M values)" in capsys.readouterr().out
    cfg, payload = load_checkpoint(ckpt)
    assert cfg.inference.seediness_threshold == 0.95 and cfg.model.clip_length == 8
    assert set(payload["model"]) == set(theirs)

    tracker = StreamingTracker.from_checkpoint(ckpt, device="cpu")
    frames = _frames(8)
    out = tracker.predict_clip(frames)
    assert out["embeddings"].shape == (3, 8, 24, 40) and out["semantic"].shape == (3, 8, 24, 40)
    assert out["foreground"].shape == (8, 24, 40) and np.isfinite(out["precisions"]).all()
    # the tracker's preprocessing: BGR order, padding that is zero after the authors' mean
    mean = torch.tensor(cfg.model.pixel_mean)[:, None, None]
    clip = mean.expand(8, 3, 96, 160).clone()
    clip[:, :, :90, :150] = torch.stack([torch.from_numpy(f[..., ::-1].copy())
                                         .permute(2, 0, 1).float() for f in frames])
    clip = clip[None]
    with torch.inference_mode():
        ref = tracker.model(clip)
    np.testing.assert_allclose(out["embeddings"], ref["embeddings"][0].numpy(), atol=1e-5)

    data = tmp_path / "data" / "seq"
    data.mkdir(parents=True)
    for i, f in enumerate(frames):
        cv2.imwrite(str(data / f"{i:06d}.png"), f[..., ::-1])
    res = tmp_path / "res"
    assert main(["infer", "--checkpoint", str(ckpt), "--data", str(tmp_path / "data"),
                 "--seq", "seq", "--out", str(res), "--device", "cpu", "--min-track-length", "0",
                 "--set", "inference.seediness_threshold=0.0",
                 "inference.foreground_threshold=0.0"]) == 0
    lines = (res / "seq.txt").read_text().splitlines()
    assert lines and {int(x.split()[0]) for x in lines} <= set(range(8))
