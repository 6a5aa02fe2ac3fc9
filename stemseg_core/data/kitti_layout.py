"""Where things are in a KITTI MOTS / KITTI tracking tree, and its seqmap and text formats.

The one place that knows the layout (readers, ``stemseg infer``, the evaluation and the bag
writer all ask here)::

    root/{training,testing}/image_02/<seq>/<frame:06d>.png   (also root/image_02/<seq>, root/<seq>)
    root/instances_txt/<seq>.txt      lines "frame obj_id class_id height width rle"
    root/<split>.seqmap               lines "<seq> empty <first:06d> <last:06d>" (or just "<seq>")
    root/evaluate_mots.seqmap.<split> the same under TrackEval's name
    root/<split>/depth_02/<seq>/<frame:06d>.png   depth, uint16 millimetres (``stemseg synth``)
    root/<split>/velodyne/<seq>/<frame:06d>.bin   LiDAR, float32 x y z reflectance (KITTI)

Sequence names are KITTI's four digits: ``2``, ``"2"`` and ``"0002"`` all name ``"0002"``.
Malformed files raise :class:`~stemseg_core.errors.DataFormatError` naming file and line;
missing ones ``FileNotFoundError`` naming what was looked for.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from stemseg_core.errors import DataFormatError

#: Image folders of a sequence, relative to the root, in the order they are tried.
SEQUENCE_PARENTS = ("training/image_02", "testing/image_02", "image_02", ".")
#: Suffixes of frame images, in order of preference (a folder's PNGs win over its JPGs).
FRAME_SUFFIXES = ((".png",), (".jpg", ".jpeg"))
#: Folders of the ground-truth text files, relative to the root, in the order tried
#: (KITTI MOTS ``instances_txt``; TrackEval's ``label_02``).
GT_TXT_DIRS = ("instances_txt", "training/instances_txt", "label_02", "training/label_02")
#: Fields of a KITTI MOTS instances line.
KITTI_MOTS_FIELDS = "frame obj_id class_id height width rle"


def seq_name(seq: str | int) -> str:
    """KITTI sequence name: 2, "2", "0002" -> "0002"; other names unchanged."""
    s = str(seq).strip()
    return f"{int(s):04d}" if s.isdigit() else s


def sequence_dir(root: str | Path, seq: str | int) -> Path:
    """The image folder of a sequence (see the module doc for the places tried)."""
    root = Path(root)
    name = seq_name(seq)
    candidates = [(root / parent / name) for parent in SEQUENCE_PARENTS]
    for c in candidates:
        if c.is_dir():
            return c
    if not root.exists():
        raise FileNotFoundError(f"KITTI directory {root} does not exist")
    tried = ", ".join(str(c) for c in candidates[:3])
    raise FileNotFoundError(f"sequence {name} not found under {root} (looked for {tried}); "
                            f"expected the KITTI MOTS layout training/image_02/<seq>/*.png")


#: Per-sequence sensor folders beside ``image_02`` and their file suffix.
SENSOR_DIRS = {"depth": ("depth_02", ".png"), "velodyne": ("velodyne", ".bin")}


def sensor_file(seq_dir: str | Path, sensor: str, frame_file: str | Path) -> Path | None:
    """The ``sensor`` ("depth" / "velodyne") file of a frame image of ``seq_dir``
    (``<split>/image_02/<seq>``), or None when the data set has none for that frame."""
    folder, suffix = SENSOR_DIRS[sensor]
    seq_dir = Path(seq_dir)
    f = seq_dir.parent.parent / folder / seq_dir.name / (Path(frame_file).stem + suffix)
    return f if f.is_file() else None


def frame_files(seq_dir: str | Path) -> list[Path]:
    """Frame images of a sequence folder, sorted by name: its PNGs, else its JPGs."""
    seq_dir = Path(seq_dir)
    for suffixes in FRAME_SUFFIXES:
        found = sorted(p for p in seq_dir.iterdir() if p.suffix.lower() in suffixes)
        if found:
            return found
    raise FileNotFoundError(f"no PNG/JPG frames (000000.png, ...) in {seq_dir}")


def sequence_frames(root: str | Path, seq: str | int) -> list[Path]:
    """Sorted frame images of sequence ``seq`` under ``root``."""
    return frame_files(sequence_dir(root, seq))


def frame_number(path: Path, position: int) -> int:
    """KITTI frame number of an image: its file name (000012.png -> 12), else its position."""
    return int(path.stem) if path.stem.isdigit() else position


def image_root(root: str | Path) -> Path:
    """The folder holding the sequence folders: ``root/training/image_02`` or ``root/image_02``."""
    root = Path(root)
    for cand in (root / "training" / "image_02", root / "image_02"):
        if cand.is_dir():
            return cand
    raise FileNotFoundError(f"no training/image_02 folder in {root}")


def gt_txt_dir(root: str | Path) -> Path | None:
    """The folder of the ground-truth ``<seq>.txt`` files (see :data:`GT_TXT_DIRS`), if any."""
    root = Path(root)
    for rel in GT_TXT_DIRS:
        if (root / rel).is_dir():
            return root / rel
    return None


def ground_truth_sha256(txt_dir: str | Path, seqs: list[str]) -> str:
    """sha256 over the ground-truth ``<seq>.txt`` files of ``seqs`` in ``txt_dir``, in order,
    each name and content: which drives (and frames) a result was scored on, so that two results
    are only paired drive by drive when they were scored on the same ones."""
    h = hashlib.sha256()
    for seq in seqs:
        h.update(f"{seq}\n".encode())
        h.update((Path(txt_dir) / f"{seq}.txt").read_bytes())
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# Seqmaps


def seqmap_candidates(root: str | Path, split: str) -> list[Path]:
    """Where the seqmap of ``split`` may be, in the order tried."""
    root = Path(root)
    return [root / f"{split}.seqmap", root / f"evaluate_mots.seqmap.{split}",
            root / "training" / f"{split}.seqmap"]


def find_seqmap(root: str | Path, split: str) -> Path:
    """The seqmap file of ``split`` in a KITTI MOTS tree."""
    cands = seqmap_candidates(root, split)
    for c in cands:
        if c.is_file():
            return c
    raise FileNotFoundError(f"no seqmap for split '{split}': looked for "
                            f"{', '.join(str(c) for c in cands)}")


def read_seqmap(path: str | Path) -> dict[str, int | None]:
    """Seqmap -> {sequence: number of frames, or None when the line gives no last frame}.

    KITTI lines ``0002 empty 000000 000232`` (last frame 232 -> 233 frames), or lines holding
    only the sequence name; fields split by blanks or commas; blank lines and ``#`` comments
    skipped. Names are normalised by :func:`seq_name`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"seqmap not found: {path}")
    seqs: dict[str, int | None] = {}
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        parts = [p for p in re.split(r"[\s,]+", line.strip()) if p]
        if not parts or parts[0].startswith("#"):
            continue
        length = None
        if len(parts) >= 4:
            try:
                length = int(parts[3]) + 1
            except ValueError:
                raise DataFormatError(f"last frame {parts[3]!r} is not an integer (expected "
                                      f"'<seq> empty <first> <last>')", path, n) from None
        seqs[seq_name(parts[0])] = length
    if not seqs:
        raise DataFormatError("the seqmap lists no sequences", path)
    return seqs


