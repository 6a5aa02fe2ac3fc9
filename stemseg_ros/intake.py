"""The image callback's work: convert, skip evenly to ``max_input_rate``, check the region of
interest and the training geometry, enqueue for the worker. Nothing else runs in the callback.

Images larger than ``max_image_pixels`` are refused by the codec before anything is allocated
(compressed ones by their header), counted (``frames_too_large``) and logged. Where the model
input is smaller than the camera image (``input.min_side``/``max_side``) and no ``input_roi`` is
set, a JPEG is decoded at the smallest DCT scale (1/2, 1/4, 1/8) that still covers the model
input; the frame remembers the camera's size and the results are mapped back to it."""
from __future__ import annotations

import time
from typing import Any

from sensor_msgs.msg import CompressedImage

from stemseg_core.data import image_codec as codec
from stemseg_core.inference.preprocess import resized_size
from stemseg_core.inference.stream_policy import FrameSkipper, training_geometry_warning
from stemseg_ros import conversions
from stemseg_ros.frame_queue import FlushRequest, Frame, FrameQueue
from stemseg_ros.guard import log_limited, reason
from stemseg_ros.worker_stats import Stats

#: Seconds between repeats of the same warning (drops, conversion errors).
THROTTLE_SEC = 5.0
#: max_input_rate auto, once the worker falls behind: this share of the rate it sustains (time
#: per frame measured), so that its queue drains.
AUTO_RATE_SHARE = 0.8


class Intake:
    """Converts and enqueues input images (one instance per node; reset by `start`)."""

    def __init__(self, stats: Stats, logger: Any, share: float = 1.0) -> None:
        self.stats, self.log = stats, logger
        #: this camera's share of max_input_rate and of the worker's time (1/N of N cameras)
        self.share = float(share)
        self.params: Any = None
        self.queue: FrameQueue | None = None
        self._cfg: Any = None
        self._skipper = FrameSkipper()
        self._prev_stamp: int | None = None
        self._geometry_checked = False

    def start(self, params: Any, queue: FrameQueue, model_cfg: Any) -> None:
        self.params, self.queue, self._cfg = params, queue, model_cfg
        self._skipper = FrameSkipper()
        self._prev_stamp, self._geometry_checked = None, False

    def stop(self) -> int:
        """Stop enqueueing; returns how many waiting frames were discarded (counted dropped)."""
        queue, self.queue = self.queue, None
        if queue is None:
            return 0
        discarded = 0
        for item in queue.clear():
            if isinstance(item, FlushRequest):
                item.finish()
            else:
                discarded += 1
        self.stats.add(dropped=discarded)
        return discarded

    def rate(self) -> float:
        """Frames per second kept now (0 = all). Auto keeps every frame while the worker keeps
        up, and AUTO_RATE_SHARE of its measured rate while it is behind: more than half of the
        queue waiting (a clip's frames arrive while the clip before runs, so up to half is
        normal) after a clip has run. One of N cameras gets its `share` (1/N) of either: of
        the set rate, or of the worker's rate (the cameras take turns on it)."""
        r = self.params.max_input_rate if self.params is not None else -1.0
        if r == 0:
            cost = self.stats.frame_cost()
            queue = self.queue
            behind = queue is not None and len(queue) > queue.capacity // 2
            return AUTO_RATE_SHARE * self.share / cost if cost > 0 and behind else 0.0
        return max(r * self.share, 0.0)

    def info(self) -> dict[str, str]:
        return {"max_input_rate_hz": f"{self.rate():.2f}" if self.rate() else "all frames"}

    def on_image(self, msg: Any) -> None:
        """The subscription's callback: nothing a publisher sends makes it raise."""
        try:
            self._take(msg)
        except Exception as e:  # noqa: BLE001 - a peer's message never ends the node
            log_limited(self.log, "error", "image callback", f"image callback failed, frame "
                        f"dropped: {reason(e)}")

    def _decode(self, msg: Any) -> tuple[Any, tuple[int, int] | None]:
        """(H, W, 3) RGB of `msg` and the camera image's (H, W) where it was decoded smaller
        (None: full size). Raises ImageTooLarge over max_image_pixels, ImageDecodeError."""
        limit = self.params.max_image_pixels if self.params is not None else None
        if not isinstance(msg, CompressedImage):
            return conversions.image_to_rgb(msg, max_pixels=limit), None
        size = self._reduce_from(msg)
        rgb = conversions.compressed_to_rgb(msg, max_pixels=limit, min_size=size and size[1])
        return rgb, (size[0] if size and rgb.shape[:2] != size[0] else None)

    def _reduce_from(self, msg: Any) -> tuple[tuple[int, int], tuple[int, int]] | None:
        """(camera size, model input size) when the model input is smaller than the camera
        image and a reduced decode applies (no input_roi); else None."""
        inp = getattr(self._cfg, "input", None)
        if inp is None or not (inp.min_side or inp.max_side) or self.params.input_roi:
            return None
        full = codec.compressed_size(msg.format, msg.data)
        if full is None:
            return None
        model = resized_size(full[0], full[1], inp.min_side, inp.max_side)
        return (full, model) if model[0] < full[0] and model[1] < full[1] else None

    def _take(self, msg: Any) -> None:
        t0 = time.perf_counter()
        self.stats.add(frames_in=1)
        try:
            rgb, full_size = self._decode(msg)
            roi = self._roi(rgb.shape[0], rgb.shape[1])
        except codec.ImageTooLarge as e:
            self.stats.add(frames_too_large=1)
            log_limited(self.log, "warning", "too large", f"dropped a frame over max_image_pixels "
                        f"({self.stats.frames_too_large} so far): {e}")
            return
        except Exception as e:  # noqa: BLE001 - a bad frame must never stop the node
            self.stats.add(convert_errors=1)
            self.log.warning(f"dropped a frame that cannot be used "
                             f"({self.stats.convert_errors} so far): {e}",
                             throttle_duration_sec=THROTTLE_SEC)
            return
        stamp = conversions.stamp_ns(msg.header)
        prev, self._prev_stamp = self._prev_stamp, stamp
        queue = self.queue
        if queue is None:
            return
        if not self._skipper.keep(stamp, self.rate()):
            self.stats.add(frames_skipped=1)
            return
        if not self._geometry_checked:
            self._geometry_checked = True
            h, w = (roi[3], roi[2]) if roi else (full_size or rgb.shape[:2])
            warning = training_geometry_warning(self._cfg, h, w)
            if warning:
                self.log.warning(warning)
        dropped = queue.put_frame(Frame(rgb, msg.header, stamp, prev, time.monotonic(), roi,
                                        full_size))
        self.stats.add(convert_sec=time.perf_counter() - t0, dropped=dropped)
        if dropped:
            self.log.warning(
                f"input queue full ({queue.capacity} frames): dropped the oldest frame, "
                f"{self.stats.dropped} so far; the model is slower than the camera (set "
                f"max_input_rate, raise max_queue_clips, lower the resolution or use a GPU)",
                throttle_duration_sec=THROTTLE_SEC)

    def _roi(self, height: int, width: int) -> tuple[int, int, int, int] | None:
        roi = self.params.input_roi if self.params is not None else ()
        if not roi:
            return None
        x, y, w, h = roi
        if x + w > width or y + h > height:
            raise ValueError(f"input_roi {list(roi)} does not fit the {width}x{height} image "
                             f"(x + width <= {width}, y + height <= {height} needed)")
        return (x, y, w, h)
