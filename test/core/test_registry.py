"""One registry for every extension point: a backbone, a data format and a backend are each one
new file (here in a temporary third-party package found through ``STEMSEG_PLUGINS``), and the
config and the CLI take their names without any other edit."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stemseg_core.cli import main
from stemseg_core.config import ConfigError, load_config
from stemseg_core.registry import PLUGIN_ENV, PLUGIN_GROUP, Registry, plugin_modules

REPO = Path(__file__).resolve().parents[2]

TOY_BACKBONE = '''
from dataclasses import replace

from stemseg_core.model.backbones.torchvision_fpn import Backbone
from stemseg_core.registry import BACKBONES


@BACKBONES.register("toy_mobilenet")
def build(cfg):
    return Backbone(replace(cfg, name="mobilenet_v3_small"))
'''

TOY_FORMAT = '''
from stemseg_core.data.formats import kitti_mots
from stemseg_core.data.formats import DatasetFormat
from stemseg_core.registry import DATASET_FORMATS


@DATASET_FORMATS.register("toy_layout")
class ToyLayout(DatasetFormat):
    priority = 1

    @classmethod
    def detect(cls, path):
        return (path / "TOY").is_file()

    @classmethod
    def load(cls, path, split, class_names):
        seqs = kitti_mots.load_split(path, split)
        for s in seqs:
            s.name = "toy-" + s.name
        (path / "TOY").write_text(",".join(s.name for s in seqs))
        return seqs
'''

TOY_BACKEND = '''
import os

from stemseg_core.backends.base import register
from stemseg_core.backends.torch_backend import TorchBackend


@register
class ToyEager(TorchBackend):
    name = "toy_eager"

    def encode(self, frames):
        with open(os.environ["TOY_BACKEND_LOG"], "a") as f:
            f.write(f"{frames.shape[0]}\\n")
        return super().encode(frames)
'''


@pytest.fixture
def toys(tmp_path):
    """A package ``stemseg_toys`` with one file per part, outside the repository."""
    pkg = tmp_path / "plugins" / "stemseg_toys"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    for name, text in (("toy_backbone", TOY_BACKBONE), ("toy_format", TOY_FORMAT),
                       ("toy_backend", TOY_BACKEND)):
        (pkg / f"{name}.py").write_text(text)
    return tmp_path / "plugins"


def _stemseg(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stemseg_core.cli", *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)


def test_a_plugin_backbone_format_and_backend_run_through_config_and_cli(tmp_path, toys,
                                                                           tiny_overrides):
    from stemseg_core.data import synth

    data = tmp_path / "data"
    synth.generate_dataset(data, sequences=1, frames=6, height=64, width=128, seed=0,
                           val_fraction=0.0)
    (data / "TOY").write_text("")
    log = tmp_path / "encoded.txt"
    env = {**os.environ, "PYTHONPATH": f"{toys}{os.pathsep}{REPO}", "OMP_NUM_THREADS": "1",
           PLUGIN_ENV: "stemseg_toys.toy_backbone, stemseg_toys.toy_format,"
                       "stemseg_toys.toy_backend", "TOY_BACKEND_LOG": str(log)}
    run = tmp_path / "run"
    train = _stemseg(["train", "--config", "config/model/demo_cpu.yaml", "--data", str(data),
                      "--out", str(run), "--device", "cpu", "--no-progress", "--max-steps", "1",
                      "--set", *tiny_overrides, "model.backbone.name=toy_mobilenet",
                      "train.batch_size=1", "data.num_workers=0"], env)
    assert train.returncode == 0, train.stderr[-2000:]
    # data.format=auto picked the toy layout (its detect, priority 1): it renamed the sequence
    assert (data / "TOY").read_text() == "toy-0000"
    assert "name: toy_mobilenet" in (run / "config.yaml").read_text()

    out = tmp_path / "out"
    infer = _stemseg(["infer", "--checkpoint", str(run / "last.pt"), "--data", str(data),
                      "--seq", "0000", "--out", str(out), "--device", "cpu",
                      "--backend", "toy_eager"], env)
    assert infer.returncode == 0, infer.stderr[-2000:]
    assert (out / "0000.txt").is_file()
    encoded = [int(n) for n in log.read_text().split()]
    assert sum(encoded) >= 6  # every frame went through the toy backend's encoder



def test_unknown_names_list_the_registered_ones(capsys):
    """In this process no plugin is loaded: the toy names are not there."""
    with pytest.raises(SystemExit) as e:
        main(["infer", "--checkpoint", "x.pt", "--data", ".", "--seq", "0", "--out", "o",
              "--backend", "toy_eager"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'toy_eager'" in err and "'openvino', 'tensorrt', 'torch'" in err
    with pytest.raises(ConfigError, match=r"model.backbone.name: 'toy_mobilenet' is not a "
                                          r"registered backbone; allowed: mobilenet_v3_large"):
        load_config(None, ["model.backbone.name=toy_mobilenet"])
    with pytest.raises(ConfigError, match=r"data.format: 'toy_layout' is not a registered data "
                                          r"format; allowed: auto, davis, kitti_mots, "
                                          r"youtube_vis$"):
        load_config(None, ["data.format=toy_layout"])


def test_entry_point_group_and_environment_name_plugin_modules(tmp_path, monkeypatch):
    dist = tmp_path / "stemseg_toys-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: stemseg-toys\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[{PLUGIN_GROUP}]\nparts = stemseg_toys.parts\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(PLUGIN_ENV, " extra_parts , stemseg_toys.parts,")
    assert plugin_modules() == ["stemseg_toys.parts", "extra_parts"]


def test_one_registry_rules():
    reg: Registry[object] = Registry("thing", "x.thing")
    reg.register("b")(int)
    reg.register("a")(len)
    reg.register("a")(len)  # the same object again is harmless (a module imported twice)
    with pytest.raises(ValueError, match="thing 'a' is registered twice"):
        reg.register("a")(print)
    assert reg.names() == ["a", "b"] and "a" in reg and "c" not in reg
    assert [name for name, _ in reg] == ["b", "a"]  # iteration: registration order
    with pytest.raises(ConfigError, match=r"^x.thing: unknown thing 'c'; allowed: a, b$"):
        reg.get("c")
