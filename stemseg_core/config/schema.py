"""The config schema: one dataclass per section, the allowed option values, and the live
thresholds (:data:`LIVE_THRESHOLDS`).

A config file mirrors :class:`Config`; any field left out keeps its default. Loading and
``key=value`` overrides are in :mod:`.loading`, range checks in :mod:`.validation`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

#: Backbones, mixing functions, architectures, data formats (data.format) and backends
#: (inference.backend) are registries (stemseg_core/registry.py); validation reads their names
#: from there ("auto" is allowed beside them for data.format and inference.backend).
#: input.channel_order: the channel order the model takes.
CHANNEL_ORDERS = ("rgb", "bgr")
#: inference.class_vote: how an instance's class is decided (inference/clustering.py).
CLASS_VOTES = ("mean_logits", "majority")
DEVICES = ("auto", "cpu", "cuda")
#: inference.precision: the network's arithmetic (which backend allows which: backends/).
PRECISIONS = ("fp32", "bf16", "fp16", "int8")
#: The official architecture: clip length -> number of leading pool slots that pool (the
#: authors' table; others identity; model/squeeze_expand.py). Its clip lengths are these keys.
POOLED_SLOTS = {2: 0, 4: 1, 8: 2, 16: 3, 24: 3, 32: 3}
#: model.output_stride: 4 = the paper's decoder output, 2 = with the stride-2 refinement.
OUTPUT_STRIDES = (4, 2)
#: model.chroma_lowpass: 1 = off, 2 = chroma at half resolution (as 4:2:0), 4 = a quarter.
CHROMA_LOWPASS_FACTORS = (1, 2, 4)


@dataclass
class BackboneConfig:
    """Per-frame 2D backbone + FPN."""

    name: str = "resnet101"
    #: Local torchvision/COCO state-dict file to initialise the backbone from; None = from scratch.
    weights: str | None = None
    #: Number of leading stages frozen (0 = none, 1 = stem + stage 1 as the authors do).
    frozen_stages: int = 1
    #: Replace BatchNorm by FrozenBatchNorm2d (as detectron2/the authors).
    frozen_bn: bool = True
    fpn_channels: int = 256


@dataclass
class EmbeddingConfig:
    """Spatio-temporal embedding (paper sec. 3.3)."""

    #: A registered mixing function (model/mixings/): which embedding dims hold fixed
    #: coordinates (x, y, t) or are free (f), in that order.
    mixing: str = "xyt"
    #: Fixed standard deviation of the free dims (v_free = free_dim_std ** 2).
    free_dim_std: float = 0.3
    #: The t coordinate spans [-time_scale, time_scale] over the clip.
    time_scale: float = 1.0

    @property
    def dims(self) -> int:
        """Embedding size E = number of letters in the mixing function."""
        return len(self.mixing)


@dataclass
class DecoderConfig:
    """Temporal Squeeze-Expand decoders (paper sec. 3.2)."""

    #: Channels of the decoder blocks at 1/32, 1/16, 1/8, 1/4 of the input.
    widths: list[int] = field(default_factory=lambda: [256, 256, 128, 128])
    groupnorm_groups: int = 32


@dataclass
class ModelConfig:
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    #: Class names indexed by class id; index 0 is background. KITTI MOTS: 1 car, 2 pedestrian.
    class_names: list[str] = field(default_factory=lambda: ["background", "car", "pedestrian"])
    #: Optional semantic decoder (class logits per pixel, background included).
    semantic_head: bool = True
    #: Clip length T (frames per forward pass).
    clip_length: int = 8
    #: Output resolution, as the input stride of the output maps: 4 = the paper (TSE decoder
    #: output); 2 = a stride-2 refinement guided by the backbone stem (model/refine.py), for
    #: small images whose thin objects are only a few pixels wide at 1/4.
    output_stride: int = 4
    #: Network layout (registry.ARCHITECTURES): "stemseg" = ours (trainable); "official" = the
    #: authors' released network key for key (model/architectures/official.py).
    architecture: str = "stemseg"
    #: official only: seediness from its own head (the authors' DAVIS model) instead of a
    #: channel of the embedding head (their KITTI MOTS and YouTube-VIS models).
    separate_seediness_head: bool = False
    #: Widths of the semantic decoder at 1/32..1/4; [] = decoder.widths.
    semantic_widths: list[int] = field(default_factory=list)
    #: official only: the semantic head has one more (last) output channel, a foreground logit.
    foreground_channel: bool = False
    #: Input normalisation: the model takes uint8-valued floats in input.channel_order and
    #: normalises inside (mean and std in that channel order).
    pixel_mean: list[float] = field(default_factory=lambda: [123.675, 116.28, 103.53])
    pixel_std: list[float] = field(default_factory=lambda: [58.395, 57.12, 57.375])
    #: Chroma low-pass at the input (CHROMA_LOWPASS_FACTORS; model/chroma_lowpass.py; not in
    #: the paper): luma per pixel, colour at 1/f resolution, so JPEG and YUV camera frames look
    #: like lossless ones to the network. 1 = off (the authors' models).
    chroma_lowpass: int = 1

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass
class LossConfig:
    """Weights of the training losses (authors' values as defaults)."""

    embedding: float = 1.0
    smoothness: float = 10.0
    seediness: float = 1.0
    semantic: float = 1.0
    #: Per-class weights of the semantic cross-entropy, one per class name (background first);
    #: empty = unweighted (the authors'). Lifts rare thin classes (pedestrians) over background.
    semantic_class_weights: list[float] = field(default_factory=list)
    #: Seediness MSE weighting of small instances (not in the paper; 0 = off, the paper's plain
    #: mean over pixels). With A > 0, the pixels of an instance covering n < A output pixels of the
    #: clip weigh A / n, so a small distant pedestrian counts like an instance of A pixels.
    seediness_small_instance_area: float = 0.0
    #: Weight of the teacher term (not in the paper; losses.distill_loss, training/teacher.py):
    #: the outputs on the camera-corrupted clip pulled toward a frozen teacher's (train.teacher)
    #: outputs on the same clip before the camera effects. 0 = off.
    distill: float = 0.0


@dataclass
class InputConfig:
    """Resizing of camera images before the model (aspect kept, padded to a multiple of 32)."""

    #: Target size of the shorter / longer side; 0 = keep the image's own size.
    min_side: int = 0
    max_side: int = 0
    #: Channel order the model takes (CHANNEL_ORDERS); the authors' models take BGR (cv2).
    channel_order: str = "rgb"
    #: Antialias when shrinking an image (the authors resize without).
    antialias: bool = True


@dataclass
class InferenceConfig:
    #: Frames shared by consecutive clips (Tc); a clip starts every clip_length - clip_overlap
    #: frames.
    clip_overlap: int = 4
    #: Live threshold: meaning and range in LIVE_THRESHOLDS (below).
    seediness_threshold: float = 0.5
    #: Live threshold: meaning and range in LIVE_THRESHOLDS (below).
    seediness_threshold_per_class: dict[str, float] = field(default_factory=dict)
    #: Live threshold: meaning and range in LIVE_THRESHOLDS (below).
    foreground_threshold: float = 0.5
    #: Live threshold: meaning and range in LIVE_THRESHOLDS (below).
    mask_threshold: float = 0.5
    #: Live threshold: meaning and range in LIVE_THRESHOLDS (below).
    max_instances: int = 20
    #: After a seed's mask is found, re-centre its Gaussian on the mask's mean embedding and
    #: precision and recompute the mask, this many times (0 = the paper: the seed pixel's values).
    center_refinement_steps: int = 0
    #: Live threshold: meaning and range in LIVE_THRESHOLDS (below).
    min_mask_area: int = 0
    #: Live threshold: meaning and range in LIVE_THRESHOLDS (below).
    min_mask_area_per_class: dict[str, int] = field(default_factory=dict)
    #: Offline only (`stemseg infer`, when --min-track-length is not given): drop tracks seen in
    #: fewer frames (0 = keep all). The streaming node cannot know a track's final length when
    #: it publishes a frame, so it ignores this.
    min_track_length: int = 0
    #: Per-class overrides of min_track_length, by class name (the authors' KITTI MOTS
    #: post-processing: {car: 3, pedestrian: 10}); offline only, as min_track_length.
    min_track_length_per_class: dict[str, int] = field(default_factory=dict)
    #: How an instance's class is decided (CLASS_VOTES): "mean_logits" = argmax of the semantic
    #: logits averaged over its pixels; "majority" = the class most of its pixels' argmax names,
    #: background votes ignored (the authors).
    class_vote: str = "mean_logits"
    #: Live threshold: meaning and range in LIVE_THRESHOLDS (below).
    stitch_min_iou: float = 0.1
    #: Not in the paper (0 = off): a track missed for up to this many frames gets its ID back
    #: when an unlinked instance of its class appears near where its box was heading (see
    #: inference/stitching.py).
    relink_max_gap: int = 0
    #: Re-linking radius: centre distance to the track's predicted box centre, in units of
    #: sqrt(track box area).
    relink_max_distance: float = 1.0
    #: Class names re-linking applies to (empty = all).
    relink_classes: list[str] = field(default_factory=list)
    #: Not in the paper: also run each clip mirrored left-right and average the two outputs
    #: (inference/flip_average.py). Doubles the network's time. The ROS node ignores this and
    #: follows its own flip_test parameter (default off, for frame rate).
    flip_test: bool = False
    #: Not in the paper (0 = off): refine each output mask with a colour-guided filter of this
    #: radius in pixels, so that its border follows the image's edges
    #: (inference/mask_refinement.py).
    mask_refinement_radius: int = 0
    #: Per-class overrides of mask_refinement_radius, by class name (e.g. {pedestrian: 5});
    #: used only while mask_refinement_radius > 0 (which turns refinement on).
    mask_refinement_radius_per_class: dict[str, int] = field(default_factory=dict)
    #: The guided filter's ridge term (on RGB in [0, 1]): smaller follows weaker edges.
    mask_refinement_eps: float = 1.0e-3
    #: Class names whose masks are refined (empty = all).
    mask_refinement_classes: list[str] = field(default_factory=list)
    #: Live threshold: meaning and range in LIVE_THRESHOLDS (below).
    classes: list[str] = field(default_factory=list)
    device: str = "auto"
    #: What runs the network: "auto" or a backend of registry.BACKENDS (backends/).
    #: Clustering, stitching and refinement are the same for all.
    backend: str = "torch"
    #: The network's arithmetic: one of PRECISIONS (torch: fp32, or AMP fp16/bf16; openvino:
    #: all four, int8 from `stemseg export --precision int8`; tensorrt: fp16/fp32).
    precision: str = "fp32"
    #: Where built backend artifacts are cached ("" = ~/.cache/stemseg/engines, or
    #: $XDG_CACHE_HOME/stemseg/engines).
    engine_cache_dir: str = ""
    #: CPU threads of the backend (0 = the library's default).
    num_threads: int = 0


@dataclass
class CameraEffectConfig:
    """One camera-pipeline effect of training augmentation (data/camera_effects.py)."""

    #: Probability that a training clip gets this effect (0 = never).
    prob: float = 0.0
    #: Severity range [low, high] within [0, 3], drawn uniformly per clip (1, 2, 3 = the
    #: robustness benchmark's levels; camera_effects.LEVELS gives their physical values).
    severity: list[float] = field(default_factory=lambda: [0.0, 3.0])


@dataclass
class DataConfig:
    #: Layout of the training data: auto (recognised from the folder), kitti_mots, davis or
    #: youtube_vis (see stemseg_core/data/sources.py).
    format: str = "auto"
    #: Training image size (height, width); both multiples of 32.
    height: int = 384
    width: int = 1248
    #: Maximum frame gap between sampled clip frames (1 = consecutive).
    max_frame_stride: int = 1
    horizontal_flip: bool = True
    #: Fraction of training clips made from one image by independent per-frame augmentation.
    image_augmented_fraction: float = 0.0
    #: Not in the paper: per-clip zoom factor drawn uniformly from [low, high] ([1, 1] = off).
    #: Above 1 the frames are enlarged and a random height x width window is kept, below 1 they
    #: are shrunk onto a random place of the canvas (the rest is ignore), same for all frames.
    scale_range: list[float] = field(default_factory=lambda: [1.0, 1.0])
    #: Not in the paper (0 = off): clips are drawn more often where small instances of
    #: ``oversample_class`` are. A clip starting at a frame with k instances of that class under
    #: ``oversample_max_area`` pixels (at the training size) is drawn 1 + weight * k times as
    #: often as one with none (data/oversample.py).
    oversample_weight: float = 0.0
    oversample_class: str = "pedestrian"
    oversample_max_area: int = 100
    #: Not in the paper ({} = off): camera-pipeline effects on training clips, {effect name:
    #: {prob, severity}} (names: data/camera_effects.py; e.g. {jpeg: {prob: 0.5, severity:
    #: [0, 3]}}); white balance, exposure, JPEG quality, ... drawn per clip, noise per frame.
    camera_effects: dict[str, CameraEffectConfig] = field(default_factory=dict)
    num_workers: int = 2


@dataclass
class TrainConfig:
    batch_size: int = 2
    max_steps: int = 40000
    lr: float = 1e-3
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    #: Constant LR until this step, then exponential decay reaching lr * lr_decay_factor at the
    #: end.
    lr_decay_start: int = 20000
    lr_decay_factor: float = 0.1
    grad_clip: float = 10.0
    amp: bool = True
    checkpoint_every: int = 1000
    log_every: int = 20
    image_log_every: int = 500
    seed: int = 42
    #: Checkpoint of the frozen teacher of loss.distill ("" = none); it sees the clean clips.
    teacher: str = ""


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    input: InputConfig = field(default_factory=InputConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ThresholdSpec:
    """One inference setting that may change while a stream runs (``inference.<name>``).

    ``kind`` is the value type: float, int, or list (of class names). With ``per_class`` the
    setting is a {class name: kind} map whose values obey ``low``/``high``. ``low``/``high``
    are inclusive bounds (None = unbounded).
    """

    name: str
    kind: type
    low: float | None
    high: float | None
    description: str
    per_class: bool = False

    def allowed(self) -> str:
        """The allowed values in words, e.g. "in [0, 1]" or ">= 0"."""
        if self.kind is list:
            return "a list of the model's class names (empty = all)"
        lo, hi = self.low, self.high
        if lo is not None and hi is not None:
            what = f"in [{lo:g}, {hi:g}]"
        elif lo is not None:
            what = f">= {lo:g}"
        elif hi is not None:
            what = f"<= {hi:g}"
        else:
            what = "any value"
        number = "a number" if self.kind is float else "an integer"
        return (f"{{class name: {number} {what}}}" if self.per_class
                else f"{number} {what}")


#: Most instances per clip max_instances may ask for: every instance holds T masks and a row of
#: the stitcher's O(n^3) assignment, so an unbounded value lets one parameter set exhaust memory
#: (issue 35); the authors use 20.
MAX_INSTANCES = 1000

#: The inference settings that may change between frames (StreamingTracker.set_thresholds, the
#: ROS node's live parameters); their ranges are checked by config validation too.
LIVE_THRESHOLDS: tuple[ThresholdSpec, ...] = (
    ThresholdSpec("seediness_threshold", float, 0.0, 1.0,
                  "Stop clustering when the highest remaining seediness is below this (the "
                  "authors' MIN_SEEDINESS_PROB)."),
    ThresholdSpec("seediness_threshold_per_class", float, 0.0, 1.0,
                  "Per-class seediness thresholds by class name, e.g. {pedestrian: 0.5}: a seed "
                  "whose most likely class is listed needs this seediness instead of "
                  "seediness_threshold. Needs the semantic head.", per_class=True),
    ThresholdSpec("foreground_threshold", float, 0.0, 1.0,
                  "Pixels are clustered only where the foreground probability exceeds this."),
    ThresholdSpec("mask_threshold", float, 0.001, 0.999,
                  "A pixel joins an instance when its probability p_ij exceeds this (below 1: "
                  "at 1 a mask is its seed pixel alone, one instance per pixel)."),
    ThresholdSpec("max_instances", int, 1, MAX_INSTANCES,
                  "At most this many instances per clip."),
    ThresholdSpec("min_mask_area", int, 0, None,
                  "Instances smaller than this many pixels (per frame, at input resolution, "
                  "judged before mask refinement) are left out of that frame; after linking, "
                  "so they keep their track ID."),
    ThresholdSpec("min_mask_area_per_class", int, 0, None,
                  "Per-class minimum areas by class name, e.g. {pedestrian: 80}; classes not "
                  "listed use min_mask_area.", per_class=True),
    ThresholdSpec("stitch_min_iou", float, 0.0, 1.0,
                  "Minimum mask IoU over the shared frames for two clip instances to be "
                  "linked."),
    ThresholdSpec("classes", list, None, None, "Keep only these class names (empty = all)."),
)
LIVE_THRESHOLD_BY_NAME: dict[str, ThresholdSpec] = {s.name: s for s in LIVE_THRESHOLDS}
