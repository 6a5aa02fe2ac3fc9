"""The frames between a camera's callback and the worker: :class:`Frame` (a converted input
image), :class:`FlushRequest` (finalise the partial clip, queued behind the frames) and the
bounded :class:`FrameQueue` that drops its oldest frame when full. No ROS here."""
from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Frame:
    """A converted input frame on its way through the queue and the tracker."""

    image: np.ndarray  # (H, W, 3) uint8 RGB camera image
    header: Any  # std_msgs/Header of the input message
    stamp_ns: int
    prev_stamp_ns: int | None  # stamp of the frame received before this one (kept or not)
    received: float  # time.monotonic() when the callback got it
    roi: tuple[int, int, int, int] | None = None  # (x, y, w, h) given to the model; None = all
    #: (H, W) of the camera image when `image` was decoded smaller (JPEG at a reduced scale):
    #: results are mapped back to it. None: `image` is the camera image's full size.
    full_size: tuple[int, int] | None = None

    def model_input(self) -> np.ndarray:
        """(h, w, 3) uint8 RGB: the region of interest, or the whole image."""
        if self.roi is None:
            return self.image
        x, y, w, h = self.roi
        return self.image[y:y + h, x:x + w]


@dataclass
class FlushRequest:
    """Queued behind the frames: the worker finalises the partial clip when it gets here.

    `notify` (any thread may call it) is called once `done` is set, e.g. to wake the executor
    whose service callback awaits the request."""

    done: threading.Event = field(default_factory=threading.Event)
    published: int = 0
    notify: Callable[[], None] | None = None

    def finish(self) -> None:
        self.done.set()
        if self.notify is not None:
            self.notify()


class FrameQueue:
    """Bounded FIFO of frames (and flush requests) between the callback and the worker.

    When `capacity` frames wait, `put_frame` drops the oldest waiting frame (never a flush
    request) and returns how many it dropped.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._items: deque[Any] = deque()
        self._frames = 0
        self._cond = threading.Condition()
        #: set on every new item and on wake() (the worker's, to wait on all its queues at once)
        self.bell: threading.Event | None = None

    def _ring(self) -> None:
        if self.bell is not None:
            self.bell.set()

    def __len__(self) -> int:
        with self._cond:
            return self._frames

    def put_frame(self, frame: Any) -> int:
        dropped = 0
        with self._cond:
            while self._frames >= self.capacity:
                for i, item in enumerate(self._items):
                    if not isinstance(item, FlushRequest):
                        del self._items[i]
                        break
                self._frames -= 1
                dropped += 1
            self._items.append(frame)
            self._frames += 1
            self._cond.notify()
        self._ring()
        return dropped

    def put_control(self, item: FlushRequest) -> None:
        with self._cond:
            self._items.append(item)
            self._cond.notify()
        self._ring()

    def get(self, timeout: float) -> Any | None:
        """The oldest item, or None after `timeout` seconds without one."""
        with self._cond:
            if not self._items and not self._cond.wait_for(lambda: bool(self._items), timeout):
                return None
            item = self._items.popleft()
            if not isinstance(item, FlushRequest):
                self._frames -= 1
            return item

    def clear(self) -> list[Any]:
        """Remove and return everything waiting."""
        with self._cond:
            items = list(self._items)
            self._items.clear()
            self._frames = 0
            return items

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()
        self._ring()


__all__ = ["FlushRequest", "Frame", "FrameQueue"]
