"""Scoring of a rosbag replay through the perception node (``stemseg bag eval``); ROS-free.

The ROS package plays the bag and collects what the node publishes into a
:class:`ReplayOutcome`; everything after that happens here, with the same writers and scorers
as ``stemseg infer`` / ``stemseg evaluate``: results are matched to KITTI frame numbers (the
bag's frames.csv), written as ``<seq>.txt`` by :func:`~.kitti_results.write_kitti_mots`, scored by
:func:`~.trackeval_kitti.evaluate_kitti_mots` and reported by :mod:`.bag_report`.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stemseg_core.evaluation.bag_report import ReplayStats, write_report
from stemseg_core.inference.types import FrameResult

log = logging.getLogger(__name__)

#: Tiles of the report's overlay contact sheet.
CONTACT_SHEET_TILES = 12


@dataclass
class ReplayOutcome:
    """What one replay gave, per bag frame in bag order.

    stamps_ns: header stamps of the frames sent; send_s / recv_s: when each was sent and its
    result arrived (seconds since the first send; None = never); results: the node's result per
    frame (None = lost); wall_s: first send to last result. node_stats: the node's last
    /diagnostics values; memory_mb: (seconds since the first send, node RSS in MiB).
    """

    stamps_ns: list[int]
    send_s: list[float | None]
    recv_s: list[float | None]
    results: list[FrameResult | None]
    wall_s: float
    unmatched: int = 0
    duplicates: int = 0
    node_command: list[str] = field(default_factory=list)
    lost_reason: str = ""
    node_stats: dict[str, str] = field(default_factory=dict)
    memory_mb: list[tuple[float, float]] = field(default_factory=list)

    def latency_ms(self) -> list[float | None]:
        """Result arrival - send time per frame, in ms (None = no result)."""
        return [None if (s is None or r is None) else (r - s) * 1000.0
                for s, r in zip(self.send_s, self.recv_s)]


@dataclass
class ReplaySetup:
    """What was replayed and how: the facts the report shows next to the figures."""

    bag: str
    topic: str
    msgtype: str
    seq: str
    mode: str  # "lockstep" or "rate Rx"
    frames_in_bag: int
    device: str = "(node default)"


@dataclass
class BagEvalResult:
    results_file: Path
    stats: ReplayStats
    metrics: dict | None = None
    metrics_file: Path | None = None
    report: Path | None = None


def frame_numbers(stamps_ns: Sequence[int], stamp_to_frame: dict[int, int] | None) -> list[int]:
    """KITTI frame number of each sent frame: from the bag's frames.csv when it names every
    stamp, else the position in the bag."""
    if stamp_to_frame and all(s in stamp_to_frame for s in stamps_ns):
        return [stamp_to_frame[s] for s in stamps_ns]
    return list(range(len(stamps_ns)))


def weights_identity(node_stats: dict[str, str]) -> tuple[str, str | None]:
    """(checkpoint path, SHA-256 of its bytes) of the weights the node loaded, from its
    /diagnostics ("checkpoint"; "weights_sha256" when the node reports it); the hash is computed
    here otherwise, None when the file is not readable from this process."""
    from stemseg_core.checkpoint import file_sha256

    path = node_stats.get("checkpoint", "")
    sha = node_stats.get("weights_sha256") or None
    if sha is None and path:
        try:
            sha = file_sha256(path)
        except OSError as e:
            log.warning("cannot hash the node's checkpoint %s: %s", path, e)
    return path, sha


def replay_stats(setup: ReplaySetup, outcome: ReplayOutcome,
                 numbers: Sequence[int]) -> ReplayStats:
    """The report's per-frame figures and run facts."""
    checkpoint, sha = weights_identity(outcome.node_stats)
    extra: dict[str, object] = {
        "sequence": setup.seq,
        "checkpoint": checkpoint or "(not reported by the node)",
        "weights SHA-256": sha or "(unknown)",
        "device": outcome.node_stats.get("device") or setup.device,
        "backend": outcome.node_stats.get("backend") or "(not reported by the node)",
        "unmatched results": outcome.unmatched,
        "duplicate results": outcome.duplicates,
    }
    if outcome.lost_reason:
        extra["stopped early"] = outcome.lost_reason
    ns = outcome.node_stats
    if ns:  # the node's own counters (last /diagnostics): where lost frames were dropped
        extra["node (last /diagnostics)"] = (
            f"frames_in {ns.get('frames_in', '?')}, frames_out {ns.get('frames_out', '?')}, "
            f"skipped (max_input_rate) {ns.get('frames_skipped', '0')}, "
            f"dropped (queue full) {ns.get('dropped_frames', '?')}, "
            f"not convertible {ns.get('conversion_errors', '?')}, "
            f"model time per clip {ns.get('model_time_per_clip_s', '?')} s")
    return ReplayStats(setup.bag, setup.topic, setup.msgtype, setup.mode, setup.frames_in_bag,
                       list(outcome.send_s), outcome.latency_ms(), list(numbers), outcome.wall_s,
                       list(outcome.node_command), extra=extra,
                       memory_mb=list(outcome.memory_mb))


