"""`stemseg import-official`: turn the authors' released checkpoint into a stemseg checkpoint."""
from __future__ import annotations

import argparse

HELP = "import the authors' released STEm-Seg weights (KITTI MOTS, DAVIS, YouTube-VIS)"
DESCRIPTION = """\
Read a checkpoint released with the STEm-Seg paper (github sabarim/STEm-Seg: kitti_mots.pth,
davis.pth, youtube_vis.pth), map every weight onto the official architecture of this package
(model.architecture: official) and write a stemseg checkpoint whose config reproduces the
authors' network and inference settings for that dataset (config/model/official_<dataset>.yaml:
clip length, overlap, seed threshold, mixing function, resize rule, class names). Keys that
cannot be placed are listed and nothing is written. The file is read without running code
(weights_only); --allow-pickle unpickles more, for a file you trust.

Examples:
  stemseg import-official --checkpoint kitti_mots.pth --dataset kitti_mots --out kitti.pt
  stemseg infer --checkpoint kitti.pt --data /data/kitti_mots --split val --out out/
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from stemseg_core.model.official_weights import DATASETS

    parser.add_argument("--checkpoint", required=True, help="the authors' .pth file")
    parser.add_argument("--dataset", required=True, choices=sorted(DATASETS),
                        help="which released model the file is")
    parser.add_argument("--out", required=True, help="stemseg checkpoint to write (.pt)")
    parser.add_argument("--set", nargs="+", action="extend", dest="overrides", default=[],
                        metavar="KEY=VALUE",
                        help="config override stored in the checkpoint, e.g. "
                             "inference.seediness_threshold=0.9")
    parser.add_argument("--allow-pickle", action="store_true",
                        help="fully unpickle the file if it needs more than tensors and plain "
                             "data (can run code from it: only for a file you trust)")


def run(args: argparse.Namespace) -> int:
    from stemseg_core.checkpoint import file_sha256, save_checkpoint
    from stemseg_core.model.official_weights import import_official

    # OfficialWeightsError is a CheckpointError: the CLI prints it and exits with 2
    cfg, state, report = import_official(args.checkpoint, args.dataset,
                                         allow_pickle=args.allow_pickle,
                                         overrides=list(args.overrides) or None)
    out = save_checkpoint(args.out, state, cfg)
    m, inf, inp = cfg.model, cfg.inference, cfg.input
    print(f"imported {report.n_keys} tensors ({report.n_values / 1e6:.2f} M values) of the "
          f"authors' {args.dataset} model from {args.checkpoint}")
    for theirs, ours in report.renamed.items():
        print(f"  renamed {theirs} -> {ours}")
    if report.ignored_entries:
        print(f"  not imported (training state): {', '.join(report.ignored_entries)}")
    print(f"config: clip length {m.clip_length}, overlap {inf.clip_overlap}, mixing "
          f"{m.embedding.mixing}, seediness >= {inf.seediness_threshold}, resize min/max side "
          f"{inp.min_side}/{inp.max_side}, {inp.channel_order.upper()} input, "
          f"{len(m.class_names) - 1} classes")
    print(f"wrote {out} (sha256 {file_sha256(out)})")
    return 0
