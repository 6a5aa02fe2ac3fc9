"""Robustness benchmark: HOTA per class under each camera effect (ImageNet-C style, issue 38).

``measure_robustness`` runs a tracker over a KITTI MOTS tree's sequences once lossless, then
once per (effect, severity): each sequence's frames go through
:func:`stemseg_core.data.camera_effects.apply_effect` with a generator fixed by (seed, effect,
severity, sequence) (a pipeline ``demosaic+jpeg``: each effect so, in turn), are written as
PNG (lossless) and tracked by
:func:`stemseg_core.evaluation.sequence_run.run_sequence`, then scored by
:func:`~stemseg_core.evaluation.trackeval_kitti.evaluate_kitti_mots`. With ``frames`` only the
first N frames of each sequence (and of its ground truth) count.

Result: ``{"variants": [{"effect", "severity", "metrics": {class: {HOTA, ...}},
"per_sequence": {seq: {class: HOTA or None}}, "results_dir"}], "gt_dir", "seqmap", ...}``,
lossless first (effect "lossless", severity 0); the folders are relative to ``out`` (the
tracker's result files per variant, the ground truth cut to the tracked frames) and let
`stemseg compare` score several runs' drives as one set. :func:`summary_rows` turns it into
the table rows, :func:`markdown_table` and :func:`plot` show it.
"""
from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

LOSSLESS = "lossless"
#: Where a run's tracker results go, one folder per variant (relative to its --out).
RESULTS_DIR = "results"


def truncated_ground_truth(data: Path, seqs: Sequence[str], frames: dict[str, list[Path]],
                           out: Path) -> Path:
    """A GT tree in ``out`` holding only the frames that are tracked: instances_txt/<seq>.txt
    cut to the frame numbers of ``frames[seq]`` and bench.seqmap with their lengths."""
    from stemseg_core.data.kitti_layout import frame_number
    from stemseg_core.evaluation.trackeval_kitti import find_gt_txt_dir

    src = find_gt_txt_dir(data)
    (out / "instances_txt").mkdir(parents=True, exist_ok=True)
    lines = []
    for seq in seqs:
        numbers = [frame_number(p, i) for i, p in enumerate(frames[seq])]
        last = max(numbers)
        kept = [ln for ln in (src / f"{seq}.txt").read_text().splitlines()
                if ln.split(maxsplit=1) and int(float(ln.split(maxsplit=1)[0])) <= last]
        (out / "instances_txt" / f"{seq}.txt").write_text("".join(k + "\n" for k in kept))
        lines.append(f"{seq} empty 000000 {last:06d}\n")
    seqmap = out / "bench.seqmap"
    seqmap.write_text("".join(lines))
    return seqmap


