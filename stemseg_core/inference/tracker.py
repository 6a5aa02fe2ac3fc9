"""Streaming tracker: frames in, final per-frame tracked instances out (buffer -> model ->
clustering -> stitching). The ROS node, `stemseg infer` and the bag evaluation all use this class.

Clip schedule: a clip of T = cfg.model.clip_length frames runs once T frames are buffered, then
every S = T - Tc new frames (Tc = cfg.inference.clip_overlap). Each frame is output from the first
clip that contains it, i.e. as soon as that clip has run: the first clip outputs its T frames,
every later clip its S new frames; the Tc shared frames only serve to link track IDs (see
stitching.py). A frame therefore waits at most S - 1 frames plus one clip's processing time.
``flush()`` runs the frames not yet output (plus the kept overlap frames, for linking) as one
shorter clip.

Post-processing per clip (inference/postprocess.py) runs on the model's output grid or inside
each instance's box, never on whole-image label maps: drop instances of classes not in
``classes``; upsample each instance's mask inside its box (bilinear, p > 0.5, exactly as a
full-frame upsampling: output_masks.py); the masks of one frame never overlap; drop instances left
without pixels; link IDs (IoUs and boxes from the boxed masks); then leave an instance out of a
frame's output where its area there is below ``min_mask_area``, or below its class's entry in
``min_mask_area_per_class`` where it has one (after linking, so a briefly small or distant object
keeps its track ID: measured on a held-out synthetic set this scored car HOTA +0.7 over dropping
before linking).
With ``inference.mask_refinement_radius`` > 0 (not in the paper), the output masks of a frame
that pass the area filter are then refined with a colour-guided filter against that frame's
image (inference/mask_refinement.py), at most postprocess.REFINE_SCALE x the model input's
size (the refined soft masks are upsampled); only the output is refined, linking uses the network's
masks. The area filter judges the network's mask, before refinement: a small object whose
refined mask is below the minimum is still published, refined (the filter was tuned on the
network's masks; dropping such detections cost 5 pedestrian HOTA on held-out drives, issue 39).
"""
from __future__ import annotations

import copy
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from stemseg_core.config import LIVE_THRESHOLDS, Config, check_live_threshold, resolve_device
from stemseg_core.config.loading import Overrides
from stemseg_core.inference.clip_input import ClipInput, ImageSizeChangedError  # noqa: F401
from stemseg_core.inference.clustering import cluster_clip_labels, softmax
from stemseg_core.inference.flip_average import predict_with_flip
from stemseg_core.inference.heap import trim_heap
from stemseg_core.inference.postprocess import clip_masks, frame_results
from stemseg_core.inference.preprocess import Geometry, check_image
from stemseg_core.inference.stitching import ClipStitcher
from stemseg_core.inference.stream_policy import MAX_EXTRA_SHAPES
from stemseg_core.inference.types import FrameResult

if TYPE_CHECKING:
    from torch import nn


#: Backend runners kept (one per model input shape): the training geometry plus the
#: stream_policy.MAX_EXTRA_SHAPES a stream session may add, so alternating shapes never rebuild.
MAX_RUNNERS = 1 + MAX_EXTRA_SHAPES

#: Names of the live thresholds (declared with their ranges in config.LIVE_THRESHOLDS).
THRESHOLDS = tuple(spec.name for spec in LIVE_THRESHOLDS)


