"""Accuracy floor of a shipped checkpoint: HOTA per class on fixed held-out synthetic drives.

A floor file (``config/accuracy_floor.yaml``) names the drives (``stemseg synth`` seed, count,
length, size; none of them used for training or tuning), the settings they run with (those the
node runs by default), the checkpoint's sha256, and per class the HOTA recorded on those drives
and the floor a run must reach. ``stemseg accuracy`` and the test suite run the drives and compare
(``compare``); ``make demo``'s report shows the table (``markdown_table``).

The file is the one source of the recorded figures: after a deliberate change (a new checkpoint,
a post-processing change measured on other drives) update ``recorded`` and ``floor`` there.

Its ``camera`` section (issue 38) holds a second floor on the same drives as a camera sends
them: each frame through a camera effect (``effect``, ``severity``: data/camera_effects.py,
e.g. jpeg 1 = image_transport's JPEG at quality 95) before the tracker; :attr:`FloorSpec.camera`
is that floor as a spec of its own.

The settings are the node's CPU default, OpenVINO bf16, which a CPU without native bf16
(AVX-512 BF16 or AMX) runs in f32: the figures differ by up to ~1.3 HOTA between the two kinds of
CPU. Each section may hold ``recorded_without_bf16`` beside ``recorded``; :meth:`FloorSpec.for_cpu`
picks the one of the machine at hand. One ``floor`` serves both (it must be below both).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

#: The floor file of the repository (beside the node's parameters).
DEFAULT_FLOOR_FILE = Path(__file__).resolve().parents[2] / "config" / "accuracy_floor.yaml"


class FloorFileError(ValueError):
    """The floor file is missing a key or holds a value of the wrong kind."""


@dataclass(frozen=True)
class Drives:
    """The held-out drives: ``stemseg synth --seed S --sequences N --frames F``."""

    seed: int
    sequences: int
    frames: int
    height: int
    width: int


@dataclass(frozen=True)
class FloorSpec:
    """One floor file. ``recorded``/``floor``: {class: HOTA in percent}."""

    checkpoint: str
    checkpoint_sha256: str
    drives: Drives
    overrides: list[str]
    recorded: dict[str, float]
    floor: dict[str, float]
    measured_on: str = ""
    path: Path | None = field(default=None, compare=False)
    #: camera effect applied to every frame ("" = none) and its severity
    effect: str = ""
    severity: float = 0.0
    #: the same drives through the file's ``camera`` effect, with its own figures; None: no
    #: camera section
    camera: FloorSpec | None = None
    #: HOTA recorded on a CPU without native bf16 (OpenVINO runs the bf16 hint in f32)
    recorded_without_bf16: dict[str, float] | None = None
    #: set by for_cpu when ``recorded`` holds the figures of a CPU without native bf16
    cpu_note: str = ""

    def asks_bf16(self) -> bool:
        """Whether the settings ask OpenVINO for bf16."""
        return ("inference.precision=bf16" in self.overrides
                and "inference.backend=openvino" in self.overrides)

    def for_cpu(self, native_bf16: bool) -> FloorSpec:
        """This spec with ``recorded`` of a CPU like this one: the ``recorded_without_bf16``
        figures where bf16 is asked for but runs in f32 (and the file has them)."""
        camera = self.camera.for_cpu(native_bf16) if self.camera is not None else None
        if native_bf16 or not self.asks_bf16() or self.recorded_without_bf16 is None:
            return replace(self, camera=camera)
        return replace(self, recorded=self.recorded_without_bf16, camera=camera,
                       cpu_note="this CPU has no native bf16, so OpenVINO ran f32: recorded "
                                "figures of such a CPU")


def _number_map(raw: Any, key: str, path: Path) -> dict[str, float]:
    if not isinstance(raw, Mapping) or not raw:
        raise FloorFileError(f"{path}: '{key}' must be a map {{class: HOTA}}, got {raw!r:.80}")
    out = {}
    for cls, v in raw.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 100:
            raise FloorFileError(f"{path}: {key}.{cls} must be a HOTA in [0, 100], got {v!r:.40}")
        out[str(cls)] = float(v)
    return out


def load_floor(path: str | Path = DEFAULT_FLOOR_FILE) -> FloorSpec:
    """Read and check a floor file; raises FloorFileError naming the bad key."""
    path = Path(path)
    if not path.is_file():
        raise FloorFileError(f"floor file not found: {path}")
    raw = yaml.safe_load(path.read_text()) or {}
    try:
        d = raw["drives"]
        drives = Drives(**{k: int(d[k]) for k in ("seed", "sequences", "frames", "height",
                                                  "width")})
        recorded = _number_map(raw["recorded"], "recorded", path)
        floor = _number_map(raw["floor"], "floor", path)
        no_bf16 = _optional_figures(raw, floor, path, "")
        spec = FloorSpec(checkpoint=str(raw["checkpoint"]),
                         checkpoint_sha256=str(raw["checkpoint_sha256"]), drives=drives,
                         overrides=[str(o) for o in raw.get("overrides") or []],
                         recorded=recorded, floor=floor,
                         measured_on=str(raw.get("measured_on", "")), path=path,
                         recorded_without_bf16=no_bf16)
    except (KeyError, TypeError) as e:
        raise FloorFileError(f"{path}: missing or malformed key {e}; see the comments in "
                             f"{DEFAULT_FLOOR_FILE.name}") from None
    _check_figures(recorded, floor, path, "")
    cam = raw.get("camera")
    if cam is None:
        return spec
    from stemseg_core.data.camera_effects import pipeline_effects

    if not isinstance(cam, Mapping) or not {"effect", "severity", "recorded", "floor"} <= set(cam):
        raise FloorFileError(f"{path}: 'camera' must be a map with effect, severity, recorded "
                             f"and floor, got {cam!r:.80}")
    try:
        pipeline_effects(cam["effect"])
    except ValueError as e:
        raise FloorFileError(f"{path}: camera.effect {e}") from None
    sev = cam["severity"]
    if isinstance(sev, bool) or not isinstance(sev, (int, float)) or not 0 <= sev <= 3:
        raise FloorFileError(f"{path}: camera.severity must be a number in [0, 3], got "
                             f"{sev!r:.40}")
    c_rec = _number_map(cam["recorded"], "camera.recorded", path)
    c_floor = _number_map(cam["floor"], "camera.floor", path)
    _check_figures(c_rec, c_floor, path, "camera.")
    return replace(spec, camera=replace(
        spec, recorded=c_rec, floor=c_floor, effect=str(cam["effect"]), severity=float(sev),
        measured_on=str(cam.get("measured_on", spec.measured_on)),
        recorded_without_bf16=_optional_figures(cam, c_floor, path, "camera.")))


def for_this_machine(spec: FloorSpec) -> FloorSpec:
    """``spec.for_cpu`` with this machine's CPU (OpenVINO asked only when bf16 is asked for)."""
    if not spec.asks_bf16():
        return spec
    from stemseg_core.backends.openvino.backend import runs_bf16_natively

    return spec.for_cpu(runs_bf16_natively())


