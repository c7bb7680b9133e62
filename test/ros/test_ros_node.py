"""The ckd_tracker node with real rclpy and a real DDS (loopback), and a fake Tracker.

The fake (ros_fakes.FakeTracker) has the Tracker's interface and moves the box by +1 px in x
per update, with a score the test sets, so every published field can be checked exactly.
The real Tracker runs in test_ros_e2e.py.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from ros_helpers import require_ros

require_ros()

import rclpy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from std_srvs.srv import SetBool, Trigger  # noqa: E402
from vision_msgs.msg import Detection2D, Detection2DArray  # noqa: E402

from ckd_tracker_ros.images import numpy_to_image  # noqa: E402
from ckd_tracker_ros.msg import TrackerStatus  # noqa: E402
from ckd_tracker_ros.node import TrackerNode  # noqa: E402
from ckd_tracker_ros.params import ParamError  # noqa: E402
from ckd_tracker_ros.srv import InitTarget  # noqa: E402
from ros_fakes import FakeTracker  # noqa: E402
from ros_helpers import call_service, spinning, wait_for  # noqa: E402

W, H = 64, 48
T0 = 1000  # seconds: stamps of published images are T0 + k * 0.1
_ns = itertools.count()


def stamp(k: float):
    from builtin_interfaces.msg import Time
    ns = int(round((T0 + k * 0.1) * 1e9))
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


class Rig:
    """A TrackerNode (own namespace) with a FakeTracker, and a tester node around it."""

    def __init__(self, ctx, **params):
        self.ns = f"/t{next(_ns)}"
        self.fake = FakeTracker()
        self.node = TrackerNode(
            tracker_factory=lambda s: self.fake, namespace=self.ns, context=ctx,
            parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
        self.t = rclpy.create_node("tester", namespace=self.ns, context=ctx)
        rgb_type = CompressedImage if params.get("rgb_compressed") else Image
        rgb_topic = "rgb/image/compressed" if params.get("rgb_compressed") else "rgb/image"
        self.rgb_pub = self.t.create_publisher(rgb_type, rgb_topic, qos_profile_sensor_data)
        self.th_pub = self.t.create_publisher(Image, "thermal/image", qos_profile_sensor_data)
        self.init_box_pub = self.t.create_publisher(Detection2D, "ckd_tracker/init_box", 10)
        self.dets, self.status, self.diag, self.debug = [], [], [], []
        self.t.create_subscription(Detection2DArray, "ckd_tracker/detections",
                                   self.dets.append, 10)
        self.t.create_subscription(TrackerStatus, "ckd_tracker/status", self.status.append, 10)
        self.t.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)
        self.init_cli = self.t.create_client(InitTarget, "ckd_tracker/init_target")
        self.reset_cli = self.t.create_client(Trigger, "ckd_tracker/reset")
        self.enable_cli = self.t.create_client(SetBool, "ckd_tracker/enable")
        self.param_cli = self.t.create_client(SetParameters, "ckd_tracker/set_parameters")

    def _on_diag(self, msg):
        if msg.status and msg.status[0].hardware_id == f"{self.ns}/ckd_tracker":
            self.diag.append(msg)

    def wait_connected(self):
        wait_for(lambda: self.rgb_pub.get_subscription_count() and
                 self.th_pub.get_subscription_count(), what="image subscriptions")
        wait_for(lambda: self.t.count_publishers(f"{self.ns}/ckd_tracker/detections"),
                 what="detections publisher")

    def publish(self, k, rgb=None, thermal=None, rgb_msg=None, th_msg=None):
        """Publish one pair stamped T0 + k/10 s; images default to value k (mod 256)."""
        if rgb_msg is None:
            rgb = np.full((H, W, 3), int(k) % 256, np.uint8) if rgb is None else rgb
            rgb_msg = numpy_to_image(rgb, "rgb8")
        if th_msg is None and thermal is not False:
            thermal = np.full((H, W), int(k) % 256, np.uint8) if thermal is None else thermal
            th_msg = numpy_to_image(thermal, "mono16" if thermal.dtype == np.uint16 else "mono8")
        for msg, frame in ((rgb_msg, "rgb_cam"), (th_msg, "thermal_cam")):
            if msg is None:
                continue
            msg.header.stamp = stamp(k)
            msg.header.frame_id = frame
        if rgb_msg is not None:
            self.rgb_pub.publish(rgb_msg)
        if th_msg is not None:
            self.th_pub.publish(th_msg)

    def publish_until(self, k, predicate, what, timeout=10.0):
        """Publish pair k again and again (best effort may drop) until `predicate()`."""
        def attempt():
            self.publish(k)
            return predicate()
        return wait_for(attempt, timeout, interval=0.05, what=what)

    def pairs(self):
        return self.node._mailbox.pairs_received

    def init(self, x=10.0, y=12.0, w=20.0, h=16.0, k=None, label=""):
        req = InitTarget.Request(x=x, y=y, width=w, height=h, label=label)
        if k is not None:
            req.stamp = stamp(k)
        return call_service(self.init_cli, req)

    def set_params(self, **values):
        req = SetParameters.Request(
            parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()])
        return call_service(self.param_cli, req).results

    def destroy(self):
        self.t.destroy_node()
        self.node.destroy_node()


@pytest.fixture
def rig(ros_context, request):
    params = getattr(request, "param", {})
    r = Rig(ros_context, **params)
    with spinning(ros_context, r.node, r.t):
        r.wait_connected()
        yield r
    r.destroy()


def started(r, k=0):
    """Publish pair k until the node has paired it, then initialise on it."""
    r.publish_until(k, lambda: r.pairs() > 0, "a pair")
    resp = r.init(label="car")
    assert resp.success, resp.message
    return resp


def dets_after(r, k):
    """Detection arrays stamped with pair k's stamp."""
    s = stamp(k)
    return [d for d in r.dets if (d.header.stamp.sec, d.header.stamp.nanosec) ==
            (s.sec, s.nanosec)]


