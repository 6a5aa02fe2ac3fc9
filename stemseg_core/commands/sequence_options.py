"""`--data`, `--seq`/`--split` and `--out`: the options of every command that runs the tracker over
the sequences of a KITTI MOTS style folder (infer, robustness)."""
from __future__ import annotations

import argparse


def add_sequence_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--data``, one of ``--seq`` (repeatable, into ``args.seqs``) or ``--split``, and
    ``--out``."""
    parser.add_argument("--data", required=True, help="KITTI MOTS style dataset folder")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--seq", action="append", dest="seqs", metavar="SEQ",
                       help="sequence to run (repeatable)")
    group.add_argument("--split", help="run every sequence of <data>/<split>.seqmap")
    parser.add_argument("--out", required=True, help="output folder")
