"""The layers of docs/architecture.md hold in the code: no module imports one from a higher
layer (module-level and function-level imports alike; only ``if TYPE_CHECKING:`` imports are
exempt), no import cycle between modules, and the size limits of the project rules."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: Bottom to top; a module may import its own layer and the ones below. A prefix names a
#: package or a module; the longest matching prefix decides (docs/architecture.md, Layers).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("stemseg_core.errors",),
    ("stemseg_core.registry",),
    ("stemseg_core.config",),
    ("stemseg_core.checkpoint", "stemseg_core.geometry", "stemseg_core.visualize"),
    ("stemseg_core.data",),
    ("stemseg_core.losses",),
    ("stemseg_core.model",),
    ("stemseg_core.export",),
    ("stemseg_core.backends",),
    ("stemseg_core.inference",),
    # geometry/positions_file.py reads a KITTI tree's depth / LiDAR and writes a result file
    # beside `stemseg infer`'s: it sits with the result writers, above data/.
    ("stemseg_core.training", "stemseg_core.evaluation", "stemseg_core.geometry.positions_file"),
    ("stemseg_core.commands",),
    ("stemseg_core.cli", "stemseg_core"),
    ("stemseg_ros",),
    ("stemseg_ros.tools",),
)
#: Longest product file, and node.py's own limit (the node is a thin adapter).
MAX_FILE_LINES, MAX_NODE_LINES = 450, 300
#: Longest function on the main path: what runs for every frame or every config load.
MAX_FUNCTION_LINES = 80
MAIN_PATH = ("stemseg_core/inference", "stemseg_core/backends", "stemseg_core/config",
             "stemseg_core/data/image_codec.py", "stemseg_core/data/compressed_image.py",
             "stemseg_ros/node.py", "stemseg_ros/intake.py", "stemseg_ros/worker.py",
             "stemseg_ros/outputs.py", "stemseg_ros/conversions.py", "stemseg_ros/depth_input.py")


def _modules() -> dict[str, Path]:
    out = {}
    for package in ("stemseg_core", "stemseg_ros"):
        for f in sorted((REPO / package).rglob("*.py")):
            name = ".".join(f.relative_to(REPO).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = f
    return out


def _imports(path: Path, mods: dict[str, Path]) -> set[str]:
    """Every module of ours the file imports, anywhere but under ``if TYPE_CHECKING:``
    (``from package import module`` counts the module, ``from module import name`` the
    module)."""
    tree = ast.parse(path.read_text())
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
            and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                found.add(sub if sub in mods else node.module)
    return {n for n in found if n in mods}


def _layer(name: str) -> int:
    best, layer = -1, -1
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (name == p or name.startswith(p + ".")) and len(p) > best:
                best, layer = len(p), i
    return layer


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {m: {n for n in _imports(f, mods) if n != m} for m, f in mods.items()}


def test_no_module_imports_a_higher_layer():
    up = sorted(f"{m} (layer {_layer(m)}) imports {n} (layer {_layer(n)})"
                for m, targets in _graph().items() for n in targets if _layer(n) > _layer(m))
    assert not up, "\n".join(up)


def test_every_module_has_a_layer_and_the_layering_sees_function_imports():
    assert all(_layer(m) >= 0 for m in _modules())
    # a function-level import counts: the node's model holder loads the tracker inside a method
    assert "stemseg_core.inference.tracker" in _graph()["stemseg_ros.model_holder"]
    assert _layer("stemseg_ros.tools.replay") > _layer("stemseg_ros.node") > _layer(
        "stemseg_core.commands.infer") > _layer("stemseg_core.inference.tracker") > _layer(
        "stemseg_core.registry")


def test_no_import_cycle():
    graph, index, low, stack, on, cycles = _graph(), {}, {}, [], set(), []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, cycles


def test_file_and_function_sizes():
    long_files = [f"{f.relative_to(REPO)}: {n}" for f in _modules().values()
                  if (n := len(f.read_text().splitlines())) > MAX_FILE_LINES]
    assert not long_files, long_files
    assert len((REPO / "stemseg_ros/node.py").read_text().splitlines()) <= MAX_NODE_LINES
    long_functions = []
    for f in _modules().values():
        rel = str(f.relative_to(REPO))
        if not rel.startswith(MAIN_PATH):
            continue
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and \
                    node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES:
                long_functions.append(f"{rel}:{node.lineno} {node.name}")
    assert not long_functions, long_functions
