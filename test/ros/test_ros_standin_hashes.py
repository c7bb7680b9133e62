"""The vision_msgs stand-in must be wire-identical to vision_msgs 4.x: same RIHS01 hashes.

Expected values are the real package's (Humble/Jazzy 4.1.1, Kilted 4.2.0: identical
definitions). They are checked three ways: computed independently from our .msg text with
rosbags' typestore, read from the built package's generated type description, and taken from
a live publisher's endpoint info (what DDS matching uses).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

EXPECTED = {
    "Detection2D": "0d12b69df5c593b3455b7346fac8205437a7d4bcb09b9e0e0b2dde787ded38ea",
    "Detection2DArray": "214274120007f4a683866481336b70310268cfa107aebe9d594a6acf75bda968",
    "BoundingBox2D": "008eacbb0cf8f26e83795547bed013eec3675485ef386ec056d80eaaf1c1ce2f",
    "ObjectHypothesisWithPose": "41c12344c0396c48b81df12467c192d99b2a0eb1463c5c37194e4223251c80bc",
}
MSG_DIR = Path(__file__).resolve().parents[2] / "ros" / "vision_msgs_standin" / "msg"


def test_standin_defines_the_required_types():
    names = {p.stem for p in MSG_DIR.glob("*.msg")}
    assert {"Point2D", "Pose2D", "BoundingBox2D", "ObjectHypothesis",
            "ObjectHypothesisWithPose", "Detection2D", "Detection2DArray"} <= names


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hash_from_msg_text_with_rosbags(name):
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore
    store = get_typestore(Stores.ROS2_KILTED)  # supplies std_msgs / geometry_msgs
    types = {}
    for path in MSG_DIR.glob("*.msg"):
        types.update(get_types_from_msg(path.read_text(), f"vision_msgs/msg/{path.stem}"))
    store.register(types)
    assert store.hash_rihs01(f"vision_msgs/msg/{name}") == f"RIHS01_{EXPECTED[name]}"


def _built_vision_msgs_share() -> Path:
    from ros_helpers import require_ros
    require_ros()
    from ament_index_python.packages import get_package_share_directory
    return Path(get_package_share_directory("vision_msgs"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hash_of_the_built_package(name):
    desc = json.loads((_built_vision_msgs_share() / "msg" / f"{name}.json").read_text())
    own = [h for h in desc["type_hashes"] if h["type_name"] == f"vision_msgs/msg/{name}"]
    assert own and own[0]["hash_string"] == f"RIHS01_{EXPECTED[name]}"


def test_hash_on_the_wire(ros_context):
    _built_vision_msgs_share()
    import rclpy
    import vision_msgs.msg as vm
    node = rclpy.create_node("hash_probe", context=ros_context)
    try:
        for name, want in EXPECTED.items():
            topic = f"probe_{name.lower()}"
            node.create_publisher(getattr(vm, name), topic, 1)
            info = node.get_publishers_info_by_topic(topic)
            assert str(info[0].topic_type_hash) == f"RIHS01_{want}", name
    finally:
        node.destroy_node()


def test_our_status_hash_matches_an_independent_computation():
    """Our own TrackerStatus: rosidl's generated hash equals rosbags' from the .msg text."""
    from ros_helpers import require_ros
    require_ros()
    from ament_index_python.packages import get_package_share_directory
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore
    text = (Path(__file__).resolve().parents[2] / "msg" / "TrackerStatus.msg").read_text()
    store = get_typestore(Stores.ROS2_KILTED)
    store.register(get_types_from_msg(text, "ckd_tracker_ros/msg/TrackerStatus"))
    share = Path(get_package_share_directory("ckd_tracker_ros"))
    desc = json.loads((share / "msg" / "TrackerStatus.json").read_text())
    assert desc["type_hashes"][0]["hash_string"] == \
        store.hash_rihs01("ckd_tracker_ros/msg/TrackerStatus")
