"""The package layout: install space, launch/config installed, library free of ROS imports."""
import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INSTALL = ROOT / "install" / "stemseg_ros"


ROS_MODULE = re.compile(r"(rclpy|rosidl\w*|sensor_msgs|std_msgs|stemseg_ros|diagnostic_msgs|"
                        r"lifecycle_msgs|ament_index_python)(\.\w+)*(:\w+)?")


def ros_names_in(source: str) -> list[str]:
    """ROS modules a Python source imports, or names in a string (importlib, entry points)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if ROS_MODULE.match(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.module and ROS_MODULE.match(node.module):
            found.append(node.module)
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and ROS_MODULE.fullmatch(node.value.strip())):
            found.append(repr(node.value))
    return found


def test_ros_name_scan_catches_imports_and_names():
    assert ros_names_in("import rclpy.node\nfrom stemseg_ros.msg import X") == \
        ["rclpy.node", "stemseg_ros.msg"]
    assert ros_names_in("import importlib\nm = importlib.import_module('stemseg_ros.bag_eval')"
                        ) == ["'stemseg_ros.bag_eval'"]
    assert ros_names_in("HINT = 'comes with the ROS 2 package stemseg_ros'") == []


def test_core_never_imports_or_names_ros():
    offenders = []
    for py in (ROOT / "stemseg_core").rglob("*.py"):
        offenders += [f"{py.relative_to(ROOT)}: {n}" for n in ros_names_in(py.read_text())]
    assert not offenders, offenders


def test_cli_help_loads_no_ros():
    """Building the parser may load the ROS package's command modules (argument definitions)
    but never rclpy."""
    code = ("import sys; from stemseg_core.cli import build_parser; build_parser().format_help();"
            "bad=[m for m in sys.modules if m.split('.')[0] in ('rclpy','rosidl_runtime_py')];"
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert r.returncode == 0, r.stdout + r.stderr


def test_bag_eval_is_the_ros_package_entry_point():
    """After `make setup` the install space registers `stemseg bag eval` (CMakeLists.txt)."""
    code = ("import importlib.metadata as m; from stemseg_core.cli import PLUGIN_GROUP;"
            "print({e.name: e.value for e in m.entry_points(group=PLUGIN_GROUP)})")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/tmp")
    assert r.returncode == 0, r.stderr
    commands = ast.literal_eval(r.stdout.strip())
    assert commands.get("bag.eval") == "stemseg_ros.tools.bag_eval"
    assert commands.get("bag.bench") == "stemseg_ros.tools.bench_node"
    assert commands.get("bag.soak") == "stemseg_ros.tools.soak"
    r = subprocess.run([sys.executable, "-m", "stemseg_core.cli", "bag", "eval", "--help"],
                       capture_output=True, text=True, cwd="/tmp")
    assert r.returncode == 0 and "--lockstep" in r.stdout, r.stdout + r.stderr


def test_bag_eval_without_the_ros_package_says_how_to_get_it(tmp_path):
    """No entry point (a pip-only install): `stemseg bag eval ...` prints the way to get it."""
    code = ("import sys, importlib.metadata as m;"
            "real = m.entry_points;"
            "m.entry_points = lambda **kw: [] if kw.get('group') == 'stemseg.commands' "
            "else real(**kw);"
            "from stemseg_core.cli import main;"
            "sys.exit(main(['bag', 'eval', '--bag', 'x.mcap', '--out', 'o', '--lockstep']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "stemseg bag eval: this command comes with the ROS 2 package" in r.stderr
    assert "make setup" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o").exists()


def test_a_broken_entry_point_names_itself_and_leaves_the_cli_working(tmp_path):
    """An installed command that fails to import: the other commands work, it says why."""
    dist = tmp_path / "broken_cmd-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-cmd\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[stemseg.commands]\nbag.eval = no_such_module_x\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))  # the only stemseg command package
    r = subprocess.run([sys.executable, "-m", "stemseg_core.cli", "bag", "eval"],
                       capture_output=True, text=True, cwd=tmp_path, env=env)
    assert r.returncode == 2
    assert "no_such_module_x" in r.stderr and "failed to load" in r.stderr
    r = subprocess.run([sys.executable, "-m", "stemseg_core.cli", "bag", "from-kitti", "--help"],
                       capture_output=True, text=True, cwd=tmp_path, env=env)
    assert r.returncode == 0 and "--kitti" in r.stdout


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