def write_seqmap(path: Path, seqs: list[tuple[int, int]], trackeval: bool = False) -> None:
    """Write a KITTI MOTS seqmap of ``(sequence number, frames)``. TrackEval (1.3.0) sniffs the
    csv dialect on the text AFTER the first line and fails on a one-line seqmap, so
    ``trackeval=True`` then adds a leading comment line (skipped by :func:`read_seqmap`)."""
    text = "".join(f"{s:04d} empty 000000 {n - 1:06d}\n" for s, n in seqs)
    if trackeval and len(seqs) == 1:
        text = "# seqmap\n" + text
    path.write_text(text)


def list_sequences(root: str | Path, split: str | None = None) -> list[str]:
    """Sequence names of a split (from its seqmap), or every sequence folder when ``split`` is
    None."""
    if split is not None:
        return list(read_seqmap(find_seqmap(root, split)))
    return sorted(p.name for p in image_root(root).iterdir() if p.is_dir())


# --------------------------------------------------------------------------------------------
# KITTI MOTS text files (instances_txt ground truth and results)


class KittiMotsRecord(NamedTuple):
    """One line of a KITTI MOTS text file, mask left encoded; ``line`` is 1-based."""

    frame: int
    obj_id: int
    class_id: int
    height: int
    width: int
    rle: str
    line: int


