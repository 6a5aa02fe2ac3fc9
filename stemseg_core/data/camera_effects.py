"""Camera-pipeline effects: what a real camera and its transport do to a frame (issue 38).

Each effect is an entry of ``stemseg_core.registry.CAMERA_EFFECTS`` with a
*severity* scale shared by training and the robustness benchmark: severity 1, 2, 3 are the
benchmark's levels (:data:`LEVELS` gives each effect's physical values), 0 the mildest end of
a training range; values in between are interpolated. An effect draws its *clip* parameters
once (``draw(rng, severity)``: white balance, exposure, JPEG quality, noise gain, blur, ...),
then is applied to every frame (``apply(rgb, params, rng)``), drawing per-frame randomness
(sensor noise) from ``rng``. Everything comes from the ``numpy.random.Generator`` passed in,
so a clip is a pure function of its seed (resume stays exact).

Images are (H, W, 3) uint8 RGB. Photometric effects work in linear light (sRGB approximated by
gamma 2.2). The effects run in camera order (:attr:`CameraEffect.stage`): optics (vignetting,
defocus, motion blur), sensor (exposure, white balance, noise, the Bayer mosaic and its
demosaicing), processing (gamma), transport (chroma subsampling, JPEG).
"""
from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from stemseg_core.data import image_codec
from stemseg_core.registry import CAMERA_EFFECTS

log = logging.getLogger(__name__)

#: Display gamma used to go to and from linear light.
_GAMMA = 2.2


@dataclass(frozen=True)
class CameraEffect:
    """One registered effect: ``draw(rng, severity) -> params`` once per clip, then
    ``apply(rgb (H, W, 3) uint8, params, rng) -> rgb`` per frame."""

    name: str
    stage: int
    draw: Callable[[np.random.Generator, float], dict]
    apply: Callable[[np.ndarray, dict, np.random.Generator], np.ndarray]
    description: str



#: Physical value of each effect at severity 0, 1, 2, 3 (interpolated in between, clamped
#: outside); chroma's are subsampling levels (1 = 4:2:2, 2 = 4:2:0, 3 = 4:1:0).
LEVELS: dict[str, tuple[float, float, float, float]] = {
    "jpeg": (100, 95, 75, 40),               # JPEG quality (95 = image_transport's default)
    "chroma": (1, 1, 2, 3),                  # subsampling level
    "noise": (0.0, 0.05, 0.2, 0.6),          # Poisson gain a (grey levels per photon)
    "gaussian_blur": (0.0, 0.6, 1.2, 2.0),   # sigma in pixels
    "motion_blur": (1, 3, 7, 13),            # blur length in pixels
    "exposure": (0.0, 0.4, 0.8, 1.4),        # |exposure change| in stops
    "gamma": (0.0, 0.12, 0.25, 0.45),        # |log2 of the gamma exponent|
    "white_balance": (0.0, 0.08, 0.16, 0.3),  # max |log gain| of red and blue
    "vignetting": (0.0, 0.2, 0.4, 0.6),      # light lost in the corners (fraction)
    "demosaic": (1, 1, 2, 3),                # 1 edge-aware, 2 bilinear, 3 2x2 cell colour
}
#: Read noise sigma (grey levels) at severity 0..3, beside the Poisson gain of "noise".
NOISE_READ_SIGMA = (0.0, 1.0, 2.0, 4.0)


def level(name: str, severity: float) -> float:
    """The physical value of effect ``name`` at ``severity`` (see :data:`LEVELS`)."""
    return float(np.interp(severity, (0, 1, 2, 3), LEVELS[name]))


def _register(name: str, stage: int, draw: Callable[[np.random.Generator, float], dict],
              description: str):
    def add(apply):
        CAMERA_EFFECTS.register(name)(CameraEffect(name, stage, draw, apply, description))
        return apply
    return add


_TO_LINEAR = ((np.arange(256) / 255.0) ** _GAMMA).astype(np.float32)


