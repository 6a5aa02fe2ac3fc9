"""The node's model: loads the checkpoint into a StreamingTracker (once per set of loading
parameters), resolves "the checkpoint's value" of thresholds, frees it all on request."""
from __future__ import annotations

from typing import Any

from stemseg_core.inference.stream_policy import StreamSession
from stemseg_ros import core_settings, params
from stemseg_ros.memory import release_memory


def share_dir() -> str | None:
    """The installed package's share directory (None when not installed)."""
    try:
        from ament_index_python.packages import get_package_share_directory

        return get_package_share_directory("stemseg_ros")
    except Exception:  # noqa: BLE001 - not installed: relative paths resolve against the cwd
        return None


class ModelHolder:
    """Holds the tracker between configure/activate and deactivate/cleanup."""

    def __init__(self, logger: Any) -> None:
        self.log = logger
        self.tracker: Any = None
        self.path = self.device = ""
        self.defaults: dict[str, Any] = {}  # the checkpoint's threshold values
        self._key: tuple | None = None

    def load(self, p: params.PerceptionParams) -> None:
        """Load the checkpoint unless it is loaded with these loading parameters already.

        Raises ParamError naming the parameter, or the file and the problem."""
        from stemseg_core.config import ConfigError, resolve_device
        from stemseg_core.inference.tracker import StreamingTracker

        path = str(core_settings.resolve_checkpoint(p.checkpoint, share_dir()))
        try:
            device = resolve_device(p.device)
        except ConfigError as e:
            raise params.ParamError(f"parameter 'device': {e}") from None
        key = (path, device, *(getattr(p, k) for k in params.LOADING))
        if self.tracker is not None and key == self._key:
            return
        self.free()
        try:
            tracker = StreamingTracker.from_checkpoint(
                path, device=device, overrides=core_settings.tracker_overrides(p, device),
                allow_pickle=p.allow_pickle, sha256=p.checkpoint_sha256 or None)
        except Exception as e:  # noqa: BLE001 - named in the message, the node stays up
            raise params.ParamError(f"cannot load checkpoint '{path}' on {device}: "
                                    f"{type(e).__name__}: {e}") from None
        self.tracker, self.path, self.device, self._key = tracker, path, device, key
        self.defaults = {n: getattr(tracker.cfg.inference, n) for n in params.THRESHOLDS}

    def session(self, p: params.PerceptionParams, camera: tuple[tuple[int, int], str] | None = None
                ) -> StreamSession:
        """A new stream session on the (re)loaded tracker, thresholds set, warmed up: for the
        camera's frames when `camera` ((H, W), where that came from) is known (their region of
        interest with input_roi), else the training geometry."""
        self.load(p)
        tr = self.tracker
        set_values = {n: getattr(p, n) for n in params.THRESHOLDS
                      if getattr(p, n) not in (params.FROM_CHECKPOINT, "", ())}
        tr.set_thresholds(**self.thresholds(set_values))
        session = StreamSession(tr, p.gap_reset_sec)
        if hasattr(tr, "warmup"):  # backends build their engines here, not on the first frame
            if camera:
                (h, w), source = camera
                if p.input_roi:
                    h, w = p.input_roi[3], p.input_roi[2]
                self.log.info(f"warming up for {w}x{h} frames (size from {source})")
                session.prepare((h, w))
            else:
                tr.warmup(every_length=True)
            release_memory()  # what building and warming up left behind
        tr.reset()
        return session

    def thresholds(self, values: dict[str, Any]) -> dict[str, Any]:
        """Parameter values -> set_thresholds arguments (the checkpoint's where -1 / "")."""
        return core_settings.thresholds(values, self.defaults)

    def check_threshold(self, name: str, value: Any) -> None:
        """Check a live threshold against the loaded model (class names); ValueError if bad."""
        if self.tracker is None:
            return
        from stemseg_core.config import check_live_threshold

        v = self.thresholds({name: value})[name]
        check_live_threshold(name, v, self.tracker.class_names, key=f"parameter '{name}'")

    def free(self, release: bool = True) -> None:
        """Drop the tracker; with `release`, collect and give the memory back (RSS)."""
        if self.tracker is None:
            return
        self.tracker = None
        self._key = None
        if release:
            release_memory()

    def summary(self) -> str:
        tr = self.tracker
        if tr is None:
            return f"checkpoint {self.path or '?'} (not loaded)"
        return (f"checkpoint {self.path} on {self.device}, T={tr.clip_length}, "
                f"Tc={tr.clip_overlap}, thresholds seediness={tr.seediness_threshold} "
                f"mask={tr.mask_threshold} foreground={tr.foreground_threshold} "
                f"min_area={tr.min_mask_area}"
                + (", flip test on (2 network passes per clip)" if tr.flip_test else ""))

    def info(self) -> dict[str, str]:
        out = {"device": self.device, "checkpoint": self.path}
        if self.tracker is not None and getattr(self.tracker, "weights_sha256", None):
            out["checkpoint_sha256"] = self.tracker.weights_sha256
        if self.tracker is not None and hasattr(self.tracker, "backend_label"):
            out["backend"] = self.tracker.backend_label
        if self.device.startswith("cuda") and self.tracker is not None:
            import torch

            out["gpu_memory_mb"] = f"{torch.cuda.memory_allocated() / 2**20:.1f}"
        return out