def test_init_service_then_detection_fields(rig):
    r = rig
    resp = started(r)
    assert resp.track_id == "1" and "tracking 'car' as track 1" in resp.message
    assert r.fake.inits[0][2] == (10.0, 12.0, 20.0, 16.0)
    r.publish_until(1, lambda: any(d.detections for d in dets_after(r, 1)), "a detection")
    arr = next(d for d in dets_after(r, 1) if d.detections)
    assert arr.header.frame_id == "rgb_cam"  # the reference (rgb) image's header
    (det,) = arr.detections
    assert det.header == arr.header
    assert det.id == resp.track_id
    # FakeTracker: the first update moves the box by +1 px in x -> (11, 12, 20, 16).
    assert (det.bbox.center.position.x, det.bbox.center.position.y) == (21.0, 20.0)
    assert (det.bbox.size_x, det.bbox.size_y, det.bbox.center.theta) == (20.0, 16.0, 0.0)
    (hyp,) = det.results
    assert hyp.hypothesis.class_id == "car"
    assert hyp.hypothesis.score == pytest.approx(0.9)
    p = hyp.pose.pose
    assert (p.position.x, p.position.y, p.position.z) == (0.0, 0.0, 0.0)
    assert (p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w) == \
        (0.0, 0.0, 0.0, 1.0)
    st = wait_for(lambda: [s for s in r.status if s.state == TrackerStatus.TRACKING],
                  what="TRACKING status")[-1]
    assert st.track_id == "1" and st.score == pytest.approx(0.9)
    assert st.rgb_health == TrackerStatus.OK and st.thermal_health == TrackerStatus.OK
    assert st.pairs_received >= 2 and st.frames_processed >= 2


