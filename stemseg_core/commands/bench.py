"""`stemseg bench`: time the streaming tracker stage by stage on random frames."""
from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from stemseg_core.commands.backend_options import BackendChoices
from stemseg_core.commands.checkpoint_options import add_checkpoint_options, checkpoint_options
from stemseg_core.config.schema import PRECISIONS

log = logging.getLogger(__name__)

HELP = ("time the streaming tracker per stage, and compare inference backends/precisions "
        "(table, JSON, plot)")
DESCRIPTION = """\
Time the streaming tracker (the class the ROS node and `stemseg infer` use) on random frames.

Frames of --height x --width are pushed one by one; a clip of T frames runs every T - Tc frames.
After --warmup clips, --iters clips are measured and the median of each stage is printed:
backbone+FPN (per-frame 2D network), decoders+heads (TSE decoders, heads, mixing), clustering,
post-processing (mask upsampling, overlap resolution, filters), stitching, and the end-to-end time
per clip / per frame / fps in steady streaming (push() wall time incl. resizing).
With --config only, the model is randomly initialised (timings do not depend on the weights,
except clustering/stitching, which depend on how many instances are found: see 'instances').

With --backend/--precision, every backend x precision that runs on the device is measured in
the same run, one after another (artifacts built or loaded from the engine cache first; the
warm-up column is that time): a table, --json and a bar plot (--plot, default next to --json).
Each frame differs from the others (a stream), so the per-frame features of the backbone are
computed once and reused by the overlapping clip, as in the node. The flip test is off unless
--flip-test on, as the node runs by default (a checkpoint's own inference.flip_test is not
followed; it doubles the network time).

Examples:
  stemseg bench --config config/model/demo_cpu.yaml --height 192 --width 640
  stemseg bench --checkpoint checkpoints/stemseg_demo.pt --backend torch openvino \
      --precision fp32 bf16 --json bench.json
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
    p.add_argument("--backend", nargs="+", default=None, choices=BackendChoices(),
                   metavar="NAME", help="backends to compare (default: the config's "
                                        "inference.backend): auto or a registered backend")
    p.add_argument("--precision", nargs="+", default=None, choices=list(PRECISIONS),
                   help="precisions to compare (default: the config's inference.precision); "
                        "combinations a backend does not run on the device are skipped")
    p.add_argument("--flip-test", choices=["on", "off"], default="off",
                   help="mirrored second pass per clip (default off, as the node runs)")
    p.add_argument("--json", dest="json_path", default=None, help="also write the figures here")
    p.add_argument("--plot", default=None,
                   help="bar plot of ms per frame by backend (default: --json with .png)")


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
    import torch

    from stemseg_core.backends import BackendUnavailable
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

    def make_tracker(extra: list[str]) -> tuple[Any, str]:
        torch.manual_seed(0)  # the same random init for every backend
        if args.checkpoint:
            opts = checkpoint_options(args)
            over = capped_overlap(lambda o: load_checkpoint(args.checkpoint, o, **opts)) + extra
            tracker = StreamingTracker.from_checkpoint(args.checkpoint, device=args.device,
                                                       overrides=over, **opts)
            return tracker, f"checkpoint {args.checkpoint} (sha256 {tracker.weights_sha256})"
        over = capped_overlap(lambda o: load_config(args.config, o)) + extra
        cfg = load_config(args.config, over)
        return (StreamingTracker(build_model(cfg), cfg, device=args.device),
                f"config {args.config} (random init)")

    flip = [f"inference.flip_test={'true' if args.flip_test == 'on' else 'false'}"]
    base, source = make_tracker(flip)
    backends = args.backend or [base.cfg.inference.backend]
    precisions = args.precision or [base.cfg.inference.precision]
    runs: list[dict[str, Any]] = []
    skipped: list[str] = []
    failed: list[str] = []
    for backend in backends:
        for precision in precisions:
            extra = flip + [f"inference.backend={backend}", f"inference.precision={precision}"]
            tracker = base if (backend, precision) == (base.cfg.inference.backend,
                                                       base.cfg.inference.precision) else None
            try:
                if tracker is None:
                    tracker, _ = make_tracker(extra)
                runs.append(_measure(tracker, args, backend, precision))
            except BackendUnavailable as e:
                skipped.append(f"{backend} {precision}: {e}")
                print(f"  skipped {backend} {precision}: {e}")
            except Exception as e:  # a backend that fails to build must not hide the others
                log.exception("bench: %s %s failed", backend, precision)
                failed.append(f"{backend} {precision}: {type(e).__name__}: {e}")
                print(f"  FAILED {backend} {precision}: {type(e).__name__}: {e}")
            tracker = None
    if not runs:
        print("stemseg bench: error: no backend/precision ran:\n  "
              + "\n  ".join(skipped + failed))
        return 2
    first = runs[0]
    figures: dict[str, Any] = {
        "source": source,
        "device": first["device"],
        "device_name": first["device_name"],
        "threads": torch.get_num_threads(),
        "flip_test": args.flip_test == "on",
        "input_size": first["input_size"],
        "model_input_size": first["model_input_size"],
        "clip_length": base.clip_length,
        "clip_overlap": base.clip_overlap,
        "iters": args.iters,
        "warmup": args.warmup,
        "backbone": base.cfg.model.backbone.name,
        "mixing": base.cfg.model.embedding.mixing,
        "runs": runs,
        "skipped": skipped,
        "failed": failed,
    }
    _print_table(figures)
    if args.json_path:
        Path(args.json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_path).write_text(json.dumps(figures, indent=2))
        print(f"wrote {args.json_path}")
    plot = args.plot or (str(Path(args.json_path).with_suffix(".png")) if args.json_path
                         else None)
    if plot:
        _plot(figures, plot)
        print(f"wrote {plot}")
    return 1 if failed else 0


def _frames(height: int, width: int) -> list[Any]:
    """A few smooth random frames (blurred noise), reused cyclically (see _stream_frame)."""
    import numpy as np

    rng = np.random.default_rng(0)
    frames = []
    for _ in range(4):
        small = rng.integers(0, 256, (max(1, height // 16), max(1, width // 16), 3))
        img = np.kron(small, np.ones((16, 16, 1)))[:height, :width]
        img = np.pad(img, ((0, height - img.shape[0]), (0, width - img.shape[1]), (0, 0)),
                     mode="edge")
        frames.append(img.astype(np.uint8))
    return frames


def _stream_frame(frames: list[Any], index: int) -> Any:
    """Frame ``index`` of the stream: a base frame with its index written into the top-left
    pixels, so no two frames are equal (features are reused only for frames really shared by
    overlapping clips, as in a camera stream)."""
    img = frames[index % len(frames)].copy()
    img[0, :4, 0] = [(index >> s) & 255 for s in (0, 8, 16, 24)]
    return img


def _measure(tracker: Any, args: argparse.Namespace, backend: str,
             precision: str) -> dict[str, Any]:
    """Push frames until warmup + iters clips ran; the figures of one backend/precision."""
    import torch

    cfg = tracker.cfg
    height = args.height or cfg.data.height
    width = args.width or cfg.data.width
    device = torch.device(tracker.device)
    t0 = time.perf_counter()
    tracker.warmup(height, width)  # builds or loads the backend's artifacts
    build_seconds = time.perf_counter() - t0
    runner = tracker.runner
    if runner is not None and runner.backend is None:  # the eager model (runner.EagerRunner)
        runner = None
    split = runner is not None and backend_name(runner) == "torch"
    bb_timer = _StageTimer(tracker.model.backbone, device) if split else None
    frames = _frames(height, width)
    records: list[dict[str, float]] = []
    pushed = clips_run = 0
    wall_acc = 0.0  # push() wall time since the last clip ran
    wall_start = time.perf_counter()
    while clips_run < args.warmup + args.iters:
        if bb_timer is not None:
            bb_timer.total = 0.0
        encoded_before = runner.encoded if runner is not None else 0
        t0 = time.perf_counter()
        results = tracker.push(_stream_frame(frames, pushed), pushed)
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
            if runner is not None:  # frames through the 2D network in this clip
                rec["frames_encoded"] = float(runner.encoded - encoded_before)
            if bb_timer is not None:
                rec["backbone_fpn"] = bb_timer.total
                rec["decoders_heads"] = timings["model"] - bb_timer.total
            records.append(rec)
        wall_acc = 0.0
    wall_total = time.perf_counter() - wall_start
    med = {k: statistics.median(r[k] for r in records) for k in records[0]}
    per_frame = med["stream_per_frame"]
    run: dict[str, Any] = {
        "backend": backend_name(runner) if runner is not None else "torch",
        "precision": precision,
        "device": str(device),
        "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                        else platform.processor() or platform.machine()),
        "input_size": [height, width],
        "model_input_size": (list(tracker.input_geometry.padded_size)
                             if tracker.input_geometry else None),
        "build_or_load_seconds": build_seconds,
        "median_seconds": med,
        "per_frame_seconds": per_frame,
        "fps": 1.0 / per_frame if per_frame > 0 else float("inf"),
        "frames_encoded_per_clip": med.get("frames_encoded"),
        "backbone_split": bb_timer is not None,
        "wall_seconds": wall_total,
    }
    if runner is not None:  # artifacts of the engine cache: built now, or loaded (a cache hit)
        cache = runner.backend.cache
        run["artifacts_built"] = cache.built
        run["artifacts_loaded"] = len(cache.used) - cache.built
    if device.type == "cuda":
        run["cuda_max_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return run


def backend_name(runner: Any) -> str:
    return str(runner.backend.name)


def _print_table(f: dict[str, Any]) -> None:
    t, tc = f["clip_length"], f["clip_overlap"]
    stride = t - tc
    print(f"stemseg bench: {f['source']}")
    print(f"  device {f['device']} ({f['device_name']}), {f['threads']} threads; backbone "
          f"{f['backbone']}, mixing {f['mixing']}; flip test {'on' if f['flip_test'] else 'off'}"
          f" (the node's default is off)")
    print(f"  frames {f['input_size'][0]}x{f['input_size'][1]} -> model input "
          f"{f['model_input_size'][0]}x{f['model_input_size'][1]}; T={t}, Tc={tc} (a clip every "
          f"{stride} frames); median of {f['iters']} clips after {f['warmup']} warm-up")
    for run in f["runs"]:
        m = run["median_seconds"]
        print(f"  -- {run['backend']} {run['precision']}")
        rows: list[tuple[str, float]] = []
        if run["backbone_split"]:
            rows += [("backbone + FPN", m["backbone_fpn"]),
                     ("decoders + heads", m["decoders_heads"])]
        rows += [("model forward total", m["model"]), ("clustering", m["clustering"]),
                 ("post-processing", m["postprocess"]), ("stitching", m["stitching"]),
                 ("total per clip", m["clip_total"])]
        print(f"  {'stage':<28}{'ms/clip':>10}{'ms/frame':>10}{'%clip':>8}")
        for name, sec in rows:
            share = 100.0 * sec / m["clip_total"] if m["clip_total"] > 0 else 0.0
            print(f"  {name:<28}{sec * 1e3:>10.1f}{sec * 1e3 / stride:>10.1f}{share:>8.1f}")
        print(f"  {'stream (push wall time)':<28}{run['per_frame_seconds'] * stride * 1e3:>10.1f}"
              f"{run['per_frame_seconds'] * 1e3:>10.1f}")
        if "cuda_max_memory_mb" in run:
            print(f"  peak CUDA memory: {run['cuda_max_memory_mb']:.0f} MiB")
    print(f"  {'backend':<12}{'precision':<10}{'build/load s':>13}{'network ms/clip':>17}"
          f"{'ms/frame':>10}{'fps':>8}{'encoded/clip':>14}")
    for run in f["runs"]:
        enc = run["frames_encoded_per_clip"]
        print(f"  {run['backend']:<12}{run['precision']:<10}"
              f"{run['build_or_load_seconds']:>13.1f}{run['median_seconds']['model'] * 1e3:>17.1f}"
              f"{run['per_frame_seconds'] * 1e3:>10.1f}{run['fps']:>8.2f}"
              f"{'-' if enc is None else f'{enc:.1f}':>14}")


def _plot(f: dict[str, Any], path: str) -> None:
    """Bar plot: ms per frame (steady stream) and network ms per clip, by backend/precision."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['backend']}\n{r['precision']}" for r in f["runs"]]
    frame_ms = [r["per_frame_seconds"] * 1e3 for r in f["runs"]]
    net_ms = [r["median_seconds"]["model"] * 1e3 for r in f["runs"]]
    fig, ax = plt.subplots(figsize=(1.6 * len(labels) + 2, 3.5))
    xs = range(len(labels))
    ax.bar([x - 0.2 for x in xs], frame_ms, 0.4, label="ms per frame (stream)")
    ax.bar([x + 0.2 for x in xs], net_ms, 0.4, label="network ms per clip")
    ax.set_xticks(list(xs), labels)
    ax.set_ylabel("ms")
    ax.set_title(f"{f['backbone']} {f['model_input_size'][0]}x{f['model_input_size'][1]}, "
                 f"T={f['clip_length']}, {f['device_name']}, flip test "
                 f"{'on' if f['flip_test'] else 'off'}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
