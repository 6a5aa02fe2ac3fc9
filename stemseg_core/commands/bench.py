"""`stemseg bench`: time the streaming tracker stage by stage on random frames."""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from stemseg_core.commands.checkpoint_options import add_checkpoint_options, checkpoint_options

HELP = "time backbone+FPN, decoders/heads, clustering and stitching per clip and per frame"
DESCRIPTION = """\
Time the streaming tracker (the class the ROS node and `stemseg infer` use) on random frames.

Frames of --height x --width are pushed one by one; a clip of T frames runs every T - Tc frames.
After --warmup clips, --iters clips are measured and the median of each stage is printed:
backbone+FPN (per-frame 2D network), decoders+heads (TSE decoders, heads, mixing), clustering,
post-processing (mask upsampling, overlap resolution, filters), stitching, and the end-to-end time
per clip / per frame / fps in steady streaming (push() wall time incl. resizing).
With --config only, the model is randomly initialised (timings do not depend on the weights,
except clustering/stitching, which depend on how many instances are found: see 'instances').

Examples:
  stemseg bench --config config/model/demo_cpu.yaml --height 192 --width 640
  stemseg bench --checkpoint runs/demo/last.pt --iters 20 --json bench.json
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", help="model config YAML (random-init weights)")
    src.add_argument("--checkpoint", help="checkpoint written by `stemseg train`")
    add_checkpoint_options(p)
    p.add_argument("--height", type=int, default=None,
                   help="frame height in pixels (default: the config's data.height)")
    p.add_argument("--width", type=int, default=None,
                   help="frame width in pixels (default: the config's data.width)")
    p.add_argument("--clip-length", type=int, default=None,
                   help="clip length T (default: model.clip_length); the overlap is capped at T-1")
    p.add_argument("--iters", type=int, default=10, help="measured clips (default 10)")
    p.add_argument("--warmup", type=int, default=2, help="clips run before measuring (default 2)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's own)")
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[],
                   metavar="KEY=VALUE",
                   help="config override, e.g. --set inference.clip_overlap=2 (several at once "
                        "or repeated)")
    p.add_argument("--json", dest="json_path", default=None, help="also write the figures here")


class _StageTimer:
    """Forward hooks around a submodule that add up its wall time (synchronising CUDA)."""

    def __init__(self, module: Any, device: Any) -> None:
        import torch

        self.total = 0.0
        self._start = 0.0
        self._cuda = device.type == "cuda"
        self._torch = torch
        module.register_forward_pre_hook(self._pre)
        module.register_forward_hook(self._post)

    def _sync(self) -> None:
        if self._cuda:
            self._torch.cuda.synchronize()

    def _pre(self, *_: Any) -> None:
        self._sync()
        self._start = time.perf_counter()

    def _post(self, *_: Any) -> None:
        self._sync()
        self.total += time.perf_counter() - self._start


def run(args: argparse.Namespace) -> int:
    import torch

    threads_before = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:  # callers in the same process (tests, notebooks) keep their thread count
        torch.set_num_threads(threads_before)


def _run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from stemseg_core.checkpoint import load_checkpoint
    from stemseg_core.config import load_config
    from stemseg_core.inference.tracker import StreamingTracker
    from stemseg_core.model import build_model

    overrides = list(args.overrides)
    if args.clip_length is not None:
        if args.clip_length < 1:
            print("stemseg bench: error: --clip-length must be >= 1")
            return 2
        overrides.append(f"model.clip_length={args.clip_length}")
    if args.iters < 1 or args.warmup < 0:
        print("stemseg bench: error: --iters must be >= 1 and --warmup >= 0")
        return 2

    def capped_overlap(load: Any) -> list[str]:
        # A clip shorter than the config's overlap allows: cap the overlap at T - 1.
        from stemseg_core.config import ConfigError

        try:
            load(overrides)
            return overrides
        except ConfigError as e:
            if args.clip_length is None or "clip_overlap" not in str(e):
                raise
            return overrides + [f"inference.clip_overlap={args.clip_length - 1}"]

    torch.manual_seed(0)
    if args.checkpoint:
        opts = checkpoint_options(args)
        overrides = capped_overlap(lambda o: load_checkpoint(args.checkpoint, o, **opts))
        tracker = StreamingTracker.from_checkpoint(args.checkpoint, device=args.device,
                                                   overrides=overrides, **opts)
        source = f"checkpoint {args.checkpoint} (sha256 {tracker.weights_sha256})"
    else:
        overrides = capped_overlap(lambda o: load_config(args.config, o))
        cfg = load_config(args.config, overrides)
        tracker = StreamingTracker(build_model(cfg), cfg, device=args.device)
        source = f"config {args.config} (random init)"
    cfg = tracker.cfg
    height = args.height or cfg.data.height
    width = args.width or cfg.data.width
    model = tracker.model
    device = tracker.device
    backbone = getattr(model, "backbone", None)
    bb_timer = _StageTimer(backbone, device) if backbone is not None else None

    t_len, overlap = tracker.clip_length, tracker.clip_overlap
    rng = np.random.default_rng(0)
    # A few smooth random frames (blurred noise), reused cyclically.
    frames = []
    for _ in range(4):
        small = rng.integers(0, 256, (max(1, height // 16), max(1, width // 16), 3))
        img = np.kron(small, np.ones((16, 16, 1)))[:height, :width]
        img = np.pad(img, ((0, height - img.shape[0]), (0, width - img.shape[1]), (0, 0)),
                     mode="edge")
        frames.append(img.astype(np.uint8))

    records: list[dict[str, float]] = []
    pushed = 0
    clips_run = 0
    wall_acc = 0.0  # push() wall time since the last clip ran
    wall_start = time.perf_counter()
    while clips_run < args.warmup + args.iters:
        if bb_timer is not None:
            bb_timer.total = 0.0
        t0 = time.perf_counter()
        results = tracker.push(frames[pushed % len(frames)], pushed)
        wall_acc += time.perf_counter() - t0
        pushed += 1
        if not results:
            continue
        clips_run += 1
        if clips_run > args.warmup:
            timings = dict(tracker.last_timings)
            rec = {"model": timings["model"], "clustering": timings["clustering"],
                   "postprocess": timings["postprocess"], "stitching": timings["stitching"],
                   "clip_total": timings["total"], "stream_per_frame": wall_acc / len(results),
                   "instances": float(max(len(r.instances) for r in results))}
            if bb_timer is not None:
                rec["backbone_fpn"] = bb_timer.total
                rec["decoders_heads"] = timings["model"] - bb_timer.total
            records.append(rec)
        wall_acc = 0.0
    wall_total = time.perf_counter() - wall_start

    med = {k: statistics.median(r[k] for r in records) for k in records[0]}
    per_frame = med["stream_per_frame"]
    figures: dict[str, Any] = {
        "source": source,
        "device": str(device),
        "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                        else platform.processor() or platform.machine()),
        "threads": torch.get_num_threads(),
        "input_size": [height, width],
        "model_input_size": (list(tracker.input_geometry.padded_size)
                             if tracker.input_geometry else None),
        "clip_length": t_len,
        "clip_overlap": overlap,
        "iters": args.iters,
        "warmup": args.warmup,
        "median_seconds": med,
        "per_frame_seconds": per_frame,
        "fps": 1.0 / per_frame if per_frame > 0 else float("inf"),
        "backbone_split": bb_timer is not None,
        "wall_seconds": wall_total,
        "backbone": cfg.model.backbone.name,
        "mixing": cfg.model.embedding.mixing,
    }
    if device.type == "cuda":
        figures["cuda_max_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    _print_table(figures)
    if args.json_path:
        Path(args.json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_path).write_text(json.dumps(figures, indent=2))
        print(f"wrote {args.json_path}")
    return 0


def _print_table(f: dict[str, Any]) -> None:
    m = f["median_seconds"]
    t, tc = f["clip_length"], f["clip_overlap"]
    stride = t - tc
    print(f"stemseg bench: {f['source']}")
    print(f"  device {f['device']} ({f['device_name']}), {f['threads']} threads; backbone "
          f"{f['backbone']}, mixing {f['mixing']}")
    print(f"  frames {f['input_size'][0]}x{f['input_size'][1]} -> model input "
          f"{f['model_input_size'][0]}x{f['model_input_size'][1]}; T={t}, Tc={tc} (a clip every "
          f"{stride} frames); median of {f['iters']} clips after {f['warmup']} warm-up")
    rows: list[tuple[str, float]] = []
    if f["backbone_split"]:
        rows += [("backbone + FPN", m["backbone_fpn"]), ("decoders + heads", m["decoders_heads"])]
    else:
        rows += [("model forward (not split)", m["model"])]
    rows += [("model forward total", m["model"]), ("clustering", m["clustering"]),
             ("post-processing", m["postprocess"]), ("stitching", m["stitching"]),
             ("total per clip", m["clip_total"])]
    print(f"  {'stage':<28}{'ms/clip':>10}{'ms/frame':>10}{'%clip':>8}")
    for name, sec in rows:
        share = 100.0 * sec / m["clip_total"] if m["clip_total"] > 0 else 0.0
        print(f"  {name:<28}{sec * 1e3:>10.1f}{sec * 1e3 / stride:>10.1f}{share:>8.1f}")
    print(f"  {'stream (push wall time)':<28}{f['per_frame_seconds'] * stride * 1e3:>10.1f}"
          f"{f['per_frame_seconds'] * 1e3:>10.1f}")
    print(f"  fps (steady stream): {f['fps']:.2f}   instances per frame (max, median clip): "
          f"{m['instances']:.0f}")
    if "cuda_max_memory_mb" in f:
        print(f"  peak CUDA memory: {f['cuda_max_memory_mb']:.0f} MiB")
    if not f["backbone_split"]:
        print("  note: the model exposes no `backbone` submodule; only the whole forward is timed")
