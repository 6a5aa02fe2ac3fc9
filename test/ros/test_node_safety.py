"""Model files that cannot run code, over DDS (issue 26): the node refuses a checkpoint whose
unpickling would run code, stays up, reports the refusal in its log and /diagnostics, and loads
the same file when started with `allow_pickle` for it; a pinned SHA-256 that differs is refused.
Both switches are read-only (issue 35): a parameter call cannot change them."""
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
    """allow_pickle and checkpoint_sha256 are set at start only (read-only): three nodes, started
    together, one per setting."""
    import hashlib

    from lifecycle_msgs.msg import Transition

    marker = tmp_path / "code_ran"
    evil = tmp_path / "evil.pt"
    payload = torch.load(tiny_checkpoint, weights_only=True)
    payload["extra"] = CreatesFile(marker)
    torch.save(payload, evil)
    sha = hashlib.sha256(evil.read_bytes()).hexdigest()
    wrong = "0" * 64  # quoted below: -p values are YAML, unquoted this would be the integer 0

    errors = _errors(ros_client, namespace)
    common = ["-p", f"checkpoint:={evil}", "-p", "device:=cpu"]
    refused = start_node(["-r", f"__ns:={namespace}", *common])
    pinned = start_node(["-r", f"__ns:={namespace}/pinned", *common, "-p", "allow_pickle:=true",
                         "-p", f"checkpoint_sha256:='{wrong}'", "-p", "autostart:=false"])
    trusted = start_node(["-r", f"__ns:={namespace}/trusted", *common,
                          "-p", "allow_pickle:=true", "-p", f"checkpoint_sha256:='{sha}'",
                          "-p", "autostart:=false"])
    assert refused.wait_for_log("configure failed", 90), refused.log()
    assert ros_client.spin_until(lambda: errors, 15), "no ERROR status on /diagnostics"
    assert "allow_pickle" in errors[-1].message and str(evil) in errors[-1].message
    assert refused.alive() and _state(ros_client, namespace) == "unconfigured"
    assert not marker.exists(), "unpickling ran code"
    # The trust switches cannot be changed by a parameter call.
    res = _set_params(ros_client, namespace, allow_pickle=True)
    assert not res[0].successful and "read-only" in res[0].reason
    assert not _change_state(ros_client, namespace, Transition.TRANSITION_CONFIGURE)
    assert not marker.exists()

    # A pinned hash that differs: refused naming both hashes, still no code run.
    assert not _change_state(ros_client, f"{namespace}/pinned", Transition.TRANSITION_CONFIGURE)
    assert pinned.wait_for_log(wrong, 30) and not marker.exists(), pinned.log()
    res = _set_params(ros_client, f"{namespace}/pinned", checkpoint_sha256="")
    assert not res[0].successful and "read-only" in res[0].reason

    # The user trusts the file (at start): with allow_pickle and its hash it loads, code runs.
    assert _change_state(ros_client, f"{namespace}/trusted",
                         Transition.TRANSITION_CONFIGURE), trusted.log()
    assert _state(ros_client, f"{namespace}/trusted") == "inactive"
    assert marker.exists()