def to_linear(rgb: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) -> float32 linear light in [0, 1] (a lookup table)."""
    return _TO_LINEAR[rgb]


def from_linear(lin: np.ndarray) -> np.ndarray:
    """float linear light -> uint8, clipped (highlights saturate as on a sensor)."""
    return np.rint(np.clip(lin, 0.0, 1.0) ** (1.0 / _GAMMA) * 255.0).astype(np.uint8)


def _even(rgb: np.ndarray) -> np.ndarray:
    """Pad to an even height and width (edge copies) for the YUV layouts."""
    h, w = rgb.shape[:2]
    if h % 2 or w % 2:
        return cv2.copyMakeBorder(rgb, 0, h % 2, 0, w % 2, cv2.BORDER_REPLICATE)
    return rgb


def _sign(rng: np.random.Generator) -> float:
    return 1.0 if rng.random() < 0.5 else -1.0


# ------------------------------------------------------------------------------------ optics
@_register("vignetting", 0, lambda rng, s: {"strength": level("vignetting", s)},
           "radial light fall-off, 1 - strength * r^2 with r = 1 in the corners")
def vignetting(rgb: np.ndarray, p: dict, rng: np.random.Generator) -> np.ndarray:
    h, w = rgb.shape[:2]
    y = (np.arange(h, dtype=np.float32) - (h - 1) / 2) / max(h / 2, 1)
    x = (np.arange(w, dtype=np.float32) - (w - 1) / 2) / max(w / 2, 1)
    r2 = (y[:, None] ** 2 + x[None, :] ** 2) / 2.0
    gain = 1.0 - p["strength"] * r2
    return from_linear(to_linear(rgb) * gain[..., None])


@_register("gaussian_blur", 1, lambda rng, s: {"sigma": level("gaussian_blur", s)},
           "defocus as a Gaussian blur of sigma pixels")
def gaussian_blur(rgb: np.ndarray, p: dict, rng: np.random.Generator) -> np.ndarray:
    if p["sigma"] <= 0:
        return rgb
    return cv2.GaussianBlur(rgb, (0, 0), sigmaX=p["sigma"], borderType=cv2.BORDER_REFLECT)


def motion_kernel(length: float, angle: float) -> np.ndarray:
    """Normalised line kernel of ``length`` pixels at ``angle`` degrees, (k, k) float32."""
    k = max(1, int(np.ceil(length)) | 1)
    ker = np.zeros((k, k), np.float32)
    if k == 1:
        ker[0, 0] = 1.0
        return ker
    c = (k - 1) / 2
    dx, dy = np.cos(np.deg2rad(angle)), np.sin(np.deg2rad(angle))
    for t in np.linspace(-(length - 1) / 2, (length - 1) / 2, 4 * k):
        ker[int(round(c + t * dy)), int(round(c + t * dx))] = 1.0
    return ker / ker.sum()


@_register("motion_blur", 1,
           lambda rng, s: {"length": level("motion_blur", s),
                           "angle": float(rng.normal(0.0, 15.0))},
           "camera motion: a line blur of length pixels, mostly horizontal, per clip")
def motion_blur(rgb: np.ndarray, p: dict, rng: np.random.Generator) -> np.ndarray:
    if p["length"] <= 1:
        return rgb
    return cv2.filter2D(rgb, -1, motion_kernel(p["length"], p["angle"]),
                        borderType=cv2.BORDER_REFLECT)


# ------------------------------------------------------------------------------------ sensor
@_register("exposure", 2, lambda rng, s: {"stops": _sign(rng) * level("exposure", s)},
           "exposure off by +-stops (linear gain 2^stops, highlights clip)")
def exposure(rgb: np.ndarray, p: dict, rng: np.random.Generator) -> np.ndarray:
    return from_linear(to_linear(rgb) * np.float32(2.0 ** p["stops"]))


def _draw_white_balance(rng: np.random.Generator, s: float) -> dict:
    d = level("white_balance", s)
    return {"gains": [float(np.exp(rng.uniform(-d, d))), 1.0, float(np.exp(rng.uniform(-d, d)))]}


@_register("white_balance", 2, _draw_white_balance,
           "wrong white balance: red and blue gains exp(U(-d, d)) in linear light, per clip")
def white_balance(rgb: np.ndarray, p: dict, rng: np.random.Generator) -> np.ndarray:
    return from_linear(to_linear(rgb) * np.asarray(p["gains"], np.float32))


def _draw_noise(rng: np.random.Generator, s: float) -> dict:
    return {"gain": level("noise", s),
            "read_sigma": float(np.interp(s, (0, 1, 2, 3), NOISE_READ_SIGMA))}


@_register("noise", 3, _draw_noise,
           "Poisson-Gauss sensor noise: variance gain * x + read_sigma^2 (grey levels), new "
           "noise every frame")
def noise(rgb: np.ndarray, p: dict, rng: np.random.Generator) -> np.ndarray:
    return np.rint(np.clip(poisson_gauss(rgb.astype(np.float64), p["gain"], p["read_sigma"],
                                         rng), 0, 255)).astype(np.uint8)


def poisson_gauss(x: np.ndarray, gain: float, read_sigma: float,
                  rng: np.random.Generator) -> np.ndarray:
    """x (grey levels, float) -> gain * Poisson(x / gain) + N(0, read_sigma^2): mean x,
    variance gain * x + read_sigma^2 (not clipped or rounded)."""
    out = x
    if gain > 0:
        out = gain * rng.poisson(np.maximum(x, 0) / gain).astype(np.float64)
    if read_sigma > 0:
        out = out + rng.normal(0.0, read_sigma, size=x.shape)
    return out


def demosaic_round_trip(rgb: np.ndarray, method: str) -> np.ndarray:
    """Through an RGGB Bayer sensor: each pixel keeps one colour, then the other two are
    interpolated. "edge_aware": image_codec's decoding of ``bayer_rggb8`` (OpenCV's EA, what the
    node does with a Bayer camera); "bilinear": cv_bridge's (OpenCV's default); "cell": each
    2x2 cell's one colour (R, mean G, B) over the whole cell, as a half-resolution sensor."""
    h, w = rgb.shape[:2]
    src = _even(rgb)
    hh, ww = src.shape[:2]
    enc, step, data = image_codec.encode_image(src, "bayer_rggb8")
    if method == "edge_aware":
        return image_codec.decode_image(enc, hh, ww, step, False, data)[:h, :w]
    mosaic = np.frombuffer(data, np.uint8).reshape(hh, ww)
    if method == "bilinear":
        return cv2.cvtColor(mosaic, cv2.COLOR_BayerBG2RGB)[:h, :w]
    if method != "cell":
        raise ValueError(f"demosaic method {method!r}: allowed edge_aware, bilinear, cell")
    m = mosaic.astype(np.uint16)
    cell = np.stack([m[0::2, 0::2], (m[0::2, 1::2] + m[1::2, 0::2] + 1) // 2, m[1::2, 1::2]],
                    -1).astype(np.uint8)
    return np.repeat(np.repeat(cell, 2, axis=0), 2, axis=1)[:h, :w]


def _variant(name: str, key: str, variants: tuple[str, str, str]):
    """A draw picking one of three named variants by the rounded level (1, 2, 3) of ``name``."""
    return lambda rng, s: {key: variants[int(np.clip(round(level(name, s)), 1, 3)) - 1]}


@_register("demosaic", 4, _variant("demosaic", "method", ("edge_aware", "bilinear", "cell")),
           "Bayer sensor: RGGB mosaic, then demosaiced edge-aware, bilinearly, or per 2x2 cell")
def demosaic(rgb: np.ndarray, p: dict, rng: np.random.Generator) -> np.ndarray:
    return demosaic_round_trip(rgb, p["method"])


# ---------------------------------------------------------------------------------- processing
@_register("gamma", 5, lambda rng, s: {"gamma": float(2.0 ** (_sign(rng) * level("gamma", s)))},
           "tone curve off: x^gamma (x in [0, 1])")
def gamma(rgb: np.ndarray, p: dict, rng: np.random.Generator) -> np.ndarray:
    lut = np.rint(((np.arange(256) / 255.0) ** p["gamma"]) * 255.0).astype(np.uint8)
    return cv2.LUT(rgb, lut)


# ---------------------------------------------------------------------------------- transport
def chroma_round_trip(rgb: np.ndarray, subsampling: str) -> np.ndarray:
    """Through a camera's YUV format and back (BT.601 limited range, image_codec's decoders):
    "422" = UYVY as V4L2 sends it, "420" = NV12, "410" = NV12 with chroma at half that again."""
    h, w = rgb.shape[:2]
    src = _even(rgb)
    hh, ww = src.shape[:2]
    if subsampling == "422":
        enc, step, data = image_codec.encode_image(src, "uyvy")
    elif subsampling in ("420", "410"):
        enc, step, data = image_codec.encode_image(src, "nv12")
        if subsampling == "410":
            planes = np.frombuffer(data, np.uint8).reshape(hh * 3 // 2, ww).copy()
            uv = planes[hh:].reshape(hh // 2, ww // 2, 2)
            small = cv2.resize(uv, (max(1, ww // 4), max(1, hh // 4)),
                               interpolation=cv2.INTER_AREA)
            planes[hh:] = cv2.resize(small, (ww // 2, hh // 2),
                                     interpolation=cv2.INTER_LINEAR).reshape(hh // 2, ww)
            data = planes.tobytes()
    else:
        raise ValueError(f"chroma subsampling {subsampling!r}: allowed 422, 420, 410")
    return image_codec.decode_image(enc, hh, ww, step, False, data)[:h, :w]


@_register("chroma", 6, _variant("chroma", "subsampling", ("422", "420", "410")),
           "YUV chroma subsampling round trip: 4:2:2 (UYVY), 4:2:0 (NV12), 4:1:0")
def chroma(rgb: np.ndarray, p: dict, rng: np.random.Generator) -> np.ndarray:
    return chroma_round_trip(rgb, p["subsampling"])


def jpeg_round_trip(rgb: np.ndarray, quality: int) -> np.ndarray:
    """Encode as JPEG at ``quality`` and decode, as image_transport's compressed plugin does."""
    return image_codec.decode_compressed("jpeg", image_codec.encode_compressed(
        rgb, "jpeg", quality=int(quality)))


@_register("jpeg", 7, lambda rng, s: {"quality": int(round(level("jpeg", s)))},
           "JPEG re-encoding at a quality per clip (95 = image_transport's default)")
def jpeg(rgb: np.ndarray, p: dict, rng: np.random.Generator) -> np.ndarray:
    return jpeg_round_trip(rgb, p["quality"])


# ------------------------------------------------------------------------------------- clips
def effect_names() -> list[str]:
    """Registered effects in camera order."""
    return [n for n, _e in sorted(CAMERA_EFFECTS, key=lambda it: (it[1].stage, it[0]))]


def draw_clip_plan(settings: Mapping, rng: np.random.Generator) -> list[tuple[str, dict]]:
    """Which effects a training clip gets and their clip parameters, in camera order.

    ``settings``: {effect name: object with ``prob`` and ``severity`` = [low, high]} (the
    config's ``data.camera_effects``). Each listed effect is drawn with probability ``prob``,
    its severity uniformly from the range; effects with ``prob`` 0 draw nothing.
    """
    plan = []
    for name in effect_names():
        s = settings.get(name)
        if s is None or s.prob <= 0:
            continue
        if rng.random() < s.prob:
            lo, hi = (float(v) for v in s.severity)
            plan.append((name, CAMERA_EFFECTS.get(name).draw(rng, float(rng.uniform(lo, hi)))))
    return plan


def apply_plan(images: np.ndarray, plan: Iterable[tuple[str, dict]],
               rng: np.random.Generator) -> np.ndarray:
    """images (T, H, W, 3) uint8 -> the same frames through ``plan``'s effects (new array
    when the plan is not empty; per-frame randomness from ``rng``, frame by frame)."""
    plan = list(plan)
    if not plan:
        return images
    out = np.empty_like(images)
    for t in range(len(images)):
        img = images[t]
        for name, params in plan:
            img = CAMERA_EFFECTS.get(name).apply(img, params, rng)
        out[t] = img
    return out


#: Joins effects into a camera pipeline for the benchmark: ``demosaic+jpeg`` is a Bayer sensor's
#: frame, then JPEG (each effect drawn as it is alone, applied in the order written).
PIPELINE_SEP = "+"


def pipeline_effects(spec: str) -> list[str]:
    """The effect names of ``spec``: one effect, or several joined by :data:`PIPELINE_SEP`.
    Raises ValueError naming an unknown or repeated part and the allowed names."""
    parts, names = str(spec).split(PIPELINE_SEP), effect_names()
    unknown = [p for p in parts if p not in names]
    if unknown or len(set(parts)) != len(parts):
        what = (f"unknown effect {unknown[0]!r}" if unknown
                else "an effect appears twice")
        raise ValueError(f"{spec!r}: {what}; give one of {', '.join(names)}, or "
                         f"several joined by '{PIPELINE_SEP}' (e.g. demosaic{PIPELINE_SEP}jpeg)")
    return parts


def effect_rng(seed: int, name: str, severity: float, key: str = "") -> np.random.Generator:
    """A generator for one (effect, severity, sequence) of the benchmark, stable across runs
    and Python versions (names hashed with CRC-32)."""
    return np.random.default_rng([int(seed), zlib.crc32(name.encode()),
                                  int(round(severity * 1000)), zlib.crc32(key.encode())])


def apply_effect(images: Iterable[np.ndarray], name: str, severity: float,
                 rng: np.random.Generator):
    """Yield each (H, W, 3) frame of a sequence through effect ``name`` at ``severity``, the
    clip parameters drawn once for the whole sequence (the benchmark's use)."""
    effect = CAMERA_EFFECTS.get(name)
    params = effect.draw(rng, float(severity))
    log.debug("camera effect %s severity %g: %s", name, severity, params)
    for img in images:
        yield effect.apply(img, params, rng)


def apply_pipeline(images: Iterable[np.ndarray], spec: str, severity: float, seed: int,
                   key: str = ""):
    """Yield each frame through the effects of ``spec`` (:func:`pipeline_effects`) at
    ``severity``, each with its own :func:`effect_rng` (seed, effect, severity, key): a
    pipeline's first stage gives exactly the frames of that effect alone."""
    for name in pipeline_effects(spec):
        images = apply_effect(images, name, severity, effect_rng(seed, name, severity, key))
    yield from images


__all__ = ["CAMERA_EFFECTS", "LEVELS", "PIPELINE_SEP", "CameraEffect", "apply_effect",
           "apply_pipeline", "apply_plan", "chroma_round_trip", "demosaic_round_trip",
           "draw_clip_plan", "effect_names", "effect_rng", "jpeg_round_trip", "level",
           "motion_kernel", "pipeline_effects", "poisson_gauss"]
