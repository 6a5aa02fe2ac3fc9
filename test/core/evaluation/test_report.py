"""metrics.json / metrics.png / rich table helpers."""
from __future__ import annotations

import json

from rich.console import Console

from stemseg_core.evaluation.report import (
    metrics_table,
    plot_metrics,
    print_metrics,
    write_metrics_json,
)

KITTI = {"car": {"HOTA": 61.234, "sMOTSA": 55.0, "IDSW": 7},
         "pedestrian": {"HOTA": 40.0, "sMOTSA": -3.5, "IDSW": 12}}
DAVIS = {"J&F": 64.7, "J-Mean": 61.0, "F-Mean": 68.4}


def test_json_round_trip(tmp_path):
    path = write_metrics_json(KITTI, tmp_path / "m" / "metrics.json")
    assert json.loads(path.read_text()) == KITTI


def test_table_and_plot(tmp_path):
    console = Console(width=200, record=True)
    print_metrics(KITTI, "t", console=console)
    text = console.export_text()
    assert "61.23" in text and "pedestrian" in text and " 12 " in text
    assert len(metrics_table(DAVIS).columns) == 4
    for name, m in (("k.png", KITTI), ("d.png", DAVIS)):
        p = plot_metrics(m, tmp_path / name)
        assert p.read_bytes()[:4] == b"\x89PNG"
