"""Training clips: sampling, resizing, augmentation, torch Dataset and collate.

``ClipDataset(sequences, cfg, train=True, seed=0)[i]`` is a dict::

    images   uint8 (T, 3, H, W) RGB          T = cfg.model.clip_length
    masks    bool  (N, T, H, W)              instances visible in any frame of the clip
    classes  long  (N,)                      class ids (KITTI MOTS: 1 car, 2 pedestrian)
    ignore   bool  (T, H, W)                 ignore regions, padding, unknown classes
    meta     dict  sequence name, frame indices, flipped, augmented

``H, W`` = ``cfg.data.height, cfg.data.width``. Frames are resized keeping the aspect ratio so
that they fit into H x W, placed top-left and padded (zeros, marked ignore) at the bottom/right;
when the aspect ratio already matches (the resized size is within one pixel of H x W) the frame is
resized to exactly H x W without padding. Instance masks of a track are all-False in the frames
where it is absent; tracks that vanish entirely after resizing are dropped. Instances whose class
is not in ``1 .. num_classes - 1`` go to the ignore mask.

Training sampling (per item, from ``numpy.random.default_rng([seed, epoch, index])``, so an item
is a pure function of seed, epoch and index and a resumed run sees the same data): a sequence
(weighted by its number of clips, or with ``cfg.data.oversample_weight`` > 0 by the weights of
data/oversample.py, which also weigh the start frame), a frame stride in
``1 .. cfg.data.max_frame_stride`` (limited by the sequence length), a random start; a
clip-level horizontal flip with probability 0.5 when ``cfg.data.horizontal_flip``; with
probability ``cfg.data.image_augmented_fraction`` the clip is instead made from ONE frame by
:func:`stemseg_core.data.augment.make_augmented_clip`; when ``cfg.data.scale_range`` is not
[1, 1], a zoom factor and window (see :func:`zoom_clip`), drawn last so that runs without it
see the same draws as before; when ``cfg.data.camera_effects`` enables an effect, a seed for
the camera effects (data/camera_effects.py: JPEG, chroma subsampling, noise, blur, exposure,
...), drawn after everything else. They are applied to the resized frames before zoom and flip;
masks, classes and ignore stay as they are. With ``cfg.loss.distill`` > 0 the item also holds
``clean_images``: the same frames without the camera effects (zoomed and flipped alike), the
teacher's input (training/teacher.py).
Evaluation (``train=False``): every clip with stride 1 starting at multiples of ``clip_step``
(default T), no augmentation.

``collate_clips(batch)`` -> ``(images float (B, T, 3, H, W) in 0..255, targets)`` with ``targets``
a list of ``{"masks", "classes", "ignore"[, "clean_images" float (T, 3, H, W)]}`` dicts: the
model's training input.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from stemseg_core.data.augment import make_augmented_clip
from stemseg_core.data.camera_effects import apply_plan, draw_clip_plan
from stemseg_core.data.sequence import Sequence


def resize_geometry(src_h: int, src_w: int, dst_h: int, dst_w: int) -> tuple[int, int]:
    """Size (h, w) of the resized content inside the (dst_h, dst_w) canvas."""
    s = min(dst_h / src_h, dst_w / src_w)
    h, w = int(round(src_h * s)), int(round(src_w * s))
    if abs(h - dst_h) <= 1 and abs(w - dst_w) <= 1:
        return dst_h, dst_w
    return min(h, dst_h), min(w, dst_w)


def fit_frame(image: np.ndarray, masks: np.ndarray, ignore: np.ndarray, dst_h: int, dst_w: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resize one frame (image (h, w, 3), masks (N, h, w), ignore (h, w)) onto the canvas."""
    h, w = image.shape[:2]
    nh, nw = resize_geometry(h, w, dst_h, dst_w)
    img = np.zeros((dst_h, dst_w, 3), np.uint8)
    img[:nh, :nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR) \
        if (nh, nw) != (h, w) else image
    ign = np.ones((dst_h, dst_w), bool)
    out = np.zeros((len(masks), dst_h, dst_w), bool)
    stack = np.concatenate([masks.astype(np.uint8), ignore[None].astype(np.uint8)], 0)
    if (nh, nw) != (h, w):
        chunks = []
        for i in range(0, len(stack), 256):  # OpenCV handles at most 512 channels
            part = np.ascontiguousarray(stack[i:i + 256].transpose(1, 2, 0))
            r = cv2.resize(part, (nw, nh), interpolation=cv2.INTER_NEAREST)
            chunks.append(r.reshape(nh, nw, -1).transpose(2, 0, 1))
        stack = np.concatenate(chunks, 0)
    out[:, :nh, :nw] = stack[:-1] > 0
    ign[:nh, :nw] = stack[-1] > 0
    return img, out, ign