def corrupt_sequence(paths: list[Path], effect: str, severity: float, seed: int, seq: str,
                     out: Path) -> list[Path]:
    """Write ``paths``' frames through ``effect`` (one effect, or a pipeline such as
    ``demosaic+jpeg``) at ``severity`` as PNGs into ``out`` (same file names); clip parameters
    drawn once for the sequence."""
    from stemseg_core.data.camera_effects import apply_pipeline

    out.mkdir(parents=True, exist_ok=True)

    def frames():
        for p in paths:
            bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if bgr is None:
                raise FileNotFoundError(f"cannot read image {p}")
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    written = []
    for p, rgb in zip(paths, apply_pipeline(frames(), effect, severity, seed, seq)):
        dst = out / (p.stem + ".png")
        cv2.imwrite(str(dst), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        written.append(dst)
    return written


def measure_robustness(tracker, data: Path, seqs: Sequence[str], out: Path,
                       effects: Sequence[str], severities: Sequence[float], *,
                       frames: int = 0, seed: int = 0, min_track_length=None,
                       keep_frames: bool = False,
                       classes: Sequence[str] = ("car", "pedestrian"),
                       on_variant: Callable[[dict], None] | None = None) -> dict:
    """Lossless, then every effect at every severity (module doc). ``on_variant`` is called
    with each variant's result as soon as it is scored."""
    from stemseg_core.data.kitti_layout import ground_truth_sha256, sequence_frames
    from stemseg_core.evaluation.sequence_run import run_sequence
    from stemseg_core.evaluation.trackeval_kitti import evaluate_kitti_mots, per_sequence_hota

    data, out = Path(data), Path(out)
    src = {s: sequence_frames(data, s) for s in seqs}
    if frames > 0:
        src = {s: p[:frames] for s, p in src.items()}
    seqmap = truncated_ground_truth(data, seqs, src, out / "gt")
    variants = [(LOSSLESS, 0.0)] + [(e, float(s)) for e in effects for s in severities]
    results = []
    for effect, severity in variants:
        tag = LOSSLESS if effect == LOSSLESS else f"{effect}_s{severity:g}"
        res_dir = out / RESULTS_DIR / tag
        res_dir.mkdir(parents=True, exist_ok=True)
        for seq in seqs:
            paths = src[seq]
            if effect != LOSSLESS:
                paths = corrupt_sequence(paths, effect, severity, seed, seq,
                                         out / "frames" / tag / seq)
            run_sequence(tracker, paths, res_dir, seq, min_track_length=min_track_length)
        if not keep_frames:
            shutil.rmtree(out / "frames" / tag, ignore_errors=True)
        metrics, raw = evaluate_kitti_mots(out / "gt", res_dir, seqmap=seqmap, classes=classes,
                                           return_raw=True)
        item = {"effect": effect, "severity": severity, "metrics": metrics,
                "per_sequence": per_sequence_hota(raw, seqs, classes),
                "results_dir": f"{RESULTS_DIR}/{tag}"}
        log.info("%s: %s", tag, {c: round(m["HOTA"], 2) for c, m in metrics.items()})
        results.append(item)
        if on_variant is not None:
            on_variant(item)
    if not keep_frames:
        shutil.rmtree(out / "frames", ignore_errors=True)
    return {"variants": results, "sequences": list(seqs), "frames": int(frames),
            "seed": int(seed),
            "gt_sha256": ground_truth_sha256(out / "gt" / "instances_txt", list(seqs)),
            "gt_dir": seqmap.parent.relative_to(out).as_posix(),
            "seqmap": seqmap.relative_to(out).as_posix(),
            "effects": list(effects),
            "severities": [float(s) for s in severities], "classes": list(classes)}


def mean_and_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean of ``values`` and its standard error (sample SD / sqrt(n); NaN below 2 values)."""
    x = np.asarray(values, dtype=float)
    se = float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")
    return float(x.mean()), se


def summary_rows(result: dict) -> list[dict]:
    """Per effect: HOTA per class at each severity, their mean over severities, the change
    from lossless averaged over drives and classes (``mean_delta``, with its standard error
    over those drive x class pairs, ``delta_se``) and the worst drive and class change
    (``worst_delta``, ``worst``), all per severity."""
    classes = result["classes"]
    base = result["variants"][0]
    rows: dict[str, dict] = {}
    for v in result["variants"]:
        row = rows.setdefault(v["effect"], {"effect": v["effect"], "hota": {}, "mean_delta": {},
                                            "delta_se": {}, "worst_delta": {}, "worst": {}})
        sev = f"{v['severity']:g}"
        row["hota"][sev] = {c: v["metrics"][c]["HOTA"] for c in classes}
        deltas = []
        for seq, per in v["per_sequence"].items():
            for c in classes:
                b = base["per_sequence"][seq][c]
                if b is not None and per[c] is not None:
                    deltas.append((per[c] - b, f"{seq}/{c}"))
        if deltas:
            row["mean_delta"][sev], row["delta_se"][sev] = mean_and_se([d for d, _ in deltas])
            worst = min(deltas)
            row["worst_delta"][sev], row["worst"][sev] = float(worst[0]), worst[1]
    for row in rows.values():
        if row["effect"] != LOSSLESS:
            row["mean_hota"] = {c: float(np.mean([h[c] for h in row["hota"].values()]))
                                for c in classes}
    return list(rows.values())


def delta_cell(row: dict, sev: str) -> str:
    """"-2.5 ±0.8 (-7.2)": mean change from lossless, its standard error, the worst change."""
    if sev not in row["mean_delta"]:
        return ""
    se = row["delta_se"][sev]
    se_text = f" ±{se:.1f}" if np.isfinite(se) else ""
    return f"{row['mean_delta'][sev]:+.1f}{se_text} ({row['worst_delta'][sev]:+.1f})"


def markdown_table(result: dict) -> str:
    """The ImageNet-C style table: one row per effect, HOTA car / pedestrian per severity,
    mean over severities, mean change from lossless ± its standard error and the worst drive x
    class change."""
    classes = result["classes"]
    sevs = [f"{s:g}" for s in result["severities"]]
    short = {c: c[:3] for c in classes}
    head = ["effect"] + [f"s{s} {short[c]}" for s in sevs for c in classes] + \
        [f"mean {short[c]}" for c in classes] + [f"Δ s{s} ± se (worst)" for s in sevs]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in summary_rows(result):
        if row["effect"] == LOSSLESS:
            h = row["hota"]["0"]
            cells = [LOSSLESS] + [f"{h[c]:.1f}" for _s in sevs for c in classes] + \
                [f"{h[c]:.1f}" for c in classes] + ["" for _s in sevs]
        else:
            cells = [row["effect"]] + \
                [f"{row['hota'][s][c]:.1f}" if s in row["hota"] else "" for s in sevs
                 for c in classes] + [f"{row['mean_hota'][c]:.1f}" for c in classes] + \
                [delta_cell(row, s) for s in sevs]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> Path:
    """HOTA against severity, one panel per class, one line per effect, lossless dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = result["classes"]
    rows = summary_rows(result)
    fig, axes = plt.subplots(1, len(classes), figsize=(5.5 * len(classes), 4), squeeze=False)
    for ax, cls in zip(axes[0], classes):
        base = rows[0]["hota"]["0"][cls]
        ax.axhline(base, color="k", ls="--", label=LOSSLESS)
        for row in rows[1:]:
            sev = sorted(row["hota"], key=float)
            ax.plot([float(s) for s in sev], [row["hota"][s][cls] for s in sev], marker="o",
                    label=row["effect"])
        ax.set_title(f"{cls} HOTA")
        ax.set_xlabel("severity")
        ax.set_xticks(result["severities"])
    axes[0][-1].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


__all__ = ["LOSSLESS", "corrupt_sequence", "delta_cell", "markdown_table", "mean_and_se",
           "measure_robustness", "plot", "summary_rows", "truncated_ground_truth"]