def test_idle_and_lost_publish_empty_arrays_with_a_valid_header(rig):
    r = rig
    r.publish_until(0, lambda: dets_after(r, 0), "an IDLE detection array")
    idle = dets_after(r, 0)[0]
    assert idle.detections == [] and idle.header.frame_id == "rgb_cam"
    started(r)
    r.fake.score = 0.1  # below the fake tracker's lost threshold 0.25
    r.publish_until(3, lambda: dets_after(r, 3), "a LOST detection array")
    lost = dets_after(r, 3)[-1]
    assert lost.detections == [] and lost.header.stamp == stamp(3)
    assert wait_for(lambda: [s for s in r.status if s.state == TrackerStatus.LOST],
                    what="LOST status")[-1].score == pytest.approx(0.1)


def test_init_uses_the_pair_closest_to_the_requested_stamp(rig):
    r = rig
    for k in range(5):
        r.publish_until(k, lambda k=k: dets_after(r, k), f"pair {k}")
    resp = r.init(k=2.3)  # closest buffered pair: k = 2
    assert resp.success, resp.message
    assert int(r.fake.inits[-1][0][0, 0, 0]) == 2
    assert "from the requested stamp" in resp.message
    resp = r.init()  # zero stamp = the newest pair
    assert resp.success and int(r.fake.inits[-1][0][0, 0, 0]) == 4 and resp.track_id == "2"


@pytest.mark.parametrize("box,match", [
    ((100.0, 12.0, 20.0, 16.0), "outside the 64x48 image"),
    ((10.0, 12.0, 0.0, 16.0), "zero or negative size"),
    ((10.0, 12.0, -5.0, 16.0), "zero or negative size"),
    ((math.nan, 12.0, 20.0, 16.0), "NaN"),
])
def test_bad_init_boxes_answered_clearly(rig, box, match):
    r = rig
    r.publish_until(0, lambda: r.pairs() > 0, "a pair")
    resp = r.init(*box)
    assert not resp.success and resp.track_id == ""
    assert "InitTarget box" in resp.message and match in resp.message
    assert r.init().success  # the node is still there and still initialises


def test_init_before_any_image_is_refused(rig):
    resp = rig.init()
    assert not resp.success
    assert resp.message.startswith("no image pair to initialise on yet: no rgb or thermal")


def test_bad_images_do_not_stop_the_node(rig):
    r = rig
    started(r)
    bad = []
    m = numpy_to_image(np.zeros((H, W, 3), np.uint8), "rgb8")
    m.encoding = "yuv422"  # unsupported
    bad.append(m)
    m = numpy_to_image(np.zeros((H, W, 3), np.uint8), "rgb8")
    m.data = bytes(10)  # truncated
    bad.append(m)
    m = Image(encoding="rgb8")  # 0x0
    bad.append(m)
    for i, msg in enumerate(bad):
        r.publish(1 + i, rgb_msg=msg)
    wait_for(lambda: r.node._frames_rejected >= 1, what="a rejected frame")
    r.publish_until(5, lambda: any(d.detections for d in dets_after(r, 5)),
                    "detections after bad images")
    rejected = wait_for(lambda: [kv.value for d in r.diag for kv in d.status[0].values
                                 if kv.key == "frames_rejected" and kv.value != "0"],
                        what="frames_rejected in /diagnostics")
    assert int(rejected[-1]) >= 1


