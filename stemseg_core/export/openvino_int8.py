"""INT8 OpenVINO IR by NNCF post-training quantization, calibrated on the user's frames.

``quantize_into_cache`` quantizes the fp32 IR of both graphs (export/split.py) with
``nncf.quantize`` on clips read from a folder of images and writes the results into the engine
cache under the ``openvino``/``int8`` key, where the tracker (inference.backend=openvino,
inference.precision=int8) finds them. The encoder is calibrated on the clips' frames, the
decoder on the fp32 encoder's features of the same clips. Frames are resized and padded as the
tracker does (inference/preprocess.py).
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import torch

from stemseg_core.backends.base import create_backend
from stemseg_core.backends.cache import ArtifactCache
from stemseg_core.backends.onnx_files import decoder_onnx
from stemseg_core.backends.openvino_backend import XML, ir_key

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def calibration_clips(root: str | Path, clip_length: int, max_clips: int) -> list[list[Path]]:
    """Up to ``max_clips`` clips of ``clip_length`` consecutive images (sorted by name within
    each folder under ``root``), spread over the folders."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"--calibration: {root} does not exist (a folder of images, "
                                f"e.g. data/synth from `stemseg synth`)")
    folders: dict[Path, list[Path]] = {}
    for p in sorted(root.rglob("*")):
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
            folders.setdefault(p.parent, []).append(p)
    per_folder = [[files[i:i + clip_length] for i in range(0, len(files) - clip_length + 1,
                                                           clip_length)]
                  for files in folders.values()]
    clips: list[list[Path]] = []
    k = 0
    while len(clips) < max_clips and any(k < len(c) for c in per_folder):
        clips += [c[k] for c in per_folder if k < len(c)]
        k += 1
    if not clips:
        raise ValueError(f"--calibration: no {clip_length} consecutive PNG/JPG images in any "
                         f"folder under {root}")
    return clips[:max_clips]


def _frames(tracker, files: list[Path]) -> torch.Tensor:
    """Image files -> (L, 3, Hp, Wp) model input, prepared as the tracker prepares frames."""
    import cv2

    from stemseg_core.inference.preprocess import geometry

    images = [cv2.cvtColor(cv2.imread(str(f), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
              for f in files]
    h, w = images[0].shape[:2]
    inp = tracker.cfg.input
    geo = geometry(h, w, inp.min_side, inp.max_side)
    return torch.stack([tracker._prepare(im, geo) for im in images])


def quantize_into_cache(tracker, calibration: str | Path, *, max_clips: int = 32,
                        cache_dir: str | Path | None = None) -> tuple[int, int, int]:
    """Quantize both graphs for the size of the calibration frames (after the tracker's
    preprocessing); returns that frame shape (3, Hp, Wp)."""
    import nncf
    import openvino as ov

    cache = ArtifactCache(cache_dir or tracker.cfg.inference.engine_cache_dir or None)
    clips = [_frames(tracker, c) for c in
             calibration_clips(calibration, tracker.clip_length, max_clips)]
    shape = tuple(int(s) for s in clips[0].shape[1:])
    clips = [c for c in clips if tuple(c.shape[1:]) == shape]
    log.info("INT8 calibration: %d clips of %d frames at %dx%d", len(clips),
             tracker.clip_length, shape[1], shape[2])
    model = tracker.model.cpu().eval()
    fp32 = create_backend("openvino", model, torch.device("cpu"), "fp32", cache=cache)
    fp32.prepare(shape, tracker.clip_length)
    int8 = create_backend("openvino", model, torch.device("cpu"), "int8", cache=cache)
    with torch.inference_mode():
        feats = [tuple(f.numpy() for f in fp32.encode(c)) for c in clips]
    length = tracker.clip_length
    parts = {
        "encoder": (fp32._encoder_model, [c.numpy() for c in clips]),
        f"decoder-L{length}": (fp32._ir(f"decoder-L{length}", shape,
                                                 lambda: decoder_onnx(fp32, shape, length)),
                                        feats),
    }
    for part, (fp32_model, items) in parts.items():
        key = ir_key(int8, part, shape)
        folder = cache.folder(key)
        if folder.exists():  # an explicit export replaces the previous calibration
            shutil.rmtree(folder)

        def build(d: Path, fp32_model=fp32_model, items=items) -> None:
            data = nncf.Dataset(items, _as_inputs)
            q = nncf.quantize(fp32_model.clone(), data, subset_size=len(items))
            ov.save_model(q, str(d / XML), compress_to_fp16=False)

        cache.get_or_build(key, build, lambda d: d)
        log.info("INT8 %s written to %s", part, folder)
    return shape


def _as_inputs(item) -> list[np.ndarray] | np.ndarray:
    return list(item) if isinstance(item, tuple) else item


