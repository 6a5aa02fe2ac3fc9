"""`--allow-pickle` and `--sha256`: the options of every command that loads a checkpoint."""
from __future__ import annotations

import argparse
from typing import Any


def add_checkpoint_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--allow-pickle`` and ``--sha256`` (see ``stemseg_core.checkpoint``)."""
    parser.add_argument("--allow-pickle", action="store_true",
                        help="load a checkpoint even if reading it needs full unpickling, which "
                             "can run code from the file (only for a file you trust; stemseg's "
                             "own checkpoints never need it)")
    parser.add_argument("--sha256", metavar="HEX", default=None,
                        help="refuse a checkpoint whose SHA-256 (as `sha256sum` prints it) is "
                             "not HEX")


def checkpoint_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for ``load_checkpoint`` / ``StreamingTracker.from_checkpoint``."""
    return {"allow_pickle": bool(getattr(args, "allow_pickle", False)),
            "sha256": getattr(args, "sha256", None)}
