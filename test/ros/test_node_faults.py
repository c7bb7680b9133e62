"""Faults around the REAL node (real Tracker with a tiny checkpoint, real rclpy, loopback DDS):
cameras stopping and coming back, a burst far above the camera rate, services during the
burst, refused runtime parameters, a missing checkpoint at start-up. After each fault the
node is still up, its status says what happened, and it goes on tracking.

Already covered in test_ros_node.py (fake tracker) and not repeated here: thermal silent ->
MISSING + diagnostics warning, refused start-up-only / out-of-range runtime parameters, an
invalid start-up parameter value.
"""

from __future__ import annotations

import collections
import itertools
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from ros_helpers import require_ros

require_ros()

import rclpy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from rcl_interfaces.srv import SetParameters, SetParametersAtomically  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from vision_msgs.msg import Detection2DArray  # noqa: E402

from ckd_tracker_ros.images import numpy_to_image  # noqa: E402
from ckd_tracker_ros.msg import TrackerStatus  # noqa: E402
from ckd_tracker_ros.node import TrackerNode  # noqa: E402
from ckd_tracker_ros.srv import InitTarget  # noqa: E402
from ros_helpers import call_service, spinning, wait_for  # noqa: E402

W, H = 160, 120
RATE = 30.0  # Hz: the "camera" rate; stamps are T0 + k / RATE
T0_NS = 2_000 * 1_000_000_000
SQ = 20, 16  # target size
_ns = itertools.count()


def stamp_ns(k: int) -> int:
    return T0_NS + int(round(k * 1e9 / RATE))


def box(k: int) -> tuple[float, float, float, float]:
    """The square's (x, y, w, h) in frame k: moves 2 px right per frame, wraps every 50."""
    return (20.0 + 2 * (k % 50), 40.0, float(SQ[0]), float(SQ[1]))


def frame_msgs(k: int) -> tuple[Image, Image]:
    """rgb8 + mono8 Image messages of frame k (textured background, bright square)."""
    rng = np.random.default_rng(k)
    rgb = rng.integers(40, 120, (H, W, 3), dtype=np.uint8)
    x, y, w, h = (int(v) for v in box(k))
    rgb[y:y + h, x:x + w] = (230, 60, 30)
    thermal = rgb.mean(axis=2).astype(np.uint8)
    thermal[y:y + h, x:x + w] = 250
    msgs = numpy_to_image(rgb, "rgb8"), numpy_to_image(thermal, "mono8")
    for m, frame_id in zip(msgs, ("rgb_cam", "thermal_cam")):
        m.header.stamp.sec, m.header.stamp.nanosec = divmod(stamp_ns(k), 1_000_000_000)
        m.header.frame_id = frame_id
    return msgs


