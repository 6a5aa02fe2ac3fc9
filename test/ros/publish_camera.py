"""Helper process of test_node_streams.py: a camera in another process.

    python test/ros/publish_camera.py stream TOPIC WIDTH HEIGHT HZ SECONDS [compressed]
        bgr8 (or jpeg on TOPIC/compressed) frames of moving boxes, best effort, like a driver
    python test/ros/publish_camera.py faults TOPIC
        FAULTS: good frames (reliable) interleaved with every kind of bad input
    python test/ros/publish_camera.py drive TOPIC WIDTH HEIGHT HZ SECONDS QUALITY [SEED]
        a synthetic drive (stemseg synth's renderer at half size, upscaled 2x; SEED chooses
        the drive, default 7919) as JPEG of
        QUALITY on TOPIC/compressed, best effort, plus camera_info beside TOPIC (reliable, from
        the start, as a driver publishes it: "ready" is printed then); prints "playing
        WALLTIME" when the node's subscription matched (the node is active) and the first
        frame goes out

Waits until the node's reader has matched, publishes, prints "sent N", exits. ROS_DOMAIN_ID and
FASTDDS_DEFAULT_PROFILES_FILE come from the environment.
"""
from __future__ import annotations

import array
import sys
import time

import numpy as np

SEC = 1_000_000_000


