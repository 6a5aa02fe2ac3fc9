"""model/chroma_lowpass.py: luma kept per pixel, chroma at 1/f, in the model and its export."""
import numpy as np
import pytest
import torch

from stemseg_core.config import Config
from stemseg_core.errors import ConfigError
from stemseg_core.model.chroma_lowpass import LUMA_RGB, chroma_lowpass, luma_weights


def _luma(x: torch.Tensor, w) -> torch.Tensor:
    return (x * x.new_tensor(w).view(1, 3, 1, 1)).sum(1)


def test_luma_kept_and_chroma_averaged_over_blocks():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 8, 12, generator=g) * 255
    out = chroma_lowpass(x, 2, LUMA_RGB)
    assert torch.allclose(_luma(out, LUMA_RGB), _luma(x, LUMA_RGB), atol=1e-3)
    # An image whose colour is constant over 2x2 blocks and smooth between them: only a
    # luma pattern varies within blocks. Its chroma is untouched, so the image comes back.
    grey = torch.rand(1, 1, 8, 12, generator=g) * 100
    out = chroma_lowpass(grey.repeat(1, 3, 1, 1) + torch.tensor([30., 0., 0.]).view(1, 3, 1, 1),
                         2, LUMA_RGB)
    assert torch.allclose(out, grey.repeat(1, 3, 1, 1) + torch.tensor([30., 0., 0.])
                          .view(1, 3, 1, 1), atol=1e-3)


def test_hand_computed_pixel():
    # One 2x2 block, red in the top-left pixel, black elsewhere: the block's mean colour is
    # (63.75, 0, 0); each pixel keeps its own luma: top-left 0.299 * 255 = 76.245, others 0.
    x = torch.zeros(1, 3, 2, 2)
    x[0, 0, 0, 0] = 255
    out = chroma_lowpass(x, 2, LUMA_RGB)
    mean_luma = 0.299 * 63.75
    tl = torch.tensor([63.75, 0, 0]) + (76.245 - mean_luma)
    other = torch.tensor([63.75, 0, 0]) - mean_luma
    assert torch.allclose(out[0, :, 0, 0], tl, atol=1e-3)
    assert torch.allclose(out[0, :, 1, 1], other, atol=1e-3)


def test_factor_one_is_identity_and_bgr_weights_reversed():
    x = torch.rand(1, 3, 4, 4)
    assert chroma_lowpass(x, 1, LUMA_RGB) is x
    assert luma_weights("bgr") == LUMA_RGB[::-1]


def test_subsampled_camera_frame_reaches_the_network_nearly_as_the_lossless_one():
    """4:2:2 (UYVY) differs from the lossless frame by ~1.6 grey levels on a coloured test
    card; after the low-pass both are within a third of that."""
    from stemseg_core.data.camera_effects import chroma_round_trip
    rng = np.random.default_rng(3)
    base = rng.integers(0, 256, (12, 40, 3), dtype=np.uint8)
    img = np.kron(base, np.ones((16, 16, 1), np.uint8))   # 192x640 blocks of colour
    img = (img.astype(np.int16) + rng.integers(-20, 21, img.shape)).clip(0, 255).astype(np.uint8)
    sub = chroma_round_trip(img, "422")

    def t(a):
        return torch.from_numpy(a.astype(np.float32).transpose(2, 0, 1)[None])
    before = (t(sub) - t(img)).abs().mean()
    after = (chroma_lowpass(t(sub), 2, LUMA_RGB)
             - chroma_lowpass(t(img), 2, LUMA_RGB)).abs().mean()
    assert after < before / 3


def test_config_checks_factor_and_architecture():
    from stemseg_core.config.validation import validate
    cfg = Config()
    cfg.model.chroma_lowpass = 3
    with pytest.raises(ConfigError, match="chroma_lowpass must be one of"):
        validate(cfg)
    cfg.model.chroma_lowpass = 2
    cfg.model.architecture = "official"
    with pytest.raises(ConfigError, match="needs model.architecture 'stemseg'"):
        validate(cfg)


def test_model_and_exported_encoder_apply_it():
    from stemseg_core.export.split import FrameEncoder
    from stemseg_core.model.stemseg import STEmSeg
    cfg = Config()
    cfg.model.backbone.name = "mobilenet_v3_large"
    cfg.model.backbone.weights = None
    cfg.model.chroma_lowpass = 2
    model = STEmSeg(cfg).eval()
    x = torch.rand(2, 3, 64, 64) * 255
    ref = (chroma_lowpass(x, 2, LUMA_RGB) - model.pixel_mean[0]) / model.pixel_std[0]
    assert torch.allclose(model.normalize(x), ref)
    with torch.no_grad():
        enc = FrameEncoder(model)(x)
        direct = model.backbone(ref, with_stem=False)
    assert torch.allclose(enc[0], direct[0], atol=1e-5)