def test_mismatched_image_sizes(rig):
    r = rig
    small = np.zeros((H // 2, W // 2), np.uint8)
    r.publish_until(0, lambda: r.pairs() > 0, "a pair", timeout=10)
    r.publish(1, thermal=small)
    wait_for(lambda: r.node._mailbox.closest(0).stamp_ns == int(round((T0 + 0.1) * 1e9)),
             what="the mismatched pair")
    resp = r.init()
    assert not resp.success and "does not match" in resp.message
    assert started(r, k=2).success  # later good pairs still work


def test_one_camera_silent_tracks_on_the_other(ros_context):
    r = Rig(ros_context, silent_after=0.3)
    with spinning(ros_context, r.node, r.t):
        r.wait_connected()
        started(r)
        n0 = len(r.fake.updates)

        k = itertools.count(5)

        def rgb_only(predicate):
            def attempt():
                r.publish(next(k), thermal=False)
                return predicate()
            return attempt
        wait_for(rgb_only(lambda: [u for u in r.fake.updates[n0:] if u[1] is None]),
                 interval=0.05, what="an update with thermal=None")
        missing = wait_for(rgb_only(lambda: [s for s in r.status
                                             if s.thermal_health == TrackerStatus.MISSING]),
                           interval=0.05, what="thermal MISSING in status")
        assert missing[-1].rgb_health == TrackerStatus.OK
        warn = wait_for(rgb_only(lambda: [d.status[0] for d in r.diag
                                          if "thermal camera silent" in d.status[0].message]),
                        interval=0.05, what="a diagnostics warning")
        assert warn[-1].level == DiagnosticStatus.WARN
    r.destroy()


def test_stamps_out_of_order_are_skipped(rig):
    r = rig
    started(r, k=0)
    r.publish_until(10, lambda: dets_after(r, 10), "pair 10")
    n = len(r.fake.updates)
    r.publish(9)  # 0.1 s older than the last processed pair
    r.publish_until(11, lambda: dets_after(r, 11), "pair 11")
    assert dets_after(r, 9) == []
    assert len(r.fake.updates) == n + 1  # only pair 11 reached the tracker


def test_runtime_parameters_accepted_and_refused(rig):
    r = rig
    results = r.set_params(slop=0.2, lost_threshold=0.1, recover_threshold=0.3)
    assert all(res.successful for res in results)
    assert r.node._pairs.slop == pytest.approx(0.2)
    assert (r.fake.lost, r.fake.recover) == (0.1, 0.3)
    (res,) = r.set_params(device="cuda")
    assert not res.successful and "'device' can only be set at start-up" in res.reason
    (res,) = r.set_params(thermal_window=[5.0, 1.0])
    assert not res.successful and "thermal_window" in res.reason
    (res,) = r.set_params(recover_threshold=0.05)
    assert not res.successful and "recover_threshold" in res.reason
    assert r.node.get_parameter("device").value == "cpu"
    assert r.node.get_parameter("slop").value == pytest.approx(0.2)


def test_invalid_startup_parameter_is_a_clear_error(ros_context):
    with pytest.raises(ParamError, match="'device' = 'gpu' is not allowed"):
        TrackerNode(tracker_factory=lambda s: FakeTracker(), context=ros_context,
                    namespace="/bad", parameter_overrides=[Parameter("device", value="gpu")])


def test_reset_and_enable(rig):
    r = rig
    started(r)
    resp = call_service(r.enable_cli, SetBool.Request(data=False))
    assert resp.success and "disabled" in resp.message
    wait_for(lambda: any(s.state == TrackerStatus.DISABLED for s in r.status),
             what="DISABLED status")
    n, pairs = len(r.fake.updates), r.pairs()
    r.publish_until(2, lambda: r.pairs() > pairs, "a pair while disabled")
    wait_for(lambda: r.node._mailbox._newest is None, what="the pair handed out")
    call_service(r.enable_cli, SetBool.Request(data=True))
    assert len(r.fake.updates) == n and not dets_after(r, 2)
    r.publish_until(5, lambda: any(d.detections for d in dets_after(r, 5)), "re-enabled")
    assert call_service(r.reset_cli, Trigger.Request()).success
    assert r.fake.box is None
    r.publish_until(6, lambda: dets_after(r, 6), "IDLE after reset")
    assert dets_after(r, 6)[-1].detections == []


def test_init_box_topic(rig):
    r = rig
    r.publish_until(0, lambda: r.pairs() > 0, "a pair")
    d = Detection2D()
    d.bbox.center.position.x, d.bbox.center.position.y = 30.0, 20.0
    d.bbox.size_x, d.bbox.size_y = 10.0, 8.0
    from vision_msgs.msg import ObjectHypothesisWithPose
    h = ObjectHypothesisWithPose()
    h.hypothesis.class_id = "boat"
    d.results = [h]
    r.init_box_pub.publish(d)
    wait_for(lambda: r.fake.inits, what="init from ~/init_box")
    assert r.fake.inits[0][2] == (25.0, 16.0, 10.0, 8.0)
    r.publish_until(1, lambda: any(x.detections for x in dets_after(r, 1)), "a detection")
    det = next(x for x in dets_after(r, 1) if x.detections).detections[0]
    assert det.results[0].hypothesis.class_id == "boat"


def test_mono16_thermal_is_normalised(ros_context):
    r = Rig(ros_context, thermal_normalization="fixed", thermal_window=[2000.0, 4000.0])
    with spinning(ros_context, r.node, r.t):
        r.wait_connected()
        therm = np.full((H, W), 3000, np.uint16)
        r.publish_until(0, lambda: r.pairs() > 0, "a pair")
        r.publish(1, thermal=therm)
        wait_for(lambda: r.node._mailbox.closest(0).msgs[1].encoding == "mono16",
                 what="the mono16 pair")
        assert r.init().success
        th = r.fake.inits[-1][1]
        # grey: the tracker repeats only its crops to three channels; 255 * 1000 / 2000 =
        # 127.5 -> 128 (rounded, half to even)
        assert th.dtype == np.uint8 and th.shape == (H, W) and (th == 128).all()
    r.destroy()


def test_compressed_rgb_and_debug_image(ros_context):
    import cv2
    r = Rig(ros_context, rgb_compressed=True)
    got = []
    r.t.create_subscription(Image, "ckd_tracker/debug_image", got.append, 1)
    with spinning(ros_context, r.node, r.t):
        r.wait_connected()
        wait_for(lambda: r.node._debug_pub.get_subscription_count(), what="debug subscriber")
        bgr = np.zeros((H, W, 3), np.uint8)
        bgr[..., 2] = 200  # red

        def pub():
            c = CompressedImage(format="rgb8; png compressed bgr8")
            c.data = cv2.imencode(".png", bgr)[1].tobytes()
            r.publish(0, rgb_msg=c)
            return r.pairs() > 0
        wait_for(pub, interval=0.05, what="a compressed pair")
        assert r.init().success
        assert r.fake.inits[-1][0][0, 0].tolist() == [200, 0, 0]
        wait_for(lambda: pub() and got, interval=0.05, what="a debug image")
        img = got[-1]
        assert (img.encoding, img.width, img.height) == ("rgb8", 2 * W, H)
        assert img.header.frame_id == "rgb_cam"
    r.destroy()


def test_warns_with_counters_when_images_arrive_but_never_pair(ros_context, monkeypatch):
    import ckd_tracker_ros.node as node_module
    monkeypatch.setattr(node_module, "NO_PAIRS_CHECK_S", 0.5)
    r = Rig(ros_context, slop=0.01)
    with spinning(ros_context, r.node, r.t):
        r.wait_connected()
        k = itertools.count()

        def unpaired():  # thermal stamped 0.05 s after rgb: never within slop
            i = next(k)
            r.publish(i, thermal=False)
            th = numpy_to_image(np.zeros((H, W), np.uint8), "mono8")
            th.header.stamp = stamp(i + 0.5)
            r.th_pub.publish(th)
            return [d.status[0] for d in r.diag if "no pairs form" in d.status[0].message]
        (diag, *_) = wait_for(unpaired, timeout=15.0, interval=0.05, what="a no-pairs warning")
        assert diag.level == DiagnosticStatus.WARN
        assert "rgb and" in diag.message and "0 pairs" in diag.message
        assert "slop=0.01 s" in diag.message
        assert r.pairs() == 0
    r.destroy()


@pytest.mark.parametrize("params,expected", [({}, "BEST_EFFORT"),
                                             ({"qos_reliability": "reliable"}, "RELIABLE")])
def test_qos_reliability_parameter(ros_context, params, expected):
    from rclpy.qos import ReliabilityPolicy
    r = Rig(ros_context, **params)
    try:
        infos = wait_for(lambda: r.t.get_subscriptions_info_by_topic(f"{r.ns}/rgb/image"),
                         what="the rgb subscription")
        assert infos[0].qos_profile.reliability == ReliabilityPolicy[expected]
    finally:
        r.destroy()