def zoom_clip(images: np.ndarray, masks: np.ndarray, ignore: np.ndarray, scale: float,
              u: float, v: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Zoom a clip by ``scale`` on its own (H, W) canvas, the same way in every frame.

    images (T, H, W, 3) uint8, masks (N, T, H, W) bool, ignore (T, H, W) bool. scale > 1: the
    enlarged frames are cropped to a window at offset (u, v) * (room left) (u, v in [0, 1]);
    scale < 1: the shrunk frames are placed at that offset and the uncovered canvas is black and
    ignore. Images are resampled bilinearly, masks and ignore by nearest neighbour.
    """
    _t, h, w = ignore.shape
    # In pixel-edge coordinates dst = scale * src + shift, shift <= 0 when zooming in (crop),
    # >= 0 when zooming out (pad); pixel centres (x = edge - 0.5) add 0.5 * (scale - 1).
    shift_y = -u * (scale * h - h)
    shift_x = -v * (scale * w - w)
    centre = 0.5 * (scale - 1.0)
    affine = np.array([[scale, 0.0, shift_x + centre], [0.0, scale, shift_y + centre]])
    out_img = np.stack([cv2.warpAffine(im, affine, (w, h), flags=cv2.INTER_LINEAR,
                                       borderMode=cv2.BORDER_CONSTANT, borderValue=0)
                        for im in images])
    src_y = np.floor((np.arange(h) + 0.5 - shift_y) / scale).astype(np.int64)
    src_x = np.floor((np.arange(w) + 0.5 - shift_x) / scale).astype(np.int64)
    ok_y = (src_y >= 0) & (src_y < h)
    ok_x = (src_x >= 0) & (src_x < w)
    inside = ok_y[:, None] & ok_x[None, :]
    sy, sx = np.clip(src_y, 0, h - 1), np.clip(src_x, 0, w - 1)
    out_masks = masks[..., sy[:, None], sx[None, :]] & inside
    out_ignore = ignore[..., sy[:, None], sx[None, :]] | ~inside
    return out_img, out_masks, out_ignore


class ClipDataset(Dataset):
    """Clips of ``cfg.model.clip_length`` frames from :class:`Sequence` objects (module doc)."""

    def __init__(self, sequences: list[Sequence], cfg, train: bool = True, seed: int = 0,
                 samples_per_epoch: int | None = None, clip_step: int | None = None) -> None:
        if not sequences:
            raise ValueError("ClipDataset needs at least one sequence")
        self.sequences = sequences
        self.cfg = cfg
        self.train = train
        self.seed = int(seed)
        self.epoch = 0
        self.T = int(cfg.model.clip_length)
        self.H, self.W = int(cfg.data.height), int(cfg.data.width)
        self.num_classes = int(cfg.model.num_classes)
        self.keep_clean = cfg.loss.distill > 0  # the teacher's input (training/teacher.py)
        self.counts = np.array([max(1, len(s) - self.T + 1) for s in sequences], np.int64)
        step = clip_step or self.T
        self.eval_clips = [(i, st) for i, s in enumerate(sequences)
                           for st in range(0, max(1, len(s) - self.T + 1), step)]
        if samples_per_epoch is None:
            samples_per_epoch = int(self.counts.sum()) if train else len(self.eval_clips)
        self.samples_per_epoch = int(samples_per_epoch)
        #: Per sequence, (n_frames,) weights of a clip start (data/oversample.py), or None.
        self.start_weights: list[np.ndarray] | None = None
        self.oversample_summary = ""
        if train and float(cfg.data.oversample_weight) > 0:
            self._init_oversampling()

    def _init_oversampling(self) -> None:
        from stemseg_core.data.oversample import small_instance_counts, start_weights

        d = self.cfg.data
        cls = list(self.cfg.model.class_names).index(d.oversample_class)
        counts = []
        for q in self.sequences:
            scale = min(self.H / q.height, self.W / q.width)
            counts.append(small_instance_counts(q, cls, d.oversample_max_area, scale * scale))
        self.start_weights = [start_weights(c, d.oversample_weight) for c in counts]
        # a sequence is drawn by the total weight of its clip starts (at stride 1)
        totals = np.array([w[:k].sum() for w, k in zip(self.start_weights, self.counts)])
        self.sequence_p = totals / totals.sum()
        starts = np.concatenate([c[:k] for c, k in zip(counts, self.counts)])
        weights = np.concatenate([w[:k] for w, k in zip(self.start_weights, self.counts)])
        share = float((starts > 0).mean())
        drawn = float(weights[starts > 0].sum() / weights.sum())
        self.oversample_summary = (
            f"oversampling small {d.oversample_class}s (< {d.oversample_max_area} px, weight "
            f"{d.oversample_weight:g}): {share:.0%} of clip starts have one, drawn {drawn:.0%} "
            f"of the time")

    #: Training indices past len() select later epochs: item ``e * len + i`` is item i drawn
    #: afresh for epoch e (the trainer's sampler sends such indices; see training/sampling.py).
    indexed_with_epoch = True

    def __len__(self) -> int:
        return self.samples_per_epoch

    # ------------------------------------------------------------------------------ sampling
    def sample(self, index: int) -> dict:
        """The random choices of item ``index``: sequence, frames, flip, augmented."""
        if not self.train:
            si, st = self.eval_clips[index % len(self.eval_clips)]
            n = len(self.sequences[si])
            frames = [min(st + k, n - 1) for k in range(self.T)]
            return {"seq": si, "frames": frames, "flip": False, "augmented": False, "rng": None,
                    "zoom": None, "camera_seed": None}
        extra_epochs, index = divmod(int(index), len(self))
        rng = np.random.default_rng([self.seed, self.epoch + extra_epochs, index])
        p_seq = self.counts / self.counts.sum() if self.start_weights is None else self.sequence_p
        si = int(rng.choice(len(self.sequences), p=p_seq))
        n = len(self.sequences[si])
        d = self.cfg.data
        augmented = bool(rng.random() < d.image_augmented_fraction)
        flip = bool(d.horizontal_flip and rng.random() < 0.5)
        if augmented:
            frames = [int(rng.integers(n))] * self.T
        else:
            max_stride = max(1, min(d.max_frame_stride, (n - 1) // max(1, self.T - 1)))
            stride = int(rng.integers(1, max_stride + 1))
            span = stride * (self.T - 1)
            if self.start_weights is None:
                start = int(rng.integers(0, max(1, n - span)))
            else:
                w = self.start_weights[si][:max(1, n - span)]
                start = int(rng.choice(len(w), p=w / w.sum()))
            frames = [min(start + k * stride, n - 1) for k in range(self.T)]
        lo, hi = (float(x) for x in d.scale_range)
        zoom = None
        if (lo, hi) != (1.0, 1.0):
            zoom = (float(rng.uniform(lo, hi)), float(rng.random()), float(rng.random()))
        camera_seed = None
        if any(e.prob > 0 for e in d.camera_effects.values()):
            camera_seed = int(rng.integers(2 ** 63))
        return {"seq": si, "frames": frames, "flip": flip, "augmented": augmented, "rng": rng,
                "zoom": zoom, "camera_seed": camera_seed}

    def __getitem__(self, index: int) -> dict:
        if index < 0 or (index >= len(self) and not self.train):
            raise IndexError(index)
        s = self.sample(index)
        return self.load_clip(s["seq"], s["frames"], flip=s["flip"],
                              augment_rng=s["rng"] if s["augmented"] else None, zoom=s["zoom"],
                              camera_seed=s["camera_seed"])

    # ------------------------------------------------------------------------------- loading
    def load_clip(self, seq_index: int, frames: list[int], flip: bool = False,
                  augment_rng: np.random.Generator | None = None,
                  zoom: tuple[float, float, float] | None = None,
                  camera_seed: int | None = None) -> dict:
        """Build the item of the given frames (deterministic; used by ``__getitem__``).
        zoom: (scale, u, v) for :func:`zoom_clip`, or None. camera_seed: seed of the clip's
        camera effects (``cfg.data.camera_effects``), or None for none."""
        seq = self.sequences[seq_index]
        cache: dict[int, tuple] = {}

        def frame(t: int):
            if t not in cache:
                ann = seq.annotations(t)
                img = seq.load_image(t)
                ign = ann.ignore.copy()
                inst = []
                for tid, cls, m in ann.instances:
                    if 1 <= cls < self.num_classes:
                        inst.append((tid, cls, m))
                    else:
                        ign |= m
                cache[t] = (img, inst, ign)
            return cache[t]

        track_ids: list[int] = []
        track_cls: dict[int, int] = {}
        for t in frames:
            for tid, cls, _m in frame(t)[1]:
                if tid not in track_cls:
                    track_ids.append(tid)
                    track_cls[tid] = cls
        col = {tid: i for i, tid in enumerate(track_ids)}
        T, H, W, N = self.T, self.H, self.W, len(track_ids)
        images = np.zeros((T, H, W, 3), np.uint8)
        masks = np.zeros((N, T, H, W), bool)
        ignore = np.zeros((T, H, W), bool)
        if augment_rng is not None:
            img, inst, ign = frame(frames[0])
            src = np.zeros((N, *img.shape[:2]), bool)
            for tid, _cls, m in inst:
                src[col[tid]] |= m
            imgs, mks, igns = make_augmented_clip(img, src, ign, T, augment_rng)
            for k in range(T):
                images[k], masks[:, k], ignore[k] = fit_frame(imgs[k], mks[:, k], igns[k], H, W)
        else:
            for k, t in enumerate(frames):
                img, inst, ign = frame(t)
                src = np.zeros((N, *img.shape[:2]), bool)
                for tid, _cls, m in inst:
                    src[col[tid]] |= m
                images[k], masks[:, k], ignore[k] = fit_frame(img, src, ign, H, W)
        camera = []
        clean = None  # the frames before the camera effects, when they differ and are kept
        if camera_seed is not None:
            crng = np.random.default_rng(camera_seed)
            plan = draw_clip_plan(self.cfg.data.camera_effects, crng)
            if self.keep_clean and plan:
                clean = images
            images = apply_plan(images, plan, crng)
            camera = [name for name, _p in plan]
        if zoom is not None and zoom[0] != 1.0:
            if clean is not None:
                clean = zoom_clip(clean, masks[:0], ignore, *zoom)[0]
            images, masks, ignore = zoom_clip(images, masks, ignore, *zoom)
        if flip:
            images = images[:, :, ::-1]
            clean = None if clean is None else clean[:, :, ::-1]
            masks = masks[..., ::-1]
            ignore = ignore[..., ::-1]
        keep = masks.reshape(N, -1).any(1) if N else np.zeros(0, bool)
        masks = masks[keep]
        classes = np.array([track_cls[tid] for tid in track_ids], np.int64)[keep]
        item = {
            "images": torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))),
            "masks": torch.from_numpy(np.ascontiguousarray(masks)),
            "classes": torch.from_numpy(classes),
            "ignore": torch.from_numpy(np.ascontiguousarray(ignore)),
            "meta": {"sequence": seq.name, "frames": list(frames), "flipped": bool(flip),
                     "augmented": augment_rng is not None,
                     "zoom": None if zoom is None else zoom[0], "camera_effects": camera,
                     "track_ids": [t for t, k in zip(track_ids, keep) if k]},
        }
        if self.keep_clean:
            item["clean_images"] = item["images"] if clean is None else torch.from_numpy(
                np.ascontiguousarray(clean.transpose(0, 3, 1, 2)))
        return item


def collate_clips(batch: list[dict]) -> tuple[torch.Tensor, list[dict]]:
    """Stack clips: images float (B, T, 3, H, W) with values 0..255, per-clip target dicts."""
    images = torch.stack([b["images"] for b in batch]).float()
    targets = [{"masks": b["masks"], "classes": b["classes"], "ignore": b["ignore"]}
               for b in batch]
    for t, b in zip(targets, batch):
        if "clean_images" in b:
            t["clean_images"] = b["clean_images"].float()
    return images, targets


def build_dataset(cfg, data_dir: str | Path | list[str | Path] | tuple[str | Path, ...],
                  split: str = "train", seed: int | None = None,
                  samples_per_epoch: int | None = None) -> ClipDataset:
    """ClipDataset over KITTI MOTS (e.g. ``stemseg synth``), DAVIS or YouTube-VIS data
    (``cfg.data.format``, see data/sources.py); training augmentation for the ``train`` /
    ``fulltrain`` / ``training`` splits.

    ``data_dir`` may list several folders (same format each, or auto-detected per folder): their
    sequences are pooled, each renamed ``<folder name>/<sequence>`` so that names stay unique
    (two ``stemseg synth`` folders both hold a ``0000``).
    """
    from stemseg_core.data.sources import load_training_sequences

    dirs = [data_dir] if isinstance(data_dir, (str, Path)) else list(data_dir)
    if not dirs:
        raise ValueError("no training data folder given")
    seqs = []
    for d in dirs:
        part = load_training_sequences(d, split, cfg.data.format, cfg.model.class_names)
        if len(dirs) > 1:
            part = [dataclasses.replace(q, name=f"{Path(d).name}/{q.name}") for q in part]
        seqs.extend(part)
    names = [q.name for q in seqs]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"sequence names repeat across the data folders ({', '.join(dup[:4])}): "
                         f"give folders with different names")
    train = split in ("train", "fulltrain", "training")
    return ClipDataset(seqs, cfg, train=train,
                       seed=cfg.train.seed if seed is None else seed,
                       samples_per_epoch=samples_per_epoch)
