"""Image-augmented clips (paper sec. 4): T frames made from ONE image.

Each frame gets an independent random affine warp (small rotation, scale, translation) applied
identically to the image, the instance masks and the ignore mask, then colour jitter and, with
some probability, a horizontal motion blur (image only). Pixels warped in from outside the source
image are black and marked ignore.
"""
from __future__ import annotations

import cv2
import numpy as np


def random_affine(rng: np.random.Generator, height: int, width: int, max_rotation: float = 8.0,
                  scale: tuple[float, float] = (0.9, 1.1), max_translation: float = 0.06
                  ) -> np.ndarray:
    """2x3 affine matrix: rotation (degrees) and scale about the centre, then a translation."""
    angle = rng.uniform(-max_rotation, max_rotation)
    s = rng.uniform(*scale)
    m = cv2.getRotationMatrix2D((width / 2, height / 2), angle, s)
    m[0, 2] += rng.uniform(-max_translation, max_translation) * width
    m[1, 2] += rng.uniform(-max_translation, max_translation) * height
    return m


def warp(image: np.ndarray, masks: np.ndarray, ignore: np.ndarray, m: np.ndarray
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply one affine matrix to image (H, W, 3), masks (N, H, W) bool and ignore (H, W) bool."""
    h, w = image.shape[:2]
    img = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    valid = cv2.warpAffine(np.ones((h, w), np.uint8), m, (w, h), flags=cv2.INTER_NEAREST,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    ign = cv2.warpAffine(ignore.astype(np.uint8), m, (w, h), flags=cv2.INTER_NEAREST) > 0
    out = np.zeros((len(masks), h, w), bool)
    for i, mk in enumerate(masks):
        out[i] = cv2.warpAffine(mk.astype(np.uint8), m, (w, h), flags=cv2.INTER_NEAREST) > 0
    return img, out, ign | (valid == 0)


def color_jitter(image: np.ndarray, rng: np.random.Generator, brightness: float = 0.25,
                 contrast: float = 0.25, saturation: float = 0.25, hue: float = 6.0
                 ) -> np.ndarray:
    """Random brightness/contrast/saturation (factors) and hue shift (degrees) of an RGB image."""
    img = image.astype(np.float32)
    img *= rng.uniform(1 - brightness, 1 + brightness)
    mean = img.mean()
    img = (img - mean) * rng.uniform(1 - contrast, 1 + contrast) + mean
    gray = img.mean(axis=2, keepdims=True)
    img = (img - gray) * rng.uniform(1 - saturation, 1 + saturation) + gray
    img = np.clip(img, 0, 255).astype(np.uint8)
    if hue > 0:
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
        shift = int(round(rng.uniform(-hue, hue) / 2))  # OpenCV hue is 0..179
        hsv[..., 0] = ((hsv[..., 0].astype(np.int16) + shift) % 180).astype(np.uint8)
        img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return img


def motion_blur(image: np.ndarray, rng: np.random.Generator, max_length: int = 7) -> np.ndarray:
    """Linear motion blur with a random length (>= 3) and direction."""
    length = int(rng.integers(3, max(4, max_length + 1)))
    k = np.zeros((length, length), np.float32)
    k[length // 2, :] = 1.0
    rot = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), rng.uniform(0, 180), 1)
    k = cv2.warpAffine(k, rot, (length, length))
    k /= max(k.sum(), 1e-6)
    return cv2.filter2D(image, -1, k)


def make_augmented_clip(image: np.ndarray, masks: np.ndarray, ignore: np.ndarray, length: int,
                        rng: np.random.Generator, blur_prob: float = 0.3
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image (H, W, 3), masks (N, H, W), ignore (H, W) -> images (T, H, W, 3) uint8,
    masks (N, T, H, W) bool, ignore (T, H, W) bool, each frame independently augmented."""
    h, w = image.shape[:2]
    images = np.zeros((length, h, w, 3), np.uint8)
    out_masks = np.zeros((len(masks), length, h, w), bool)
    out_ign = np.zeros((length, h, w), bool)
    for t in range(length):
        m = random_affine(rng, h, w)
        img, mk, ign = warp(image, masks, ignore, m)
        img = color_jitter(img, rng)
        if rng.random() < blur_prob:
            img = motion_blur(img, rng)
        images[t], out_masks[:, t], out_ign[t] = img, mk, ign
    return images, out_masks, out_ign
