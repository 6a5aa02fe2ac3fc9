"""Metric reports: a rich table, ``metrics.json`` and a bar chart ``metrics.png``.

Works on ``{group: {metric: value}}`` (KITTI MOTS: groups are classes) or a flat
``{metric: value}`` (DAVIS), which is shown as one group.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

#: Metrics that are counts, not percentages (left out of the bar chart, shown as integers).
COUNT_METRICS = ("IDSW",)


def _grouped(metrics: Mapping, default_group: str = "all") -> dict[str, dict[str, float]]:
    if metrics and all(isinstance(v, Mapping) for v in metrics.values()):
        return {str(k): dict(v) for k, v in metrics.items()}
    return {default_group: dict(metrics)}


def _fmt(name: str, value: float) -> str:
    if name in COUNT_METRICS:
        return str(int(value))
    return f"{float(value):.2f}"


def metrics_table(metrics: Mapping, title: str = "Evaluation"):
    """A rich Table: one row per group (class), one column per metric."""
    from rich.table import Table

    groups = _grouped(metrics)
    names: list[str] = []
    for vals in groups.values():
        names += [n for n in vals if n not in names]
    table = Table(title=title)
    table.add_column("class", no_wrap=True, min_width=10)
    for n in names:
        table.add_column(n, justify="right", no_wrap=True, min_width=max(len(n), 6))
    for g, vals in groups.items():
        table.add_row(g, *[_fmt(n, vals[n]) if n in vals else "-" for n in names])
    return table


def print_metrics(metrics: Mapping, title: str = "Evaluation", console=None) -> None:

    table = metrics_table(metrics, title)
    if console is None:
        print_unwrapped(table)  # numbers must never be cut, also in a pipe's 80 columns
    else:
        console.print(table)


def print_unwrapped(table) -> None:
    """Print a rich table at the width its cells ask for where the terminal (or the 80
    columns rich assumes for a pipe) is narrower: a log keeps whole cells."""
    from rich.console import Console

    console = Console()
    needed = console.measure(table, options=console.options.update_width(10_000)).maximum
    if console.width < needed:
        console = Console(width=needed)
    console.print(table)


def write_metrics_json(metrics: Mapping, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=2, sort_keys=False) + "\n")
    return path


def plot_metrics(metrics: Mapping, path: str | Path, title: str = "Evaluation") -> Path:
    """Grouped bar chart of the percentage metrics (counts such as IDSW are left out)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    groups = _grouped(metrics)
    names: list[str] = []
    for vals in groups.values():
        names += [n for n in vals if n not in names and n not in COUNT_METRICS]
    fig = Figure(figsize=(max(6.0, 0.9 * len(names) + 2), 4.0), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / max(len(groups), 1)
    for k, (g, vals) in enumerate(groups.items()):
        xs = [i + (k - (len(groups) - 1) / 2) * width for i in range(len(names))]
        ys = [float(vals.get(n, 0.0)) for n in names]
        bars = ax.bar(xs, ys, width=width, label=g)
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names)
    ax.set_ylabel("%")
    low = min([0.0] + [float(v.get(n, 0.0)) for v in groups.values() for n in names])
    ax.set_ylim(low - 5 if low < 0 else 0, 105)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    if len(groups) > 1:
        ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
