"""`stemseg synth`: write a synthetic KITTI MOTS data set (see stemseg_core.data.synth)."""
from __future__ import annotations

import argparse
import time

HELP = "generate synthetic KITTI MOTS driving sequences (images, masks, seqmaps)"
DESCRIPTION = """\
Generate synthetic driving sequences in the exact KITTI MOTS layout (training/image_02,
instances_txt, instances, seqmaps), directly usable by TrackEval's KittiMOTS (GT_FOLDER=OUT).
The last round(N * val_fraction) sequences form the val split. Same seed -> identical files.
Existing training/, instances/, instances_txt/ and label_02/ folders in OUT are replaced.
The true camera is always written (training/calib/<seq>.txt, KITTI tracking calib, P2);
--depth adds training/depth_02/<seq>/<frame>.png (uint16 millimetres, 0 = no return) and
--lidar training/velodyne/<seq>/<frame>.bin (KITTI float32 x y z reflectance, 64 beams) plus
Tr_velo_cam in the calib file; images and masks do not change with them.

Example:
  stemseg synth --out data/synth --sequences 12 --frames 60 --seed 0
  stemseg synth --out data/synth3d --sequences 2 --depth --lidar
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder (created)")
    parser.add_argument("--sequences", type=int, default=12, help="number of sequences")
    parser.add_argument("--frames", type=int, default=60, help="frames per sequence")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--height", type=int, default=192, help="image height (pixels)")
    parser.add_argument("--width", type=int, default=640, help="image width (pixels)")
    parser.add_argument("--val-fraction", type=float, default=0.25,
                        help="fraction of sequences in the val split")
    parser.add_argument("--preview", default=None,
                        help="also save a contact sheet PNG of the first val sequence here")
    parser.add_argument("--depth", action="store_true",
                        help="also write depth images (training/depth_02, uint16 mm)")
    parser.add_argument("--lidar", action="store_true",
                        help="also write 64-beam LiDAR scans (training/velodyne, KITTI .bin)")
    parser.add_argument("--quiet", action="store_true", help="no per-sequence progress")


def run(args: argparse.Namespace) -> int:
    from stemseg_core.config import ConfigError
    from stemseg_core.data.synth import clean_output, contact_sheet, generate_dataset

    if args.sequences < 1 or args.frames < 1:
        raise ConfigError("--sequences and --frames must be >= 1")
    if args.height < 32 or args.width < 32:
        raise ConfigError("--height and --width must be >= 32")
    if not 0.0 <= args.val_fraction < 1.0:
        raise ConfigError("--val-fraction must be in [0, 1)")
    clean_output(args.out)
    t0 = time.perf_counter()
    info = generate_dataset(args.out, args.sequences, args.frames, args.seed, args.height,
                            args.width, args.val_fraction,
                            progress=None if args.quiet else print, depth=args.depth,
                            lidar=args.lidar)
    dt = time.perf_counter() - t0
    n = args.sequences * args.frames
    print(f"wrote {args.sequences} sequences x {args.frames} frames ({args.height}x{args.width}) "
          f"to {args.out} in {dt:.1f} s ({1000 * dt / n:.1f} ms/frame); "
          f"train {info['train']}, val {info['val']}")
    if args.preview:
        seq = (info["val"] or info["train"])[0]
        contact_sheet(args.out, seq, args.preview)
        print(f"preview: {args.preview}")
    return 0