def _ns_of(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


class Rig:
    """The real TrackerNode (tiny checkpoint, own namespace) and a tester node around it."""

    def __init__(self, ctx, checkpoint: str, **params):
        self.ns = f"/faults{next(_ns)}"
        params = {"checkpoint": checkpoint, "device": "cpu", "publish_debug_image": False,
                  **params}
        self.node = TrackerNode(namespace=self.ns, context=ctx, parameter_overrides=[
            Parameter(k, value=v) for k, v in params.items()])
        self.t = rclpy.create_node("fault_tester", namespace=self.ns, context=ctx)
        self.pubs = [self.t.create_publisher(Image, topic, qos_profile_sensor_data)
                     for topic in ("rgb/image", "thermal/image")]
        self.dets: list[tuple[int, Detection2DArray]] = []  # (stamp ns, message), in arrival order
        self.arrivals: dict[int, float] = {}  # stamp ns -> time.monotonic() of its answer
        self.status: list[TrackerStatus] = []
        self.diag: list[DiagnosticStatus] = []
        self.t.create_subscription(Detection2DArray, "ckd_tracker/detections",
                                   self._on_dets, 100)
        self.t.create_subscription(TrackerStatus, "ckd_tracker/status", self.status.append, 100)
        self.t.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)
        self.init_cli = self.t.create_client(InitTarget, "ckd_tracker/init_target")
        self.reset_cli = self.t.create_client(Trigger, "ckd_tracker/reset")
        self.param_cli = self.t.create_client(SetParameters, "ckd_tracker/set_parameters")
        self.atomic_cli = self.t.create_client(SetParametersAtomically,
                                               "ckd_tracker/set_parameters_atomically")

    def _on_dets(self, msg):
        self.arrivals.setdefault(_ns_of(msg), time.monotonic())
        self.dets.append((_ns_of(msg), msg))

    def processed(self, n: int) -> bool:
        """At least n pairs processed (the node may skip some: newest pair wins)."""
        return self.node._frames_processed >= n

    def _on_diag(self, msg):
        if msg.status and msg.status[0].hardware_id == f"{self.ns}/ckd_tracker":
            self.diag.append(msg.status[0])

    def wait_connected(self):
        wait_for(lambda: all(p.get_subscription_count() for p in self.pubs),
                 what="image subscriptions")

    def publish(self, k: int, rgb: bool = True, thermal: bool = True) -> None:
        for pub, msg, on in zip(self.pubs, frame_msgs(k), (rgb, thermal)):
            if on:
                pub.publish(msg)

    def stream(self, frames, predicate, what: str, timeout: float = 15.0, **cams):
        """Publish frames k (an iterator) at the camera rate until `predicate()` is truthy."""
        deadline = time.monotonic() + timeout
        while True:
            self.publish(next(frames), **cams)
            got = predicate()
            if got:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            time.sleep(1 / RATE)

    def start(self, k: int = 0):
        """Publish frame k until it is paired, then initialise on the square in it."""
        self.stream(itertools.repeat(k), lambda: self.node._mailbox.pairs_received, "a pair")
        x, y, w, h = box(k)
        resp = call_service(self.init_cli, InitTarget.Request(x=x, y=y, width=w, height=h))
        assert resp.success, resp.message
        return resp

    def destroy(self):
        self.t.destroy_node()
        self.node.destroy_node()


@pytest.fixture
def make_rig(ros_context, tiny_checkpoint):
    """make_rig(**params) -> a spinning Rig; torn down after the test."""
    made = []

    def make(**params):
        r = Rig(ros_context, tiny_checkpoint[0], **params)
        cm = spinning(ros_context, r.node, r.t)
        cm.__enter__()
        made.append((r, cm))
        r.wait_connected()
        return r
    yield make
    for r, cm in made:
        cm.__exit__(None, None, None)
        r.destroy()


def test_reference_camera_stops_and_comes_back(make_rig):
    r = make_rig(silent_after=0.3)
    r.start(0)
    frames = itertools.count(1)
    r.stream(frames, lambda: r.processed(2), "pairs processed")

    # RGB (the reference camera) stops: the thermal images alone are tracked and answered.
    first_alone = next(frames)
    r.publish(first_alone, rgb=False)
    alone = r.stream(frames, lambda: [s for s in r.status if
                                      s.rgb_health == TrackerStatus.MISSING and
                                      _ns_of(s) >= stamp_ns(first_alone)],
                     "rgb MISSING in ~/status", rgb=False)[-1]
    assert alone.thermal_health == TrackerStatus.OK
    assert alone.state in (TrackerStatus.TRACKING, TrackerStatus.LOST)  # not IDLE: still on
    n_alone = r.node._frames_processed
    r.stream(frames, lambda: r.node._frames_processed >= n_alone + 3,
             "thermal-only frames processed", rgb=False)
    thermal_only = [m for s, m in r.dets if s >= stamp_ns(first_alone)]
    assert len(thermal_only) >= 3
    assert {m.header.frame_id for m in thermal_only} == {"thermal_cam"}
    warn = r.stream(frames, lambda: [d for d in r.diag if "rgb camera silent" in d.message],
                    "the diagnostics warning", rgb=False)[-1]
    assert warn.level == DiagnosticStatus.WARN and "tracking on thermal only" in warn.message

    # RGB comes back: pairs again, both healthy, the warning goes away.
    back = next(frames)
    r.publish(back)
    both = r.stream(frames, lambda: [s for s in r.status if _ns_of(s) >= stamp_ns(back) and
                                     s.rgb_health == TrackerStatus.OK and
                                     s.thermal_health == TrackerStatus.OK],
                    "both cameras OK again")[-1]
    assert both.frames_processed > n_alone + 3
    assert [m for s, m in r.dets if s >= stamp_ns(back) and m.header.frame_id == "rgb_cam"]
    n_diag = len(r.diag)
    r.stream(frames, lambda: len(r.diag) > n_diag + 1, "a fresh diagnostics message")
    assert "camera silent" not in r.diag[-1].message
    assert r.node._frames_rejected == 0


