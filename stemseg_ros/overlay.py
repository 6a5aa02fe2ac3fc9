"""~/overlay drawn off the inference thread: the newest frames wait in a short queue (older ones
are left out when drawing falls behind) and one thread draws and publishes them."""
from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

#: Frames waiting to be drawn; beyond this the oldest is left out (counted in `skipped`).
QUEUE = 4


class OverlayDrawer:
    """Draws (rgb, instances, header) items with stemseg_core.visualize.draw_overlay and hands
    the bgr8 image to `publish(bgr, header)`."""

    def __init__(self, publish: Callable[[Any, Any], None], logger: Any) -> None:
        self.publish, self.log = publish, logger
        self.skipped = 0
        self._items: deque[tuple[Any, list[Any], Any]] = deque()
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="stemseg-overlay", daemon=True)
        self._thread.start()

    def submit(self, rgb: Any, instances: list[Any], header: Any) -> None:
        with self._cond:
            if len(self._items) >= QUEUE:
                self._items.popleft()
                self.skipped += 1
            self._items.append((rgb, instances, header))
            self._cond.notify()

    def idle(self, timeout: float) -> bool:
        """Wait until everything submitted is drawn; True when it was."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._items and not self._busy, timeout)

    def close(self, timeout: float = 1.0) -> None:
        with self._cond:
            self._stop = True
            self._items.clear()
            self._cond.notify_all()
        self._thread.join(timeout)

    _busy = False

    def _run(self) -> None:
        from stemseg_core.visualize import draw_overlay

        while True:
            with self._cond:
                self._busy = False
                self._cond.notify_all()
                self._cond.wait_for(lambda: self._items or self._stop)
                if self._stop:
                    return
                rgb, instances, header = self._items.popleft()
                self._busy = True
            try:
                self.publish(draw_overlay(rgb, instances), header)
            except Exception as e:  # noqa: BLE001 - a drawing error must not stop the node
                self.log.error(f"overlay failed: {type(e).__name__}: {e}")
