"""stemseg_ros.main: the node's spin loop survives rclpy's destroy-while-waiting race."""
from __future__ import annotations

import threading

import pytest
import rclpy
from rclpy.exceptions import InvalidHandle
from ros_helpers import unique_domain

from stemseg_ros.main import spin_until


class RacingExecutor:
    """Stands in for MultiThreadedExecutor: some turns raise what rclpy raises when a transition
    destroyed an entity while the wait set was being built; the fifth turn asks to stop."""

    def __init__(self, context, stop: threading.Event, racing_turns: set[int]) -> None:
        self.context, self.stop, self.racing, self.turns = context, stop, racing_turns, 0

    def spin_once(self, timeout_sec: float) -> None:
        self.turns += 1
        if self.turns == 5:
            self.stop.set()
        if self.turns in self.racing:
            raise InvalidHandle("cannot use Destroyable because destruction was requested")


class Log:
    def __init__(self) -> None:
        self.debug_lines: list[str] = []

    def debug(self, msg: str) -> None:
        self.debug_lines.append(msg)


@pytest.fixture
def context():
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=unique_domain())
    yield ctx
    rclpy.try_shutdown(context=ctx)


def test_spin_goes_on_after_an_entity_destroyed_mid_wait(context):
    stop, log = threading.Event(), Log()
    ex = RacingExecutor(context, stop, {1, 3})
    assert spin_until(ex, stop, log) == 2
    assert ex.turns == 5  # turns 2, 4 and 5 ran after the races
    assert len(log.debug_lines) == 2 and "destroyed" in log.debug_lines[0]


def test_spin_ends_when_ros_shuts_down(context):
    stop = threading.Event()
    ex = RacingExecutor(context, stop, set())
    rclpy.shutdown(context=context)
    assert spin_until(ex, stop, Log()) == 0 and ex.turns == 0


class RaisingExecutor(RacingExecutor):
    """Turn 2 raises what rclpy's parameter service raises for a ParameterValue whose type it
    does not know (any peer can send one: type=10)."""

    def spin_once(self, timeout_sec: float) -> None:
        self.turns += 1
        if self.turns == 4:
            self.stop.set()
        if self.turns == 2:
            raise ValueError("10 is not a valid Parameter.Type")


def test_spin_goes_on_after_a_callback_raised(context):
    stop, errors = threading.Event(), []
    log = Log()
    log.error = errors.append
    ex = RaisingExecutor(context, stop, set())
    assert spin_until(ex, stop, log) == 1
    assert ex.turns == 4 and len(errors) == 1
    assert "ValueError: 10 is not a valid Parameter.Type" in errors[0]
