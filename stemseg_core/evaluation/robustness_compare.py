"""Two robustness results side by side: is one checkpoint better than another, beyond the
scatter of the drives?

Both results come from :func:`~stemseg_core.evaluation.robustness_benchmark.measure_robustness`
on the same sequences, frames and effect seed (anything else is refused). For every variant
(effect, severity) in both and every class, :func:`compare_results` gives the set-level HOTA
of each and the **paired** change per drive (this run minus the baseline, drives where both
have the class), its mean and standard error: a change smaller than about twice its standard
error is not resolved by these drives. On 16 synthetic drives of 60 frames the standard error
of such a paired change is 0.3-1.4 HOTA (docs/robustness.md).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from stemseg_core.evaluation.robustness_benchmark import mean_and_se

RESULT_FILE = "robustness.json"
#: A paired change is "resolved" when it exceeds this many standard errors.
RESOLVED_FACTOR = 2.0


def load_result(path: str | Path) -> dict:
    """A ``robustness.json`` (or the directory holding one) written by `stemseg robustness`."""
    p = Path(path)
    if p.is_dir():
        p = p / RESULT_FILE
    if not p.is_file():
        raise ValueError(f"no robustness result at {path} (give the {RESULT_FILE} or the --out "
                         f"directory of an earlier `stemseg robustness` run)")
    try:
        result = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{p}: not a readable robustness result: {e}") from None
    if not isinstance(result, dict) or not isinstance(result.get("variants"), list):
        raise ValueError(f"{p}: not a robustness result (no 'variants' list)")
    for i, v in enumerate(result["variants"]):
        problem = _variant_problem(v)
        if problem:
            raise ValueError(f"{p}: variant {i}: {problem}")
    return result


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
    base = {(v["effect"], float(v["severity"])): v for v in baseline["variants"]}
    rows = []
    for v in result["variants"]:
        b = base.get((v["effect"], float(v["severity"])))
        if b is None:
            continue
        for cls in result["classes"]:
            if cls not in b["metrics"]:
                continue
            diffs = [per[cls] - b["per_sequence"][seq][cls]
                     for seq, per in v["per_sequence"].items()
                     if per.get(cls) is not None
                     and b["per_sequence"].get(seq, {}).get(cls) is not None]
            mean, se = mean_and_se(diffs) if diffs else (None, None)
            hota, b_hota = v["metrics"][cls]["HOTA"], b["metrics"][cls]["HOTA"]
            rows.append({"effect": v["effect"], "severity": float(v["severity"]), "class": cls,
                         "hota": hota, "baseline_hota": b_hota, "change": hota - b_hota,
                         "paired_mean": mean, "paired_se": _finite_or_none(se),
                         "drives": len(diffs)})
    if not rows:
        raise ValueError("the baseline has none of this run's effects, severities and classes")
    return rows


def _finite_or_none(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


def comparison_markdown(rows: list[dict]) -> str:
    """One line per variant and class: HOTA of both, the set-level change, the paired change
    per drive ± its standard error, and whether it exceeds :data:`RESOLVED_FACTOR` times that
    error."""
    head = ["effect", "severity", "class", "baseline", "this run", "change", "per drive ± se",
            "resolved"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        mean, se = r["paired_mean"], r["paired_se"]
        if mean is None or se is None:
            per_drive, resolved = f"({r['drives']} drives)", "too few drives"
        else:
            per_drive = f"{mean:+.1f} ±{se:.1f} ({r['drives']})"
            resolved = "yes" if abs(mean) > RESOLVED_FACTOR * se else "no"
        lines.append(f"| {r['effect']} | {r['severity']:g} | {r['class']} | "
                     f"{r['baseline_hota']:.1f} | {r['hota']:.1f} | {r['change']:+.1f} | "
                     f"{per_drive} | {resolved} |")
    return "\n".join(lines) + "\n"


__all__ = ["RESOLVED_FACTOR", "RESULT_FILE", "check_comparable", "compare_results",
           "comparison_markdown", "load_result"]
