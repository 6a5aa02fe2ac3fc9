"""The child process of runtime_loading.py, and `stemseg export`'s graph build: load a
checkpoint with torch (which writes the checkpoint index), and build every graph a graph
backend runs for one model input size, clip lengths 1..T, into the engine cache::

    python -m stemseg_core.inference.graph_build --checkpoint CKPT --engine-cache-dir DIR \
        [--backend openvino --precision bf16 --shape 3x192x640] [--overrides-json JSON]
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from stemseg_core.backends.cache import ArtifactCache
from stemseg_core.inference.runtime_loading import load_tracker
from stemseg_core.inference.tracker import StreamingTracker


def main(argv: list[str] | None = None) -> int:
    """The child process: load with torch (writes the index); with --backend/--shape also
    build every graph of that shape, clip lengths 1..T."""
    p = argparse.ArgumentParser(prog=f"python -m {__name__}")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--engine-cache-dir", required=True)
    p.add_argument("--overrides-json", default="[]")
    p.add_argument("--allow-pickle", action="store_true")
    p.add_argument("--sha256", default=None)
    p.add_argument("--backend", default=None)
    p.add_argument("--precision", default="fp32")
    p.add_argument("--shape", default=None, help="model input 3xHpxWp")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="[stemseg build] %(message)s")
    logging.getLogger("stemseg_core").setLevel(logging.INFO)
    over = json.loads(args.overrides_json)
    cache = {"inference.engine_cache_dir": args.engine_cache_dir}
    over = {**over, **cache} if isinstance(over, dict) else over + [
        f"inference.engine_cache_dir={args.engine_cache_dir}"]
    tracker = load_tracker(StreamingTracker, args.checkpoint, "cpu", over,
                           allow_pickle=args.allow_pickle, sha256=args.sha256, load_model=True)
    if args.backend and args.shape:
        build_graphs(tracker, args.backend, args.precision,
                     tuple(int(s) for s in args.shape.split("x")), args.engine_cache_dir)
    return 0


def build_graphs(tracker: Any, backend: str, precision: str, frame_shape: tuple[int, ...],
                 cache_dir: str | None, lengths: list[int] | None = None) -> ArtifactCache:
    """Build (or find) in the cache every graph ``backend`` runs for model inputs of
    ``frame_shape`` (3, Hp, Wp) and clips of ``lengths`` frames (default 1..T), from the
    tracker's torch model; returns the cache (``used``: the entries)."""
    from stemseg_core.backends.base import create_backend

    cache = ArtifactCache(cache_dir or None)
    b = create_backend(backend, tracker.model, str(tracker.device), precision, cache=cache)
    b.build_artifacts(tuple(int(s) for s in frame_shape),
                      lengths or list(range(1, tracker.clip_length + 1)))
    return cache


if __name__ == "__main__":
    sys.exit(main())
