"""The ckd_tracker node: a thin adapter between camera topics and ckd_core's Tracker.

Topics (relative names: remap them, or push the node into a namespace):
  in   rgb/image, thermal/image         sensor_msgs/Image (or <topic>/compressed with
                                        rgb_compressed / thermal_compressed), sensor-data QoS
  in   ~/init_box                       vision_msgs/Detection2D: initialise on this box
  out  ~/detections                     vision_msgs/Detection2DArray (empty when LOST / IDLE)
  out  ~/status                         ckd_tracker_ros/TrackerStatus
  out  ~/debug_image                    sensor_msgs/Image rgb8, only while subscribed
  out  /diagnostics                     diagnostic_msgs/DiagnosticArray, 1 Hz
Services: ~/init_target (ckd_tracker_ros/InitTarget), ~/reset (std_srvs/Trigger),
  ~/enable (std_srvs/SetBool).
Parameters: ckd_tracker_ros.params.PARAMS (config/tracker.yaml shows them all).

Threads: subscription and service callbacks run in the executor; the synchroniser callback
only stores the newest pair in a PairMailbox. One worker thread takes the newest pair, converts
it, runs Tracker.update and publishes. Bad input (unknown encoding, truncated data, empty
image, a box outside the image, stamps going backwards, a silent camera) never stops the node:
it answers with a clear service message or a throttled warning.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import numpy as np
import rclpy
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.executors import ExternalShutdownException
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_srvs.srv import SetBool, Trigger
from diagnostic_msgs.msg import DiagnosticArray
from vision_msgs.msg import Detection2D, Detection2DArray

from ckd_core.boxes import validate_xywh
from ckd_tracker_ros import detections as out
from ckd_tracker_ros import params as P
from ckd_tracker_ros.images import BACKEND as IMAGE_BACKEND
from ckd_tracker_ros.images import (ThermalNormalizer, message_to_numpy, numpy_to_image,
                                    to_tracker_image)
from ckd_tracker_ros.msg import TrackerStatus
from ckd_tracker_ros.pairing import Item, PairMailbox, PairSubscriber, stamp_to_ns
from ckd_tracker_ros.process import settle_process
from ckd_tracker_ros.srv import InitTarget

CAMERAS = ("rgb", "thermal")
NO_PAIRS_CHECK_S = 5.0  # how often "images arrive but no pairs form" is checked
CLOCK_RESET_S = 1.0  # stamps jumping back more than this = a new time base (bag loop)
WARN_THROTTLE_S = 5.0


def build_tracker(settings: P.Settings):
    """The real Tracker for these settings: the checkpoint's own tracker section, with the
    node's thresholds and reference camera in place of its values (and its precision, when
    the precision or fp16 parameter asks for one)."""
    from ckd_core.tracking import Tracker

    overrides = {"lost_threshold": settings.lost_threshold,
                 "recover_threshold": settings.recover_threshold,
                 "reference_camera": settings.reference_camera}
    if settings.precision_override:
        overrides["precision"] = settings.precision_override
    return Tracker.from_checkpoint(
        settings.checkpoint or None, device=P.resolve_device(settings.device),
        elimination=settings.elimination_flag, tracker_overrides=overrides)


class TrackerNode(Node):
    """See the module docstring. `tracker_factory(settings)` builds the tracker (tests pass a
    fake); other keyword arguments go to rclpy's Node (e.g. parameter_overrides)."""

    def __init__(self, tracker_factory: Callable[[P.Settings], Any] = build_tracker,
                 node_name: str = "ckd_tracker", **node_kwargs):
        super().__init__(node_name, **node_kwargs)
        # Set first: if the rest fails (bad parameter, missing checkpoint), the context still
        # destroys this half-built node at shutdown, through destroy_node.
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._log = self.get_logger()
        for name, spec in P.PARAMS.items():
            # dynamic_typing: `slop: 1` or `thermal_window: [0, 4000]` in YAML are integers;
            # P.parse converts and validates them with messages that name the parameter.
            self.declare_parameter(name, spec.default, ParameterDescriptor(
                description=spec.description, additional_constraints=spec.allowed,
                dynamic_typing=True))
        self.settings = P.parse({n: self.get_parameter(n).value for n in P.PARAMS})
        ref = self.settings.reference_index

        self._lock = threading.RLock()  # tracker, normaliser and tracking state
        self._tracker = tracker_factory(self.settings)
        t0 = time.perf_counter()
        self._tracker.warmup()
        self._log.info(f"model ready on {P.resolve_device(self.settings.device)} "
                       f"(warm-up {time.perf_counter() - t0:.2f} s)")
        self._normalizers = [ThermalNormalizer(**self.settings.thermal_normalizer_kwargs())
                             for _ in CAMERAS]
        self._enabled = True
        self._state = TrackerStatus.IDLE
        self._track_id = ""
        self._label = self.settings.label
        self._n_inits = 0
        self._score = 0.0
        self._health: dict[str, str] = {c: "ok" for c in CAMERAS}
        self._last_stamp_ns: int | None = None
        self._last_header = None
        self._frames_processed = 0
        self._frames_rejected = 0
        self._fps = 0.0
        self._latency_ms = 0.0
        self._last_done: float | None = None

        # Inputs.
        reliability = (ReliabilityPolicy.BEST_EFFORT if self.settings.qos_reliability ==
                       "best_effort" else ReliabilityPolicy.RELIABLE)
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=self.settings.qos_depth,
                         reliability=reliability, durability=DurabilityPolicy.VOLATILE)
        self._mailbox = PairMailbox(reference=ref, history=self.settings.init_buffer,
                                    silent_after=self.settings.silent_after)
        compressed = (self.settings.rgb_compressed, self.settings.thermal_compressed)
        self._topics = [f"{c}/image/compressed" if z else f"{c}/image"
                        for c, z in zip(CAMERAS, compressed)]
        self._pairs = PairSubscriber(
            self, [(CompressedImage if z else Image, t) for z, t in zip(compressed, self._topics)],
            qos, self.settings.queue_size, self.settings.slop, self._mailbox)
        self.create_subscription(Detection2D, "~/init_box", self._on_init_box, 10)

        # Outputs.
        self._det_pub = self.create_publisher(Detection2DArray, "~/detections", 10)
        self._status_pub = self.create_publisher(TrackerStatus, "~/status", 10)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._debug_pub = self.create_publisher(Image, "~/debug_image", 1)
        self.create_service(InitTarget, "~/init_target", self._on_init_target)
        self.create_service(Trigger, "~/reset", self._on_reset)
        self.create_service(SetBool, "~/enable", self._on_enable)
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self._no_pair_counts = (0, 0, 0)
        self._no_pairs_problem = ""
        self.create_timer(1.0, self._heartbeat)
        self.create_timer(NO_PAIRS_CHECK_S, self._check_pairing)

        self._worker = threading.Thread(target=self._work, name="ckd_tracker_worker",
                                        daemon=True)
        self._worker.start()
        names = [self.resolve_topic_name(t) for t in self._topics]
        self._log.info(f"tracking {names[0]} + {names[1]} (pairing: {self._pairs.backend}, "
                       f"images: {IMAGE_BACKEND}, QoS {self.settings.qos_reliability} depth "
                       f"{self.settings.qos_depth}, slop {self.settings.slop} s); call "
                       f"{self.resolve_service_name('~/init_target')} to start")

    # ----------------------------------------------------------------------------------------
    # Images -> arrays
    # ----------------------------------------------------------------------------------------
    def _to_arrays(self, item: Item) -> list:
        """Both messages of `item` as uint8 arrays for the Tracker, RGB (H, W, 3) or grey
        (H, W) (None for a missing camera; a 16-bit or float thermal image as a
        `WindowedFrame`, mapped to 8 bits only where the tracker reads it); a bad image
        raises ValueError naming the camera and the problem."""
        arrays = []
        for i, msg in enumerate(item.msgs):
            if msg is None:
                arrays.append(None)
                continue
            try:
                raw, encoding = message_to_numpy(msg)
                arrays.append(to_tracker_image(raw, encoding, self._normalizers[i],
                                               windowed=True))
            except ValueError as e:
                raise ValueError(f"{CAMERAS[i]} image on {self._topics[i]}: {e}") from None
        return arrays

    # ----------------------------------------------------------------------------------------
    # Worker: the newest pair -> Tracker.update -> publish
    # ----------------------------------------------------------------------------------------
    def _work(self) -> None:
        while not self._stop.is_set():
            item = self._mailbox.take(timeout=0.2)
            if item is None or self._stop.is_set():
                continue
            try:
                self._process(item)
            except Exception as e:  # noqa: BLE001 - the node must survive anything
                if not self.context.ok():
                    return  # shutting down (Ctrl-C): the publishers' context is gone
                self._frames_rejected += 1
                self._log.error(f"frame skipped: {type(e).__name__}: {e}",
                                throttle_duration_sec=WARN_THROTTLE_S)

    def _header_of(self, item: Item):
        ref = self.settings.reference_index
        msg = item.msgs[ref] if item.msgs[ref] is not None else item.msgs[1 - ref]
        return msg.header

    def _process(self, item: Item) -> None:
        with self._lock:
            if not self._enabled:
                # Ignored, but remembered: after re-enabling, only newer images are processed.
                self._last_stamp_ns = max(self._last_stamp_ns or 0, item.stamp_ns)
                return
            if self._last_stamp_ns is not None and item.stamp_ns <= self._last_stamp_ns:
                back = (self._last_stamp_ns - item.stamp_ns) / 1e9
                if back == 0:
                    return  # the same stamp again (a re-sent pair, or the init pair): once only
                if back <= CLOCK_RESET_S:
                    self._log.warning(
                        f"skipping an image pair {back:.3f} s older than the last processed "
                        "one (stamps out of order)", throttle_duration_sec=WARN_THROTTLE_S)
                    return
                self._log.warning(f"stamps jumped back by {back:.1f} s: new time base "
                                  "(bag restarted?)", throttle_duration_sec=WARN_THROTTLE_S)
            try:
                rgb, thermal = self._to_arrays(item)
            except ValueError as e:
                self._frames_rejected += 1
                self._log.warning(f"image rejected: {e}", throttle_duration_sec=WARN_THROTTLE_S)
                return
            header = self._header_of(item)
            box = None
            health = {c: ("ok" if a is not None else "missing")
                      for c, a in zip(CAMERAS, (rgb, thermal))}
            if self._state in (TrackerStatus.TRACKING, TrackerStatus.LOST):
                try:
                    result = self._tracker.update(rgb, thermal)
                except ValueError as e:
                    self._frames_rejected += 1
                    self._log.warning(f"tracker rejected the pair stamped "
                                      f"{item.stamp_ns / 1e9:.3f}: {e}",
                                      throttle_duration_sec=WARN_THROTTLE_S)
                    return
                self._score = float(result.score)
                tracking = result.state.name == "TRACKING"
                self._state = TrackerStatus.TRACKING if tracking else TrackerStatus.LOST
                box = tuple(result.box_xywh) if tracking else None
                health.update(result.health or {})
            self._health = health
            self._last_stamp_ns = item.stamp_ns
            self._last_header = header
            self._frames_processed += 1
            self._det_pub.publish(out.detections_message(
                header, box, self._score, self._label, self._track_id))
            now = time.monotonic()
            self._latency_ms = (now - item.received) * 1e3
            if self._last_done is not None and now > self._last_done:
                rate = 1.0 / (now - self._last_done)
                self._fps = rate if self._fps == 0 else 0.9 * self._fps + 0.1 * rate
            self._last_done = now
            self._status_pub.publish(self._status(header))
            if self.settings.publish_debug_image and self._debug_pub.get_subscription_count():
                img = out.debug_image(*(None if a is None else np.asarray(a)
                                        for a in (rgb, thermal)),
                                      box, self.settings.reference_index, self._score,
                                      self._state)
                self._debug_pub.publish(numpy_to_image(img, "rgb8", header))

    def _cameras_quiet_s(self) -> float | None:
        """Seconds without an image from EITHER camera, once that exceeds silent_after (the
        last pair's health would otherwise still read ok); None while images arrive."""
        quiet = self._mailbox.seconds_since_any()
        return quiet if quiet is not None and quiet >= self.settings.silent_after else None

    def _status(self, header) -> TrackerStatus:
        state = self._state if self._enabled else TrackerStatus.DISABLED
        health = self._health if self._cameras_quiet_s() is None else \
            {c: "missing" for c in CAMERAS}
        return out.status_message(
            header, state, self._score, self._track_id, health, self._fps,
            self._latency_ms, self._mailbox.pairs_received, self._mailbox.pairs_dropped,
            self._frames_processed)

    # ----------------------------------------------------------------------------------------
    # Initialisation, reset, enable
    # ----------------------------------------------------------------------------------------
    def _initialise(self, box: tuple[float, float, float, float], stamp_ns: int,
                    label: str) -> tuple[bool, str, str]:
        """(success, message, track_id). Never raises for bad input."""
        item = self._mailbox.closest(stamp_ns)
        if item is None:
            counts = self._mailbox.camera_counts()
            silent = [CAMERAS[i] for i in (0, 1) if counts[i] == 0]
            why = (f"no {' or '.join(silent)} images received" if silent else
                   f"images arrive ({counts[0]} rgb, {counts[1]} thermal) but none pair "
                   f"within slop={self._pairs.slop} s")
            return False, f"no image pair to initialise on yet: {why}", ""
        ref = self.settings.reference_index
        with self._lock:
            try:
                rgb, thermal = self._to_arrays(item)
            except ValueError as e:
                return False, f"cannot initialise: {e}", ""
            ref_img = (rgb, thermal)[ref]
            h, w = ref_img.shape[:2]
            try:
                box = validate_xywh(box, w, h, "InitTarget box")
                self._tracker.init(rgb, thermal, box)
            except ValueError as e:
                return False, str(e), ""
            self._n_inits += 1
            self._track_id = str(self._n_inits)
            self._label = label or self.settings.label
            self._state = TrackerStatus.TRACKING
            self._score = 1.0
            self._last_stamp_ns = item.stamp_ns
        offset = "" if stamp_ns == 0 else \
            f", {abs(item.stamp_ns - stamp_ns) / 1e9:.3f} s from the requested stamp"
        msg = (f"tracking '{self._label}' as track {self._track_id} from the pair stamped "
               f"{item.stamp_ns / 1e9:.3f}{offset}")
        self._log.info(msg)
        return True, msg, self._track_id

    def _on_init_target(self, request, response):
        try:
            stamp_ns = stamp_to_ns(request.stamp)
            box = (request.x, request.y, request.width, request.height)
            response.success, response.message, response.track_id = self._initialise(
                box, stamp_ns, request.label)
        except Exception as e:  # noqa: BLE001 - a service must always answer
            response.success, response.message, response.track_id = False, \
                f"internal error: {type(e).__name__}: {e}", ""
        if not response.success:
            self._log.warning(f"init_target refused: {response.message}")
        return response

    def _on_init_box(self, msg: Detection2D) -> None:
        label = msg.results[0].hypothesis.class_id if msg.results else ""
        ok, text, _ = self._initialise(out.box_from_detection(msg),
                                       stamp_to_ns(msg.header.stamp), label)
        if not ok:
            self._log.warning(f"init_box refused: {text}")

    def _on_reset(self, request, response):
        with self._lock:
            self._tracker.reset()
            self._state = TrackerStatus.IDLE
            self._track_id = ""
            self._score = 0.0
            self._mailbox.clear()
            self._last_stamp_ns = None  # a replayed bag may start over at earlier stamps
        response.success, response.message = True, "tracker reset; waiting for init_target"
        return response

    def _on_enable(self, request, response):
        self._enabled = bool(request.data)
        response.success = True
        response.message = "enabled" if self._enabled else "disabled: images are ignored"
        self._status_pub.publish(self._status(self._idle_header()))
        return response

    # ----------------------------------------------------------------------------------------
    # Parameters at runtime
    # ----------------------------------------------------------------------------------------
    def _on_set_parameters(self, parameters) -> SetParametersResult:
        changes = {p.name: p.value for p in parameters if p.name in P.PARAMS}
        if not changes:
            return SetParametersResult(successful=True)
        new, reason = P.check_change(self.settings, changes)
        if new is None:
            return SetParametersResult(successful=False, reason=reason)
        with self._lock:
            old, self.settings = self.settings, new
            if (new.lost_threshold, new.recover_threshold) != (old.lost_threshold,
                                                               old.recover_threshold):
                self._tracker.set_thresholds(lost=new.lost_threshold,
                                             recover=new.recover_threshold)
            if new.thermal_normalizer_kwargs() != old.thermal_normalizer_kwargs():
                self._normalizers = [ThermalNormalizer(**new.thermal_normalizer_kwargs())
                                     for _ in CAMERAS]
            if new.slop != old.slop:
                self._pairs.set_slop(new.slop)
            self._mailbox.silent_after = new.silent_after
        self._log.info(f"parameters changed: {changes}")
        return SetParametersResult(successful=True)

    # ----------------------------------------------------------------------------------------
    # Periodic: status while idle, diagnostics, pairing checks
    # ----------------------------------------------------------------------------------------
    def _idle_header(self):
        from std_msgs.msg import Header
        h = Header()
        h.stamp = self.get_clock().now().to_msg()
        if self._last_header is not None:
            h.frame_id = self._last_header.frame_id
        return h

    def _heartbeat(self) -> None:
        if not self.context.ok():
            return  # shutting down (Ctrl-C) between the timer firing and this call
        quiet = self._last_done is None or time.monotonic() - self._last_done > 1.0
        if quiet:
            self._fps = 0.0
        status = self._status(self._last_header if not quiet else self._idle_header())
        if quiet:  # otherwise the worker publishes a status with every result
            self._status_pub.publish(status)
        problems = []
        silent = self._mailbox.silent_cameras()
        for i in silent:
            problems.append(f"{CAMERAS[i]} camera silent: tracking on "
                            f"{CAMERAS[1 - i]} only")
        if silent:
            self._log.warning(problems[-1], throttle_duration_sec=WARN_THROTTLE_S)
        quiet_s = self._cameras_quiet_s()
        if quiet_s is not None:
            problems.append(f"no images from either camera for {quiet_s:.1f} s")
            self._log.warning(problems[-1], throttle_duration_sec=WARN_THROTTLE_S)
        if self._no_pairs_problem:
            problems.append(self._no_pairs_problem)
        if status.state == TrackerStatus.LOST:
            problems.append("target lost")
        for c in CAMERAS:
            if self._health.get(c, "ok") not in ("ok", "missing"):
                problems.append(f"{c} image {self._health[c]}")
        extra = {"device": P.resolve_device(self.settings.device),
                 "pairing_backend": self._pairs.backend, "image_backend": IMAGE_BACKEND,
                 "frames_rejected": str(self._frames_rejected)}
        self._diag_pub.publish(out.diagnostics_message(
            self.get_clock().now().to_msg(), self.get_fully_qualified_name(), status,
            problems, extra))

    def _check_pairing(self) -> None:
        counts = (*self._mailbox.camera_counts(), self._mailbox.pairs_received)
        d_rgb, d_th, d_pairs = (a - b for a, b in zip(counts, self._no_pair_counts))
        self._no_pair_counts = counts
        self._no_pairs_problem = ""
        if d_rgb and d_th and not d_pairs:
            self._no_pairs_problem = (
                f"images arrive but no pairs form: {d_rgb} rgb and {d_th} thermal images in "
                f"the last {NO_PAIRS_CHECK_S:.0f} s, 0 pairs (stamps further apart than "
                f"slop={self._pairs.slop} s? totals: {counts[0]} rgb, {counts[1]} thermal, "
                f"{counts[2]} pairs)")
            self._log.warning(self._no_pairs_problem)

    def destroy_node(self):
        self._stop.set()
        if self._worker is not None and self._worker.is_alive():
            self._worker.join(timeout=5.0)
        return super().destroy_node()


def main(args=None) -> int:
    """Entry point of `ros2 run ckd_tracker_ros tracker_node` (see CMakeLists.txt)."""
    rclpy.init(args=args)
    try:
        try:
            node = TrackerNode()
        except (P.ParamError, ValueError, FileNotFoundError) as e:
            rclpy.logging.get_logger("ckd_tracker").fatal(f"cannot start: {e}")
            return 2
        except (KeyboardInterrupt, ExternalShutdownException):
            return 0  # Ctrl-C while the model was loading
        rclpy.logging.get_logger("ckd_tracker").debug(
            f"process settings: {', '.join(settle_process())}")
        try:
            rclpy.spin(node)
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        except _rclpy.RCLError:  # rclpy's error type for a failed rcl call
            # A shutdown (Ctrl-C) can invalidate the context between a check and a publish:
            # that is a clean stop. The same error while the context is fine is real.
            if node.context.ok():
                raise
        finally:
            node.destroy_node()
        return 0
    finally:
        rclpy.try_shutdown()


if __name__ == "__main__":
    raise SystemExit(main())
