"""The `stemseg` command line: one subcommand per module in stemseg_core/commands/.

Each command module defines ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``.
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "synth": "stemseg_core.commands.synth",
    "train": "stemseg_core.commands.train",
    "infer": "stemseg_core.commands.infer",
    "evaluate": "stemseg_core.commands.evaluate",
    "export": "stemseg_core.commands.export",
    "bench": "stemseg_core.commands.bench",
    "bag": "stemseg_core.commands.bag",
    "import-official": "stemseg_core.commands.import_official",
}

DESCRIPTION = """\
stemseg: video instance segmentation and tracking with STEm-Seg (spatio-temporal embeddings).

Typical workflow:
  stemseg synth --out data/synth --sequences 12 --frames 60     # synthetic KITTI MOTS drives
  stemseg train --config config/model/demo_cpu.yaml --data data/synth --out runs/demo
  stemseg infer --checkpoint runs/demo/last.pt --data data/synth --seq 0010 --out out/
  stemseg evaluate --gt data/synth --results out/ --split val
  stemseg bag from-kitti --kitti data/synth --seq 0010 --out drive.mcap
  stemseg bag eval --bag drive.mcap --gt data/synth --seq 0010 --out out/bag --lockstep
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stemseg", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version="stemseg 0.1.0")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name == module_name:
                continue  # command not built yet
            raise
        p = sub.add_parser(name, help=module.HELP, description=getattr(module, "DESCRIPTION",
                                                                         module.HELP),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0 if args.command is None else 2
    from stemseg_core.checkpoint import CheckpointError
    from stemseg_core.config import ConfigError

    try:
        return int(args._run(args) or 0)
    except (ConfigError, CheckpointError, FileNotFoundError) as e:
        print(f"stemseg {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"stemseg {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
