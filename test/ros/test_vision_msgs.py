"""vision_msgs as the node uses it: the same types as ROS 2 Kilted's vision_msgs 4.1.1, by their
RIHS01 type hashes (what DDS peers compare), recorded with their source in
data/vision_msgs_rihs01.json (computed from the upstream .msg files, see that file)."""
from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

import pytest
import rclpy
from ros_helpers import REPO, unique_domain

RECORDED = json.loads((Path(__file__).parent / "data" / "vision_msgs_rihs01.json").read_text())
HASHES: dict[str, str] = RECORDED["hashes"]
OURS = REPO / "interfaces" / "vision_msgs" / "msg"


def _type(name: str):
    pkg, _, cls = name.split("/")
    return getattr(importlib.import_module(f"{pkg}.msg"), cls)


def test_the_record_names_the_16_types_of_4_1_1_and_our_package_has_each():
    assert len(HASHES) == 16 and all(h.startswith("RIHS01_") and len(h) == 71
                                     for h in HASHES.values())
    assert sorted(p.stem for p in OURS.glob("*.msg")) == sorted(n.rsplit("/", 1)[1]
                                                                 for n in HASHES)


@pytest.mark.ros
def test_the_installed_vision_msgs_types_have_the_upstream_hashes_on_the_wire():
    """The hash the middleware announces for each type (our build, or a ROS install's)."""
    pytest.importorskip("vision_msgs.msg", reason="no vision_msgs: run `make setup`")
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=unique_domain())
    node = rclpy.create_node(f"vision_msgs_hash_{os.getpid()}", context=ctx)
    try:
        got = {}
        for i, name in enumerate(sorted(HASHES)):
            topic = f"/vision_msgs_hash_{os.getpid()}/t{i}"
            node.create_publisher(_type(name), topic, 1)
            (info,) = node.get_publishers_info_by_topic(topic)
            got[name] = str(info.topic_type_hash)
    finally:
        node.destroy_node()
        rclpy.shutdown(context=ctx)
    assert got == HASHES


def _hashes_of(folder: Path) -> dict[str, str]:
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from vision_msgs_hashes import type_hashes
    finally:
        sys.path.pop(0)
    return type_hashes(folder)


def test_our_definitions_hash_as_upstream_and_a_changed_field_would_not(tmp_path):
    pytest.importorskip("rosidl_generator_type_description")
    assert _hashes_of(OURS) == HASHES
    for f in OURS.glob("*.msg"):  # float32 instead of float64: a different type on the wire
        text = f.read_text()
        (tmp_path / f.name).write_text(text.replace("float64 x", "float32 x")
                                       if f.stem == "Point2D" else text)
    changed = _hashes_of(tmp_path)
    differ = {n for n in HASHES if changed[n] != HASHES[n]}
    # Point2D and every type that contains it
    assert differ == {"vision_msgs/msg/Point2D", "vision_msgs/msg/Pose2D",
                      "vision_msgs/msg/BoundingBox2D", "vision_msgs/msg/BoundingBox2DArray",
                      "vision_msgs/msg/Detection2D", "vision_msgs/msg/Detection2DArray"}