def boxes(i: int, h: int, w: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB: two coloured rectangles moving over a flat background."""
    img = np.full((h, w, 3), (40, 60, 80), np.uint8)
    s = max(1, h // 64)
    x1 = (5 + 3 * i) * s % max(1, w - 20 * s)
    img[10 * s:30 * s, x1:x1 + 20 * s] = (220, 30, 30)
    x2 = max(0, w - (28 + 2 * i) * s)
    img[35 * s:60 * s, x2:x2 + 20 * s] = (30, 200, 40)
    return img


def faults() -> list[tuple[str, int, np.ndarray | None]]:
    """(kind, stamp ns, RGB image or None) in publishing order. kind "good" frames must all be
    answered; the others must be counted and dropped. Covers a size change, a stamp back in
    time and a gap of 3 s (tests set gap_reset_sec below that)."""
    out: list[tuple[str, int, np.ndarray | None]] = []
    bad = ["encoding", "step", "truncated", "empty", "encoding"]
    for i in range(5):  # 64x128 at 10 Hz, a bad input after each
        out.append(("good", 100 * SEC + i * SEC // 10, boxes(i, 64, 128)))
        out.append((bad[i], 100 * SEC + i * SEC // 10 + SEC // 20, None))
    for i in range(5, 9):  # size change
        out.append(("good", 100 * SEC + i * SEC // 10, boxes(i, 80, 144)))
    for i in range(4):  # back in time (a bag restarted)
        out.append(("good", 50 * SEC + i * SEC // 10, boxes(i, 80, 144)))
    for i in range(4):  # a gap of 3 s in the camera's stamps
        out.append(("good", 53 * SEC + 3 * SEC // 10 + i * SEC // 10, boxes(9 + i, 80, 144)))
    return out


def message(kind: str, stamp: int, rgb: np.ndarray | None):
    from stemseg_ros import conversions as cv

    msg = cv.array_to_image(np.ascontiguousarray(rgb[..., ::-1]), "bgr8") if rgb is not None \
        else cv.array_to_image(np.zeros((64, 128, 3), np.uint8), "bgr8")
    msg.header.frame_id = "cam"
    msg.header.stamp.sec, msg.header.stamp.nanosec = stamp // SEC, stamp % SEC
    if kind == "encoding":
        msg.encoding = "yuv999"
    elif kind == "step":
        msg.step = 10
    elif kind == "truncated":
        msg.data = bytes(msg.data)[:1000]
    elif kind == "empty":
        msg.height = msg.width = msg.step = 0
        msg.data = b""
    else:
        assert kind == "good", kind
    return msg


def drive_jpegs(w: int, h: int, n: int, quality: int, seed: int = 7919) -> list[bytes]:
    """JPEG bytes of n frames of a synthetic drive at w x h (rendered at half size: the model
    sees at most 640x192 of it, and rendering at full size takes 0.3 s a frame)."""
    import cv2

    from stemseg_core.data import image_codec as codec
    from stemseg_core.data.synth.generator import sequence_generator
    from stemseg_core.data.synth.scene_types import SynthParams

    gen = sequence_generator(seed, 0, "val", SynthParams(height=h // 2, width=w // 2, frames=n))
    return [codec.encode_compressed(cv2.resize(f.image, (w, h), interpolation=cv2.INTER_LINEAR),
                                    "jpeg", quality=quality) for f in gen.frames()]


def play_drive(node, topic: str, argv: list[str]) -> int:
    """The "drive" mode (module doc); returns the frames sent."""
    import threading

    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, CompressedImage

    from stemseg_core.data import image_codec as codec

    w, h, hz, secs, quality = (int(argv[0]), int(argv[1]), float(argv[2]), float(argv[3]),
                               int(argv[4]))
    seed = int(argv[5]) if len(argv) > 5 else 7919
    pub = node.create_publisher(CompressedImage, f"{topic}/compressed",
                                QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT))
    info_pub = node.create_publisher(CameraInfo, f"{topic.rsplit('/', 1)[0]}/camera_info", 10)
    stop = threading.Event()

    def camera_info() -> None:
        while not stop.is_set():
            info_pub.publish(CameraInfo(width=w, height=h))
            time.sleep(1.0 / hz)

    threading.Thread(target=camera_info, daemon=True).start()
    print("ready", flush=True)  # camera_info is out; the frames follow once the node is active
    jpegs = drive_jpegs(w, h, int(round(hz * secs)), quality, seed)
    while pub.get_subscription_count() == 0:
        rclpy.spin_once(node, timeout_sec=0.02)
    t0 = time.monotonic()
    print(f"playing {time.time():.3f}", flush=True)
    fmt = codec.compressed_format_string("jpeg")
    for i, data in enumerate(jpegs):
        stamp = 1000 * SEC + int(i * SEC / hz)
        msg = CompressedImage(format=fmt, data=array.array("B", data))
        msg.header.frame_id = "cam"
        msg.header.stamp.sec, msg.header.stamp.nanosec = stamp // SEC, stamp % SEC
        pub.publish(msg)
        time.sleep(max(0.0, t0 + (i + 1) / hz - time.monotonic()))
    stop.set()
    return len(jpegs)


def main(argv: list[str]) -> None:
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CompressedImage, Image

    from stemseg_ros import conversions as cv

    mode, topic = argv[0], argv[1]
    rclpy.init()
    node = rclpy.create_node("test_camera")
    if mode == "drive":
        print(f"sent {play_drive(node, topic, argv[2:])}", flush=True)
        time.sleep(1.0)
        node.destroy_node()
        rclpy.try_shutdown()
        return
    compressed = mode == "stream" and argv[-1] == "compressed"
    reliability = ReliabilityPolicy.RELIABLE if mode == "faults" else ReliabilityPolicy.BEST_EFFORT
    pub = node.create_publisher(CompressedImage if compressed else Image,
                                f"{topic}/compressed" if compressed else topic,
                                QoSProfile(depth=100 if mode == "faults" else 5,
                                           reliability=reliability))
    while pub.get_subscription_count() == 0:
        rclpy.spin_once(node, timeout_sec=0.05)
    time.sleep(0.5)
    sent = 0
    if mode == "faults":
        for kind, stamp, rgb in faults():
            pub.publish(message(kind, stamp, rgb))
            sent += 1
            time.sleep(0.05)
    else:
        w, h, hz, secs = int(argv[2]), int(argv[3]), float(argv[4]), float(argv[5])
        t0 = time.monotonic()
        while sent < hz * secs:
            stamp = 1000 * SEC + int(sent * SEC / hz)
            rgb = boxes(sent, h, w)
            if compressed:
                msg = cv.rgb_to_compressed(rgb, "jpeg")
            else:
                msg = cv.array_to_image(np.ascontiguousarray(rgb[..., ::-1]), "bgr8")
            msg.header.frame_id = "cam"
            msg.header.stamp.sec, msg.header.stamp.nanosec = stamp // SEC, stamp % SEC
            pub.publish(msg)
            sent += 1
            time.sleep(max(0.0, t0 + sent / hz - time.monotonic()))
    print(f"sent {sent}", flush=True)
    time.sleep(1.0)  # let the last samples leave before the writer goes
    node.destroy_node()
    rclpy.try_shutdown()


if __name__ == "__main__":
    main(sys.argv[1:])
