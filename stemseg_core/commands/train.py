"""`stemseg train`: train a STEm-Seg model (single process, or DDP under torchrun)."""
from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

HELP = "train a model on a data set (resumable; multi-GPU/multi-node under torchrun)"

DESCRIPTION = """\
Train STEm-Seg on KITTI MOTS (or the output of `stemseg synth`), DAVIS 2017/2019 or YouTube-VIS.
The layout is recognised from --data (data.format: auto); set it with --set data.format=...:
  kitti_mots   DIR/training/image_02/<seq>/*.png + DIR/instances_txt/<seq>.txt (or instances/),
               split from DIR/train.seqmap (`stemseg synth` writes exactly this)
  davis        DIR/JPEGImages/480p/<seq>/*.jpg + DIR/Annotations[_unsupervised]/480p/<seq>/*.png,
               split from DIR/ImageSets/<year>/train.txt; one class-agnostic class
  youtube_vis  the train JSON (or its folder), images in <json folder>/JPEGImages; every
               category id must have an entry in model.class_names

The run directory RUN receives:
  config.yaml        the full config of the run
  last.pt            latest checkpoint (weights + optimizer/scheduler/RNG state), written
                     atomically every train.checkpoint_every steps and at the end
  step_<N>.pt        the last --keep periodic checkpoints
  losses.csv         every loss and the LR at every step; loss.png plots it at the end
  tb/                TensorBoard scalars and images (tensorboard --logdir RUN/tb)

Ctrl-C (or SIGTERM) finishes the current step, saves last.pt and exits; continue with the
same command plus --resume: the loss curve then equals an uninterrupted run's. Checkpoints are
written atomically, so even a run killed hard (SIGKILL, power loss) resumes from its last
complete one; a damaged last.pt is skipped for the newest intact step_<N>.pt.

Checkpoints are read without running code from them; one that needs full unpickling (not
written by stemseg) is refused unless --allow-pickle is given for a file you trust.

examples:
  stemseg train --config config/model/demo_cpu.yaml --data data/synth --out runs/demo
  stemseg train --data data/synth --out runs/demo --resume
  stemseg train --config config/model/stemseg_r101_kitti.yaml --data /data/kitti_mots \\
      --out runs/kitti --set model.backbone.weights=/weights/r101_coco.pth
  stemseg train --config config/model/stemseg_r101_davis.yaml --data /data/DAVIS --out runs/davis
  stemseg train --config config/model/stemseg_r101_youtube_vis.yaml \\
      --data /data/youtube_vis/train/instances.json --out runs/ytvis
  stemseg train --config config/model/demo_cpu.yaml --data data/synth --out runs/ft \\
      --init runs/demo/last.pt --set train.lr=0.002 train.max_steps=500
  stemseg train --config config/model/demo_cpu.yaml --data data/synth data/synth_s2 --out runs/big
  torchrun --nproc-per-node 2 -m stemseg_core.cli train --config CFG --data DIR --out RUN
  (multi-node: torchrun --nnodes 2 --node-rank R --master-addr HOST --nproc-per-node 8 ...)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="CFG",
                        help="model/training config YAML (config/model/*.yaml); with --resume "
                             "the run's own config is used and this may be left out")
    parser.add_argument("--data", metavar="DIR", required=True, nargs="+",
                        help="training data: a KITTI MOTS or DAVIS folder, or a YouTube-VIS "
                             "JSON (or its folder); see above. Several folders are pooled "
                             "(--data data/a data/b; sequences renamed <folder>/<seq>)")
    parser.add_argument("--out", metavar="RUN", required=True,
                        help="run directory (must not exist yet, unless --resume)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in RUN from RUN/last.pt (exact: same data order, "
                             "optimizer and RNG state)")
    parser.add_argument("--init", metavar="CKPT",
                        help="initialise the model weights from this checkpoint (fine-tuning); "
                             "tensors whose shapes differ are left at random init")
    parser.add_argument("--allow-pickle", action="store_true",
                        help="load --init / --resume checkpoints even if reading them needs full "
                             "unpickling, which can run code from the file (only for files you "
                             "trust; checkpoints written by stemseg never need it)")
    parser.add_argument("--sha256", metavar="HEX", default=None,
                        help="refuse an --init checkpoint whose SHA-256 (as `sha256sum` prints "
                             "it) is not HEX")
    parser.add_argument("--set", metavar="KEY=VALUE", nargs="+", action="extend", default=[],
                        dest="overrides",
                        help="config overrides, e.g. --set train.lr=0.01 data.num_workers=0")
    parser.add_argument("--device", default="auto",
                        help="auto (CUDA if available), cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--max-steps", type=int, metavar="N",
                        help="shortcut for --set train.max_steps=N")
    parser.add_argument("--keep", type=int, default=3, metavar="K",
                        help="keep the last K step_<N>.pt checkpoints (0 = only last.pt; "
                             "default 3)")
    parser.add_argument("--stop-at", type=int, metavar="STEP",
                        help="stop after this step as if interrupted (checkpoint written); "
                             "train in chunks with --resume")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _check_new_run(args: argparse.Namespace, overrides: list[str]):
    """(config, None) or (None, error message) for the run directory and config (rank 0)."""
    from stemseg_core.checkpoint import load_checkpoint
    from stemseg_core.config import config_from_dict, load_config
    from stemseg_core.training.run_checkpoints import NoCheckpointError, find_resume_checkpoint

    out = Path(args.out)
    if args.resume:
        try:  # last.pt, or the newest intact step_<N>.pt when last.pt is damaged
            _, _, payload = find_resume_checkpoint(out, allow_pickle=args.allow_pickle)
        except NoCheckpointError as e:
            return None, str(e)
        cfg = config_from_dict(payload["config"], overrides)
        if args.config:
            print(f"note: resuming with the run's own config ({out / 'config.yaml'}); "
                  f"--config {args.config} is ignored (use --set to change values)")
        return cfg, None
    if not args.config:
        return None, ("--config is required for a new run "
                      "(e.g. --config config/model/demo_cpu.yaml)")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        return None, (f"run directory {out} already exists and is not empty; pass --resume to "
                      f"continue it, or pick another --out")
    if args.init and not Path(args.init).is_file():
        return None, f"--init checkpoint not found: {args.init}"
    if args.sha256 and not args.init:
        return None, "--sha256 pins the --init checkpoint; give --init CKPT with it"
    if args.init:  # refuse an unsafe, damaged or unpinned file before anything is written
        load_checkpoint(args.init, allow_pickle=args.allow_pickle, sha256=args.sha256)
    cfg = load_config(args.config, overrides)
    if cfg.train.teacher:  # the same for the teacher of loss.distill
        load_checkpoint(cfg.train.teacher, allow_pickle=args.allow_pickle)
    return cfg, None


class _PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        return msg if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {msg}"


@contextlib.contextmanager
def _show_messages() -> Iterator[None]:
    """The library logs; this command shows its INFO messages (and warnings) on stdout."""
    logger = logging.getLogger("stemseg_core")
    handler = None
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(_PlainFormatter())
        logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.setLevel(level)
        if handler is not None:
            logger.removeHandler(handler)


def run(args: argparse.Namespace) -> int:
    with _show_messages():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from stemseg_core.config import ConfigError, resolve_device
    from stemseg_core.training import distributed as D
    from stemseg_core.training.trainer import Trainer, TrainingError

    prog = "stemseg train"
    overrides = list(args.overrides)
    if args.max_steps is not None:
        overrides.append(f"train.max_steps={args.max_steps}")
    device = resolve_device(args.device)
    ctx = D.setup_distributed(device)  # no-op unless started by torchrun
    try:
        # Every rank checks its own data directory (nodes may not share a file system); rank 0
        # checks the run directory and config, then all ranks agree before anything is written.
        error = None
        missing = [d for d in args.data if not Path(d).exists()]
        if missing:
            error = (f"data directory not found: {missing[0]} (create a synthetic one with "
                     f"`stemseg synth --out {missing[0]}`)")
        cfg = None
        if ctx.is_main and error is None:
            try:
                cfg, error = _check_new_run(args, overrides)
            except (ConfigError, ValueError) as e:  # bad config or checkpoint (CheckpointError)
                error = str(e)
        errors = [e for e in D.all_gather_object(error) if e]
        if errors:
            if ctx.is_main or error:
                print(f"{prog}: error: {error or errors[0]}", file=sys.stderr)
            return 2
        cfg = D.broadcast_object(cfg)
        data = args.data if len(args.data) > 1 else args.data[0]
        trainer = Trainer(cfg, args.out, data, device=device, resume=args.resume,
                          init=args.init, keep_checkpoints=args.keep, stop_at=args.stop_at,
                          allow_pickle=args.allow_pickle, init_sha256=args.sha256,
                          progress=not args.no_progress)
        trainer.train()
    except TrainingError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    finally:
        D.cleanup_distributed()
    return 0
