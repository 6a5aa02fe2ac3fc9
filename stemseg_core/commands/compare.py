"""`stemseg compare`: is one checkpoint better than another, drive by drive over several sets?"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = "pair two checkpoints' robustness / accuracy results drive by drive, pooled over sets"
DESCRIPTION = """\
Set results of a candidate (a retrain, other settings) against a baseline's, drive by drive.
Each --baseline and --candidate is an earlier `stemseg robustness` or `stemseg accuracy` result
(its .json or its --out directory); the i-th candidate is paired with the i-th baseline, which
must have been scored on the same drives (same ground truth, frames and effect seed), e.g.
several robustness sets and the held-out accuracy drives, lossless and --camera.

For every effect, severity and class: the HOTA change per drive (candidate minus baseline)
pooled over all sets, its mean ± standard error, and the verdict: "better" or "worse" when the
mean exceeds twice its standard error, else "unresolved". On synthetic drives of 60 frames a
class's change scatters by 2-5 HOTA from drive to drive, so a change of one point needs about
50 drives to be resolved (docs/robustness.md). The figures cover the drives' scatter, not a
training run's own: a retrain's twin with another train.seed can differ by as much.

Beside the change per drive (every drive weighs alike) the table shows the set-level HOTA of
both over all sets' drives scored as one set by TrackEval (drives weigh by their objects); the
two can differ in sign where drives with few objects move the other way. It needs the results'
files where the runs left them (--no-set-level skips it).

Prints the table; with --out also writes OUT/compare.json, OUT/compare.md and OUT/compare.png
(the changes with their bars). --fail-on-worse exits 1 when any change is resolved worse (a
gate for a retrain).

Examples:
  stemseg compare --baseline out/rob_old --candidate out/rob_new
  stemseg compare --baseline out/rob_old out/acc_old out/cam_old \\
                  --candidate out/rob_new out/acc_new out/cam_new --out out/compare
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--baseline", nargs="+", required=True, metavar="RESULT",
                        help="the baseline's results (robustness.json / accuracy.json or their "
                             "directories)")
    parser.add_argument("--candidate", nargs="+", required=True, metavar="RESULT",
                        help="the candidate's results on the same drives, in the same order")
    parser.add_argument("--labels", nargs="+", default=None, metavar="NAME",
                        help="a name per pair (default: the candidate result's directory name)")
    parser.add_argument("--out", default=None,
                        help="write compare.json, compare.md and compare.png here")
    parser.add_argument("--fail-on-worse", action="store_true",
                        help="exit 1 when a change is resolved worse")
    parser.add_argument("--no-set-level", action="store_true",
                        help="skip the set-level HOTA over all drives (one TrackEval run per "
                             "variant and side)")


def pair_labels(candidates: list[str], labels: list[str] | None) -> list[str]:
    """One distinct name per pair: ``labels`` or the candidates' directory names."""
    if labels is None:
        names = [(p if p.is_dir() else p.parent).name or str(p)
                 for p in (Path(c).resolve() for c in candidates)]
        labels = [n if names.count(n) == 1 else f"{n}#{i + 1}" for i, n in enumerate(names)]
    return labels


def add_set_level(rows: list[dict], pairs: list) -> str | None:
    """Put the set-level HOTA of :func:`pooled_set_hota` into ``rows``; the reason when it
    cannot be had (the rows then keep None)."""
    from stemseg_core.evaluation.pooled_set_hota import SetLevelUnavailable, pooled_set_hota

    for r in rows:
        r["baseline_set_hota"] = r["candidate_set_hota"] = None
    try:
        scores = pooled_set_hota(pairs)
    except (SetLevelUnavailable, FileNotFoundError) as e:
        return str(e)
    for r in rows:
        s = scores.get((r["effect"], r["severity"], r["class"]))
        if s is not None:
            r["baseline_set_hota"], r["candidate_set_hota"] = s["baseline"], s["candidate"]
    return None


def _print_table(rows: list[dict]) -> None:
    from rich.table import Table

    from stemseg_core.evaluation.report import print_unwrapped
    from stemseg_core.evaluation.robustness_compare import set_level_text

    table = Table(title="HOTA per drive: candidate - baseline, pooled over the sets")
    for col in ("effect", "sev", "class", "drives", "base", "cand", "change", "verdict",
                "set-level"):
        table.add_column(col, justify="left" if col in ("effect", "class", "verdict")
                         else "right", no_wrap=col != "effect", overflow="fold")
    styles = {"better": "green", "worse": "red"}
    for r in rows:
        se = "" if r["paired_se"] is None else f" ±{r['paired_se']:.1f}"
        table.add_row(r["effect"], f"{r['severity']:g}", r["class"],
                      f"{r['drives']} ({r['sets']})", f"{r['baseline_mean']:.1f}",
                      f"{r['candidate_mean']:.1f}", f"{r['paired_mean']:+.1f}{se}",
                      f"[{styles[r['verdict']]}]{r['verdict']}[/]" if r["verdict"] in styles
                      else r["verdict"], set_level_text(r))
    print_unwrapped(table)


def run(args: argparse.Namespace) -> int:
    from stemseg_core.evaluation.robustness_compare import (
        load_result,
        plot_pooled,
        pooled_comparison,
        pooled_markdown,
    )

    def fail(msg: str) -> int:
        print(f"stemseg compare: error: {msg}", file=sys.stderr)
        return 2

    if len(args.baseline) != len(args.candidate):
        return fail(f"{len(args.baseline)} baseline result(s) but {len(args.candidate)} "
                    f"candidate result(s): give one candidate per baseline, in the same order")
    labels = pair_labels(args.candidate, args.labels)
    if len(labels) != len(args.candidate) or len(set(labels)) != len(labels):
        return fail(f"--labels needs {len(args.candidate)} distinct names, got {labels}")
    try:
        pairs = [(label, load_result(b), load_result(c))
                 for label, b, c in zip(labels, args.baseline, args.candidate)]
        rows = pooled_comparison(pairs)
    except ValueError as e:
        return fail(str(e))
    if not args.no_set_level:
        why = add_set_level(rows, pairs)
        if why:
            print(f"note: no set-level HOTA: {why}", file=sys.stderr)
    _print_table(rows)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        sets = [{"label": label, "baseline": b, "candidate": c,
                 "baseline_sha256": pb.get("checkpoint_sha256"),
                 "candidate_sha256": pc.get("checkpoint_sha256")}
                for (label, pb, pc), b, c in zip(pairs, args.baseline, args.candidate)]
        (out / "compare.json").write_text(json.dumps({"sets": sets, "rows": rows}, indent=2)
                                          + "\n")
        (out / "compare.md").write_text(pooled_markdown(rows))
        plot_pooled(rows, out / "compare.png")
        print(f"wrote {out / 'compare.json'}, {out / 'compare.md'}, {out / 'compare.png'}")
    worse = [f"{r['effect']} {r['severity']:g} {r['class']}" for r in rows
             if r["verdict"] == "worse"]
    if worse and args.fail_on_worse:
        print(f"stemseg compare: resolved worse: {', '.join(worse)}", file=sys.stderr)
        return 1
    return 0
