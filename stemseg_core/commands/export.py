"""`stemseg export`: a checkpoint -> TorchScript, ONNX, OpenVINO IR (fp32 or NNCF INT8) or
TensorRT engines; OpenVINO and TensorRT artifacts go into the engine cache the tracker reads."""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from stemseg_core.commands.checkpoint_options import add_checkpoint_options, checkpoint_options
from stemseg_core.errors import ConfigError

HELP = "export a checkpoint for deployment (TorchScript, ONNX, OpenVINO incl. INT8, TensorRT)"
DESCRIPTION = """\
Export a trained checkpoint for deployment. Graphs are fixed to one input size: pass the size
the model sees (after the tracker's resize and padding to multiples of 32) and the clip length.

  stemseg export --checkpoint checkpoints/stemseg_demo.pt --format onnx --out demo.onnx
  stemseg export --checkpoint checkpoints/stemseg_demo.pt --format openvino --precision int8 \\
      --calibration data/synth --out exports/int8
  stemseg export --checkpoint ckpt.pt --format tensorrt --height 384 --width 1248

openvino, onnxruntime and tensorrt build the two graphs the tracker runs (per-frame encoder,
per-clip decoder for every clip length 1..T, as a stream's start and end need) into the engine
cache (--engine-cache-dir, default ~/.cache/stemseg/engines), keyed by weights, backend version,
device, size, T and precision, with the checkpoint's index, and copy them to --out. The tracker
finds them there with --set inference.backend=openvino inference.precision=int8 (or --backend
on `stemseg infer`/`bench`). openvino and onnxruntime then run without torch: a runtime-only
install (pip install stemseg[runtime]) given this cache runs the node and `stemseg infer`.
Prebuild a deployment's cameras with --camera-size (repeatable):

  stemseg export --checkpoint checkpoints/stemseg_demo.pt --format openvino \\
      --camera-size 375x1242 --camera-size 192x640 --engine-cache-dir /opt/stemseg/engines

(openvino fp32 graphs serve bf16 and fp16 too: those are run-time hints.) INT8 calibrates on
--calibration: a folder of images (e.g. a `stemseg synth` data set), read as clips of T
consecutive frames from every folder of 8-bit colour images under it (grey, 16-bit and palette
images, i.e. a data set's instance maps and annotations, are left out); the graph size is the
size of those frames after the tracker's preprocessing. TensorRT engines are built for this GPU
and TensorRT version only.
"""

FORMATS = ("torchscript", "onnx", "openvino", "onnxruntime", "tensorrt", "checkpoint")
#: Formats built into the engine cache (the backends of the same names).
CACHED = ("openvino", "onnxruntime", "tensorrt")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="checkpoint file written by stemseg train")
    add_checkpoint_options(p)
    p.add_argument("--format", required=True, choices=FORMATS,
                   help="checkpoint = the same checkpoint without its training state (optimizer, "
                        "RNG), as shipped")
    p.add_argument("--out", default=None,
                   help="output file (torchscript/onnx/checkpoint) or folder (openvino/tensorrt: "
                        "a copy of the cached artifacts; optional for them)")
    p.add_argument("--height", type=int, default=None,
                   help="model input height, multiple of 32 (default: the config's data.height)")
    p.add_argument("--width", type=int, default=None,
                   help="model input width, multiple of 32 (default: the config's data.width)")
    p.add_argument("--clip-length", type=int, default=None, help="T (default: the config's)")
    p.add_argument("--camera-size", action="append", default=[], metavar="HxW",
                   help="openvino/onnxruntime/tensorrt: also build the graphs for a camera of "
                        "this image size (mapped to the model input as the tracker resizes it; "
                        "repeatable)")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16", "int8"], default=None,
                   help="openvino: fp32 (default) or int8 (needs --calibration); tensorrt: fp16 "
                        "(default) or fp32")
    p.add_argument("--calibration", metavar="DATA", default=None,
                   help="folder of images for INT8 calibration (openvino --precision int8)")
    p.add_argument("--calibration-clips", type=int, default=32,
                   help="clips used for INT8 calibration (default 32)")
    p.add_argument("--engine-cache-dir", default=None,
                   help="engine cache (default: --set inference.engine_cache_dir, else "
                        "~/.cache/stemseg/engines; a checkpoint's own value is ignored). Used "
                        "only when owned by you and not writable by others")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (tensorrt needs cuda)")
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[],
                   metavar="KEY=VALUE",
                   help="config override stored with the export, e.g. "
                        "inference.seediness_threshold=0.7 (several at once or repeated)")
    p.add_argument("--no-check", action="store_true",
                   help="skip comparing the export's outputs with eager PyTorch")


