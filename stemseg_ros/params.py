"""Parameters of the perception node: declared once here (default, range, description, live).

``config/perception.yaml`` holds exactly these defaults (a test checks it), and ``ros2 param
describe`` shows the same descriptions and ranges. Threshold parameters are generated from the
core's ``LIVE_THRESHOLDS`` (names, kinds and ranges declared once, next to the config schema);
for them ``-1`` (numbers) or ``""`` (per-class maps) means "the checkpoint's value".

Values come from a params file, ``-p name:=value`` or a parameter service call. A value that does
not fit does *not* abort the process: it is recorded, the default is declared instead, and
``on_configure`` fails with the recorded message, so the node stays up to be fixed. Integers are
accepted for float parameters (``seediness_threshold:=1``).

Any process on the DDS domain can call the parameter services, so (issue 35): trust switches and
limits are ``read_only`` (set at start only, from the launch or params file); what chooses the
model (:data:`MODEL_CHOICE`) changes at run time only with ``allow_remote_model_change: true``
given at start; ``param_checks.check_changes`` refuses everything else that does not fit, and
messages quote at most a short prefix of a value. Values reach the core as a typed override
mapping, never as text re-read as YAML (core_settings.py).

The other concerns live beside this list: :mod:`param_spec` (what a parameter is),
:mod:`param_checks` (validation), :mod:`param_io` (declaring on and reading from the node),
:mod:`core_settings` (what the core gets), :mod:`param_docs` (docs/node.md's table).
"""
from __future__ import annotations

import dataclasses
from typing import Any

from stemseg_core.config import LIVE_THRESHOLDS
from stemseg_ros.param_spec import FROM_CHECKPOINT, ParamError, Spec, threshold_spec
from stemseg_ros.worker import DEFAULT_IDLE_FLUSH_SEC

DEVICES = ("auto", "cpu", "cuda")
TRANSPORTS = ("raw", "compressed")
RELIABILITIES = ("best_effort", "reliable", "auto")
DEFAULT_CHECKPOINT = "checkpoints/stemseg_demo.pt"
#: Default of max_image_pixels: DCI 4K (4096x2160), which also covers UHD (3840x2160) and every
#: smaller camera; an RGB copy of it is 27 MB, the model's float copy 106 MB.
DEFAULT_MAX_IMAGE_PIXELS = 4096 * 2160
#: Most max_image_pixels may be set to: 8K UHD (7680x4320; RGB 100 MB, float copy 400 MB).
MAX_IMAGE_PIXELS_LIMIT = 7680 * 4320

THRESHOLD_SPECS: tuple[Spec, ...] = tuple(threshold_spec(t) for t in LIVE_THRESHOLDS)
THRESHOLDS: tuple[str, ...] = tuple(s.name for s in THRESHOLD_SPECS)

