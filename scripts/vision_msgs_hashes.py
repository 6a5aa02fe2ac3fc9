#!/usr/bin/env python3
"""RIHS01 type hashes of a folder of vision_msgs .msg files, computed the way a ROS 2 build does
(rosidl_adapter: .msg -> .idl; rosidl_generator_type_description: the hash), against the
std_msgs / geometry_msgs / builtin_interfaces descriptions of this environment's ROS wheels.

How test/ros/data/vision_msgs_rihs01.json was made (upstream = ros-perception/vision_msgs,
branch ros2, the 4.1.1 release commit):
  git -C vision_msgs show <commit>:vision_msgs/msg/<Name>.msg > upstream/<Name>.msg  (all 16)
  python scripts/vision_msgs_hashes.py upstream/
Needs `. .venv/bin/activate` (make setup).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path


def type_hashes(msg_dir: Path, package: str = "vision_msgs") -> dict[str, str]:
    """{'vision_msgs/msg/Name': 'RIHS01_...'} of every .msg in `msg_dir`."""
    from rosidl_adapter.msg import convert_msg_to_idl
    from rosidl_generator_type_description import generate_type_hash

    prefix = Path(sys.prefix)
    with tempfile.TemporaryDirectory() as tmp:
        pkg = Path(tmp) / package
        (pkg / "msg").mkdir(parents=True)
        for f in sorted(msg_dir.glob("*.msg")):
            shutil.copy(f, pkg / "msg" / f.name)
        idl_dir, out = Path(tmp) / "idl", Path(tmp) / "out"
        (idl_dir / "msg").mkdir(parents=True)
        with contextlib.redirect_stdout(io.StringIO()):  # the adapter prints each file
            idls = [convert_msg_to_idl(pkg, package, Path("msg") / f.name, idl_dir / "msg")
                    for f in sorted((pkg / "msg").glob("*.msg"))]
        deps = ("std_msgs", "geometry_msgs", "builtin_interfaces")
        args = {"package_name": package, "output_dir": str(out),
                "idl_tuples": [f"{idl_dir}:msg/{p.name}" for p in idls],
                "include_paths": [f"{d}:{prefix / 'share' / d}" for d in deps]}
        args_file = Path(tmp) / "args.json"
        args_file.write_text(json.dumps(args))
        generate_type_hash(str(args_file))
        hashes = {}
        for j in sorted((out / "msg").glob("*.json")):
            top = json.loads(j.read_text())["type_hashes"][0]
            hashes[top["type_name"]] = top["hash_string"]
        return hashes


if __name__ == "__main__":
    if len(sys.argv) != 2 or not Path(sys.argv[1]).is_dir():
        sys.exit(f"usage: {os.path.basename(sys.argv[0])} FOLDER_OF_MSG_FILES")
    print(json.dumps(type_hashes(Path(sys.argv[1])), indent=2))