def run(args: argparse.Namespace) -> int:
    import torch

    from stemseg_core.checkpoint import load_checkpoint
    from stemseg_core.config import resolve_device
    from stemseg_core.model import build_model

    cfg, payload = load_checkpoint(args.checkpoint, list(args.overrides) or None,
                                   **checkpoint_options(args))
    if args.format == "checkpoint":
        from stemseg_core.checkpoint import save_checkpoint

        if not args.out:
            raise ConfigError("--format checkpoint needs --out FILE")
        path = save_checkpoint(args.out, payload["model"], cfg)
        print(f"wrote {path} ({Path(path).stat().st_size / 2**20:.1f} MiB, weights + config)")
        return 0
    h = args.height or cfg.data.height
    w = args.width or cfg.data.width
    t = args.clip_length or cfg.model.clip_length
    if h % 32 or w % 32 or h <= 0 or w <= 0:
        raise ConfigError(f"--height/--width must be positive multiples of 32, got {h}x{w}")
    precision = args.precision or ("fp16" if args.format == "tensorrt" else "fp32")
    allowed = {"openvino": ("fp32", "int8"), "tensorrt": ("fp16", "fp32"),
               "onnxruntime": ("fp32",)}.get(args.format,
                                                                               ("fp32",))
    if precision not in allowed:
        raise ConfigError(f"--format {args.format} --precision {precision}: allowed "
                          f"{', '.join(allowed)} (openvino bf16/fp16 are run-time hints: export "
                          f"fp32 and run with inference.precision)")
    if precision == "int8" and not args.calibration:
        raise ConfigError("--precision int8 needs --calibration DATA (a folder of images, e.g. "
                          "data/synth from `stemseg synth`)")
    if args.format in ("torchscript", "onnx") and not args.out:
        raise ConfigError(f"--format {args.format} needs --out FILE")
    if args.format == "tensorrt":
        from stemseg_core.backends.tensorrt_backend import TensorRTBackend

        reason = TensorRTBackend.unavailable_reason(torch.device("cuda"))
        if reason:
            raise ConfigError(f"--format tensorrt: {reason}")
    if args.format in CACHED:
        return _export_backend(args, (h, w, t), precision)

    device = resolve_device(args.device)
    model = build_model(cfg)
    model.load_state_dict(payload["model"])
    model.eval().to(device)
    shape = (1, t, 3, h, w)
    example = torch.rand(*shape, device=device) * 255
    if args.format == "torchscript":
        from stemseg_core.export.torchscript import export_torchscript, load_torchscript

        path = export_torchscript(model, example, args.out)
        if not args.no_check:
            loaded, _ = load_torchscript(path, device)
            with torch.inference_mode():
                ref, got = model(example), loaded(example)
            diff = {k: float((ref[k] - got[k]).abs().max()) for k in ref}
            print("max |eager - torchscript|:", _fmt(diff))
    else:
        from stemseg_core.export.onnx_export import check_onnx, export_onnx

        path = export_onnx(model.cpu(), example.cpu(), args.out)
        if not args.no_check:
            print("max |eager - onnxruntime|:", _fmt(check_onnx(model, example.cpu(), path)))
    size = Path(path).stat().st_size / 2**20 if Path(path).is_file() else 0.0
    print(f"wrote {path} ({size:.1f} MiB) for input {tuple(shape)}")
    return 0


def _calibrate_int8(trk, args: argparse.Namespace) -> tuple[tuple[int, int, int], list]:
    """Quantize the OpenVINO graphs on clips of --calibration's images, prepared as the tracker
    prepares frames. Returns the model input shape (3, Hp, Wp) they were built for and the
    first clip's (H, W, 3) RGB frames, which the export is checked on (the ranges were set on
    such frames; random ones hide a bad calibration)."""
    from stemseg_core.backends.cache import ArtifactCache
    from stemseg_core.backends.openvino.int8 import calibration_clips, quantize_into_cache
    from stemseg_core.data.sequence import read_rgb

    rgb = [[read_rgb(f) for f in files] for files in
           calibration_clips(args.calibration, trk.clip_length, args.calibration_clips)]
    cache = ArtifactCache(args.engine_cache_dir or trk.cfg.inference.engine_cache_dir or None)
    shape = quantize_into_cache(trk.model, [trk.prepare_frames(c) for c in rgb], cache)
    return shape, rgb[0]


