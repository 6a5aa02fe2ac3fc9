"""Two robustness results side by side: is one checkpoint better than another, beyond the
scatter of the drives?

Both results come from :func:`~stemseg_core.evaluation.robustness_benchmark.measure_robustness`
on the same sequences, frames and effect seed (anything else is refused). For every variant
(effect, severity) in both and every class, :func:`compare_results` gives the set-level HOTA
of each and the **paired** change per drive (this run minus the baseline, drives where both
have the class), its mean and standard error: a change smaller than about twice its standard
error is not resolved by these drives. On 16 synthetic drives of 60 frames the standard error
of such a paired change is 0.3-1.4 HOTA (docs/robustness.md).

`stemseg accuracy` results (``accuracy.json``: one variant, lossless or its camera effect) load in
the same form, and :func:`pooled_comparison` pools the paired changes of several sets of drives
(`stemseg compare`): a change of one point needs about 50 drives to be resolved.
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from stemseg_core.evaluation.robustness_benchmark import mean_and_se

log = logging.getLogger(__name__)

RESULT_FILE = "robustness.json"
#: What `stemseg accuracy` writes; loads as a result with one variant.
ACCURACY_FILE = "accuracy.json"
#: A paired change is "resolved" when it exceeds this many standard errors.
RESOLVED_FACTOR = 2.0


def load_result(path: str | Path) -> dict:
    """A ``robustness.json`` or ``accuracy.json`` (or the directory holding one) written by
    `stemseg robustness` / `stemseg accuracy`, as ``{"variants": [...], "sequences", "frames",
    "seed", "classes", "source_dir" (the file's folder), ...}``."""
    p = Path(path)
    if p.is_dir():
        found = [p / name for name in (RESULT_FILE, ACCURACY_FILE) if (p / name).is_file()]
        if len(found) != 1:
            raise ValueError(f"{'no' if not found else 'two'} results in {path}: give the "
                             f"{RESULT_FILE} or {ACCURACY_FILE} (the --out directory of an "
                             f"earlier `stemseg robustness` or `stemseg accuracy` run)")
        p = found[0]
    if not p.is_file():
        raise ValueError(f"no result at {path} (give the {RESULT_FILE} or {ACCURACY_FILE} of an "
                         f"earlier `stemseg robustness` or `stemseg accuracy` run, or its "
                         f"--out directory)")
    try:
        result = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{p}: not a readable result: {e}") from None
    if isinstance(result, dict) and "variants" not in result and "rows" in result:
        result = _accuracy_as_result(result, p)
    if not isinstance(result, dict) or not isinstance(result.get("variants"), list):
        raise ValueError(f"{p}: not a robustness result (no 'variants' list)")
    for i, v in enumerate(result["variants"]):
        problem = _variant_problem(v)
        if problem:
            raise ValueError(f"{p}: variant {i}: {problem}")
    result["source_dir"] = str(p.parent)  # its files' folders are relative to it
    return result


def _accuracy_as_result(acc: dict, path: Path) -> dict:
    """An ``accuracy.json`` as a result of one variant (its effect, or lossless)."""
    missing = [k for k in ("effect", "severity", "sequences", "per_sequence", "metrics")
               if k not in acc]
    if missing:
        raise ValueError(f"{path}: an accuracy result without {', '.join(missing)} (written "
                         f"by an older stemseg): run `stemseg accuracy` again")
    metrics = acc["metrics"] if isinstance(acc["metrics"], dict) else {}
    variant = {"effect": acc["effect"], "severity": acc["severity"], "metrics": acc["metrics"],
               "per_sequence": acc["per_sequence"]}
    if "results_dir" in acc:
        variant["results_dir"] = acc["results_dir"]
    return {**{k: v for k, v in acc.items()
               if k not in ("rows", "metrics", "per_sequence", "results_dir")},
            "variants": [variant],
            "classes": list(metrics)}


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _variant_problem(v) -> str | None:
    """What is wrong with one variant of a loaded result, or None."""
    if not isinstance(v, dict) or not isinstance(v.get("effect"), str) \
            or not _is_number(v.get("severity")):
        return "needs 'effect' (text) and 'severity' (a number)"
    metrics, per = v.get("metrics"), v.get("per_sequence")
    if not isinstance(metrics, dict) or not all(
            isinstance(m, dict) and _is_number(m.get("HOTA")) for m in metrics.values()):
        return "'metrics' must map each class to {'HOTA': number, ...}"
    if not isinstance(per, dict) or not all(
            isinstance(row, dict) and all(h is None or _is_number(h) for h in row.values())
            for row in per.values()):
        return "'per_sequence' must map each drive to {class: HOTA or null}"
    return None


def check_comparable(run: dict, baseline: dict) -> None:
    """Raise ValueError naming the first setting in which ``run`` (a dict with ``sequences``,
    ``frames``, ``seed``) differs from ``baseline``: a paired change needs the same frames."""
    if run.get("gt_sha256") and baseline.get("gt_sha256") \
            and run["gt_sha256"] != baseline["gt_sha256"]:
        raise ValueError("the baseline was scored on other drives (their ground truth differs: "
                         "another data set or frames); pair results of the same drives")
    for key in ("sequences", "frames", "seed"):
        if run.get(key) != baseline.get(key):
            raise ValueError(f"the baseline was measured with {key}={baseline.get(key)!r}, this "
                             f"run with {run.get(key)!r}; rerun one of them with the same --data, "
                             f"--split/--seq, --frames and --seed")


def compare_results(result: dict, baseline: dict) -> list[dict]:
    """Per variant in both results and per class: ``{"effect", "severity", "class", "hota",
    "baseline_hota", "change"`` (set level), ``"paired_mean", "paired_se", "drives"}`` (the
    per-drive change, its mean, standard error and number of drives; None where too few
    drives have the class: no drive for the mean, one for the error)."""
    check_comparable(result, baseline)
    rows = []
    for v, b, cls in matched_variants(result, baseline):
        diffs = [c - b_ for _seq, b_, c in _paired_drives(v, b, cls)]
        mean, se = mean_and_se(diffs) if diffs else (None, None)
        hota, b_hota = v["metrics"][cls]["HOTA"], b["metrics"][cls]["HOTA"]
        rows.append({"effect": v["effect"], "severity": float(v["severity"]), "class": cls,
                     "hota": hota, "baseline_hota": b_hota, "change": hota - b_hota,
                     "paired_mean": mean, "paired_se": _finite_or_none(se),
                     "drives": len(diffs)})
    if not rows:
        raise ValueError("the baseline has none of this run's effects, severities and classes")
    return rows


def matched_variants(result: dict, baseline: dict):
    """(variant of ``result``, the baseline's variant of the same effect and severity, class)
    for every class both score."""
    by_key = {(v["effect"], float(v["severity"])): v for v in baseline["variants"]}
    for v in result["variants"]:
        b = by_key.get((v["effect"], float(v["severity"])))
        if b is not None:
            yield from ((v, b, cls) for cls in v["metrics"] if cls in b["metrics"])


def _paired_drives(variant: dict, base: dict, cls: str) -> list[tuple[str, float, float]]:
    """(drive, baseline HOTA, this run's HOTA) for the drives where both have ``cls``."""
    return [(seq, base["per_sequence"][seq][cls], per[cls])
            for seq, per in variant["per_sequence"].items()
            if per.get(cls) is not None
            and base["per_sequence"].get(seq, {}).get(cls) is not None]


def verdict(mean: float | None, se: float | None) -> str:
    """"better" / "worse" when the paired change exceeds :data:`RESOLVED_FACTOR` standard
    errors, "unresolved" when it does not, "too few drives" without an error."""
    if mean is None or se is None:
        return "too few drives"
    if abs(mean) <= RESOLVED_FACTOR * se:
        return "unresolved"
    return "better" if mean > 0 else "worse"


def pooled_comparison(pairs: list[tuple[str, dict, dict]]) -> list[dict]:
    """Paired changes pooled over several sets of drives. ``pairs``: ``(label, baseline,
    candidate)`` results, each pair scored on the same drives (else ValueError naming the
    label). Per variant (effect, severity) and class present in some pair: ``{"effect",
    "severity", "class", "drives", "sets", "baseline_mean", "candidate_mean"`` (HOTA averaged
    over the drives), ``"paired_mean", "paired_se", "verdict"}`` and ``"per_set"`` ({label:
    [mean, se or None, drives]})."""
    pooled: dict[tuple[str, float, str], dict[str, list]] = {}
    for label, base, cand in pairs:
        try:
            check_comparable(cand, base)
        except ValueError as e:
            raise ValueError(f"{label}: {e}") from None
        if not (base.get("gt_sha256") and cand.get("gt_sha256")):
            log.warning("%s: a result without the ground truth's sha256 (older stemseg): only "
                        "the drive names, frames and seed say it is the same drives", label)
        for v, b, cls in matched_variants(cand, base):
            drives = _paired_drives(v, b, cls)
            if drives:
                pooled.setdefault((v["effect"], float(v["severity"]), cls), {})[label] = drives
    if not pooled:
        raise ValueError("no pair has an effect, severity and class in common")
    rows = []
    for (effect, severity, cls), sets in pooled.items():
        drives = [d for ds in sets.values() for d in ds]
        mean, se = mean_and_se([c - b for _s, b, c in drives])
        se = _finite_or_none(se)
        per_set = {}
        for label, ds in sets.items():
            m, e = mean_and_se([c - b for _s, b, c in ds])
            per_set[label] = [m, _finite_or_none(e), len(ds)]
        rows.append({"effect": effect, "severity": severity, "class": cls,
                     "drives": len(drives), "sets": len(sets),
                     "baseline_mean": sum(b for _s, b, _c in drives) / len(drives),
                     "candidate_mean": sum(c for _s, _b, c in drives) / len(drives),
                     "paired_mean": mean, "paired_se": se, "verdict": verdict(mean, se),
                     "per_set": per_set})
    return rows


def set_level_text(row: dict) -> str:
    """"72.8 -> 73.0 (+0.2)" from a row's set-level HOTA (``baseline_set_hota``,
    ``candidate_set_hota``, added by `stemseg compare`), "" without it."""
    b, c = row.get("baseline_set_hota"), row.get("candidate_set_hota")
    return "" if b is None or c is None else f"{b:.1f} -> {c:.1f} ({c - b:+.1f})"


def pooled_markdown(rows: list[dict]) -> str:
    """One line per variant and class of :func:`pooled_comparison`, the set-level HOTA where
    the rows have it, then the change per set."""
    head = ["effect", "severity", "class", "drives (sets)", "baseline", "candidate",
            "change per drive ± se", "verdict", "set-level HOTA", "per set"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        se = "" if r["paired_se"] is None else f" ±{r['paired_se']:.1f}"
        per_set = "; ".join(f"{label} {m:+.1f}" + ("" if e is None else f" ±{e:.1f}")
                            for label, (m, e, _n) in r["per_set"].items())
        lines.append(f"| {r['effect']} | {r['severity']:g} | {r['class']} | {r['drives']} "
                     f"({r['sets']}) | {r['baseline_mean']:.1f} | {r['candidate_mean']:.1f} | "
                     f"{r['paired_mean']:+.1f}{se} | {r['verdict']} | {set_level_text(r)} | "
                     f"{per_set} |")
    return "\n".join(lines) + "\n"


def plot_pooled(rows: list[dict], path: Path) -> Path:
    """The pooled changes per drive with bars of :data:`RESOLVED_FACTOR` standard errors, one
    line per variant and class: a bar that does not cross zero is resolved."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['effect']} {r['severity']:g} {r['class']} ({r['drives']})" for r in rows]
    y = list(range(len(rows)))[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(rows) + 1.2))
    colours = {"better": "tab:green", "worse": "tab:red"}
    for yi, r in zip(y, rows):
        err = 0.0 if r["paired_se"] is None else RESOLVED_FACTOR * r["paired_se"]
        ax.errorbar(r["paired_mean"], yi, xerr=err, fmt="o", capsize=3,
                    color=colours.get(r["verdict"], "tab:gray"))
    ax.axvline(0.0, color="k", lw=0.8)
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlabel(f"HOTA change per drive, candidate - baseline (bars: {RESOLVED_FACTOR:g} s.e.)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _finite_or_none(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


def comparison_markdown(rows: list[dict]) -> str:
    """One line per variant and class: HOTA of both, the set-level change, the paired change
    per drive ± its standard error, and its :func:`verdict`."""
    head = ["effect", "severity", "class", "baseline", "this run", "change", "per drive ± se",
            "verdict"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        mean, se = r["paired_mean"], r["paired_se"]
        per_drive = (f"({r['drives']} drives)" if mean is None or se is None
                     else f"{mean:+.1f} ±{se:.1f} ({r['drives']})")
        lines.append(f"| {r['effect']} | {r['severity']:g} | {r['class']} | "
                     f"{r['baseline_hota']:.1f} | {r['hota']:.1f} | {r['change']:+.1f} | "
                     f"{per_drive} | {verdict(mean, se)} |")
    return "\n".join(lines) + "\n"


__all__ = ["ACCURACY_FILE", "RESOLVED_FACTOR", "RESULT_FILE", "check_comparable",
           "compare_results", "comparison_markdown", "load_result", "plot_pooled",
           "matched_variants", "pooled_comparison", "pooled_markdown", "set_level_text",
           "verdict"]
