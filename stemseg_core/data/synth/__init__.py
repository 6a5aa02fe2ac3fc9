"""Synthetic KITTI MOTS driving sequences (``stemseg synth``).

A tiny 3-D street world is simulated and rendered with numpy/OpenCV: a road seen through a
pinhole camera (perspective, horizon), sidewalks, building facades with window grids, trees and
poles, cars (3-D boxes: body, cabin with glass, wheels, lights, ground shadow; a small palette so
some cars look alike) and pedestrians (articulated: head, torso, swinging arms and legs). Agents
move in world coordinates, so their image size follows their depth; they enter from the horizon,
from behind (overtaking) and from the sides, cross paths and occlude each other. Each frame is
drawn far-to-near (painter's algorithm on the distance from the camera to the agent's
footprint) into the RGB image and into an id map at the same time, so masks are exactly the
visible parts and never overlap; static props (poles, trees) occlude agents too. The camera
pans and shakes, the lighting drifts over the sequence, and vignetting, blur and sensor noise
are added.

Annotation rules: a visible part smaller than ``min_area_fraction`` of the image becomes an ignore
region (class 10, id 10000) for that frame, an invisible agent is dropped for that frame. Track ids
are ``class * 1000 + k`` (k = 1, 2, ... per class, in order of first appearance).

Output layout (that of KITTI MOTS, plus what TrackEval's ``KittiMOTS`` reads directly)::

    DIR/training/image_02/<seq:04d>/<frame:06d>.png   RGB image
    DIR/instances/<seq:04d>/<frame:06d>.png           uint16, pixel = obj_id, 0 = background
    DIR/instances_txt/<seq:04d>.txt                   "frame obj_id class_id h w rle" lines
    DIR/label_02/<seq:04d>.txt                        copy of instances_txt (TrackEval GT layout)
    DIR/{train,val,fulltrain}.seqmap                  "<seq:04d> empty 000000 <last:06d>"
    DIR/evaluate_mots.seqmap.{train,val,training}     the same seqmaps under TrackEval's names
                                                      (a comment line first when 1 sequence)
    DIR/synth_info.json                               generator parameters and the split
    DIR/training/calib/<seq:04d>.txt                  the camera (KITTI tracking calib, P2)
    DIR/training/depth_02/<seq:04d>/<frame:06d>.png   with depth: uint16 mm, 0 = no return
    DIR/training/velodyne/<seq:04d>/<frame:06d>.bin   with lidar: float32 x y z reflectance

Depth and LiDAR (:mod:`.sensors`) are rendered from the same world and draw nothing from the
random stream: images and masks are byte-identical with or without them.

TrackEval: ``trackeval.datasets.KittiMOTS({"GT_FOLDER": DIR, "SPLIT_TO_EVAL": "val", ...})`` works
as is: its default ``GT_LOC_FORMAT`` is ``{gt_folder}/label_02/{seq}.txt`` and it reads the seqmap
``{gt_folder}/evaluate_mots.seqmap.{split}`` (row: seq, *, *, last frame; length = last + 1).
(``GT_LOC_FORMAT="{gt_folder}/instances_txt/{seq}.txt"`` reads the same data.)

Splits: the last ``round(N * val_fraction)`` sequences are ``val`` and the rest ``train``; each
sequence draws from ``numpy.random.SeedSequence([seed, split, seq])``, so val scenes come from a
different seed space than train scenes. Same arguments give byte-identical files.

Modules: :mod:`.types` (constants, parameters, frame and agent types), :mod:`.world` (street
layout, agents spawning and moving), :mod:`.render` (projection, drawing, photometrics),
:mod:`.annotate` (instance ids, ignore regions, track ids), :mod:`.sensors` / :mod:`.raycast`
(depth camera, LiDAR), :mod:`.generator` (one sequence on one random stream) and
:mod:`.writer` (the files above).
"""
from __future__ import annotations

from stemseg_core.data.kitti_layout import write_seqmap
from stemseg_core.data.synth.generator import SequenceGenerator, sequence_generator, split_of
from stemseg_core.data.synth.scene_types import (
    CAR,
    IGNORE_CLASS,
    IGNORE_ID,
    PEDESTRIAN,
    Frame,
    FrameObject,
    SynthParams,
)
from stemseg_core.data.synth.writer import (
    clean_output,
    contact_sheet,
    generate_dataset,
    instances_txt_lines,
)

__all__ = [
    "CAR", "IGNORE_CLASS", "IGNORE_ID", "PEDESTRIAN", "Frame", "FrameObject", "SequenceGenerator",
    "SynthParams", "clean_output", "contact_sheet", "generate_dataset", "instances_txt_lines",
    "sequence_generator", "split_of", "write_seqmap",
]
