"""Nothing a peer sends ends the node (issue 35): the node's callbacks go through `guarded`.

Any process on the DDS domain can call the node's services and publish on its input. A callback
that raises would end the process (rclpy's executor re-raises it), so every parameter, lifecycle,
service and timer callback of the node is wrapped: what it raises is logged (a short prefix,
rate-limited per callback) and answered with that callback's refusal: a failed transition, a
refused parameter set, ``Trigger`` success false, nothing for a timer. No ROS imports here.
"""
from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from typing import Any

#: Characters of an error message that go into a refusal or a log line.
REASON_CHARS = 300
#: Seconds between two log lines of the same guarded callback (the rest are counted).
LOG_EVERY_SEC = 5.0


def reason(error: BaseException, limit: int = REASON_CHARS) -> str:
    """'Type: message' of `error`, cut to `limit` characters."""
    try:
        text = str(error)
    except Exception:  # noqa: BLE001 - a message that cannot even be printed
        text = "?"
    return cut(f"{type(error).__name__}: {text}" if text else type(error).__name__, limit)


class RateLimitedLog:
    """At most one line per key every LOG_EVERY_SEC; the lines left out are counted in the next
    one. (rclpy's throttle is per call site, which all guarded callbacks would share; and rclpy
    refuses one call site with two severities, so each level has its own line below.)"""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self._skipped: dict[str, int] = {}

    def __call__(self, logger: Any, level: str, key: str, message: str) -> None:
        """Log `message` on `logger` at `level` ("error", "warning" or "info")."""
        key = f"{id(logger)}/{key}"  # per logger: nodes of one process do not mute each other
        now = time.monotonic()
        if now - self._last.get(key, -LOG_EVERY_SEC) < LOG_EVERY_SEC:
            self._skipped[key] = self._skipped.get(key, 0) + 1
            return
        skipped = self._skipped.pop(key, 0)
        self._last[key] = now
        text = message + (f" ({skipped} more like it not logged)" if skipped else "")
        if level == "error":
            logger.error(text)
        elif level == "warning":
            logger.warning(text)
        else:
            logger.info(text)


log_limited = RateLimitedLog()


def cut(text: str, limit: int = REASON_CHARS) -> str:
    """`text` cut to `limit` characters."""
    return text if len(text) <= limit else text[:limit] + "..."


def guarded(what: str, refusal: Callable[[str], Any], undo: str | None = None) -> Callable:
    """Decorator for a method of the node: an exception becomes ``refusal(reason)`` and an error
    log line; ``undo`` names a method of the node called first to take back what the failed
    callback had done (itself guarded). Works on coroutine functions too."""

    def fail(node: Any, error: Exception) -> Any:
        message = f"{what} failed: {reason(error)}"
        log_limited(node.get_logger(), "error", what, message)
        if undo is not None:
            try:
                getattr(node, undo)()
            except Exception as e:  # noqa: BLE001
                log_limited(node.get_logger(), "error", f"{what}/undo",
                             f"{what}: undoing it failed too: {reason(e)}")
        return refusal(message)

    def wrap(fn: Callable) -> Callable:
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def call_async(node: Any, *args: Any) -> Any:
                try:
                    return await fn(node, *args)
                except Exception as e:  # noqa: BLE001 - a peer's request never ends the node
                    return fail(node, e)
            return call_async

        @functools.wraps(fn)
        def call(node: Any, *args: Any) -> Any:
            try:
                return fn(node, *args)
            except Exception as e:  # noqa: BLE001 - a peer's request never ends the node
                return fail(node, e)
        return call

    return wrap

