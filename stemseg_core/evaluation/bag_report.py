"""Report of a rosbag replay through the perception node (``stemseg bag eval``); ROS-free.

Writes into one folder: ``report.md`` (run facts, metrics table, frames sent / received / lost,
latency percentiles, throughput, node memory), ``latency.png`` (latency per frame over the
replay, lost frames marked), ``memory.png`` (the node's resident memory over the replay) and
``contact_sheet.png`` (overlays of the node's masks on the bag's frames).
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

LATENCY_PNG = "latency.png"
MEMORY_PNG = "memory.png"
CONTACT_SHEET_PNG = "contact_sheet.png"
REPORT_MD = "report.md"
REPLAY_JSON = "replay.json"


@dataclass
class ReplayStats:
    """What happened during one replay.

    send_s: per frame of the bag, seconds since the first send when it was published (None =
    never sent); latency_ms: receive time of its result - send time (None = no result).
    """

    bag: str
    topic: str
    msgtype: str
    mode: str
    frames_in_bag: int
    send_s: list[float | None]
    latency_ms: list[float | None]
    frame_numbers: list[int]
    wall_s: float
    node_command: list[str] = field(default_factory=list)
    extra: dict[str, object] = field(default_factory=dict)
    #: (seconds since the first send, node resident memory in MiB), one per node /diagnostics
    memory_mb: list[tuple[float, float]] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return sum(s is not None for s in self.send_s)

    @property
    def received(self) -> int:
        return sum(v is not None for v in self.latency_ms)

    @property
    def lost_frames(self) -> list[int]:
        """KITTI frame numbers of frames sent whose result never came."""
        return [self.frame_numbers[i] for i, (s, v) in enumerate(zip(self.send_s,
                                                                       self.latency_ms))
                if s is not None and v is None]

    def latency_summary(self) -> dict[str, float]:
        """p50 / p90 / p99 / max / mean latency (ms) over received frames; {} if none."""
        lat = np.asarray([v for v in self.latency_ms if v is not None], dtype=np.float64)
        if lat.size == 0:
            return {}
        p50, p90, p99 = np.percentile(lat, [50, 90, 99])
        return {"p50": float(p50), "p90": float(p90), "p99": float(p99),
                "max": float(lat.max()), "mean": float(lat.mean())}

    def memory_summary(self) -> dict[str, float]:
        """Node RSS (MiB): first, last, max sample and the growth over the replay's second
        half (last - the sample nearest half time; ~0 when memory stays flat); {} if none."""
        if not self.memory_mb:
            return {}
        ts = np.asarray([t for t, _ in self.memory_mb])
        ms = np.asarray([m for _, m in self.memory_mb])
        half = int(np.argmin(np.abs(ts - ts[-1] / 2)))
        return {"first": float(ms[0]), "last": float(ms[-1]), "max": float(ms.max()),
                "growth_second_half": float(ms[-1] - ms[half]), "samples": float(len(ms))}

    def throughput_fps(self) -> float:
        """Results received per second of wall time between first send and last result."""
        return self.received / self.wall_s if self.wall_s > 0 else 0.0

    def to_json(self) -> dict:
        d = asdict(self)
        d.update(sent=self.sent, received=self.received, lost_frames=self.lost_frames,
                 latency_summary_ms=self.latency_summary(),
                 memory_summary_mb=self.memory_summary(),
                 throughput_fps=self.throughput_fps())
        return d


def metrics_table(metrics: Mapping[str, Mapping[str, float]]) -> str:
    """Markdown table: one row per class, one column per metric (as from evaluate_kitti_mots)."""
    if not metrics:
        return ""
    keys: list[str] = []
    for vals in metrics.values():
        keys += [k for k in vals if k not in keys]
    lines = ["| class | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for cls, vals in metrics.items():
        cells = []
        for k in keys:
            v = vals.get(k)
            cells.append("" if v is None else (f"{v:d}" if isinstance(v, int) else f"{v:.2f}"))
        lines.append(f"| {cls} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_latency(stats: ReplayStats, path: str | Path) -> Path:
    """Latency of every frame over the replay (x: frame number), lost frames as red marks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(8, 3.2), dpi=100)
    xs = [stats.frame_numbers[i] for i, v in enumerate(stats.latency_ms) if v is not None]
    ys = [v for v in stats.latency_ms if v is not None]
    if ys:
        ax.plot(xs, ys, ".-", lw=0.8, ms=3, label="latency (receive - send)")
        s = stats.latency_summary()
        ax.axhline(s["p50"], color="tab:green", lw=0.8, ls="--", label=f"p50 {s['p50']:.0f} ms")
        ax.axhline(s["p99"], color="tab:orange", lw=0.8, ls="--",
                   label=f"p99 {s['p99']:.0f} ms")
    lost = stats.lost_frames
    if lost:
        ax.plot(lost, [0] * len(lost), "x", color="red", label=f"lost ({len(lost)})")
    ax.set_xlabel("frame")
    ax.set_ylabel("latency [ms]")
    ax.set_title(f"{Path(stats.bag).name} {stats.topic} ({stats.mode})", fontsize=9)
    ax.grid(alpha=0.3)
    ax.set_ylim(bottom=0)
    if ys or lost:
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_memory(stats: ReplayStats, path: str | Path) -> Path | None:
    """The node's resident memory over the replay; None when the node reported none."""
    if not stats.memory_mb:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(8, 2.6), dpi=100)
    ax.plot([t for t, _ in stats.memory_mb], [m for _, m in stats.memory_mb], ".-", lw=0.8,
            ms=3)
    ax.set_xlabel("seconds since the first frame was sent")
    ax.set_ylabel("node RSS [MiB]")
    ax.set_title("perception node memory (from its /diagnostics)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.set_ylim(bottom=0)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_contact_sheet(overlays_bgr: Sequence[np.ndarray], path: str | Path,
                        max_tiles: int = 12, cols: int = 3) -> Path | None:
    """Evenly spaced overlays (at most ``max_tiles``) tiled into one PNG; None when empty."""
    import cv2

    from stemseg_core.visualize import contact_sheet

    if not overlays_bgr:
        return None
    n = len(overlays_bgr)
    pick = sorted({int(round(i)) for i in np.linspace(0, n - 1, min(max_tiles, n))})
    sheet = contact_sheet([overlays_bgr[i] for i in pick], cols=min(cols, len(pick)))
    path = Path(path)
    cv2.imwrite(str(path), sheet)
    return path