class StreamingTracker:
    """Online (near-online) STEm-Seg tracking of one image stream.

    ``push(image, stamp)`` takes one (H, W, 3) uint8 RGB frame and returns the frames that became
    final (often none), in order, each exactly once; ``flush()`` finalises everything buffered;
    ``reset()`` starts a new stream (track IDs restart at 1). Thresholds are plain attributes
    (names in ``THRESHOLDS``) and may be changed between pushes, or with ``set_thresholds``.
    Not thread-safe: call push/flush/reset from one thread. Everything after the backend's
    runner (backends/runner.py) is numpy: this module imports no torch. The frames' way into
    clips is clip_input.py; ``add_frame``/``due_clip``/``finish_clip`` split push for
    callers that run several streams' clips in one network call (tracker_group.py).
    """

    def __init__(self, model: nn.Module, cfg: Config, device: str = "auto") -> None:
        if device == "auto":
            device = cfg.inference.device
        #: the device the network runs on ("cpu", "cuda", "cuda:1"); the data path is numpy
        self.device = resolve_device(device)
        self.cfg = cfg
        #: SHA-256 of the checkpoint file the weights came from (None: built in memory)
        self.weights_sha256: str | None = None
        self.model = model.to(self.device).eval()
        self.clip_length = int(cfg.model.clip_length)
        self.clip_overlap = int(cfg.inference.clip_overlap)
        if not 0 <= self.clip_overlap < self.clip_length:
            raise ValueError(f"clip_overlap must be in 0..{self.clip_length - 1}, got "
                             f"{self.clip_overlap}")
        self.class_names = list(cfg.model.class_names)
        inf = cfg.inference
        self.seediness_threshold = float(inf.seediness_threshold)
        #: class id -> seediness threshold overriding seediness_threshold (by class name in cfg).
        self.seediness_threshold_by_id = self._by_class_id(inf.seediness_threshold_per_class,
                                                           float)
        self.foreground_threshold = float(inf.foreground_threshold)
        self.mask_threshold = float(inf.mask_threshold)
        self.max_instances = int(inf.max_instances)
        self.center_refinement_steps = int(inf.center_refinement_steps)
        self.min_mask_area = int(inf.min_mask_area)
        #: class id -> min area overriding min_mask_area (from cfg.inference, by class name).
        self.min_mask_area_by_id = self._by_class_id(inf.min_mask_area_per_class, int)
        self.stitch_min_iou = float(inf.stitch_min_iou)
        self.classes = list(inf.classes)
        self.flip_test = bool(inf.flip_test)
        self.mask_refinement_radius = int(inf.mask_refinement_radius)
        self.mask_refinement_eps = float(inf.mask_refinement_eps)
        #: class id -> refinement radius overriding mask_refinement_radius
        self.mask_refinement_radius_by_id = self._by_class_id(
            inf.mask_refinement_radius_per_class, int)
        #: class ids whose masks are refined (None = all)
        self.mask_refinement_ids = ({self.class_names.index(c)
                                     for c in inf.mask_refinement_classes} or None)
        #: embedding dims holding the x coordinate (negated when a mirrored clip is flipped back)
        self.x_dims = [i for i, c in enumerate(cfg.model.embedding.mixing) if c == "x"]
        self._stitcher = ClipStitcher(self.clip_overlap, self.stitch_min_iou,
                                      relink_max_gap=int(inf.relink_max_gap),
                                      relink_max_distance=float(inf.relink_max_distance),
                                      relink_classes={self.class_names.index(c)
                                                      for c in inf.relink_classes} or None)
        self.last_timings: dict[str, float] = {}
        #: backend runners (stemseg_core/backends) by frame shape (3, Hp, Wp), built on first
        #: use, least recently used first; at most MAX_RUNNERS (a stream session's shape budget)
        self._runners: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        #: the runner of the last clip and its frame shape
        self._runner: Any = None
        self._runner_shape: tuple[int, ...] | None = None
        #: whether other streams' trackers share the runners (sibling()): a reset then leaves
        #: their kept features alone (keyed by frame content, bounded by the runner's capacity)
        self._shares_runners = False
        #: frames pushed and never returned, since construction: a failed clip's, or those
        #: buffered at a reset (the node counts them as dropped)
        self.frames_dropped = 0
        self.reset()

    def _by_class_id(self, by_name: dict[str, Any], cast: Callable[[Any], Any]) -> dict[int, Any]:
        """{class name: value} from the config -> {class id: cast(value)}."""
        return {self.class_names.index(name): cast(v) for name, v in by_name.items()}

    # ------------------------------------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto",
                        overrides: Overrides | None = None, *, allow_pickle: bool = False,
                        sha256: str | None = None,
                        load_model: bool | None = None) -> StreamingTracker:
        """Load config + weights from a `stemseg train` checkpoint (overrides: `key=value`
        strings or a typed {"section.key": value} mapping, config/loading.py).

        Read without running code (see ``stemseg_core.checkpoint.load_checkpoint``;
        ``allow_pickle`` for a trusted file that needs more); ``sha256`` pins the file's hash.
        With the openvino or onnxruntime backend no torch model is loaded where the engine
        cache has the checkpoint's graphs (``load_model=True`` loads it anyway; see
        inference/runtime_loading.py). Raises ``CheckpointError``. The file's hash is in
        ``tracker.weights_sha256``.
        """
        from stemseg_core.inference.runtime_loading import load_tracker

        return load_tracker(cls, path, device, overrides, allow_pickle=allow_pickle,
                            sha256=sha256, load_model=load_model)

    def sibling(self) -> StreamingTracker:
        """A tracker of its own stream sharing the model, config and runners (tracker_group)."""
        twin = copy.copy(self)  # own buffer and stitcher after reset(); _runners is shared
        twin._stitcher = copy.deepcopy(self._stitcher)
        self._shares_runners = twin._shares_runners = True
        del twin._input  # self's buffer: not the twin's to drop
        twin.reset()
        twin.frames_dropped = 0
        return twin

    @property
    def seediness_threshold_per_class(self) -> dict[str, float]:
        """{class name: seediness threshold} overriding seediness_threshold."""
        return {self.class_names[i]: v for i, v in self.seediness_threshold_by_id.items()}

    @seediness_threshold_per_class.setter
    def seediness_threshold_per_class(self, by_name: dict[str, float]) -> None:
        self.seediness_threshold_by_id = self._by_class_id(by_name, float)

    @property
    def min_mask_area_per_class(self) -> dict[str, int]:
        """{class name: minimum area} overriding min_mask_area."""
        return {self.class_names[i]: v for i, v in self.min_mask_area_by_id.items()}

    @min_mask_area_per_class.setter
    def min_mask_area_per_class(self, by_name: dict[str, int]) -> None:
        self.min_mask_area_by_id = self._by_class_id(by_name, int)

    def set_thresholds(self, **kw: Any) -> None:
        """Change live thresholds (names, kinds and ranges: config.LIVE_THRESHOLDS), all or
        nothing: set_thresholds(seediness_threshold=0.8, classes=["car"],
        min_mask_area_per_class={"pedestrian": 80}). A per-class map replaces the previous one.
        Raises ConfigError (a ValueError) naming the bad value."""
        checked = {k: check_live_threshold(k, v, self.class_names,
                                           semantic_head=self.cfg.model.semantic_head)
                   for k, v in kw.items()}
        for k, v in checked.items():
            setattr(self, k, v)

    def reset(self, keep_ids: bool = False) -> None:
        """Drop all buffered frames and state; the next push starts a new stream. Track IDs
        restart at 1, or with ``keep_ids`` go on from the last one (never reused in a stream)."""
        next_id = self._stitcher.next_id if keep_ids else 1
        old = getattr(self, "_input", None)
        self.frames_dropped += old.schedule.new if old is not None else 0
        self._input = ClipInput(self.cfg, self.clip_length)  # buffer, geometry (clip_input.py)
        self._stitcher.reset(next_id)
        if not self._shares_runners:
            for runner in self._runners.values():
                if runner is not None:
                    runner.reset()  # forget (and free) the kept per-frame features

    @property
    def frames_pushed(self) -> int:
        """Frames pushed since the last reset."""
        return self._input.frames_pushed

    @property
    def pending(self) -> int:
        """Frames pushed but not returned yet."""
        return self._input.schedule.new

    @property
    def buffered(self) -> int:
        """Frames held: the pending ones plus the overlap kept from the last clip."""
        return len(self._input.schedule)

    @property
    def input_geometry(self) -> Geometry | None:
        """How this stream's image size maps to the model input (``padded_size`` = (Hp, Wp));
        None until the first frame after a reset."""
        return self._input.geo

    # ------------------------------------------------------------------------------------------
    def push(self, image: np.ndarray, stamp: Any = None,
             size: tuple[int, int] | None = None) -> list[FrameResult]:
        """Add one frame; returns the FrameResults that became final (possibly none).

        ``size``: (H, W) of the results' masks when not the image's own (the camera's size of
        a frame decoded or resized smaller); the masks are upsampled once, per instance in its
        box. It must stay the same within a stream, as the image size must."""
        if self.add_frame(image, stamp, size):
            return self._run_clip()
        return []

    def add_frame(self, image: np.ndarray, stamp: Any = None,
                  size: tuple[int, int] | None = None) -> bool:
        """Buffer one frame as push does, without running its clip; True when a clip is due
        (then run it: ``finish_clip`` with its outputs from ``due_clip``, or ``flush``)."""
        return self._input.add(image, stamp, size, self.mask_refinement_radius > 0)

    def flush(self) -> list[FrameResult]:
        """Finalise all frames not returned yet (runs one shorter clip); the stream may go on."""
        if self.pending == 0:
            return []
        return self._run_clip()

    def predict_clip(self, frames: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """The network's outputs for one clip, without clustering or tracking state.

        ``frames``: (H, W, 3) uint8 RGB images of one size (any number; the model's clip length
        is what it was trained for). They go through this tracker's own preprocessing and
        network path (``_forward``, flip test included), as clips in push/flush do. Returns numpy
        float32 arrays at the network's output resolution (h, w) (stride 4 or 2 of the padded
        input): ``embeddings`` (E, T, h, w) as the clustering uses them, ``precisions``
        (E, T, h, w), ``seediness`` (T, h, w) in [0, 1], ``semantic`` (C, T, h, w) class
        probabilities (softmax) where the model has a semantic head, ``foreground`` (T, h, w)
        probabilities where it has a foreground channel. Buffered frames are not touched.
        """
        if len(frames) == 0:
            raise ValueError("predict_clip needs at least one frame, got none")
        images = [check_image(f) for f in frames]
        sizes = {im.shape[:2] for im in images}
        if len(sizes) != 1:
            raise ValueError(f"predict_clip: all frames must have one size, got {sorted(sizes)}")
        out = self._forward(self._input.prepare_images(images)[None])
        result = {k: out[k][0] for k in ("embeddings", "precisions", "seediness")}
        if out.get("semantic") is not None:
            result["semantic"] = softmax(out["semantic"][0].astype(np.float32), axis=0)
        if out.get("foreground") is not None:
            result["foreground"] = out["foreground"][0]
        return {k: np.asarray(v, np.float32) for k, v in result.items()}

    def prepare_frames(self, images: list[np.ndarray]) -> np.ndarray:
        """Same-sized (H, W, 3) uint8 RGB images -> (L, 3, Hp, Wp) float32 model input, resized
        and padded as push() prepares a frame (e.g. INT8 calibration clips)."""
        return self._input.prepare_images(images)

    @property
    def runner(self) -> Any:
        """The backend runner (backends/runner.py) of the last clip's frame shape, with its
        ``backend`` (None where the eager model runs itself); None before the first clip."""
        return self._runner

    # ------------------------------------------------------------------------------------------
    def _prepare(self, image: np.ndarray, geo: Geometry) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> (3, Hp, Wp) float32 model input."""
        return self._input.prepare(image, geo)

    def _forward(self, clip: np.ndarray) -> dict[str, np.ndarray]:
        """The one network call of the tracker: clip (1, L, 3, Hp, Wp) float32 -> the model's
        outputs (numpy float32, as ``STEmSeg.forward`` in eval mode), flip test included.
        Runs on the backend of ``cfg.inference.backend`` (stemseg_core/backends), which encodes
        each frame once and reuses its features in the overlapping clips; push/flush and
        predict_clip all come through here."""
        net = self.runner_for(tuple(clip.shape[2:]))
        if self.flip_test:
            return predict_with_flip(net, clip, self.x_dims)
        return net(clip)

    def runner_for(self, frame_shape: tuple[int, ...]) -> Any:
        """The runner (clip -> outputs) for frames of (3, Hp, Wp): the backend's NetworkRunner,
        built (or loaded from the engine cache) for this shape on first use; an EagerRunner of
        the model where no backend applies (not an STEmSeg network, under the torch backend).
        It becomes ``runner``; streams of a TrackerGroup share them."""
        if frame_shape in self._runners:
            self._runners.move_to_end(frame_shape)
        else:
            from stemseg_core.backends.runner import build_runner

            self._runners[frame_shape] = build_runner(self.model, self.cfg.inference,
                                                      self.device, frame_shape, self.clip_length)
            while len(self._runners) > MAX_RUNNERS:
                self._runners.popitem(last=False)  # its engines are freed with it
        self._runner, self._runner_shape = self._runners[frame_shape], frame_shape
        return self._runner

    @property
    def runner_shapes(self) -> list[tuple[int, ...]]:
        """Frame shapes (3, Hp, Wp) with a built runner, least recently used first."""
        return list(self._runners)

    @property
    def backend_label(self) -> str:
        """What runs the network, e.g. "openvino bf16"; "torch fp32 (eager model)" where no
        backend applies; the configured backend until the first clip has built it."""
        b = getattr(self._runner, "backend", None)
        if b is not None:
            return f"{b.name} {b.precision}"
        inf = self.cfg.inference
        if self._runner_shape is not None:
            return "torch fp32 (eager model)"
        return f"{inf.backend} {inf.precision} (not built yet)"

    def warmup(self, height: int | None = None, width: int | None = None,
               every_length: bool = False) -> float:
        """Build or load the backend's artifacts and run one clip of random frames of
        height x width (default: the config's data size); returns its seconds. With
        ``every_length`` also the decoders of clips of 1..T-1 frames (what flush() may run)
        and the encoders of 1..T new frames (a reset, a flush), so that no graph is built
        mid-stream (the node: a build there stalls the worker and leaves memory and threads
        behind; openvino compiles a flush's decoder when it runs, backends/openvino). The
        stream's state is not touched."""
        h = int(height or self.cfg.data.height)
        w = int(width or self.cfg.data.width)
        frames = [np.random.default_rng(i).integers(0, 256, (h, w, 3), dtype=np.uint8)
                  for i in range(self.clip_length)]
        t0 = time.perf_counter()
        self.predict_clip(frames)
        if self._runner is not None:
            if every_length and self._runner.backend is not None:
                for n in range(1, self.clip_length + 1):
                    self._runner.backend.prepare_decoder(n)
                    self._runner.backend.prepare_encoder(n)
            self._runner.reset()  # the random frames' features are of no later use
        trim_heap()
        return time.perf_counter() - t0

    def due_clip(self) -> np.ndarray | None:
        """The network input (1, L, 3, Hp, Wp) float32 of the clip that is due (``add_frame``
        returned True); None when none is."""
        return self._input.network_input() if self._input.due else None

    def finish_clip(self, out: dict[str, np.ndarray],
                    model_sec: float = 0.0) -> list[FrameResult]:
        """Run the due clip on its network outputs ``out`` (what ``_forward`` gives for
        ``due_clip()``, computed by the caller: tracker_group.py runs several streams' clips in
        one network call); ``model_sec``: its share of that call (``last_timings``). Returns
        and fails as push does."""
        return self._run_clip(out, model_sec)

    def drop_clip(self) -> None:
        """Drop the buffered frames and the track history (IDs keep counting, never reused):
        what a failing clip does, e.g. when the network call of ``finish_clip`` raised."""
        self.frames_dropped += self._input.schedule.new
        self._input.schedule.clear()
        self._stitcher.reset(self._stitcher.next_id)

    def _run_clip(self, out: dict[str, np.ndarray] | None = None,
                  model_sec: float = 0.0) -> list[FrameResult]:
        """Run one clip (the network too unless its outputs ``out`` are given); on an error
        (e.g. out of GPU memory) its frames are dropped, the track history is cleared
        (``drop_clip``) and the error is re-raised, so the stream stays consistent and the
        caller may go on pushing."""
        try:
            results = self._run_clip_unguarded(out, model_sec)
            trim_heap()  # the clip's freed temporaries back to the system (heap.py)
            return results
        except Exception:
            self.drop_clip()
            raise

    def _run_clip_unguarded(self, out: dict[str, np.ndarray] | None,
                            model_sec: float) -> list[FrameResult]:
        samplers = self._input.samplers
        assert samplers is not None
        frames, n_shared = self._input.clip()
        timings: dict[str, float] = {}

        t0 = time.perf_counter()
        if out is None:
            out = self._forward(self._input.network_input())
        else:
            t0 -= model_sec
        t1 = time.perf_counter()
        timings["model"] = t1 - t0
        semantic = out.get("semantic")
        foreground = out.get("foreground")
        clusters = cluster_clip_labels(
            out["embeddings"][0], out["precisions"][0], out["seediness"][0],
            semantic[0] if semantic is not None else None,
            seediness_threshold=self.seediness_threshold,
            foreground_threshold=self.foreground_threshold,
            mask_threshold=self.mask_threshold, max_instances=self.max_instances,
            center_refinement_steps=self.center_refinement_steps,
            seediness_threshold_by_class=self.seediness_threshold_by_id,
            foreground=foreground[0] if foreground is not None else None,
            class_vote=self.cfg.inference.class_vote)
        t2 = time.perf_counter()
        timings["clustering"] = t2 - t1
        wanted = ({self.class_names.index(c) for c in self.classes if c in self.class_names}
                  if self.classes else None)
        masks, grid, scores, class_ids = clip_masks(clusters, wanted, samplers)
        t3 = time.perf_counter()
        self._stitcher.min_iou = self.stitch_min_iou
        ids = self._stitcher.update(masks, len(scores), n_shared=n_shared, class_ids=class_ids)
        t4 = time.perf_counter()
        timings["postprocess"] = t3 - t2
        results = frame_results(self, masks, grid, scores, class_ids, ids,
                                [(f.stamp, f.index, f.refinement_image)
                                 for f in frames[n_shared:]], n_shared, samplers)
        timings["postprocess"] += time.perf_counter() - t4
        timings["stitching"] = t4 - t3
        timings["total"] = time.perf_counter() - t0
        self.last_timings = timings

        self._input.schedule.keep_overlap(self.clip_overlap)
        return results
