"""scripts/compare_checkpoints.sh: the 48-drive protocol's commands, in order (--dry-run)."""
from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "compare_checkpoints.sh"


def _run(*args):
    return subprocess.run(["bash", str(SCRIPT), *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)


def test_dry_run_lists_every_set_for_both_checkpoints_then_the_pooled_compare(tmp_path):
    base, cand = tmp_path / "base.pt", tmp_path / "cand.pt"
    base.write_bytes(b"base")
    cand.write_bytes(b"cand")
    out = tmp_path / "judge"
    p = _run(cand, "--baseline", base, "--out", out, "--dry-run")
    assert p.returncode == 0, p.stderr
    lines = [ln[2:] for ln in p.stdout.splitlines() if ln.startswith("+ ")]
    seeds = [ln.split("--seed ")[1].split()[0] for ln in lines if ln.startswith("stemseg synth")]
    assert seeds == ["99991", "31337", "161803"]
    # results kept per checkpoint sha256, so a shipped baseline's are reused
    b, c = (out / "runs" / hashlib.sha256(x.read_bytes()).hexdigest()[:12] for x in (base, cand))
    for d in (b, c):
        assert sum(f"--out {d}/" in ln for ln in lines if "robustness" in ln) == 3
        assert any(ln.endswith(f"--out {d}/heldout --quiet") for ln in lines)
        assert any(f"--camera --out {d}/heldout_camera" in ln for ln in lines)
    compare = lines[-1]
    assert compare.startswith("stemseg compare --baseline " + f"{b}/rob8")
    assert f"--candidate {c}/rob8" in compare and compare.endswith("--fail-on-worse")
    assert not out.exists()  # a dry run writes nothing


def test_refusals_name_the_bad_value(tmp_path):
    p = _run(tmp_path / "missing.pt")
    assert p.returncode == 2 and "no checkpoint at" in p.stderr
    (tmp_path / "c.pt").write_bytes(b"c")
    p = _run(tmp_path / "c.pt", "--baseline", tmp_path / "c.pt", "--jobs", "4")
    assert p.returncode == 2 and "--jobs must be 1 or 2, got 4" in p.stderr
