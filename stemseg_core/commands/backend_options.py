"""`--backend` and `--precision`: shortcuts for --set inference.backend=... / precision=... on
the commands that run the tracker (contract C4)."""
from __future__ import annotations

import argparse
from collections.abc import Iterator

from stemseg_core.config.schema import PRECISIONS
from stemseg_core.registry import BACKENDS


class BackendChoices:
    """argparse ``choices``: "auto" and the registered backends, looked up when first used (so
    building the parser imports no backend)."""

    def __contains__(self, name: object) -> bool:
        return name == "auto" or name in BACKENDS

    def __iter__(self) -> Iterator[str]:
        return iter(["auto", *BACKENDS.names()])


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", default=None, choices=BackendChoices(), metavar="NAME",
                        help="what runs the network (inference.backend; default: the "
                             "checkpoint's, else torch); auto = the fastest installed; an "
                             "unknown name lists the registered ones")
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
