"""The node with the REAL ckd_core Tracker (a tiny randomly initialised checkpoint, CPU).

What the node publishes must equal what the Tracker computes offline on the same frames:
this checks that the adapter hands the tracker exactly the right images (channel order,
thermal conversion) and copies its results into the messages faithfully.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ros_helpers import require_ros

require_ros()

import rclpy  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from vision_msgs.msg import Detection2DArray  # noqa: E402

from ckd_tracker_ros.images import numpy_to_image  # noqa: E402
from ckd_tracker_ros.msg import TrackerStatus  # noqa: E402
from ckd_tracker_ros.node import TrackerNode  # noqa: E402
from ckd_tracker_ros.srv import InitTarget  # noqa: E402
from ros_helpers import call_service, spinning, wait_for  # noqa: E402

W, H = 160, 120
BOX0 = (40.0, 30.0, 24.0, 20.0)


def frames(k: int):
    """A textured scene with a bright square moving right by 3 px per frame."""
    rng = np.random.default_rng(k)
    rgb = rng.integers(40, 120, (H, W, 3), dtype=np.uint8)
    x, y, w, h = (int(v) for v in BOX0)
    rgb[y:y + h, x + 3 * k:x + 3 * k + w] = (230, 60, 30)
    thermal = rgb.mean(axis=2).astype(np.uint8)
    thermal[y:y + h, x + 3 * k:x + 3 * k + w] = 250
    return rgb, thermal


def image_msgs(k: int, thermal_size=None):
    rgb, thermal = frames(k)
    if thermal_size is not None:
        import cv2
        thermal = cv2.resize(thermal, thermal_size)
    msgs = numpy_to_image(rgb, "rgb8"), numpy_to_image(thermal, "mono8")
    for m, frame in zip(msgs, ("rgb_cam", "thermal_cam")):
        m.header.stamp.sec, m.header.stamp.nanosec = 500 + k // 10, (k % 10) * 100_000_000
        m.header.frame_id = frame
    return msgs


class Rig:
    def __init__(self, ctx, checkpoint, tracker_cfg, ns):
        self.node = TrackerNode(namespace=ns, context=ctx, parameter_overrides=[
            Parameter("checkpoint", value=checkpoint), Parameter("device", value="cpu"),
            Parameter("lost_threshold", value=tracker_cfg.lost_threshold),
            Parameter("recover_threshold", value=tracker_cfg.recover_threshold),
            Parameter("label", value="square")])
        self.t = rclpy.create_node("e2e_tester", namespace=ns, context=ctx)
        self.pubs = [self.t.create_publisher(Image, topic, qos_profile_sensor_data)
                     for topic in ("rgb/image", "thermal/image")]
        self.dets, self.status = [], []
        self.t.create_subscription(Detection2DArray, "ckd_tracker/detections",
                                   self.dets.append, 50)
        self.t.create_subscription(TrackerStatus, "ckd_tracker/status", self.status.append, 50)
        self.init_cli = self.t.create_client(InitTarget, "ckd_tracker/init_target")

    def send_until_processed(self, k, **kw):
        """Publish pair k (again, if best effort lost it) until its detections arrive."""
        sec, nsec = 500 + k // 10, (k % 10) * 100_000_000

        def mine():
            return [d for d in self.dets if (d.header.stamp.sec, d.header.stamp.nanosec)
                    == (sec, nsec)]

        def attempt():
            for pub, msg in zip(self.pubs, image_msgs(k, **kw)):
                pub.publish(msg)
            return mine()
        return wait_for(attempt, timeout=20.0, interval=0.1, what=f"detections of pair {k}")[0]

    def destroy(self):
        self.t.destroy_node()
        self.node.destroy_node()


def test_published_results_equal_the_offline_tracker(ros_context, tiny_checkpoint):
    from ckd_core.tracking import Tracker, TrackState
    path, tracker_cfg = tiny_checkpoint
    r = Rig(ros_context, path, tracker_cfg, "/e2e_a")
    with spinning(ros_context, r.node, r.t):
        wait_for(lambda: all(p.get_subscription_count() for p in r.pubs), what="subscribers")
        r.send_until_processed(0)
        resp = call_service(r.init_cli, InitTarget.Request(
            x=BOX0[0], y=BOX0[1], width=BOX0[2], height=BOX0[3]))
        assert resp.success, resp.message
        published = [r.send_until_processed(k) for k in range(1, 5)]
    r.destroy()

    offline = Tracker.from_checkpoint(path, device="cpu", tracker_config=dataclasses.replace(
        tracker_cfg, reference_camera="rgb"))
    rgb, thermal = frames(0)
    offline.init(rgb, thermal, BOX0)
    n_tracking = 0
    for k, arr in enumerate(published, start=1):
        res = offline.update(*frames(k))
        assert arr.header.frame_id == "rgb_cam"
        if res.state != TrackState.TRACKING:
            assert arr.detections == []
            continue
        n_tracking += 1
        (det,) = arr.detections
        x, y, w, h = res.box_xywh
        assert det.bbox.center.position.x == pytest.approx(x + w / 2, abs=1e-4)
        assert det.bbox.center.position.y == pytest.approx(y + h / 2, abs=1e-4)
        assert (det.bbox.size_x, det.bbox.size_y) == pytest.approx((w, h), abs=1e-4)
        assert det.results[0].hypothesis.score == pytest.approx(res.score, abs=1e-5)
        assert det.results[0].hypothesis.class_id == "square" and det.id == resp.track_id
    assert n_tracking >= 1  # LOST needs several low-score frames in a row


def test_real_tracker_with_mismatched_sizes_and_a_silent_camera(ros_context, tiny_checkpoint):
    path, tracker_cfg = tiny_checkpoint
    r = Rig(ros_context, path, tracker_cfg, "/e2e_b")
    r.node._mailbox.silent_after = 0.3
    with spinning(ros_context, r.node, r.t):
        wait_for(lambda: all(p.get_subscription_count() for p in r.pubs), what="subscribers")
        r.send_until_processed(0, thermal_size=(W // 2, H // 2))
        resp = call_service(r.init_cli, InitTarget.Request(
            x=BOX0[0], y=BOX0[1], width=BOX0[2], height=BOX0[3]))
        assert resp.success, resp.message  # the Tracker aligns the thermal resolution
        r.send_until_processed(1, thermal_size=(W // 2, H // 2))
        assert r.node._frames_rejected == 0

        k = iter(range(2, 1000))

        def rgb_only():
            r.pubs[0].publish(image_msgs(next(k))[0])
            return [s for s in r.status if s.thermal_health == TrackerStatus.MISSING
                    and s.frames_processed >= 3]
        st = wait_for(rgb_only, timeout=20.0, interval=0.1, what="thermal MISSING")[-1]
        assert st.rgb_health == TrackerStatus.OK
        assert st.state in (TrackerStatus.TRACKING, TrackerStatus.LOST)
    r.destroy()
