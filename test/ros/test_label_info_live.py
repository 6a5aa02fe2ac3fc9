"""~/label_info follows a live seediness_threshold change (node in its own process, over DDS)."""
from __future__ import annotations

import pytest
from test_node import _set_params

pytest.importorskip("vision_msgs.msg", reason="needs vision_msgs (`make setup` builds it)")


@pytest.mark.ros
@pytest.mark.slow
def test_label_info_is_republished_when_the_threshold_changes(tiny_checkpoint, ros_client,
                                                              start_node, namespace):
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from vision_msgs.msg import LabelInfo

    from stemseg_ros import names

    node = start_node(["-r", f"__ns:={namespace}", "-p", f"checkpoint:={tiny_checkpoint}",
                       "-p", "device:=cpu", "-p", "publish_overlay:=false"])
    got: list = []
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    ros_client.node.create_subscription(LabelInfo, names.node_topic(names.LABEL_INFO, namespace),
                                        got.append, latched)
    assert ros_client.spin_until(lambda: got, 90), node.log()
    first = got[0].threshold
    new = 0.25 if abs(first - 0.25) > 1e-6 else 0.35
    assert all(r.successful for r in _set_params(ros_client, namespace,
                                                 seediness_threshold=new))
    assert ros_client.spin_until(lambda: len(got) >= 2, 10), [m.threshold for m in got]
    assert got[-1].threshold == pytest.approx(new)
    assert [(c.class_id, c.class_name) for c in got[-1].class_map] == [
        (c.class_id, c.class_name) for c in got[0].class_map]
    # an unrelated parameter does not republish; a subscriber that comes late gets the new value
    assert all(r.successful for r in _set_params(ros_client, namespace, mask_threshold=0.4))
    ros_client.spin_for(1.0)
    assert len(got) == 2
    late: list = []
    ros_client.node.create_subscription(LabelInfo, names.node_topic(names.LABEL_INFO, namespace),
                                        late.append, latched)
    assert ros_client.spin_until(lambda: late, 10)
    assert late[-1].threshold == pytest.approx(new)
    assert node.alive(), node.log()
