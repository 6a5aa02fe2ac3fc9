"""Fixtures of the ROS tests (helpers in ros_helpers.py)."""
from __future__ import annotations

import os

import pytest

pytest.importorskip("rclpy", reason="needs rclpy (ROS 2); run `make setup`")
pytest.importorskip("stemseg_ros.msg", reason="needs the colcon-built messages (`make setup`)")

from ros_helpers import NodeProcess, RosClient, next_id, unique_domain  # noqa: E402


@pytest.fixture
def domain_id() -> int:
    return unique_domain()


@pytest.fixture
def namespace() -> str:
    return f"/stemseg_test_{os.getpid()}_{next_id()}"


@pytest.fixture
def ros_client(domain_id):
    client = RosClient(domain_id)
    yield client
    client.close()


@pytest.fixture
def start_node(domain_id, tmp_path):
    """start_node(ros_args) -> NodeProcess; every started process is stopped at teardown."""
    procs: list[NodeProcess] = []

    def start(ros_args: list[str]) -> NodeProcess:
        p = NodeProcess(ros_args, domain_id, tmp_path / f"node{len(procs)}.log")
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.stop()
