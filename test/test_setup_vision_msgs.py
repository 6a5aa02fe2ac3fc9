"""scripts/setup.sh's choice of vision_msgs: a sourced ROS 2 install's own package when one is on
AMENT_PREFIX_PATH (outside this checkout and its venv), else ours (interfaces/vision_msgs).
Runs the script's `system_vision_msgs` function alone, with made-up prefixes."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _detect(ament_prefix_path: str) -> tuple[int, str]:
    script = (ROOT / "scripts" / "setup.sh").read_text()
    func = re.search(r"^system_vision_msgs\(\) \{\n.*?^\}\n", script, re.S | re.M).group(0)
    env = {"PATH": "/usr/bin:/bin", "ROOT": str(ROOT), "VENV": str(ROOT / ".venv"),
           "AMENT_PREFIX_PATH": ament_prefix_path}
    r = subprocess.run(["bash", "-c", f"set -euo pipefail\n{func}\nsystem_vision_msgs"],
                       env=env, capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout.strip()


def _prefix(path: Path, with_vision_msgs: bool) -> str:
    index = path / "share" / "ament_index" / "resource_index" / "packages"
    index.mkdir(parents=True)
    if with_vision_msgs:
        (index / "vision_msgs").write_text("")
    return str(path)


def test_a_ros_install_with_vision_msgs_is_used(tmp_path):
    opt = _prefix(tmp_path / "opt_ros_kilted", True)
    other = _prefix(tmp_path / "other", False)
    assert _detect(f"{other}:{opt}") == (0, opt)


def test_our_own_install_and_prefixes_without_it_do_not_count(tmp_path):
    ours = ROOT / "install" / "vision_msgs"  # ours after a first setup: not "the system's"
    other = _prefix(tmp_path / "other", False)
    assert _detect(f"{ours}:{ROOT / '.venv'}:{other}")[0] == 1
    assert _detect("")[0] == 1