def test_both_cameras_stop_then_resume(make_rig):
    r = make_rig(silent_after=0.3)
    r.start(0)
    frames = itertools.count(1)
    r.stream(frames, lambda: r.processed(4), "tracking before the cameras stop")
    n_status = len(r.status)

    # Nothing arrives: heartbeats say both cameras are missing; diagnostics warn.
    quiet = wait_for(lambda: [s for s in r.status[n_status:] if
                              s.rgb_health == TrackerStatus.MISSING and
                              s.thermal_health == TrackerStatus.MISSING], timeout=20.0,
                     what="both cameras MISSING in ~/status")
    processed = quiet[0].frames_processed
    assert quiet[0].fps == 0.0 and processed >= 4
    assert quiet[0].state in (TrackerStatus.TRACKING, TrackerStatus.LOST)  # init kept
    warn = wait_for(lambda: [d for d in r.diag if "no images from either camera" in d.message],
                    timeout=20.0, what="the diagnostics warning")[-1]
    assert warn.level == DiagnosticStatus.WARN
    # The node is alive: heartbeats keep coming (1 Hz), nothing is processed meanwhile.
    n_quiet = len(quiet)
    more = wait_for(lambda: [s for s in r.status[n_status:] if
                             s.rgb_health == TrackerStatus.MISSING][n_quiet:], timeout=20.0,
                    what="another heartbeat")
    assert more[-1].frames_processed == processed == r.node._frames_processed

    # They come back: processed again, health OK, from the new stamps on.
    back = next(frames)
    r.publish(back)
    ok = r.stream(frames, lambda: [s for s in r.status if _ns_of(s) >= stamp_ns(back) and
                                   s.rgb_health == TrackerStatus.OK and
                                   s.thermal_health == TrackerStatus.OK], "health OK again")[-1]
    assert ok.frames_processed > processed and ok.fps > 0
    n_diag = len(r.diag)
    r.stream(frames, lambda: len(r.diag) > n_diag + 1, "a fresh diagnostics message")
    assert "either camera" not in r.diag[-1].message


def burst(r: Rig, ks, rate: float) -> float:
    """Publish pairs `ks` (pre-built) at `rate` Hz; returns the time of the last publish."""
    msgs = [frame_msgs(k) for k in ks]
    t0 = time.monotonic()
    for i, (rgb, th) in enumerate(msgs):
        delay = t0 + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        r.pubs[0].publish(rgb)
        r.pubs[1].publish(th)
    return time.monotonic()


