"""The `stemseg` command line: one subcommand per module in stemseg_core/commands/.

Each command module defines ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``. A command with subcommands may return its subparsers from
``add_arguments``; other packages then add subcommands to it through entry points.

Commands of other packages: entry points of the group :data:`PLUGIN_GROUP`, named by the command
path with its words joined by "." (``bag.eval``), whose value is a module with the same protocol.
The ROS 2 package registers ``stemseg bag eval`` this way (see CMakeLists.txt), so this package
never imports it. A command module lists the subcommands others provide in ``EXTERNAL`` ({name:
help}) and says in ``EXTERNAL_HINT`` how to get them; without the provider, such a subcommand
prints that hint.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import logging
import sys
from types import ModuleType

log = logging.getLogger(__name__)

#: Entry-point group of commands that other packages add (``bag.eval`` = ``stemseg bag eval``).
PLUGIN_GROUP = "stemseg.commands"

COMMANDS = {
    "synth": "stemseg_core.commands.synth",
    "train": "stemseg_core.commands.train",
    "infer": "stemseg_core.commands.infer",
    "evaluate": "stemseg_core.commands.evaluate",
    "accuracy": "stemseg_core.commands.accuracy",
    "robustness": "stemseg_core.commands.robustness",
    "compare": "stemseg_core.commands.compare",
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
    groups: dict[str, tuple[ModuleType, argparse.Action]] = {}  # name: (module, subparsers)
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name == module_name:
                continue  # command not built yet
            raise
        subcommands = _add_command(sub, name, module)
        if subcommands is not None:
            groups[name] = (module, subcommands)
    _add_plugins(sub, groups)
    return parser


def _add_command(sub, name: str, module: ModuleType):
    """Add one command module's parser; returns its subparsers when it has some, else None."""
    p = sub.add_parser(name, help=module.HELP, description=getattr(module, "DESCRIPTION",
                                                                     module.HELP),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    try:
        subcommands = module.add_arguments(p)
    except ModuleNotFoundError as e:
        if not _needs_torch(e):
            raise
        _stand_in_run(p, f"stemseg {name}", TORCH_HINT)
        return None
    p.set_defaults(_run=module.run)
    return subcommands if hasattr(subcommands, "add_parser") else None


#: What a command that needs torch says in a runtime-only install.
TORCH_HINT = ("needs torch, which this install does not have (pip install 'stemseg[runtime]' "
              "runs `stemseg infer` and the node on OpenVINO / ONNX Runtime only); install "
              "'stemseg[train]' for it")


def _needs_torch(e: ModuleNotFoundError) -> bool:
    return (e.name or "").split(".")[0] in ("torch", "torchvision")


def plugin_commands() -> dict[tuple[str, ...], importlib.metadata.EntryPoint]:
    """Commands registered by installed packages: {command path: entry point}."""
    found: dict[tuple[str, ...], importlib.metadata.EntryPoint] = {}
    for ep in importlib.metadata.entry_points(group=PLUGIN_GROUP):
        path = tuple(ep.name.split("."))
        if path in found:  # the first on sys.path wins, as for imports
            log.warning("command %s is registered twice (%s and %s); using %s", ep.name,
                        found[path].value, ep.value, found[path].value)
            continue
        found[path] = ep
    return found


def _add_plugins(sub, groups: dict) -> None:
    """Add the entry-point commands; stand-ins print how to get a missing or broken one."""
    loaded: set[tuple[str, ...]] = set()
    failed: dict[tuple[str, ...], str] = {}
    for path, ep in plugin_commands().items():
        if len(path) == 1:
            parent_sub = sub
        elif len(path) == 2 and path[0] in groups:
            parent_sub = groups[path[0]][1]
        else:
            log.warning("entry point %s = %s (group %s): no command '%s' takes subcommands; "
                        "ignored", ep.name, ep.value, PLUGIN_GROUP, " ".join(path[:-1]))
            continue
        try:
            module = ep.load()
        except Exception as e:  # noqa: BLE001 - a broken plugin must not break the whole CLI
            failed[path] = f"{ep.value} (entry point {ep.name!r}) failed to load: {e}"
            continue
        _add_command(parent_sub, path[-1], module)
        loaded.add(path)
    for name, (module, subcommands) in groups.items():
        for sub_name, sub_help in getattr(module, "EXTERNAL", {}).items():
            if (name, sub_name) not in loaded:
                why = failed.get((name, sub_name))
                _add_stand_in(subcommands, f"stemseg {name} {sub_name}", sub_name, sub_help,
                              module.EXTERNAL_HINT + (f"\n({why})" if why else ""))


def _add_stand_in(subcommands, prog: str, name: str, help_text: str, hint: str) -> None:
    """A subcommand that is not installed: takes any arguments, prints ``hint``, returns 2."""
    p = subcommands.add_parser(name, help=f"{help_text} [not installed]",
                               description=f"{prog}: {hint}",
                               formatter_class=argparse.RawDescriptionHelpFormatter)

    _stand_in_run(p, prog, hint)


def _stand_in_run(p: argparse.ArgumentParser, prog: str, hint: str) -> None:
    """``p`` takes any arguments, prints ``hint`` and returns 2."""
    def run(_args: argparse.Namespace) -> int:
        print(f"{prog}: {hint}", file=sys.stderr)
        return 2

    p.set_defaults(_run=run, _any_arguments=True)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "_any_arguments", False):
        parser.parse_args(argv)  # exits with argparse's message naming the unknown arguments
    if args.command is None:  # every command sets _run (_add_command, _add_stand_in)
        parser.print_help()
        return 0
    from stemseg_core.checkpoint import CheckpointError
    from stemseg_core.config import ConfigError

    try:
        return int(args._run(args) or 0)
    except (ConfigError, CheckpointError, FileNotFoundError) as e:
        print(f"stemseg {args.command}: error: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:
        if not _needs_torch(e):
            raise
        print(f"stemseg {args.command}: {TORCH_HINT}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"stemseg {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
