"""Model files that cannot run code, over DDS (issue 26): the node refuses a checkpoint whose
unpickling would run code, stays up, reports the refusal in its log and /diagnostics, and loads
the same file once `allow_pickle` is set for it; a pinned SHA-256 that differs is refused."""
from __future__ import annotations

import pytest
import torch
from test_node import _change_state, _set_params, _state

from stemseg_ros import names


class CreatesFile:
    """Unpickling this object runs ``open(path, "w")``: the file appearing proves code ran."""

    def __init__(self, path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _errors(client, ns: str) -> list:
    """Every ERROR status of our node received so far on /diagnostics."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

    got: list = []
    client.node.create_subscription(
        DiagnosticArray, names.DIAGNOSTICS,
        lambda arr: got.extend(st for st in arr.status if names.is_status_of(st.name, ns)
                               and st.level == DiagnosticStatus.ERROR), 10)
    return got


@pytest.mark.ros
@pytest.mark.slow
def test_node_refuses_code_in_checkpoint_stays_up_and_loads_when_trusted(
        tiny_checkpoint, ros_client, start_node, namespace, tmp_path):
    from lifecycle_msgs.msg import Transition

    marker = tmp_path / "code_ran"
    evil = tmp_path / "evil.pt"
    payload = torch.load(tiny_checkpoint, weights_only=True)
    payload["extra"] = CreatesFile(marker)
    torch.save(payload, evil)

    errors = _errors(ros_client, namespace)
    node = start_node(["-r", f"__ns:={namespace}", "-p", f"checkpoint:={evil}",
                       "-p", "device:=cpu"])
    assert node.wait_for_log("configure failed", 90), node.log()
    assert ros_client.spin_until(lambda: errors, 15), "no ERROR status on /diagnostics"
    assert "allow_pickle" in errors[-1].message and str(evil) in errors[-1].message
    assert node.alive() and _state(ros_client, namespace) == "unconfigured"
    assert not marker.exists(), "unpickling ran code"

    # A pinned hash that differs: refused naming both hashes, still no code run.
    wrong = "0" * 64
    assert all(r.successful for r in _set_params(ros_client, namespace, allow_pickle=True,
                                                 checkpoint_sha256=wrong))
    assert not _change_state(ros_client, namespace, Transition.TRANSITION_CONFIGURE)
    assert wrong in node.log() and not marker.exists()

    # The user trusts the file: with allow_pickle and no pin it loads (and its code runs).
    assert all(r.successful for r in _set_params(ros_client, namespace, checkpoint_sha256=""))
    assert _change_state(ros_client, namespace, Transition.TRANSITION_CONFIGURE), node.log()
    assert _state(ros_client, namespace) == "inactive"
    assert marker.exists()