def _optional_figures(section: Mapping, floor: dict[str, float], path: Path,
                      prefix: str) -> dict[str, float] | None:
    """The section's ``recorded_without_bf16`` (checked against its floor), or None."""
    if section.get("recorded_without_bf16") is None:
        return None
    key = f"{prefix}recorded_without_bf16"
    figures = _number_map(section["recorded_without_bf16"], key, path)
    _check_figures(figures, floor, path, prefix, recorded_key="recorded_without_bf16")
    return figures


def _check_figures(recorded: dict[str, float], floor: dict[str, float], path: Path,
                   prefix: str, recorded_key: str = "recorded") -> None:
    if set(floor) != set(recorded):
        raise FloorFileError(f"{path}: '{prefix}floor' and '{prefix}{recorded_key}' must name "
                             f"the same classes, got {sorted(floor)} and {sorted(recorded)}")
    above = [c for c in floor if floor[c] > recorded[c]]
    if above:
        raise FloorFileError(f"{path}: the {prefix}floor of {above} is above its "
                             f"{recorded_key} HOTA")


@dataclass(frozen=True)
class FloorRow:
    """One class: measured HOTA against the recorded one and the floor."""

    cls: str
    hota: float
    recorded: float
    floor: float

    @property
    def ok(self) -> bool:
        return self.hota >= self.floor


def compare(metrics: Mapping[str, Mapping[str, float]], spec: FloorSpec) -> list[FloorRow]:
    """Rows for the floor's classes from ``metrics`` ({class: {"HOTA": ...}}, as
    evaluate_kitti_mots returns); a class missing from ``metrics`` is an error."""
    missing = [c for c in spec.floor if c not in metrics]
    if missing:
        raise KeyError(f"metrics have no class {missing} (have {sorted(metrics)})")
    return [FloorRow(c, float(metrics[c]["HOTA"]), spec.recorded[c], spec.floor[c])
            for c in spec.floor]


def markdown_table(rows: list[FloorRow], spec: FloorSpec) -> str:
    """The comparison as a markdown section (for report.md)."""
    d = spec.drives
    camera = (f", every frame through the camera effect {spec.effect} at severity "
              f"{spec.severity:g}" if spec.effect else "")
    lines = [
        "## Accuracy floor (held-out drives" + (", camera path)" if spec.effect else ")"),
        "",
        f"{d.sequences} synthetic drives x {d.frames} frames, {d.width}x{d.height}, seed "
        f"{d.seed} (never used for training or tuning){camera}; settings: "
        f"{' '.join(spec.overrides) or 'as shipped'}; floor file `{spec.path or ''}`"
        + (f", recorded {spec.measured_on}" if spec.measured_on else "") + "."
        + (f" Note: {spec.cpu_note}." if spec.cpu_note else ""),
        "",
        "| class | HOTA now | recorded | floor | |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r.cls} | {r.hota:.2f} | {r.recorded:.2f} | {r.floor:.2f} | "
                     f"{'ok' if r.ok else '**below the floor**'} |")
    return "\n".join(lines) + "\n"
