"""Set-level HOTA of several sets of drives scored as one set, for `stemseg compare`.

:func:`~stemseg_core.evaluation.robustness_compare.pooled_comparison` averages the change per
drive, which weights every drive alike; TrackEval's set-level HOTA sums the matches of all
drives first, which weights them by their objects. The two can disagree in sign when the drives
with few objects move the other way, so `stemseg compare` shows both.

Every result written by `stemseg robustness` or `stemseg accuracy` names its ground-truth
folder (``gt_dir``, optionally its ``seqmap``) and each variant's tracker results
(``results_dir``), relative to the result file. :func:`pooled_set_hota` copies the drives of
all sets into one KITTI MOTS tree under new names (``0000``, ``0001``, ... in set order) and
scores each side once per variant and class: ``{(effect, severity, class): {"baseline",
"candidate", "drives"}}``.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from stemseg_core.evaluation.robustness_compare import matched_variants
from stemseg_core.evaluation.trackeval_kitti import (
    evaluate_kitti_mots,
    find_gt_txt_dir,
    read_seqmap,
    sequence_length,
)


class SetLevelUnavailable(ValueError):
    """The results lack the files a set-level score needs (older stemseg, or moved away)."""


def _source(result: dict, key: str, label: str) -> Path:
    """``result[key]`` (a folder or file relative to the result file) as a path that exists."""
    where, rel = result.get("source_dir"), result.get(key)
    if where is None or not isinstance(rel, str):
        raise SetLevelUnavailable(f"{label}: the result does not name its {key} (written by an "
                                  f"older stemseg): rerun it for set-level HOTA")
    path = Path(where) / rel
    if not path.exists():
        raise SetLevelUnavailable(f"{label}: {path} is missing (the result's files were moved "
                                  f"or deleted)")
    return path


def _drive_files(result: dict, label: str) -> tuple[Path, dict[str, int]]:
    """The ground-truth txt folder of a result and {drive: number of frames} of its drives."""
    gt_dir = _source(result, "gt_dir", label)
    txt = find_gt_txt_dir(gt_dir)
    lengths = read_seqmap(_source(result, "seqmap", label)) if result.get("seqmap") else {}
    return txt, {s: lengths.get(s) or sequence_length(gt_dir, s, txt)
                 for s in result["sequences"]}


def pooled_set_hota(pairs: list[tuple[str, dict, dict]]) -> dict[tuple[str, float, str], dict]:
    """``pairs``: (label, baseline, candidate) as :func:`pooled_comparison` takes them, each
    loaded by :func:`load_result` (which records ``source_dir``). For every variant (effect,
    severity) that both sides of some pair have and every class both score: the set-level
    HOTA of the baseline and of the candidate over all those pairs' drives at once. Raises
    :class:`SetLevelUnavailable` naming what is missing."""
    with tempfile.TemporaryDirectory(prefix="stemseg_compare_") as tmp:
        root = Path(tmp)
        gt_txt = root / "gt" / "instances_txt"
        gt_txt.mkdir(parents=True)
        names: dict[tuple[str, str], tuple[str, int]] = {}  # (label, drive) -> (name, frames)
        for label, base, _cand in pairs:
            txt, lengths = _drive_files(base, label)
            for seq, n in lengths.items():
                name = f"{len(names):04d}"
                shutil.copyfile(txt / f"{seq}.txt", gt_txt / f"{name}.txt")
                names[label, seq] = (name, n)
        # (effect, severity) -> {label: ({side: (result, its variant)}, classes both score)}
        members: dict[tuple[str, float], dict[str, tuple[dict, list[str]]]] = {}
        for label, base, cand in pairs:
            for v, b, cls in matched_variants(cand, base):
                sides, classes = members.setdefault((v["effect"], float(v["severity"])), {}) \
                    .setdefault(label, ({"baseline": (base, b), "candidate": (cand, v)}, []))
                classes.append(cls)
        out: dict[tuple[str, float, str], dict] = {}
        for k, (key, by_label) in enumerate(members.items()):
            sets = [(label, sides, classes) for label, (sides, classes) in by_label.items()]
            classes = sorted(set.intersection(*(set(c) for _l, _s, c in sets)))
            if not classes:
                continue
            seqmap = root / f"v{k}.seqmap"
            seqmap.write_text("".join(
                f"{names[label, seq][0]} empty 000000 {names[label, seq][1] - 1:06d}\n"
                for label, sides, _c in sets for seq in sides["baseline"][0]["sequences"]))
            scores = {}
            for side in ("baseline", "candidate"):
                res = root / f"v{k}" / side
                res.mkdir(parents=True)
                for label, sides, _c in sets:
                    result, variant = sides[side]
                    src = _source({**result, "results_dir": variant.get("results_dir")},
                                  "results_dir", label)
                    for seq in result["sequences"]:
                        shutil.copyfile(src / f"{seq}.txt", res / f"{names[label, seq][0]}.txt")
                scores[side] = evaluate_kitti_mots(root / "gt", res, seqmap=seqmap,
                                                   classes=classes)
            drives = sum(len(sides["baseline"][0]["sequences"]) for _l, sides, _c in sets)
            for cls in classes:
                out[(*key, cls)] = {"baseline": scores["baseline"][cls]["HOTA"],
                                    "candidate": scores["candidate"][cls]["HOTA"],
                                    "drives": drives}
        return out


__all__ = ["SetLevelUnavailable", "pooled_set_hota"]
