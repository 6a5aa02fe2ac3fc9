"""Tracking one sequence of image files into a KITTI MOTS result file (``stemseg infer``,
``stemseg accuracy`` and the robustness benchmark), optionally with overlay PNGs / an mp4."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from stemseg_core.data.kitti_layout import frame_number
from stemseg_core.data.safe_names import child_path


class _OverlaySink:
    """Draws final frames into overlay PNGs and/or an mp4, keeping images until they are final."""

    def __init__(self, out: Path, seq: str, numbers: list[int], pngs: bool, video: bool,
                 fps: float):
        self.dir = child_path(out / "overlays", seq, "sequence name")
        self.video_path = child_path(out / "overlays", seq, "sequence name", ".mp4")
        self.numbers, self.pngs, self.video, self.fps = numbers, pngs, video, fps
        self.enabled = pngs or video
        self.images: dict[int, object] = {}
        self.writer = None
        if pngs:
            self.dir.mkdir(parents=True, exist_ok=True)

    def keep(self, index: int, rgb) -> None:
        if self.enabled:
            self.images[index] = rgb

    def draw(self, fr) -> None:
        import cv2

        from stemseg_core.visualize import draw_overlay

        img = self.images.pop(fr.index, None)
        if img is None:
            return
        vis = draw_overlay(img, fr.instances)
        if self.pngs:
            cv2.imwrite(str(self.dir / f"{self.numbers[fr.index]:06d}.png"), vis)
        if self.video:
            if self.writer is None:
                self.video_path.parent.mkdir(parents=True, exist_ok=True)
                self.writer = cv2.VideoWriter(str(self.video_path),
                                              cv2.VideoWriter_fourcc(*"mp4v"), self.fps,
                                              (vis.shape[1], vis.shape[0]))
            self.writer.write(vis)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        self.images.clear()


def run_sequence(tracker, frames: list[Path], out: Path, seq: str, overlays: bool = False,
                 video: bool = False, fps: float = 10.0, min_area=None,
                 min_track_length=None,
                 show_progress: bool = True) -> tuple[Path, list, float]:
    """Track one sequence from a fresh tracker state; returns (txt path, results, tracker s)."""
    import cv2
    from tqdm import tqdm

    from stemseg_core.evaluation.kitti_results import write_kitti_mots

    numbers = [frame_number(p, i) for i, p in enumerate(frames)]
    tracker.reset()
    sink = _OverlaySink(out, seq, numbers, overlays, video, fps)
    results = []
    track_time = 0.0
    try:
        with tqdm(total=len(frames), desc=f"seq {seq}", unit="frame", file=sys.stderr,
                  disable=not show_progress) as bar:
            for i, path in enumerate(frames):
                bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if bgr is None:
                    raise FileNotFoundError(f"cannot read image {path}")
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                sink.keep(i, rgb)
                t0 = time.perf_counter()
                done = tracker.push(rgb, numbers[i])
                track_time += time.perf_counter() - t0
                for fr in done:
                    results.append(fr)
                    sink.draw(fr)
                bar.update(1)
            t0 = time.perf_counter()
            done = tracker.flush()
            track_time += time.perf_counter() - t0
            for fr in done:
                results.append(fr)
                sink.draw(fr)
    finally:
        sink.close()
    results.sort(key=lambda r: r.index)
    txt = write_kitti_mots(child_path(out, seq, "sequence name", ".txt"), results,
                           frame_numbers=numbers,
                           min_area=min_area, min_track_length=min_track_length)
    return txt, results, track_time


__all__ = ["run_sequence"]
