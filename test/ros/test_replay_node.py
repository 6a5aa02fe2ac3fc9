"""The node's command line in a replay: lockstep settings, the user's --node-arg last."""
from __future__ import annotations

import pytest

from stemseg_ros.tools.replay_node import (
    LOCKSTEP_PARAMS,
    ReplayError,
    node_command,
    parse_node_args,
)


def _params(cmd: list[str]) -> list[str]:
    return [cmd[i + 1] for i, a in enumerate(cmd) if a == "-p"]


def test_lockstep_switches_off_every_skip_drop_and_timer():
    cmd = node_command("/cam/image_raw", False, lockstep=True, diagnostics_period=0.1)
    params = _params(cmd)
    for p in ("max_input_rate:=-1.0", "idle_flush_sec:=0.0", "gap_reset_sec:=0.0",
              "qos_reliability:=reliable", "diagnostics_period_sec:=0.1"):
        assert p in params
    assert set(LOCKSTEP_PARAMS) <= set(params)
    assert cmd[-2:] == ["-r", "image:=/cam/image_raw"]
    assert "max_input_rate:=-1.0" not in _params(node_command("/c", False))


def test_node_args_come_last_and_compressed_input_is_remapped(tmp_path):
    ckpt = tmp_path / "w.pt"
    cmd = node_command("/cam/image_raw/compressed", True, checkpoint=str(ckpt), device="cpu",
                       node_args=["clip_overlap=1", " mask_threshold = 0.3 "])
    params = _params(cmd)
    assert params[0] == "input_transport:=compressed"
    assert f"checkpoint:={ckpt.resolve()}" in params and "device:=cpu" in params
    assert params[-2:] == ["clip_overlap:=1", "mask_threshold:=0.3"]
    assert cmd[-1] == "image/compressed:=/cam/image_raw/compressed"


@pytest.mark.parametrize("bad", ["clip_overlap", "=3", ""])
def test_malformed_node_arg_names_itself(bad):
    with pytest.raises(ReplayError, match="expected NAME=VALUE"):
        parse_node_args([bad])
