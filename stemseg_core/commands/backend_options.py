"""`--backend` and `--precision`: shortcuts for --set inference.backend=... / precision=... on
the commands that run the tracker (contract C4)."""
from __future__ import annotations

import argparse

from stemseg_core.config.schema import BACKENDS, PRECISIONS


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", default=None, choices=list(BACKENDS),
                        help="what runs the network (inference.backend; default: the "
                             "checkpoint's, else torch); auto = the fastest installed")
    parser.add_argument("--precision", default=None, choices=list(PRECISIONS),
                        help="the network's precision (inference.precision, default fp32)")


def backend_overrides(args: argparse.Namespace) -> list[str]:
    """The config overrides the two options stand for (after the user's --set ones)."""
    out = []
    if getattr(args, "backend", None):
        out.append(f"inference.backend={args.backend}")
    if getattr(args, "precision", None):
        out.append(f"inference.precision={args.precision}")
    return out