def test_burst_at_ten_times_the_camera_rate_keeps_only_the_newest(make_rig):
    # slop 10 ms: stamps 33 ms apart never pair across frames, so every pair is exact.
    r = make_rig(slop=0.01)
    r.start(0)
    r.stream(itertools.count(1), lambda: r.processed(3), "tracking before the burst")
    mb = r.node._mailbox
    wait_for(lambda: mb._newest is None, what="an idle worker")
    time.sleep(0.2)
    base = (mb.pairs_received, mb.pairs_dropped, r.node._frames_processed)
    n_dets = len(r.dets)

    ks = range(100, 400)  # 10 s of camera stamps published in 1 s
    last_publish = burst(r, ks, 10 * RATE)

    def settled():  # no new pair for 0.5 s, and the worker has taken the last one
        n = mb.pairs_received
        time.sleep(0.5)
        return n == mb.pairs_received and mb._newest is None
    wait_for(settled, timeout=15.0, what="the node to settle after the burst")
    newest = mb.closest(0).stamp_ns
    wait_for(lambda: newest in r.arrivals, timeout=20.0, what="the answer to the newest pair")
    caught_up = r.arrivals[newest] - last_publish

    received = mb.pairs_received - base[0]
    dropped = mb.pairs_dropped - base[1]
    processed = r.node._frames_processed - base[2]
    assert 0 < received <= len(ks)
    assert received == processed + dropped  # every pair: processed once, or dropped
    assert dropped > 0 and processed < received
    answered = [s for s, _ in r.dets[n_dets:]]
    assert len(answered) == processed
    assert max(collections.Counter(answered).values()) == 1  # each pair at most once
    assert answered == sorted(answered)  # newest first: nothing older after something newer
    assert answered[-1] == newest  # the newest pair received is always processed
    # No backlog: the newest pair is answered about one tracker update after the burst, not
    # after working through the `received` pairs (~30 ms each: seconds).
    assert caught_up < 2.0, f"newest pair answered {caught_up:.2f} s after the burst"
    st = wait_for(lambda: [s for s in r.status if _ns_of(s) == newest],
                  what="the status of the newest pair")[-1]
    assert (st.pairs_received, st.pairs_dropped, st.frames_processed) == \
        (mb.pairs_received, mb.pairs_dropped, r.node._frames_processed)
    assert st.state in (TrackerStatus.TRACKING, TrackerStatus.LOST)


def test_services_during_a_burst_answer_promptly(make_rig):
    r = make_rig(slop=0.01)
    r.start(0)
    r.stream(itertools.count(1), lambda: r.processed(3), "tracking before the burst")
    bursting = threading.Thread(target=burst, args=(r, range(100, 700), 10 * RATE),
                                daemon=True)
    bursting.start()
    try:
        wait_for(lambda: r.node._mailbox.pairs_received > 20 and r.node._frames_processed > 3,
                 what="the burst under way")
        timings = {}

        def timed(name, cli, req):
            t = time.monotonic()
            resp = call_service(cli, req)
            timings[name] = time.monotonic() - t
            return resp

        resp = timed("init_target", r.init_cli, InitTarget.Request(
            x=40.0, y=40.0, width=20.0, height=16.0, label="burst"))
        assert resp.success and resp.track_id == "2", resp.message
        assert timed("reset", r.reset_cli, Trigger.Request()).success
        n = len(r.dets)
        # After the reset, pairs are still answered, with empty arrays (IDLE).
        idle = wait_for(lambda: r.dets[n:], what="answers after the reset")
        assert idle[-1][1].detections == []
        wait_for(lambda: any(s.state == TrackerStatus.IDLE for s in r.status),
                 what="IDLE status")
        resp = timed("init_target again", r.init_cli, InitTarget.Request(
            x=40.0, y=40.0, width=20.0, height=16.0))
        assert resp.success and resp.track_id == "3", resp.message
        assert bursting.is_alive(), "the burst ended before the services were tested"
    finally:
        bursting.join(timeout=10)
    slow = {k: round(v, 3) for k, v in timings.items() if v >= 1.0}
    assert not slow, f"service answers took >= 1 s during the burst: {slow}"
    assert r.node._frames_rejected == 0


