"""Set-level HOTA over several sets of drives: hand-computed on the tiny KITTI MOTS fixture."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kitti_mots_fixture as fx  # noqa: E402

from stemseg_core.evaluation.pooled_set_hota import (  # noqa: E402
    SetLevelUnavailable,
    pooled_set_hota,
)
from stemseg_core.evaluation.robustness_compare import load_result  # noqa: E402


def _result(root: Path, name: str, seq: str, perfect: bool, *, with_files: bool = True) -> Path:
    """A robustness.json of one drive of the fixture (``root/kitti``): tracker results equal to
    the ground truth (cars and pedestrians) or none at all."""
    out = root / name
    res = out / "results" / "lossless"
    res.mkdir(parents=True)
    lines = [fx.line(t, o, c, m) for t, objs in fx.gt_objects(seq).items()
             for o, c, m in objs if c in (1, 2)]
    (res / f"{seq}.txt").write_text("".join(ln + "\n" for ln in lines) if perfect else "")
    hota = 100.0 if perfect else 0.0
    variant = {"effect": "lossless", "severity": 0.0,
               "metrics": {"car": {"HOTA": hota}, "pedestrian": {"HOTA": hota}},
               "per_sequence": {seq: {"car": hota, "pedestrian": hota}}}
    result = {"variants": [variant], "sequences": [seq], "frames": 0, "seed": 0,
              "classes": ["car", "pedestrian"], "gt_sha256": seq}
    if with_files:
        variant["results_dir"] = "results/lossless"
        result["gt_dir"] = "../kitti"
    (out / "robustness.json").write_text(json.dumps(result))
    return out


def _count(seq: str, cls: int) -> int:
    return sum(c == cls for objs in fx.gt_objects(seq).values() for _o, c, _m in objs)


def test_drives_weigh_by_their_objects(tmp_path):
    # set a: drive 0000, perfect on both sides; set b: drive 0001, perfect in the baseline and
    # empty in the candidate. Per drive the candidate averages 50; as one set its matches are
    # those of 0000 only: DetA = n(0000) / (n(0000) + n(0001)) at every alpha, AssA = 1.
    fx.build(tmp_path / "kitti", images=False)
    pairs = [("a", load_result(_result(tmp_path, "base_a", "0000", True)),
              load_result(_result(tmp_path, "cand_a", "0000", True))),
             ("b", load_result(_result(tmp_path, "base_b", "0001", True)),
              load_result(_result(tmp_path, "cand_b", "0001", False)))]
    scores = pooled_set_hota(pairs)
    assert set(scores) == {("lossless", 0.0, "car"), ("lossless", 0.0, "pedestrian")}
    for name, cls in (("car", 1), ("pedestrian", 2)):
        s = scores[("lossless", 0.0, name)]
        n0, n1 = _count("0000", cls), _count("0001", cls)
        assert s["drives"] == 2 and s["baseline"] == pytest.approx(100.0)
        assert s["candidate"] == pytest.approx(100 * math.sqrt(n0 / (n0 + n1)), abs=1e-6)
    # 6 cars of 18 and 6 pedestrians of 11 are found: 57.7 and 73.9, not the per-drive 50
    assert scores[("lossless", 0.0, "car")]["candidate"] == pytest.approx(57.735, abs=1e-3)


def test_results_without_their_files_say_so(tmp_path):
    fx.build(tmp_path / "kitti", images=False)
    old = load_result(_result(tmp_path, "old", "0000", True, with_files=False))
    new = load_result(_result(tmp_path, "new", "0000", True))
    with pytest.raises(SetLevelUnavailable, match="older stemseg"):
        pooled_set_hota([("a", old, new)])
    (tmp_path / "new" / "results" / "lossless" / "0000.txt").unlink()
    with pytest.raises(FileNotFoundError, match="0000.txt"):
        pooled_set_hota([("a", new, new)])