def write_report(out_dir: str | Path, stats: ReplayStats,
                 metrics: Mapping[str, Mapping[str, float]] | None = None,
                 overlays_bgr: Sequence[np.ndarray] = (),
                 results_file: str | Path | None = None,
                 metrics_file: str | Path | None = None,
                 record_bag: str | Path | None = None) -> Path:
    """Write report.md, latency.png, contact_sheet.png and replay.json into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plot_latency(stats, out / LATENCY_PNG)
    sheet = write_contact_sheet(list(overlays_bgr), out / CONTACT_SHEET_PNG)
    (out / REPLAY_JSON).write_text(json.dumps(stats.to_json(), indent=2) + "\n")

    lat = stats.latency_summary()
    lost = stats.lost_frames
    md = [f"# Rosbag replay: {Path(stats.bag).name}", ""]
    md += ["| | |", "|---|---|",
           f"| bag | `{stats.bag}` |",
           f"| topic | `{stats.topic}` ({stats.msgtype}) |",
           f"| mode | {stats.mode} |"]
    for k, v in stats.extra.items():
        md.append(f"| {k} | {v} |")
    md.append("")
    md += ["## Metrics (TrackEval, KITTI MOTS)", ""]
    if metrics:
        md += [metrics_table(metrics), ""]
        if metrics_file:
            md += [f"Also in `{Path(metrics_file).name}`.", ""]
    else:
        md += ["No ground truth given (`--gt DIR --seq SEQ`): no metrics.", ""]
    md += ["## Frames", "",
           "| in bag | sent | received | lost | throughput |", "|---|---|---|---|---|",
           f"| {stats.frames_in_bag} | {stats.sent} | {stats.received} | {len(lost)} | "
           f"{stats.throughput_fps():.2f} frames/s over {stats.wall_s:.1f} s |", ""]
    if lost:
        shown = ", ".join(str(f) for f in lost[:40]) + (" ..." if len(lost) > 40 else "")
        md += [f"Lost frames: {shown}", ""]
    md += ["## Latency (result received - frame sent)", ""]
    if lat:
        md += ["| p50 | p90 | p99 | max | mean |", "|---|---|---|---|---|",
               "| " + " | ".join(f"{lat[k]:.1f} ms" for k in ("p50", "p90", "p99", "max", "mean"))
               + " |", ""]
        md += ["A frame's result is published when its clip is complete, so latency includes "
               "waiting for up to T - Tc later frames (T at the start) plus one clip's "
               "processing. In lockstep, frames are sent as fast as the node takes them, so "
               "latency there is processing time, not camera-rate latency.", ""]
    else:
        md += ["No results received.", ""]
    md += [f"![latency]({LATENCY_PNG})", ""]
    mem = stats.memory_summary()
    if mem and plot_memory(stats, out / MEMORY_PNG):
        md += ["## Node memory (resident, from its /diagnostics)", "",
               "| start | max | end | growth over the second half | samples |",
               "|---|---|---|---|---|",
               f"| {mem['first']:.0f} MiB | {mem['max']:.0f} MiB | {mem['last']:.0f} MiB | "
               f"{mem['growth_second_half']:+.1f} MiB | {int(mem['samples'])} |", "",
               f"![memory]({MEMORY_PNG})", ""]
    md += ["## Overlays", ""]
    md += [f"![overlays]({CONTACT_SHEET_PNG})" if sheet else "No frames to show.", ""]
    md += ["## Files", ""]
    if results_file:
        md.append(f"- KITTI MOTS results: `{Path(results_file).name}`")
    if metrics_file:
        md.append(f"- metrics: `{Path(metrics_file).name}`")
    md.append(f"- per-frame send times and latencies: `{REPLAY_JSON}`")
    if record_bag:
        md.append(f"- node outputs recorded to `{record_bag}`")
    if stats.node_command:
        md += ["", "Node command:", "", "```", " ".join(stats.node_command), "```"]
    md.append("")
    path = out / REPORT_MD
    path.write_text("\n".join(md))
    return path
