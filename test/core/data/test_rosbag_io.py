"""rosbag2 I/O without ROS: KITTI -> bag -> frames round trips and the clear errors."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from stemseg_core.data import rosbag_io as rio

N_FRAMES = 5
H, W = 24, 40


def _kitti(root: Path, seq: str = "0003", n: int = N_FRAMES, sixteen_bit: bool = False) -> Path:
    d = root / "training" / "image_02" / seq
    d.mkdir(parents=True)
    rng = np.random.default_rng(int(seq))
    for k in range(n):
        if sixteen_bit:
            img = rng.integers(0, 65535, (H, W), dtype=np.uint16)
        else:
            img = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
        cv2.imwrite(str(d / f"{k:06d}.png"), img)
    return d


def _png(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if img.ndim == 3 else img


@pytest.fixture
def kitti(tmp_path):
    _kitti(tmp_path / "kitti")
    return tmp_path / "kitti"


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
@pytest.mark.parametrize("compressed", [False, True])
def test_round_trip_frames_and_stamps(kitti, tmp_path, storage, compressed):
    bag = tmp_path / "bag"
    s = rio.write_kitti_bag(kitti, "3", bag, storage=storage, compressed=compressed,
                            progress=False)
    assert s.frames == list(range(N_FRAMES))
    frames = rio.read_image_frames(bag)
    assert len(frames) == N_FRAMES
    seq_dir = kitti / "training" / "image_02" / "0003"
    for k, f in enumerate(frames):
        # png compression is lossless: identical to the source files
        np.testing.assert_array_equal(f.decode(), _png(seq_dir / f"{k:06d}.png"))
        assert f.stamp_ns == rio.DEFAULT_START_NS + k * 100_000_000  # exactly 10 Hz
        assert f.log_time_ns == f.stamp_ns
        assert f.frame_id == "camera"
        assert f.msgtype == (rio.COMPRESSED_MSGTYPE if compressed else rio.IMAGE_MSGTYPE)
    topics = rio.list_topics(bag)
    assert topics["/camera/camera_info"].count == N_FRAMES
    index = rio.read_frame_index(bag)
    assert index.seq == "0003"
    assert index.stamp_to_frame == {f.stamp_ns: k for k, f in enumerate(frames)}


def test_bags_are_reproducible(kitti, tmp_path):
    a = rio.write_kitti_bag(kitti, "0003", tmp_path / "a", progress=False)
    b = rio.write_kitti_bag(kitti, "0003", tmp_path / "b", progress=False)
    assert a.stamps_ns == b.stamps_ns
    ra = [f.raw for f in rio.read_image_frames(tmp_path / "a")]
    rb = [f.raw for f in rio.read_image_frames(tmp_path / "b")]
    assert ra == rb


def test_bare_storage_file_and_camera_info(kitti, tmp_path):
    calib = kitti / "training" / "calib"
    calib.mkdir()
    (calib / "0003.txt").write_text("P0: " + " ".join(["0"] * 12) + "\n"
                                    "P2: 700 0 20 44 0 700 12 0 0 0 1 0.003\n")
    rio.write_kitti_bag(kitti, "0003", tmp_path / "bag", progress=False)
    bare = tmp_path / "bag" / "bag.mcap"
    assert len(rio.read_image_frames(bare)) == N_FRAMES

    from rosbags.highlevel import AnyReader

    with AnyReader([tmp_path / "bag"]) as r:
        conn = [c for c in r.connections if c.topic == "/camera/camera_info"]
        _, _, raw = next(r.messages(connections=conn))
        info = r.deserialize(raw, conn[0].msgtype)
    assert (info.height, info.width) == (H, W)
    np.testing.assert_allclose(info.k, [700, 0, 20, 0, 700, 12, 0, 0, 1])
    assert info.p[3] == 44


def test_plausible_camera_info_without_calib():
    P = rio.plausible_projection(375, 1242)
    assert abs(P[0, 0] - 721.5) < 5 and P[0, 2] == pytest.approx(620.5)


def test_timestamps_file(kitti, tmp_path):
    seq_dir = kitti / "training" / "image_02" / "0003"
    (seq_dir / "times.txt").write_text("".join(f"{0.5 + 0.25 * k:.6f}\n" for k in range(8)))
    s = rio.write_kitti_bag(kitti, "0003", tmp_path / "bag", progress=False)
    assert s.timestamps_file is not None
    frames = rio.read_image_frames(tmp_path / "bag")
    assert [f.stamp_ns - rio.DEFAULT_START_NS for f in frames] == [
        k * 250_000_000 for k in range(N_FRAMES)]


@pytest.mark.parametrize("compressed", [False, True])
def test_sixteen_bit_images_are_mono16(tmp_path, compressed):
    root = tmp_path / "kitti16"
    seq_dir = _kitti(root, "0005", sixteen_bit=True)
    s = rio.write_kitti_bag(root, "5", tmp_path / "bag", compressed=compressed, progress=False)
    assert s.encoding == "mono16"
    for k, f in enumerate(rio.read_image_frames(tmp_path / "bag")):
        assert f.encoding.startswith("mono16")
        rgb = f.decode()
        assert rgb.shape == (H, W, 3) and rgb.dtype == np.uint8
        top8 = (_png(seq_dir / f"{k:06d}.png") >> 8).astype(np.uint8)
        for c in range(3):
            np.testing.assert_array_equal(rgb[..., c], top8)
        np.testing.assert_array_equal(rio.to_rgb8(rgb), rgb)  # already RGB8: unchanged


def test_jpeg_quality_writes_a_cameras_jpeg(tmp_path, capsys):
    from stemseg_core.cli import main

    root = tmp_path / "kitti"
    seq_dir = root / "training" / "image_02" / "0001"
    seq_dir.mkdir(parents=True)
    yy, xx = np.mgrid[0:48, 0:80]
    for k in range(3):  # smooth images: JPEG keeps them close, and closer at a higher quality
        img = np.stack([(xx * 3 + k) % 256, (yy * 5) % 256, (xx + yy) % 256], -1).astype(np.uint8)
        cv2.imwrite(str(seq_dir / f"{k:06d}.png"), img)
    err = {}
    for q in (50, 95):
        out = tmp_path / f"q{q}"
        assert main(["bag", "from-kitti", "--kitti", str(root), "--seq", "1", "--out", str(out),
                     "--jpeg-quality", str(q)]) == 0
        assert f"rgb8 as jpeg q{q}" in capsys.readouterr().out
        frames = rio.read_image_frames(out)
        assert [f.msgtype for f in frames] == [rio.COMPRESSED_MSGTYPE] * 3
        assert frames[0].encoding == "rgb8; jpeg compressed bgr8"
        raw = [_png(seq_dir / f"{k:06d}.png").astype(int) for k in range(3)]
        err[q] = max(np.abs(f.decode().astype(int) - r).mean() for f, r in zip(frames, raw))
    assert 0 < err[95] < err[50] < 10, err  # lossy, and the quality is the one asked for
    with pytest.raises(rio.BagError, match="0..100"):
        rio.write_kitti_bag(root, "1", tmp_path / "bad", jpeg_quality=101)
    sixteen = tmp_path / "kitti16"
    _kitti(sixteen, "0005", sixteen_bit=True)
    with pytest.raises(rio.BagError, match="8-bit images only"):
        rio.write_kitti_bag(sixteen, "5", tmp_path / "bad16", jpeg_quality=90)


def _bag_with(tmp_path: Path, topics: dict[str, str]) -> Path:
    """A bag with one message per topic: topic -> msgtype (Image, CompressedImage, String)."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_KILTED)
    T = ts.types
    path = tmp_path / "other"
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        for topic, msgtype in topics.items():
            conn = w.add_connection(topic, msgtype, typestore=ts)
            hdr = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=1,
                                                                                   nanosec=0),
                                           frame_id="x")
            if msgtype == rio.IMAGE_MSGTYPE:
                msg = T[msgtype](header=hdr, height=2, width=2, encoding="bgr8", is_bigendian=0,
                                 step=6, data=np.arange(12, dtype=np.uint8))
            elif msgtype == rio.COMPRESSED_MSGTYPE:
                _, buf = cv2.imencode(".png", np.zeros((2, 2, 3), np.uint8))
                msg = T[msgtype](header=hdr, format="png", data=buf.reshape(-1))
            else:
                msg = T[msgtype](data="hello")
            w.write(conn, 1_000_000_000, ts.serialize_cdr(msg, msgtype))
    return path


