"""INT8 OpenVINO IR by NNCF post-training quantization, calibrated on the user's frames.

``quantize_into_cache`` quantizes the fp32 IR of both graphs (export/split.py) with
``nncf.quantize`` on calibration clips and writes the results into the engine cache under the
``openvino``/``int8`` key, where the tracker (inference.backend=openvino,
inference.precision=int8) finds them. The encoder is calibrated on the clips' frames, the
decoder on the fp32 encoder's features of the same clips. The caller prepares the frames as
the tracker does (``StreamingTracker.prepare_frames``; `stemseg export` reads them from the
folder that :func:`calibration_clips` lists).
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import torch

from stemseg_core.backends.cache import ArtifactCache
from stemseg_core.backends.openvino.backend import XML, OpenVinoBackend, ir_key

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
    # Camera frames only: a data set's tree also holds label maps (KITTI MOTS / `stemseg synth`
    # instances/<seq>/*.png in 16-bit grey, DAVIS palette annotations), which read as colour
    # frames are near black; calibrated on them, INT8 lost 3 HOTA on the val split (2026-12-07).
    skipped = [d for d, files in folders.items() if not is_colour_frame(files[0])]
    if skipped:
        log.info("INT8 calibration: %d of %d image folders under %s left out, their images are "
                 "not 8-bit colour (label or depth maps), e.g. %s", len(skipped), len(folders),
                 root, skipped[0])
    folders = {d: f for d, f in folders.items() if d not in skipped}
    per_folder = [[files[i:i + clip_length] for i in range(0, len(files) - clip_length + 1,
                                                           clip_length)]
                  for files in folders.values()]
    clips: list[list[Path]] = []
    k = 0
    while len(clips) < max_clips and any(k < len(c) for c in per_folder):
        clips += [c[k] for c in per_folder if k < len(c)]
        k += 1
    if not clips:
        left_out = (f" ({len(skipped)} folders of grey, 16-bit or palette images left out: "
                    f"calibrate on a camera's colour frames)" if skipped else "")
        raise ValueError(f"--calibration: no {clip_length} consecutive 8-bit colour PNG/JPG "
                         f"images in any folder under {root}{left_out}")
    return clips[:max_clips]


def is_colour_frame(path: Path) -> bool:
    """Whether the image at ``path`` is an 8-bit RGB(A) frame as a camera gives it, not a grey,
    16-bit or palette label / depth map (read from its header only)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return img.mode in ("RGB", "RGBA")
    except (OSError, UnidentifiedImageError):
        return False


def quantize_into_cache(model: torch.nn.Module, clips: list[np.ndarray], cache: ArtifactCache
                        ) -> tuple[int, int, int]:
    """Quantize both graphs of ``model`` on ``clips``, each (L, 3, Hp, Wp) prepared model input
    (clips of another size than the first are left out); returns the frame shape (3, Hp, Wp)."""
    import nncf
    import openvino as ov

    shape = tuple(int(s) for s in clips[0].shape[1:])
    clips = [np.asarray(c, np.float32) for c in clips if tuple(c.shape[1:]) == shape]
    length = int(clips[0].shape[0])
    log.info("INT8 calibration: %d clips of %d frames at %dx%d", len(clips), length,
             shape[1], shape[2])
    model = model.cpu().eval()
    cpu = torch.device("cpu")
    fp32 = OpenVinoBackend(model, cpu, "fp32", cache=cache)
    fp32.prepare(shape, length)
    int8 = OpenVinoBackend(model, cpu, "int8", cache=cache)
    feats = [fp32.encode(c) for c in clips]
    parts = {"encoder": (fp32.encoder_ir(), clips),
             f"decoder-L{length}": (fp32.decoder_ir(length), feats)}
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


