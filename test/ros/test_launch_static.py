"""launch/perception.launch.py, checked without `launch`/`launch_ros` (not installable here).

Statically (ast) and by running generate_launch_description() against stand-ins of the launch
classes that record their arguments.
"""
from __future__ import annotations

import ast
import importlib.util
import sys
import types
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "launch" / "perception.launch.py"
INSTALLED = REPO / "install" / "stemseg_ros" / "share" / "stemseg_ros"
ARGUMENTS = {"params_file", "image_topic", "checkpoint", "device", "namespace", "use_sim_time"}


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and getattr(n.func, "id", getattr(n.func, "attr", None)) == name]


def _const(node: ast.AST):
    return node.value if isinstance(node, ast.Constant) else None


def test_launch_file_statically():
    tree = ast.parse(SOURCE.read_text(), str(SOURCE))
    (node,) = _calls(tree, "Node")
    kw = {k.arg: k.value for k in node.keywords}
    assert _const(kw["package"]) == "stemseg_ros"
    assert _const(kw["executable"]) == "perception"
    assert _const(kw["name"]) == "stemseg_perception"
    declared = {_const(c.args[0]) for c in _calls(tree, "DeclareLaunchArgument")}
    assert declared == ARGUMENTS
    used = {_const(c.args[0]) for c in _calls(tree, "LaunchConfiguration")}
    assert used <= declared, f"undeclared launch arguments used: {used - declared}"
    assert ARGUMENTS <= used, f"declared but unused: {ARGUMENTS - used}"
    shares = [_const(c.args[0]) for c in _calls(tree, "get_package_share_directory")]
    assert shares == ["stemseg_ros"]
    joins = [[_const(a) for a in c.args[1:]] for c in _calls(tree, "join")]
    assert ["config", "perception.yaml"] in joins
    assert ["checkpoints", "stemseg_demo.pt"] in joins


def test_launch_file_is_installed():
    installed = INSTALLED / "launch" / "perception.launch.py"
    if not installed.exists():
        pytest.skip("package not built; run `make setup`")
    assert installed.read_text() == SOURCE.read_text()
    assert (INSTALLED / "config" / "perception.yaml").is_file()


class _Recorder:
    """Stands in for a launch class: keeps its positional and keyword arguments."""

    instances: list = []

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs
        type(self).instances.append(self)


def _fake_modules(share: Path) -> dict[str, types.ModuleType]:
    classes = {name: type(name, (_Recorder,), {"instances": []})
               for name in ("LaunchDescription", "DeclareLaunchArgument", "LaunchConfiguration",
                            "Node", "ParameterValue")}
    mods = {}
    for mod, names in {"launch": ["LaunchDescription"],
                       "launch.actions": ["DeclareLaunchArgument"],
                       "launch.substitutions": ["LaunchConfiguration"],
                       "launch_ros": [], "launch_ros.actions": ["Node"],
                       "launch_ros.parameter_descriptions": ["ParameterValue"]}.items():
        m = types.ModuleType(mod)
        for n in names:
            setattr(m, n, classes[n])
        mods[mod] = m
    ament = types.ModuleType("ament_index_python.packages")
    ament.get_package_share_directory = lambda pkg: str(share / pkg)
    mods["ament_index_python.packages"] = ament
    return mods


def test_generate_launch_description_wiring(monkeypatch, tmp_path):
    for name, mod in _fake_modules(tmp_path).items():
        monkeypatch.setitem(sys.modules, name, mod)
    spec = importlib.util.spec_from_file_location("perception_launch", SOURCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ld = module.generate_launch_description()
    entities = ld.args[0]
    decls = {e.args[0]: e.kwargs["default_value"] for e in entities
             if type(e).__name__ == "DeclareLaunchArgument"}
    share = tmp_path / "stemseg_ros"
    assert decls["params_file"] == str(share / "config" / "perception.yaml")
    assert decls["checkpoint"] == str(share / "checkpoints" / "stemseg_demo.pt")
    assert decls["device"] == "auto" and decls["use_sim_time"] == "false"
    assert decls["namespace"] == "" and decls["image_topic"].startswith("/")
    (node,) = [e for e in entities if type(e).__name__ == "Node"]
    kw = node.kwargs
    assert (kw["package"], kw["executable"]) == ("stemseg_ros", "perception")
    assert kw["namespace"].args == ("namespace",)
    params_file, overrides = kw["parameters"]
    assert params_file.args == ("params_file",)
    assert overrides["checkpoint"].args == ("checkpoint",)
    assert overrides["device"].args == ("device",)
    assert overrides["use_sim_time"].kwargs["value_type"] is bool
    remaps = dict((src, dst) for src, dst in kw["remappings"])
    assert remaps["image"].args == ("image_topic",)
    assert remaps["image/compressed"][0].args == ("image_topic",)
    assert remaps["image/compressed"][1] == "/compressed"