SPECS: tuple[Spec, ...] = (
    Spec("autostart", True, "Configure and activate on start (no lifecycle manager needed)."),
    Spec("checkpoint", DEFAULT_CHECKPOINT, "Path of the stemseg checkpoint (.pt). A relative "
         "path is looked up in the working directory, then in the package share directory.",
         loads=True),
    Spec("allow_pickle", False, "Load checkpoints that need Python pickle (only for files you "
         "trust: unpickling runs code).", read_only=True, loads=True),
    Spec("checkpoint_sha256", "", "Expected SHA-256 of the checkpoint file, checked at every "
         "load; \"\" = any.", read_only=True, loads=True),
    Spec("allow_remote_model_change", False, "Let parameter calls change checkpoint, backend "
         "and engine_cache_dir after start (any process on the DDS domain can make them); "
         "false: those are set at start only.", read_only=True),
    Spec("device", "auto", "Inference device: auto (cuda when available), cuda or cpu.",
         choices=DEVICES, loads=True),
    Spec("backend", "", "Inference backend (auto, torch, onnxruntime, openvino, tensorrt); "
         "\"\" = the device's deployment default (CPU: openvino bf16, CUDA: torch fp32; "
         "stemseg_core.backends.DEPLOYMENT_DEFAULTS), or torch fp32 if that is not installed.",
         loads=True),
    Spec("precision", "", "Inference precision (fp32, bf16, fp16, int8); \"\" = the "
         "deployment default's with backend \"\", else the checkpoint's inference.precision.",
         loads=True),
    Spec("engine_cache_dir", "", "Where built backend engines are cached; \"\" = the default "
         "under the user's cache directory.", core="inference.engine_cache_dir"),
    Spec("num_threads", 0, "CPU threads of the backend; 0 = the library default.",
         range=(0, 1024), core="inference.num_threads"),
    Spec("clip_length", 0, "Frames per clip T; 0 = the checkpoint's value.",
         range=(0, 64), core="model.clip_length"),
    Spec("clip_overlap", FROM_CHECKPOINT, "Frames shared by consecutive clips Tc (< T); -1 = "
         "the checkpoint's value.", range=(-1, 63), core="inference.clip_overlap"),
    Spec("input_roi", [], "Region [x, y, width, height] of the camera image given to the model "
         "(results are mapped back to the full image); [] = the whole image.", item=int),
    Spec("input_width", 0, "Width the model input is scaled to fit (aspect kept; results are "
         "mapped back); 0 = the checkpoint's input.min_side/max_side.",
         range=(0, 8192), loads=True),
    Spec("input_height", 0, "Height the model input is scaled to fit; 0 = as input_width.",
         range=(0, 8192), loads=True),
    Spec("expected_input_size", "", "Size WIDTHxHEIGHT (e.g. 1280x720) of the camera's "
         "images, whose engines activate builds when no camera_info (the image topic's sibling) "
         "answers; \"\" = camera_info, else the first frame (the node then warms up for its "
         "size and says so in the log and /diagnostics)."),
    *THRESHOLD_SPECS,
    Spec("flip_test", False, "Also run every clip mirrored left-right and average the two "
         "outputs (more accurate, twice the network time). The node follows this parameter, "
         "not the checkpoint's inference.flip_test (which `stemseg infer` uses).", loads=True),
    Spec("max_image_pixels", DEFAULT_MAX_IMAGE_PIXELS, "Largest input image (width x height) "
         "accepted; a larger frame is dropped before it is decoded (compressed: by its header), "
         "counted (frames_too_large in /diagnostics) and logged. Default 4096x2160 (DCI 4K, "
         "covers UHD).", range=(1, MAX_IMAGE_PIXELS_LIMIT), read_only=True),
    Spec("cameras", [], "Camera names of one node serving several cameras with one network, "
         "e.g. [front, rear]: subscribes `<name>/image` (remappable) for each and publishes "
         "~/<name>/instances and the other outputs per camera, track IDs unique across them "
         "(camera k of N: (its own ID - 1) * N + k + 1); [] = the single `image`. Names are "
         "ROS name tokens, at most 8.", item=str),
    Spec("input_transport", "raw", "raw: subscribe `image` (sensor_msgs/Image); compressed: "
         "subscribe `<image>/compressed` (sensor_msgs/CompressedImage, jpeg/png), following "
         "the remap of `image`.", choices=TRANSPORTS),
    Spec("qos_reliability", "best_effort", "Input QoS reliability. best_effort matches camera "
         "drivers and `ros2 bag play`; auto matches the publishers found in the graph.",
         choices=RELIABILITIES),
    Spec("qos_depth", 10, "Input (and output) QoS history depth: images that may wait for "
         "the callback (a busy CPU needs more).", range=(1, 1000)),
    Spec("max_input_rate", 0.0, "Most input frames per second given to the model; frames "
         "beyond it are skipped evenly (by stamp), which keeps track IDs linked where a full "
         "queue would drop bursts. 0 = auto (every frame while the model keeps up; 0.8 x its "
         "measured rate while it is behind), -1 = never skip.",
         live=True, range=(-1.0, 1000.0)),
    Spec("publish_overlay", True, "Publish ~/overlay (bgr8 image with masks, IDs and classes; "
         "drawn on its own thread, only while somebody subscribes).", live=True),
    Spec("publish_track_ids", True, "Publish ~/track_ids (32SC1, pixel = track ID, 0 = "
         "background; only while somebody subscribes).", live=True),
    Spec("max_queue_clips", 2, "Input queue bound in clips: at most max_queue_clips * (T - Tc) "
         "frames wait; beyond that the oldest frame is dropped and counted.", range=(1, 1000)),
    Spec("idle_flush_sec", DEFAULT_IDLE_FLUSH_SEC, "Finalise a partial clip, and give the "
         "memory of the clip buffers back, after this many seconds without frames; 0 = never.",
         live=True, range=(0.0, 3600.0)),
    Spec("gap_reset_sec", 5.0, "A gap between the stamps of incoming images longer than this "
         "finalises the running clips and starts a new track sequence (frames the node skipped "
         "or dropped do not count); 0 = never.", live=True, range=(0.0, 86400.0)),
    Spec("diagnostics_period_sec", 1.0, "Period of the /diagnostics status.",
         range=(0.1, 60.0)),
    Spec("use_depth", False, "3-D per instance from a depth image registered to the colour "
         "image: subscribe `depth` (sensor_msgs/Image 16UC1 mm or 32FC1 m; default "
         "`<image ns>/depth/image_raw`) and `camera_info` (K; default `<image ns>/camera_info`)."),
    Spec("use_lidar", False, "3-D per instance from LiDAR: subscribe `points` "
         "(sensor_msgs/PointCloud2 with float32 x y z) and `camera_info`; the LiDAR-to-camera "
         "transform from lidar_to_camera or calib_file. use_depth wins where both pair."),
    Spec("lidar_to_camera", [], "LiDAR -> optical frame of the camera that K describes (KITTI: "
         "rectified camera 2, R_rect and P2's baseline offset included), 16 numbers row-major "
         "(4x4) or 12 (3x4); [] = composed from calib_file.", item=float),
    Spec("calib_file", "", "KITTI calibration: a tracking calib file (P2, R_rect, Tr_velo_cam) "
         "or a raw date folder / its calib_cam_to_cam.txt (+ calib_velo_to_cam.txt). Gives the "
         "LiDAR transform [I|K^-1 P2[:,3]] R_rect Tr when lidar_to_camera is [], and K until "
         "camera_info arrives; \"\" = none."),
    Spec("sync_tolerance_sec", 0.05, "Largest stamp difference between an image and its depth "
         "image or LiDAR scan; a frame without a partner within it is answered without 3-D.",
         range=(0.0, 10.0)),
)
SPEC_BY_NAME = {s.name: s for s in SPECS}
#: Parameters that choose which model runs: set at start only unless allow_remote_model_change.
MODEL_CHOICE = ("checkpoint", "backend", "engine_cache_dir")
#: Parameters that decide how the model is loaded (refused while active, like every non-live).
LOADING: tuple[str, ...] = tuple(s.name for s in SPECS if s.loads or s.core)

PerceptionParams = dataclasses.make_dataclass(
    "PerceptionParams", [(s.name, s.type) for s in SPECS], frozen=True,
    namespace={"__doc__": "The validated values of all parameters (see SPECS for each).",
               "replace": lambda self, **kw: dataclasses.replace(self, **kw)})


def defaults() -> dict[str, Any]:
    """{name: default} of every parameter (what config/perception.yaml holds)."""
    return {s.name: (list(s.default) if isinstance(s.default, list) else s.default)
            for s in SPECS}


__all__ = ["DEFAULT_CHECKPOINT", "DEVICES", "FROM_CHECKPOINT", "LOADING", "MODEL_CHOICE",
           "ParamError", "PerceptionParams", "RELIABILITIES", "SPECS", "SPEC_BY_NAME",
           "THRESHOLDS", "THRESHOLD_SPECS", "TRANSPORTS", "Spec", "defaults"]
