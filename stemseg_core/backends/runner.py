"""clip -> outputs through a backend, each frame's features computed once.

Consecutive clips of the streaming tracker share T_c frames, and the flip test runs every
frame mirrored too. ``NetworkRunner`` keeps the features of the last frames it encoded, keyed by
the frame's content: a frame of a new clip that equals (``np.array_equal``) a kept one reuses
its features, so each frame (and its mirror) passes the 2D network once instead of T/(T-T_c)
times. Equal input gives equal features, so reuse changes no result. Memory: ``capacity`` frames
of features (default 2T: a clip and its mirror). ``run_many`` takes several clips at once (the
due clips of several cameras, inference/batched_clips.py): their new frames go through one
encoder call, each clip through the decoder on its own.

The data are numpy float32 on both sides (clip in, outputs out; the backends convert at their
own boundary), so the tracker's path imports no torch; this module imports it only to build a
backend for a torch model (``build_runner``).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import numpy as np

from stemseg_core.backends.network import NetworkSource

if TYPE_CHECKING:
    from torch import nn

    from stemseg_core.backends.base import Backend

#: Per-frame features: numpy arrays, each (N, ...) float32 (backends/base.py ``Features``).
Features = tuple[np.ndarray, ...]
#: Values sampled per frame to find candidate kept frames before comparing whole frames.
SIGNATURE_SIZE = 4096


class NetworkRunner:
    """Calls ``backend`` on clips (1, L, 3, Hp, Wp) float32 -> the model's output dict (batch
    1, numpy float32)."""

    def __init__(self, backend: Backend, capacity: int) -> None:
        self.backend = backend
        self.capacity = max(1, int(capacity))
        #: the capacity it was built with (one stream); a TrackerGroup keeps N times this
        self.base_capacity = self.capacity
        self._kept: OrderedDict[int, tuple[np.ndarray, np.ndarray, Features]] = OrderedDict()
        self._next = 0
        #: frames encoded / frames served from kept features, since the last reset()
        self.encoded = 0
        self.reused = 0

    def reset(self) -> None:
        """Forget the kept features (a new stream; also frees their memory)."""
        self._kept.clear()
        self.encoded = self.reused = 0

    def __call__(self, clip: np.ndarray) -> dict[str, np.ndarray]:
        return self.run_many([clip])[0]

    def run_many(self, clips: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        """Several clips (1, L_i, 3, Hp, Wp) -> their output dicts, in order: the frames of
        all clips that no kept frame (nor an equal frame before them in ``clips``) matches go
        through ONE encoder call, then each clip through the decoder on its own (a decoder
        graph takes one clip). Equal to calling the runner on each clip in turn wherever the
        backend's encoder gives a frame the same features in any batch."""
        feats: list[list[Features | None]] = []
        new: list[tuple[np.ndarray, np.ndarray]] = []  # (frame, signature) to encode
        where: dict[tuple[int, int], int] = {}  # (clip, frame) -> its index in `new`
        for c, clip in enumerate(clips):
            frames = self._frames(clip)
            # A few thousand sampled values per frame find the candidate kept frames;
            # np.array_equal on the whole frame confirms (a static scene may differ only
            # where no sample falls).
            flat = frames.reshape(frames.shape[0], -1)
            sigs = flat[:, ::max(1, flat.shape[1] // SIGNATURE_SIZE)]
            feats.append([self._lookup(f, sig) for f, sig in zip(frames, sigs)])
            for i, found in enumerate(feats[c]):
                if found is None:
                    where[c, i] = next((j for j, (f, sig) in enumerate(new)
                                        if np.array_equal(sig, sigs[i])
                                        and np.array_equal(f, frames[i])), len(new))
                    if where[c, i] == len(new):
                        new.append((frames[i], sigs[i]))
        if new:
            encoded = self._encode([f for f, _ in new])
            for (frame, sig), fs in zip(new, encoded):
                self._keep(frame, sig, fs)
            for (c, i), j in where.items():
                feats[c][i] = encoded[j]
        self.encoded += len(new)
        self.reused += sum(len(f) for f in feats) - len(new)
        outs = []
        for per_frame in feats:  # every frame's features found or encoded by now
            done = [f for f in per_frame if f is not None]
            outs.append(self.backend.decode(tuple(np.concatenate(parts)
                                                  for parts in zip(*done))))
        return outs

    @staticmethod
    def _frames(clip: np.ndarray) -> np.ndarray:
        if not isinstance(clip, np.ndarray) or clip.ndim != 5 or clip.shape[0] != 1:
            raise ValueError(f"clip must be a numpy array (1, L, 3, Hp, Wp), got "
                             f"{type(clip).__name__} {tuple(getattr(clip, 'shape', ()))}")
        return np.asarray(clip[0], np.float32)

    def _encode(self, frames: list[np.ndarray]) -> list[Features]:
        """Frames (3, Hp, Wp) through one encoder call (or one per ``backend.max_batch``
        frames) -> each one's features (batch 1)."""
        step = self.backend.max_batch or len(frames)
        if len(frames) > step:
            return [f for k in range(0, len(frames), step)
                    for f in self._encode(frames[k:k + step])]
        batch = np.stack(frames)
        n = len(frames)
        if n < self.backend.min_batch:  # pad with copies (see Backend.min_batch)
            batch = np.concatenate([batch, np.repeat(batch[:1], self.backend.min_batch - n,
                                                     axis=0)])
        out = self.backend.encode(np.ascontiguousarray(batch))
        return [tuple(t[j:j + 1] for t in out) for j in range(n)]

    def _lookup(self, frame: np.ndarray, sig: np.ndarray) -> Features | None:
        for key, (kept, kept_sig, feats) in self._kept.items():
            if kept.shape == frame.shape and np.array_equal(kept_sig, sig) \
                    and np.array_equal(kept, frame):
                self._kept.move_to_end(key)
                return feats
        return None

    def _keep(self, frame: np.ndarray, sig: np.ndarray, feats: Features) -> None:
        self._kept[self._next] = (frame.copy(), sig.copy(), feats)
        self._next += 1
        while len(self._kept) > self.capacity:
            self._kept.popitem(last=False)


class EagerRunner:
    """The runner of a model that is not an STEmSeg network, under the torch backend: the whole
    model on each clip, numpy in and out (conversion at this boundary), no feature reuse."""

    backend = None  # no Backend: the tracker reports "torch fp32 (eager model)"

    def __init__(self, model: nn.Module, device: Any) -> None:
        self.model = model
        self.device = device
        self.encoded = self.reused = 0

    def reset(self) -> None:
        self.encoded = self.reused = 0

    def __call__(self, clip: np.ndarray) -> dict[str, np.ndarray]:
        import torch

        with torch.inference_mode():
            out = self.model(torch.from_numpy(np.ascontiguousarray(clip, np.float32))
                             .to(self.device))
            self.encoded += int(clip.shape[1])
            return {k: (v.float().cpu().numpy() if isinstance(v, torch.Tensor) else v)
                    for k, v in out.items()}


def splittable(model: nn.Module) -> bool:
    """Whether ``model`` can be cut into the two graphs (export/split.py): an STEmSeg network,
    or a model with its own ``encode_frames`` / ``decode_clip`` (the authors' layout); a
    NetworkSource (graphs from the engine cache) always."""
    if isinstance(model, NetworkSource):
        return True
    from stemseg_core.export.split import has_own_split

    return has_own_split(model) or all(
        hasattr(model, a) for a in ("backbone", "refiners", "embedding_decoder",
                                    "seediness_decoder", "mixing", "pixel_mean"))


def build_runner(model: nn.Module, inference_cfg: Any, device: Any,
                 frame_shape: tuple[int, int, int], clip_length: int
                 ) -> NetworkRunner | EagerRunner:
    """The runner for a tracker's settings (cfg.inference: backend, precision,
    engine_cache_dir, num_threads), built or loaded for ``frame_shape`` (3, Hp, Wp) and clips of
    ``clip_length`` on ``device`` (a name or torch.device); an :class:`EagerRunner` for a model
    that is not an STEmSeg network under the torch backend. Imports torch only for a torch
    model (a NetworkSource runs from the engine cache; Backend converts the device)."""
    from stemseg_core.backends.base import BackendUnavailable, create_backend
    from stemseg_core.backends.cache import ArtifactCache

    name, precision = inference_cfg.backend, inference_cfg.precision
    if not splittable(model):
        if name in ("torch", "auto") and precision == "fp32":
            import torch

            return EagerRunner(model, torch.device(device))
        raise BackendUnavailable(f"backend '{name}' ({precision}) needs an STEmSeg network; "
                                 f"got {type(model).__name__}")
    backend = create_backend(name, model, device, precision,
                             cache=ArtifactCache(inference_cfg.engine_cache_dir or None),
                             num_threads=int(inference_cfg.num_threads))
    backend.prepare(tuple(int(s) for s in frame_shape), int(clip_length))
    return NetworkRunner(backend, capacity=2 * int(clip_length))
