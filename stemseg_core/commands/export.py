"""`stemseg export`: a checkpoint -> TorchScript, ONNX or a cached TensorRT FP16 engine."""
from __future__ import annotations

import argparse
from pathlib import Path

from stemseg_core.commands.checkpoint_options import add_checkpoint_options, checkpoint_options

HELP = "export a checkpoint for deployment (TorchScript, ONNX, TensorRT FP16)"
DESCRIPTION = """\
Export a trained checkpoint for deployment. The graph is fixed to one input shape
(1, T, 3, H, W): pass the size the node will feed (after its resize) and the clip length.

  stemseg export --checkpoint checkpoints/stemseg_demo.pt --format onnx --out demo.onnx
  stemseg export --checkpoint ckpt.pt --format tensorrt --out engines/ --height 384 --width 1248

TensorRT engines are cached under --out keyed by GPU model, TensorRT version, weights and shape:
an engine built for another GPU or TensorRT version is rebuilt, never loaded.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="checkpoint file written by stemseg train")
    add_checkpoint_options(p)
    p.add_argument("--format", required=True,
                   choices=["torchscript", "onnx", "tensorrt", "checkpoint"],
                   help="checkpoint = the same checkpoint without its training state (optimizer, "
                        "RNG), as shipped")
    p.add_argument("--out", required=True,
                   help="output file (torchscript/onnx) or engine cache directory (tensorrt)")
    p.add_argument("--height", type=int, default=None,
                   help="input height, multiple of 32 (default: the config's data.height)")
    p.add_argument("--width", type=int, default=None,
                   help="input width, multiple of 32 (default: the config's data.width)")
    p.add_argument("--clip-length", type=int, default=None, help="T (default: the config's)")
    p.add_argument("--precision", choices=["fp16", "fp32"], default="fp16",
                   help="TensorRT precision (default fp16)")
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
    from stemseg_core.config import ConfigError, resolve_device
    from stemseg_core.model import build_model

    cfg, payload = load_checkpoint(args.checkpoint, list(args.overrides) or None,
                                   **checkpoint_options(args))
    if args.format == "checkpoint":
        from stemseg_core.checkpoint import save_checkpoint

        path = save_checkpoint(args.out, payload["model"], cfg)
        print(f"wrote {path} ({Path(path).stat().st_size / 2**20:.1f} MiB, weights + config)")
        return 0
    h = args.height or cfg.data.height
    w = args.width or cfg.data.width
    t = args.clip_length or cfg.model.clip_length
    if h % 32 or w % 32 or h <= 0 or w <= 0:
        raise ConfigError(f"--height/--width must be positive multiples of 32, got {h}x{w}")
    if args.format == "tensorrt":
        from stemseg_core.export.tensorrt import TensorRTUnavailable, require_tensorrt

        try:
            require_tensorrt()
        except TensorRTUnavailable as e:
            raise ConfigError(f"--format tensorrt: {e}") from None
    device = "cuda" if args.format == "tensorrt" else resolve_device(args.device)
    model = build_model(cfg)
    model.load_state_dict(payload["model"])
    model.eval().to(device)
    shape = (1, t, 3, h, w)
    example = torch.rand(*shape, device=device, generator=None) * 255
    if args.format == "torchscript":
        from stemseg_core.export.torchscript import export_torchscript, load_torchscript

        path = export_torchscript(model, example, args.out)
        if not args.no_check:
            loaded, _ = load_torchscript(path, device)
            with torch.inference_mode():
                ref, got = model(example), loaded(example)
            diff = {k: float((ref[k] - got[k]).abs().max()) for k in ref}
            print("max |eager - torchscript|:", _fmt(diff))
    elif args.format == "onnx":
        from stemseg_core.export.onnx_export import check_onnx, export_onnx

        path = export_onnx(model.cpu(), example.cpu(), args.out)
        if not args.no_check:
            print("max |eager - onnxruntime|:", _fmt(check_onnx(model, example.cpu(), path)))
    else:
        from stemseg_core.export.tensorrt import build_or_load_engine

        module, path, built = build_or_load_engine(model, shape, args.out, args.precision)
        print(("built" if built else "loaded cached") + f" TensorRT engine {path}")
        if not args.no_check:
            with torch.inference_mode():
                ref, got = model(example), module(example)
            print("max |eager - tensorrt|:",
                  _fmt({k: float((ref[k] - got[k]).abs().max()) for k in ref}))
    size = Path(path).stat().st_size / 2**20 if Path(path).is_file() else 0.0
    print(f"wrote {path} ({size:.1f} MiB) for input {tuple(shape)}")
    return 0


def _fmt(d: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2e}" for k, v in d.items())
