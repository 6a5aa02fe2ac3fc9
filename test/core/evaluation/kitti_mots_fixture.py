"""A tiny KITTI MOTS tree built in a test's tmp dir: 2 sequences x 6 frames at 40x60.

Moving rectangles: cars (class 1, ids 1001, 1002), a pedestrian (2, id 2001) and a static ignore
region (class 10, id 10000) in sequence 0000. Layout as real KITTI MOTS::

    root/training/image_02/<seq>/<frame:06d>.png, root/instances_txt/<seq>.txt,
    root/val.seqmap, root/train.seqmap

:class:`EchoTracker` stands in for the StreamingTracker where a command is tested, not the model:
it answers each frame with the fixture's ground truth.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from stemseg_core.data.rle import mask_to_kitti_string
from stemseg_core.inference.types import FrameResult, TrackedInstance

H, W, FRAMES = 40, 60, 6
SEQS = ("0000", "0001")


def _rect(y0: int, x0: int, h: int, w: int) -> np.ndarray:
    m = np.zeros((H, W), dtype=bool)
    m[max(y0, 0):max(y0 + h, 0), max(x0, 0):max(x0 + w, 0)] = True
    return m


def gt_objects(seq: str) -> dict[int, list[tuple[int, int, np.ndarray]]]:
    """{frame: [(obj_id, class_id, mask), ...]} with disjoint masks."""
    out: dict[int, list[tuple[int, int, np.ndarray]]] = {}
    for t in range(FRAMES):
        objs = []
        if seq == "0000":
            objs.append((1001, 1, _rect(5, 2 + 4 * t, 10, 14)))
            objs.append((2001, 2, _rect(22, 40 - 3 * t, 14, 6)))
            objs.append((10000, 10, _rect(0, 52, 6, 8)))
        else:
            objs.append((1001, 1, _rect(2, 40 - 5 * t, 12, 16)))
            objs.append((1002, 1, _rect(24, 3 + 3 * t, 10, 12)))
            if t >= 1:
                objs.append((2001, 2, _rect(16, 30, 6, 5 + t)))
        out[t] = objs
    return out


def line(frame: int, oid: int, cid: int, mask: np.ndarray) -> str:
    return f"{frame} {oid} {cid} {H} {W} {mask_to_kitti_string(mask)}"


def write_txt(path: Path, objects: dict[int, list[tuple[int, int, np.ndarray]]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line(t, o, c, m) + "\n" for t, objs in sorted(objects.items())
                            for o, c, m in objs))
    return path


def build(root: Path, images: bool = True) -> Path:
    root = Path(root)
    rng = np.random.default_rng(0)
    for seq in SEQS:
        objs = gt_objects(seq)
        write_txt(root / "instances_txt" / f"{seq}.txt", objs)
        if images:
            d = root / "training" / "image_02" / seq
            d.mkdir(parents=True, exist_ok=True)
            for t in range(FRAMES):
                img = rng.integers(0, 60, size=(H, W, 3), dtype=np.uint8)
                for _, cid, m in objs[t]:
                    img[m] = (200, 40, 40) if cid == 1 else (40, 200, 40)
                cv2.imwrite(str(d / f"{t:06d}.png"), img)
    seqmap = "".join(f"{s} empty 000000 {FRAMES - 1:06d}\n" for s in SEQS)
    (root / "val.seqmap").write_text(seqmap)
    (root / "train.seqmap").write_text(seqmap)
    return root


class EchoTracker:
    """Returns the fixture's ground truth for each pushed frame (a perfect tracker) and keeps
    the mean of every pushed image, per sequence run."""

    made: list[EchoTracker] = []

    def __init__(self, overrides):
        self.overrides = overrides
        self.runs: list[list[float]] = []
        self.seq = None
        EchoTracker.made.append(self)

    @classmethod
    def from_checkpoint(cls, path, device="auto", overrides=None, **_kw):
        return cls(list(overrides or []))

    def reset(self, keep_ids=False):
        self.runs.append([])
        self.pending = []

    def push(self, image, stamp):
        self.runs[-1].append(float(image.mean()))
        seq = SEQS[(len(self.runs) - 1) % len(SEQS)]
        names = {1: "car", 2: "pedestrian"}
        insts = [TrackedInstance(oid, cid, names[cid], 0.9, m)
                 for oid, cid, m in gt_objects(seq)[stamp] if cid != 10]
        self.pending.append(FrameResult(stamp, stamp, (H, W), insts))
        out, self.pending = self.pending[:-1], self.pending[-1:]
        return out

    def flush(self):
        out, self.pending = self.pending, []
        return out