def score_replay(out: str | Path, setup: ReplaySetup, outcome: ReplayOutcome,
                 stamp_to_frame: dict[int, int] | None = None,
                 gt: str | Path | None = None) -> BagEvalResult:
    """Write ``<out>/<seq>.txt`` (KITTI MOTS, every published instance) and, with ``gt``,
    score it with TrackEval into ``metrics.json``. Raises EvaluationError / ValueError from the
    scorer (the message names the file); ValueError, before anything is written, when the
    sequence name is not a plain file name (``../../x``)."""
    from stemseg_core.data.safe_names import child_path
    from stemseg_core.evaluation.kitti_results import write_kitti_mots
    from stemseg_core.evaluation.report import write_metrics_json
    from stemseg_core.evaluation.trackeval_kitti import evaluate_kitti_mots

    # the name comes from --seq or the bag's frames.csv: nothing may land outside ``out``
    txt = child_path(out, setup.seq, "sequence name", ".txt",
                     source="--seq, the bag's frames.csv or the bag's name")
    out = Path(out)
    numbers = frame_numbers(outcome.stamps_ns, stamp_to_frame)
    received = [r for r in outcome.results if r is not None]
    result = BagEvalResult(write_kitti_mots(txt, received, numbers),
                           replay_stats(setup, outcome, numbers))
    if gt is not None:
        result.metrics = evaluate_kitti_mots(gt, out, sequences=[setup.seq])
        result.metrics_file = write_metrics_json(result.metrics, out / "metrics.json")
    return result


def overlays_from_bag(bag: str | Path, topic: str, results: Sequence[FrameResult | None],
                      max_tiles: int = CONTACT_SHEET_TILES) -> list[np.ndarray]:
    """BGR overlays of the node's masks on up to ``max_tiles`` evenly spaced received frames,
    read back from the bag (``results[i]`` belongs to the bag's i-th image)."""
    from stemseg_core.data.rosbag_io import BagImageReader, to_rgb8
    from stemseg_core.visualize import draw_overlay

    received = [i for i, r in enumerate(results) if r is not None]
    if not received or max_tiles <= 0:
        return []
    picks = sorted({received[int(round(k))]
                    for k in np.linspace(0, len(received) - 1, min(max_tiles, len(received)))})
    wanted = set(picks)
    overlays = []
    with BagImageReader(bag, topic) as reader:
        for frame in reader:
            if frame.index in wanted:
                overlays.append(draw_overlay(to_rgb8(frame.decode()),
                                             results[frame.index].instances))
            if frame.index >= picks[-1]:
                break
    return overlays


def write_bag_eval_report(out: str | Path, result: BagEvalResult,
                          overlays_bgr: Sequence[np.ndarray] = (),
                          record_bag: str | Path | None = None) -> Path:
    """report.md, latency/memory plots, contact sheet and replay.json (see :mod:`.bag_report`)."""
    result.report = write_report(out, result.stats, result.metrics, overlays_bgr,
                                 results_file=result.results_file,
                                 metrics_file=result.metrics_file, record_bag=record_bag)
    return result.report