def read_kitti_mots_records(path: str | Path) -> Iterator[KittiMotsRecord]:
    """The lines of a KITTI MOTS text file (GT or results) with their line numbers; blank
    lines skipped. A malformed line raises :class:`DataFormatError` naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"KITTI MOTS file not found: {path}")
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 6:
            raise DataFormatError(f"expected 6 fields '{KITTI_MOTS_FIELDS}', got "
                                  f"{len(parts)}: {line[:60]!r}", path, n)
        try:
            frame, oid, cid, h, w = (int(p) for p in parts[:5])
        except ValueError:
            raise DataFormatError(f"fields 1-5 ({' '.join(KITTI_MOTS_FIELDS.split()[:5])}) "
                                  f"must be integers: {line[:60]!r}", path, n) from None
        if frame < 0 or h <= 0 or w <= 0:
            raise DataFormatError(f"frame must be >= 0 and height/width > 0, got frame "
                                  f"{frame}, {h}x{w} (h x w)", path, n)
        yield KittiMotsRecord(frame, oid, cid, h, w, parts[5], n)


def kitti_mots_lines(path: str | Path) -> Iterator[tuple[int, int, int, int, int, str]]:
    """``(frame, obj_id, class_id, height, width, rle)`` per line of a KITTI MOTS text file
    (see :func:`read_kitti_mots_records`)."""
    for r in read_kitti_mots_records(path):
        yield r[:6]


def check_kitti_mots_file(path: str | Path, num_frames: int | None = None,
                          size: tuple[int, int] | None = None) -> int:
    """Read a KITTI MOTS text file through and check it: well-formed lines, frames below
    ``num_frames``, masks of ``size`` (H, W). Returns the last frame (-1 when empty); raises
    :class:`DataFormatError` naming file and line."""
    last = -1
    for r in read_kitti_mots_records(path):
        if num_frames is not None and r.frame >= num_frames:
            raise DataFormatError(f"frame {r.frame} is beyond the sequence's {num_frames} "
                                  f"frames (0..{num_frames - 1})", path, r.line)
        if size is not None and (r.height, r.width) != tuple(size):
            raise DataFormatError(f"mask is {r.width}x{r.height} (w x h) but the sequence's "
                                  f"images are {size[1]}x{size[0]}", path, r.line)
        last = max(last, r.frame)
    return last


def kitti_mots_size(path: str | Path) -> tuple[int, int] | None:
    """(H, W) of the first mask of a KITTI MOTS text file, None when it has no line."""
    for r in read_kitti_mots_records(path):
        return r.height, r.width
    return None


def check_results_dir(results_dir: str | Path, gt_txt_dir: str | Path,
                      num_frames: dict[str, int]) -> None:
    """Check KITTI MOTS results ``<results_dir>/<seq>.txt`` against the ground truth
    ``<gt_txt_dir>/<seq>.txt`` before scoring: for every sequence of ``num_frames`` both files
    are well-formed, frames are below its length and masks have the GT's size; a results file
    named like a sequence (digits) that has no ground truth is an error too (wrong folder or
    wrong data set). Raises :class:`DataFormatError` naming file and line."""
    results_dir, gt_txt_dir = Path(results_dir), Path(gt_txt_dir)
    for p in sorted(results_dir.glob("*.txt")):
        if p.stem.isdigit() and not (gt_txt_dir / p.name).is_file():
            raise DataFormatError(f"results for sequence {p.stem}, which has no ground truth "
                                  f"({gt_txt_dir / p.name} does not exist): wrong results "
                                  f"folder or ground truth? Remove the file or pass the "
                                  f"matching --gt", p)
    for seq, n in num_frames.items():
        gt = gt_txt_dir / f"{seq}.txt"
        check_kitti_mots_file(gt, n)
        check_kitti_mots_file(results_dir / f"{seq}.txt", n, kitti_mots_size(gt))


__all__ = [
    "FRAME_SUFFIXES", "GT_TXT_DIRS", "KITTI_MOTS_FIELDS", "SENSOR_DIRS", "SEQUENCE_PARENTS",
    "KittiMotsRecord",
    "check_kitti_mots_file", "check_results_dir", "find_seqmap", "frame_files", "frame_number",
    "gt_txt_dir", "image_root", "kitti_mots_lines", "kitti_mots_size", "list_sequences",
    "read_kitti_mots_records", "read_seqmap", "sensor_file", "seq_name", "seqmap_candidates",
    "sequence_dir", "sequence_frames", "write_seqmap",
]