def test_no_image_topic(tmp_path):
    bag = _bag_with(tmp_path, {"/chatter": "std_msgs/msg/String"})
    with pytest.raises(rio.NoImageTopicError, match=r"no sensor_msgs/Image.*/chatter"):
        rio.read_image_frames(bag)


def test_unknown_and_non_image_topic(tmp_path):
    bag = _bag_with(tmp_path, {"/cam/image": rio.IMAGE_MSGTYPE,
                               "/chatter": "std_msgs/msg/String"})
    with pytest.raises(rio.UnknownTopicError, match=r"'/nope' is not in .*/cam/image"):
        rio.read_image_frames(bag, "/nope")
    with pytest.raises(rio.UnknownTopicError, match=r"not sensor_msgs/Image"):
        rio.read_image_frames(bag, "/chatter")
    frames = rio.read_image_frames(bag)  # auto-detected: the only image topic
    assert frames[0].decode()[0, 0].tolist() == [2, 1, 0]  # bgr8 -> RGB


def test_several_image_topics_need_topic(tmp_path):
    bag = _bag_with(tmp_path, {"/a/image": rio.IMAGE_MSGTYPE,
                               "/b/image/compressed": rio.COMPRESSED_MSGTYPE})
    with pytest.raises(rio.AmbiguousTopicError, match=r"--topic: /a/image, /b/image/compressed"):
        rio.read_image_frames(bag)
    assert len(rio.read_image_frames(bag, "/b/image/compressed")) == 1