def _export_backend(args: argparse.Namespace, size: tuple[int, int, int],
                    precision: str) -> int:
    """openvino / onnxruntime / tensorrt: build (or quantize) into the engine cache every graph
    of each size (clip lengths 1..T; int8: T), check one, copy them to --out."""
    import numpy as np

    from stemseg_core.backends.checkpoint_index import read_index
    from stemseg_core.inference.graph_build import build_graphs
    from stemseg_core.inference.preprocess import geometry
    from stemseg_core.inference.tracker import StreamingTracker

    h, w, t = size
    device = "cuda" if args.format == "tensorrt" else "cpu"
    base = list(args.overrides) + [f"model.clip_length={t}"]
    if args.engine_cache_dir:
        base.append(f"inference.engine_cache_dir={args.engine_cache_dir}")

    def tracker(backend: str, prec: str) -> StreamingTracker:
        return StreamingTracker.from_checkpoint(
            args.checkpoint, device=device, **checkpoint_options(args), load_model=True,
            overrides=base + [f"inference.backend={backend}", f"inference.precision={prec}"])

    trk = tracker(args.format, precision)
    cache_dir = args.engine_cache_dir or trk.cfg.inference.engine_cache_dir or None
    if precision == "int8":
        shape, check_frames = _calibrate_int8(trk, args)
        shapes = [shape]
    else:
        shapes = [(3, h, w)]
        check_frames = [np.random.default_rng(i).integers(0, 256, (h, w, 3), dtype=np.uint8)
                        for i in range(t)]
    for cam in args.camera_size:
        ch, _, cw = cam.lower().partition("x")
        if not (ch.isdigit() and cw.isdigit() and int(ch) > 0 and int(cw) > 0):
            raise ConfigError(f"--camera-size {cam!r}: expected HxW, e.g. 375x1242")
        geo = geometry(int(ch), int(cw), trk.cfg.input.min_side, trk.cfg.input.max_side)
        shapes.append((3, *geo.padded_size))
    lengths = [t] if precision == "int8" else list(range(1, t + 1))
    used = []
    for shape in dict.fromkeys(shapes):
        cache = build_graphs(trk, args.format, precision, shape, cache_dir, lengths)
        used += cache.used
        print(f"{args.format} {precision} for {shape[1]}x{shape[2]}, clip lengths "
              f"{lengths[0]}..{lengths[-1]}: in {cache.root}")
    if trk.weights_sha256 and read_index(cache, trk.weights_sha256) is not None:
        used += cache.used[-1:]  # the index: a runtime without torch starts from it
    if not args.no_check:
        got = trk.predict_clip(check_frames)
        ref = tracker("torch", "fp32").predict_clip(check_frames)
        print(f"max |eager - {args.format} {precision}|:",
              _fmt({k: float(np.abs(got[k] - ref[k]).max()) for k in ref}))
        if precision == "int8":
            print(f"int8 decides otherwise than eager fp32 on a calibration clip: "
                  f"{_disagreement(got, ref)}")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for folder in dict.fromkeys(used):
            dst = out / folder.parent.name / folder.name
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(folder, dst)
            print(f"wrote {dst}")
    return 0


def _disagreement(got: dict, ref: dict) -> str:
    """At how many output pixels the quantized network decides otherwise than the eager one:
    the class (argmax of ``semantic``) and seediness above 0.5. The demo model at 192x640:
    0.6 % and 1.1 % on a calibration clip, 0.1 % each on a val clip."""
    parts = []
    if "semantic" in ref:
        other = (got["semantic"].argmax(0) != ref["semantic"].argmax(0)).mean()
        parts.append(f"class {100 * other:.2f} %")
    seeds = ((got["seediness"] > 0.5) != (ref["seediness"] > 0.5)).mean()
    parts.append(f"seediness > 0.5 {100 * seeds:.2f} % of output pixels")
    return ", ".join(parts)


def _fmt(d: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2e}" for k, v in d.items())