def test_invalid_runtime_parameters_are_refused_and_old_values_kept(make_rig):
    r = make_rig()
    r.start(0)
    frames = itertools.count(1)
    old = r.node.settings

    def set_params(**values):
        req = SetParameters.Request(parameters=[Parameter(k, value=v).to_parameter_msg()
                                                for k, v in values.items()])
        return call_service(r.param_cli, req).results

    (res,) = set_params(slop="fast")
    assert not res.successful and "'slop' = 'fast'" in res.reason and "number" in res.reason
    (res,) = set_params(slop=-0.5)
    assert not res.successful and "'slop'" in res.reason and "> 0" in res.reason
    (res,) = set_params(silent_after=0.0)
    assert not res.successful and "'silent_after'" in res.reason
    # Atomically: one bad value refuses the whole set; the good one is not applied either.
    req = SetParametersAtomically.Request(parameters=[
        Parameter("lost_threshold", value=0.1).to_parameter_msg(),
        Parameter("thermal_smoothing", value=1.5).to_parameter_msg()])
    res = call_service(r.atomic_cli, req).result
    assert not res.successful and "thermal_smoothing" in res.reason

    for name in ("slop", "silent_after", "lost_threshold", "thermal_smoothing"):
        assert r.node.get_parameter(name).value == pytest.approx(getattr(old, name)), name
    assert r.node.settings == old
    assert r.node._pairs.slop == pytest.approx(old.slop)
    assert r.node._mailbox.silent_after == pytest.approx(old.silent_after)
    assert r.node._tracker.cfg.lost_threshold == pytest.approx(old.lost_threshold)
    # ... and it goes on tracking with them.
    n = r.node._frames_processed
    r.stream(frames, lambda: r.node._frames_processed >= n + 3, "tracking after the refusals")
    st = wait_for(lambda: [s for s in r.status if s.frames_processed >= n + 3],
                  what="status after the refusals")[-1]
    assert st.state in (TrackerStatus.TRACKING, TrackerStatus.LOST) and st.track_id == "1"


@pytest.mark.parametrize("content", [None, b"not a safetensors file"],
                         ids=["missing", "garbage"])
def test_bad_checkpoint_fails_at_construction_naming_the_file(ros_context, tmp_path, content):
    path = tmp_path / "model.safetensors"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises((FileNotFoundError, ValueError)) as err:
        TrackerNode(namespace="/bad_ckpt", context=ros_context,
                    parameter_overrides=[Parameter("checkpoint", value=str(path))])
    assert str(path) in str(err.value)


@pytest.mark.slow  # a fresh interpreter imports torch and rclpy: 5-15 s
def test_missing_checkpoint_is_a_clear_startup_error(tmp_path):
    """The executable (what `ros2 run` starts): one fatal line naming the path, exit code 2,
    no traceback."""
    missing = tmp_path / "no_such_model.safetensors"
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-m", "ckd_tracker_ros.node", "--ros-args", "-r", "__ns:=/no_ckpt",
         "-p", f"checkpoint:={missing}"], cwd=root, capture_output=True, text=True,
        timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "Traceback" not in out
    fatal = [line for line in out.splitlines() if "FATAL" in line]
    assert len(fatal) == 1, out
    assert "cannot start" in fatal[0] and str(missing) in fatal[0] and \
        "does not exist" in fatal[0]


def test_shutdown_between_timer_and_publish_is_a_clean_stop(tiny_checkpoint, monkeypatch):
    """Ctrl-C shuts the context down; a heartbeat that fires after that must not raise
    (CI once saw `RCLError: publisher's context is invalid` turn a clean SIGINT into exit
    code 1), and main() treats that error during shutdown as a clean stop."""
    from rclpy.context import Context
    from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy

    import ckd_tracker_ros.node as node_module

    path, _ = tiny_checkpoint
    ctx = Context()
    rclpy.init(context=ctx)
    node = TrackerNode(namespace="/shutdown_race", context=ctx,
                       parameter_overrides=[Parameter("checkpoint", value=path)])
    try:
        node._heartbeat()  # a normal beat publishes
        ctx.shutdown()
        node._heartbeat()  # after shutdown: returns quietly
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)

    class ShutDownNode:
        def __init__(self):
            self.context = type("Ctx", (), {"ok": staticmethod(lambda: False)})()
            self.destroyed = False

        def destroy_node(self):
            self.destroyed = True

    made = []

    def fake_node():
        made.append(ShutDownNode())
        return made[-1]

    def spin(_node):
        raise _rclpy.RCLError("Failed to publish: publisher's context is invalid")
    monkeypatch.setattr(node_module, "TrackerNode", fake_node)
    monkeypatch.setattr(node_module.rclpy, "spin", spin)
    settled = []  # process-wide settings must not reach the test process
    monkeypatch.setattr(node_module, "settle_process", lambda: settled.append(1) or [])
    assert node_module.main(["--ros-args"]) == 0
    assert settled == [1]  # main() applies them once the node is built
    assert made[0].destroyed