@pytest.mark.parametrize("storage,ext", [("mcap", "mcap"), ("sqlite3", "db3")])
def test_truncated_bag(kitti, tmp_path, storage, ext):
    bag = tmp_path / "bag"
    rio.write_kitti_bag(kitti, "0003", bag, storage=storage, progress=False)
    f = bag / f"bag.{ext}"
    os.truncate(f, f.stat().st_size // 2)
    with pytest.raises(rio.CorruptBagError, match="truncated or corrupt"):
        rio.read_image_frames(bag)


def test_not_a_bag(tmp_path):
    (tmp_path / "junk.mcap").write_bytes(b"not an mcap file at all")
    with pytest.raises(rio.CorruptBagError):
        rio.read_image_frames(tmp_path / "junk.mcap")
    (tmp_path / "dir").mkdir()
    with pytest.raises(rio.CorruptBagError, match="without metadata.yaml"):
        rio.read_image_frames(tmp_path / "dir")
    with pytest.raises(FileNotFoundError):
        rio.read_image_frames(tmp_path / "missing")


def test_cli_from_kitti(kitti, tmp_path, capsys):
    from stemseg_core.cli import main

    out = tmp_path / "drive.mcap"
    assert main(["bag", "from-kitti", "--kitti", str(kitti), "--seq", "0003", "--out", str(out),
                 "--compressed", "--format", "sqlite3", "--topic", "/cam/img"]) == 0
    assert "5 frames" in capsys.readouterr().out
    assert rio.read_image_frames(out)[0].msgtype == rio.COMPRESSED_MSGTYPE
    assert main(["bag", "from-kitti", "--kitti", str(kitti), "--seq", "0003", "--out",
                 str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["bag", "from-kitti", "--kitti", str(kitti), "--seq", "0003", "--out",
                 str(out), "--overwrite"]) == 0
    shutil.rmtree(out)
    assert main(["bag", "from-kitti", "--kitti", str(kitti), "--seq", "0042", "--out",
                 str(out)]) == 2
    assert "sequence 0042 not found" in capsys.readouterr().err


@pytest.mark.parametrize("encoding", ["rgb8", "yuv422", "bayer_rggb8"])
def test_reader_honours_step_padding(tmp_path, encoding):
    """A camera that pads its rows: the bag reader skips the padding (no shifted rows)."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    from stemseg_core.data.image_codec import decode_image, encode_image

    rgb = np.random.default_rng(3).integers(0, 256, (H, W, 3), dtype=np.uint8)
    _, step, data = encode_image(rgb, encoding)
    pad = 16
    padded = b"".join(data[r * step:(r + 1) * step] + b"\x7f" * pad for r in range(H))
    ts = get_typestore(Stores.ROS2_KILTED)
    T = ts.types
    with Writer(tmp_path / "padded", version=9, storage_plugin=StoragePlugin.MCAP) as w:
        conn = w.add_connection("/cam", rio.IMAGE_MSGTYPE, typestore=ts)
        hdr = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=1, nanosec=0),
                                       frame_id="x")
        msg = T[rio.IMAGE_MSGTYPE](header=hdr, height=H, width=W, encoding=encoding,
                                   is_bigendian=0, step=step + pad,
                                   data=np.frombuffer(padded, np.uint8))
        w.write(conn, 1, ts.serialize_cdr(msg, rio.IMAGE_MSGTYPE))
    got = rio.read_image_frames(tmp_path / "padded")[0].decode()
    np.testing.assert_array_equal(got, decode_image(encoding, H, W, step, False, data))
    if encoding == "rgb8":
        np.testing.assert_array_equal(got, rgb)


def test_encoding_writes_a_v4l2_cameras_uyvy(tmp_path, capsys):
    """--encoding yuv422: the frames go out as UYVY Image messages and come back within the
    4:2:2 round trip's error (pixel pairs share their colour); misuse is named."""
    from stemseg_core.cli import main
    from stemseg_core.data.image_codec import decode_image, encode_image

    root = tmp_path / "kitti"
    seq_dir = root / "training" / "image_02" / "0002"
    seq_dir.mkdir(parents=True)
    imgs = []
    for k in range(2):
        img = np.full((24, 40, 3), (40, 120, 200), np.uint8)
        img[:, 20 + k:] = (200, 60, 30)  # a colour edge at an odd column in frame 1
        cv2.imwrite(str(seq_dir / f"{k:06d}.png"), img[..., ::-1])
        imgs.append(img)
    out = tmp_path / "uyvy"
    assert main(["bag", "from-kitti", "--kitti", str(root), "--seq", "2", "--out", str(out),
                 "--encoding", "yuv422"]) == 0
    assert "yuv422 on /camera/image_raw (Image)" in capsys.readouterr().out
    frames = rio.read_image_frames(out)
    assert [f.encoding for f in frames] == ["yuv422", "yuv422"]
    for f, img in zip(frames, imgs):
        got = f.decode().astype(int)
        enc, step, data = encode_image(img, "yuv422")
        assert step == 2 * 40
        np.testing.assert_array_equal(got, decode_image(enc, 24, 40, step, False, data))
    # frame 0's edge falls between two pixel pairs: BT.601 rounding only; frame 1's splits a
    # pair, whose two pixels share one colour
    assert np.abs(frames[0].decode().astype(int) - imgs[0]).max() <= 2
    assert np.abs(frames[1].decode().astype(int) - imgs[1])[:, 20:22].max() > 20
    with pytest.raises(rio.BagError, match="'yuv420' is not .* allowed: rgb8, bgr8"):
        rio.write_kitti_bag(root, "2", tmp_path / "bad", image_encoding="yuv420")
    with pytest.raises(rio.BagError, match="does not go with --compressed"):
        rio.write_kitti_bag(root, "2", tmp_path / "bad", image_encoding="yuv422", jpeg_quality=90)
    sixteen = tmp_path / "kitti16"
    _kitti(sixteen, "0005", sixteen_bit=True)
    with pytest.raises(rio.BagError, match="converts 8-bit RGB images only"):
        rio.write_kitti_bag(sixteen, "5", tmp_path / "bad16", image_encoding="yuv422")
