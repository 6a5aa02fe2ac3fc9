"""Writing a synthetic data set in the KITTI MOTS layout (see :mod:`stemseg_core.data.synth`)."""
from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from stemseg_core.data.kitti_camera import format_calib
from stemseg_core.data.kitti_layout import seq_name, sequence_frames, write_seqmap
from stemseg_core.data.rle import mask_to_kitti_string
from stemseg_core.data.synth.generator import sequence_generator, split_of
from stemseg_core.data.synth.scene_types import IGNORE_CLASS, IGNORE_ID, SynthParams
from stemseg_core.data.synth.sensors import velo_to_cam
from stemseg_core.geometry.depth import depth_to_mm
from stemseg_core.visualize import contact_sheet as tile_images

logger = logging.getLogger(__name__)


def instances_txt_lines(t: int, instance_map: np.ndarray) -> list[str]:
    """KITTI MOTS ``instances_txt`` lines of one frame from its uint16 instance map."""
    h, w = instance_map.shape
    lines = []
    for oid in np.unique(instance_map):
        if oid == 0:
            continue
        cls = IGNORE_CLASS if oid == IGNORE_ID else int(oid) // 1000
        rle = mask_to_kitti_string(instance_map == oid)
        lines.append(f"{t} {int(oid)} {cls} {h} {w} {rle}")
    return lines


def generate_dataset(out: str | Path, sequences: int = 12, frames: int = 60, seed: int = 0,
                     height: int = 192, width: int = 640, val_fraction: float = 0.25,
                     verbose: bool = False,
                     progress: Callable[[str], None] | None = None,
                     depth: bool = False, lidar: bool = False) -> dict:
    """Write a synthetic KITTI MOTS data set to ``out``; returns the info written to JSON.

    Always writes the camera (``training/calib/<seq>.txt``, KITTI tracking format); with
    ``depth`` ``training/depth_02/<seq>/<frame>.png`` (uint16 millimetres, 0 = no return), with
    ``lidar`` ``training/velodyne/<seq>/<frame>.bin`` (float32 x y z reflectance) and
    ``Tr_velo_cam`` in the calib file (see :mod:`.sensors`).

    After each sequence a line "sequence 0003 (val): 60 frames, 4.2 s" goes to ``progress``
    (e.g. ``print``) when given, else to the log at INFO level when ``verbose``.
    """
    report = progress or (logger.info if verbose else None)
    out = Path(out)
    params = SynthParams(height=height, width=width, frames=frames)
    splits: dict[str, list[tuple[int, int]]] = {"train": [], "val": []}
    png = [cv2.IMWRITE_PNG_COMPRESSION, 1]
    t_start = time.perf_counter()
    for seq in range(sequences):
        split = split_of(seq, sequences, val_fraction)
        gen = sequence_generator(seed, seq, split, params)
        img_dir = out / "training" / "image_02" / f"{seq:04d}"
        ins_dir = out / "instances" / f"{seq:04d}"
        img_dir.mkdir(parents=True, exist_ok=True)
        ins_dir.mkdir(parents=True, exist_ok=True)
        calib_dir = out / "training" / "calib"
        calib_dir.mkdir(parents=True, exist_ok=True)
        (calib_dir / f"{seq:04d}.txt").write_text(
            format_calib(gen.projection(), velo_to_cam() if lidar else None))
        depth_dir = out / "training" / "depth_02" / f"{seq:04d}"
        velo_dir = out / "training" / "velodyne" / f"{seq:04d}"
        for on, d in ((depth, depth_dir), (lidar, velo_dir)):
            if on:
                d.mkdir(parents=True, exist_ok=True)
        lines: list[str] = []
        for t, fr in enumerate(gen.frames(depth=depth, lidar=lidar)):
            cv2.imwrite(str(img_dir / f"{t:06d}.png"), fr.image[..., ::-1], png)
            cv2.imwrite(str(ins_dir / f"{t:06d}.png"), fr.instance_map, png)
            lines += instances_txt_lines(t, fr.instance_map)
            if fr.depth is not None:
                cv2.imwrite(str(depth_dir / f"{t:06d}.png"), depth_to_mm(fr.depth), png)
            if fr.points is not None:
                fr.points.astype("<f4").tofile(velo_dir / f"{t:06d}.bin")
        txt = "".join(line + "\n" for line in lines)
        for d in ("instances_txt", "label_02"):
            (out / d).mkdir(parents=True, exist_ok=True)
            (out / d / f"{seq:04d}.txt").write_text(txt)
        splits[split].append((seq, frames))
        if report is not None:
            report(f"sequence {seq:04d} ({split}): {frames} frames, "
                   f"{time.perf_counter() - t_start:.1f} s")
    full = sorted(splits["train"] + splits["val"])
    for name, seqs in (("train", splits["train"]), ("val", splits["val"]), ("fulltrain", full)):
        write_seqmap(out / f"{name}.seqmap", seqs)
    for name, seqs in (("train", splits["train"]), ("val", splits["val"]), ("training", full)):
        write_seqmap(out / f"evaluate_mots.seqmap.{name}", seqs, trackeval=True)
    info = {"generator": "stemseg synth", "seed": seed, "sequences": sequences, "frames": frames,
            "height": height, "width": width, "val_fraction": val_fraction,
            "train": [f"{s:04d}" for s, _ in splits["train"]],
            "val": [f"{s:04d}" for s, _ in splits["val"]],
            "classes": {"1": "car", "2": "pedestrian", "10": "ignore"}}
    info.update({k: True for k, on in (("depth", depth), ("lidar", lidar)) if on})
    (out / "synth_info.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def contact_sheet(data_dir: str | Path, seq: int | str, out_png: str | Path,
                  num: int = 8, cols: int = 2) -> np.ndarray:
    """Save a grid of ``num`` frames of a sequence with instance masks overlaid and outlined."""
    data_dir = Path(data_dir)
    seq = seq_name(seq)
    paths = sequence_frames(data_dir, seq)
    pick = np.linspace(0, len(paths) - 1, min(num, len(paths))).round().astype(int)
    tiles = []
    for i in pick:
        img = cv2.imread(str(paths[i]), cv2.IMREAD_COLOR)
        ins = cv2.imread(str(data_dir / "instances" / seq / paths[i].name), cv2.IMREAD_UNCHANGED)
        over = img.copy()
        for oid in np.unique(ins):
            if oid == 0:
                continue
            m = ins == oid
            if oid == IGNORE_ID:
                col = np.array([128, 128, 128])
            else:
                rs = np.random.default_rng(int(oid))
                col = rs.integers(60, 256, 3)
            over[m] = (0.45 * img[m] + 0.55 * col).astype(np.uint8)
            cnts, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(over, cnts, -1, (255, 255, 255), 1)
            if oid != IGNORE_ID:
                ys, xs = np.nonzero(m)
                cv2.putText(over, str(int(oid)), (int(xs.min()), max(8, int(ys.min()) - 2)),
                            cv2.FONT_HERSHEY_SIMPLEX, 0.3, (255, 255, 255), 1)
        cv2.putText(over, f"{seq}/{paths[i].stem}", (4, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (0, 255, 255), 1)
        tiles.append(over)
    sheet = tile_images(tiles, cols=cols, tile_width=None, pad=0)
    cv2.imwrite(str(out_png), sheet)
    return sheet


def clean_output(out: str | Path) -> None:
    """Remove the generated folders from ``out`` (used before regenerating in place)."""
    out = Path(out)
    for d in ("training", "instances", "instances_txt", "label_02"):
        if (out / d).is_dir():
            shutil.rmtree(out / d)
