"""The data format registry: the three formats, detection order, adding one, config agreement."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stemseg_core.config import ConfigError, load_config
from stemseg_core.data.formats import DATASET_FORMATS, DatasetFormat, format_names
from stemseg_core.data.sequence import Sequence
from stemseg_core.data.sources import detect_format, load_training_sequences
from stemseg_core.registry import Registry


def test_builtin_formats_in_detection_order():
    assert format_names() == ["youtube_vis", "davis", "kitti_mots"]
    assert DATASET_FORMATS.get("kitti_mots").__name__ == "KittiMotsFormat"


def test_config_allows_exactly_auto_and_the_registered_formats():
    """data.format is validated against the registry itself (no second list to drift)."""
    with pytest.raises(ConfigError, match=r"data.format: 'coco' is not a registered data format; "
                                          r"allowed: auto, davis, kitti_mots, youtube_vis$"):
        load_config(None, ["data.format=coco"])
    assert load_config(None, ["data.format=davis"]).data.format == "davis"


def test_unknown_name_lists_the_allowed():
    with pytest.raises(ConfigError, match=r"data.format: unknown data format 'coco'; allowed: "
                                          r"davis, kitti_mots, youtube_vis$"):
        DATASET_FORMATS.get("coco")


def test_a_new_format_is_one_registration(tmp_path, monkeypatch):
    monkeypatch.setattr(DATASET_FORMATS, "_items", dict(DATASET_FORMATS._items))

    @DATASET_FORMATS.register("flat_pngs")
    class FlatPngs(DatasetFormat):
        priority = 5

        @classmethod
        def detect(cls, path: Path) -> bool:
            return (path / "FLAT").is_file()

        @classmethod
        def load(cls, path, split, class_names):
            return [Sequence("only", [str(path / "a.png")], 4, 6)]

    (tmp_path / "FLAT").write_text("")
    assert format_names()[0] == "flat_pngs"
    assert detect_format(tmp_path) == "flat_pngs"
    seqs = load_training_sequences(tmp_path, "train")
    assert [s.name for s in seqs] == ["only"]
    assert not seqs[0].annotations(0).ignore.any()
    assert seqs[0].annotations(0).ignore.shape == (4, 6)
    assert np.asarray(seqs[0].annotations(0).instances).size == 0


def test_registering_a_name_twice_fails():
    reg: Registry[type] = Registry("thing")
    reg.register("a")(int)
    reg.register("a")(int)  # the same object again is harmless (module re-import)
    with pytest.raises(ValueError, match="thing 'a' is registered twice"):
        reg.register("a")(float)
    assert reg.names() == ["a"] and "a" in reg and "b" not in reg


def test_a_file_is_no_format(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("x")
    with pytest.raises(ConfigError, match="no data format recognises .*notes.txt"):
        detect_format(f)
