"""The package layout: install space, launch/config installed, library free of ROS imports."""
import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INSTALL = ROOT / "install" / "stemseg_ros"


def test_core_never_imports_ros():
    offenders = []
    for py in (ROOT / "stemseg_core").rglob("*.py"):
        tree = ast.parse(py.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for n in names:
                if re.match(r"(rclpy|rosidl|sensor_msgs|std_msgs|stemseg_ros|diagnostic_msgs)\b",
                            n):
                    offenders.append(f"{py.relative_to(ROOT)}: {n}")
    assert not offenders, offenders


def test_cli_help_loads_no_ros():
    code = ("import sys; from stemseg_core.cli import build_parser; build_parser().format_help();"
            "bad=[m for m in sys.modules if m.split('.')[0] in ('rclpy','stemseg_ros')];"
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert r.returncode == 0, r.stdout + r.stderr


def test_setup_py_requires_no_ros():
    text = (ROOT / "setup.py").read_text()
    reqs = re.findall(r'"([A-Za-z0-9_.\-]+)[<>=]', text)
    assert "torch" in reqs and "pycocotools" in reqs
    assert not [r for r in reqs if r.startswith(("ros-", "rclpy"))]


@pytest.mark.parametrize("rel", [
    "lib/stemseg_ros/perception",
    "share/stemseg_ros/package.xml",
    "share/stemseg_ros/launch/perception.launch.py",
    "share/stemseg_ros/config/perception.yaml",
])
def test_install_space_has(rel):
    assert (INSTALL / rel).exists(), f"{rel} missing from {INSTALL}; run make setup"


def test_messages_import_from_outside_the_repo():
    code = ("from stemseg_ros.msg import TrackedInstanceArray, TrackedInstance;"
            "m = TrackedInstanceArray(height=2, width=3);"
            "m.instances.append(TrackedInstance(track_id=7, mask_counts=[1, 4, 1]));"
            "print(m.instances[0].track_id, list(m.instances[0].mask_counts))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/tmp")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["7", "[1,", "4,", "1]"]
