"""A stream's frames on their way into clips: the tracker's input side.

:class:`ClipInput` checks each pushed image against the stream's size, fixes the stream's
geometry (model input size, output samplers) on its first frame, turns the image into the model
input (``preprocess.prepare_frame``: (3, Hp, Wp) float32) and buffers it in the
:class:`ClipSchedule`. Once ``clip_length`` frames are held a clip is *due*: ``clip()`` gives
its frames and how many of them the last clip had, ``network_input()`` the stacked clip
(1, L, 3, Hp, Wp). The tracker (tracker.py) runs the network and the post-processing on it,
alone (``push``) or with other streams' due clips in one network call (tracker_group.py).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from stemseg_core.inference.clip_schedule import BufferedFrame, ClipSchedule
from stemseg_core.inference.postprocess import Samplers, refinement_image
from stemseg_core.inference.preprocess import Geometry, check_image, geometry, prepare_frame


class ImageSizeChangedError(ValueError):
    """The image size changed mid-stream; call reset() (after flush() to keep buffered frames)."""


class ClipInput:
    """The buffered, preprocessed frames of one stream (``cfg``: the tracker's Config)."""

    def __init__(self, cfg: Any, clip_length: int) -> None:
        self.cfg = cfg
        self.clip_length = int(clip_length)
        self.reset()

    def reset(self) -> None:
        """Forget the frames, the geometry and the count (a new stream)."""
        self.schedule = ClipSchedule()
        self.geo: Geometry | None = None
        self.samplers: Samplers | None = None  # output size and samplers of this stream
        self.frames_pushed = 0

    @property
    def due(self) -> bool:
        """Whether a full clip is buffered (push runs it)."""
        return len(self.schedule) >= self.clip_length

    def prepare(self, image: np.ndarray, geo: Geometry) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> (3, Hp, Wp) float32 model input."""
        inp = self.cfg.input
        return prepare_frame(image, geo, self.cfg.model.pixel_mean,
                             channel_order=inp.channel_order, antialias=inp.antialias)

    def prepare_images(self, images: list[np.ndarray]) -> np.ndarray:
        """Same-sized (H, W, 3) uint8 RGB images -> (L, 3, Hp, Wp) float32 model input."""
        inp = self.cfg.input
        geo = geometry(*images[0].shape[:2], inp.min_side, inp.max_side)
        return np.stack([self.prepare(im, geo) for im in images])

    def add(self, image: np.ndarray, stamp: Any, size: tuple[int, int] | None,
            refine: bool) -> bool:
        """Buffer one frame (``size``: the results' (H, W) when not the image's own; ``refine``:
        keep the image for mask refinement); True when a clip is now due. Raises
        ImageSizeChangedError when the image or results size differs from the stream's."""
        image = check_image(image)
        h, w = int(image.shape[0]), int(image.shape[1])
        out = (int(size[0]), int(size[1])) if size else (h, w)
        if self.geo is None or self.samplers is None:
            inp = self.cfg.input
            self.geo = geometry(h, w, inp.min_side, inp.max_side)
            self.samplers = Samplers(self.geo, out)
        elif self.geo.image_size != (h, w) or self.samplers.out.image_size != out:
            old = self.samplers.out.image_size
            raise ImageSizeChangedError(f"image size changed from {self.geo.image_size[0]}x"
                             f"{self.geo.image_size[1]} (results {old[0]}x{old[1]}) to {h}x{w} "
                             f"(results {out[0]}x{out[1]}) mid-stream; call reset() (after "
                             f"flush() if the buffered frames are wanted) first")
        self.schedule.add(BufferedFrame(self.prepare(image, self.geo), stamp, self.frames_pushed,
                                        refinement_image(image, self.geo) if refine else None))
        self.frames_pushed += 1
        return self.due

    def clip(self) -> tuple[list[BufferedFrame], int]:
        """The buffered clip's frames and how many of them (the first) the last clip had."""
        return self.schedule.clip()

    def network_input(self) -> np.ndarray:
        """The buffered clip as the network takes it: (1, L, 3, Hp, Wp) float32."""
        return np.stack([f.model_input for f in self.schedule.clip()[0]])[None]


__all__ = ["ClipInput", "ImageSizeChangedError"]
