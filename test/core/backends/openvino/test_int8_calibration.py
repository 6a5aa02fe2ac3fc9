"""INT8 calibration reads a camera's colour frames, never a data set's label maps."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from stemseg_core.backends.openvino.int8 import calibration_clips, is_colour_frame


def _synth_like(root, seqs=("0000", "0001"), frames=8):
    """What `stemseg synth` writes: instances/<seq> (16-bit grey instance maps) sorts before
    training/image_02/<seq> (the colour frames)."""
    rng = np.random.default_rng(0)
    for seq in seqs:
        (root / "instances" / seq).mkdir(parents=True)
        (root / "training" / "image_02" / seq).mkdir(parents=True)
        for i in range(frames):
            cv2.imwrite(str(root / "instances" / seq / f"{i:06d}.png"),
                        np.full((16, 24), 1001, np.uint16))
            cv2.imwrite(str(root / "training" / "image_02" / seq / f"{i:06d}.png"),
                        rng.integers(0, 256, (16, 24, 3), dtype=np.uint8))


def test_a_synth_tree_calibrates_on_its_frames_only(tmp_path):
    # before the fix the first clip of each folder in sorted order came from instances/:
    # with 32 drives every one of the 32 clips was an instance map (3 HOTA lost)
    _synth_like(tmp_path)
    clips = calibration_clips(tmp_path, 4, 32)
    assert len(clips) == 4  # 2 drives x 8 frames in clips of 4
    assert all(f.parts[-3] == "image_02" for c in clips for f in c)
    assert [c[0].name for c in clips] == ["000000.png", "000000.png", "000004.png", "000004.png"]


def test_colour_frames_pass_label_and_depth_maps_do_not(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    cv2.imwrite(str(tmp_path / "frame.png"), rgb)
    cv2.imwrite(str(tmp_path / "frame.jpg"), rgb)
    cv2.imwrite(str(tmp_path / "rgba.png"), np.zeros((8, 8, 4), np.uint8))
    cv2.imwrite(str(tmp_path / "kitti_instances.png"), np.zeros((8, 8), np.uint16))
    cv2.imwrite(str(tmp_path / "grey.png"), np.zeros((8, 8), np.uint8))
    palette = Image.fromarray(np.zeros((8, 8), np.uint8), mode="P")  # DAVIS annotations
    palette.putpalette([0, 0, 0, 128, 0, 0] + [0] * 762)
    palette.save(tmp_path / "davis.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    assert [is_colour_frame(tmp_path / n) for n in (
        "frame.png", "frame.jpg", "rgba.png", "kitti_instances.png", "grey.png", "davis.png",
        "broken.png")] == [True, True, True, False, False, False, False]


def test_only_label_maps_is_an_error_that_says_why(tmp_path):
    _synth_like(tmp_path)
    for seq in ("0000", "0001"):
        for f in (tmp_path / "training" / "image_02" / seq).iterdir():
            f.unlink()
    with pytest.raises(ValueError, match="2 folders of grey, 16-bit or palette images left out"):
        calibration_clips(tmp_path, 4, 32)
