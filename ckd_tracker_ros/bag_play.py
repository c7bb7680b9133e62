"""Replay a bag's RGB + thermal images into a running ROS 2 graph with rclpy.

Two modes:
- real time (default): every image message of the two camera topics is published at its
  header stamp, scaled by `rate` (2.0 = twice as fast), in the bag's log order; a node slower
  than the cameras drops pairs, as it would live.
- LOCK-STEP: one pair at a time. The pair's two images are published, then the player waits
  until the node has answered that pair: a Detection2DArray on `<node>/detections` whose
  header stamp is the pair's RGB (or thermal) stamp. The node publishes one for every pair it
  processes, an empty one while IDLE or LOST, so every pair gets an answer. Only then comes
  the next pair: no pair is dropped and the results do not depend on speed (deterministic
  evaluation). Images can be lost in transit (best effort), so a pair that has no answer
  after `resend_s` (at least 1 s, or 3x the slowest answer so far) is published again (the
  node processes a stamp once: a second copy of a processed pair is ignored). A pair with no
  answer after `timeout_s` is recorded as unanswered; several in a row abort the replay.

Images are published as the bag stores them (the serialised CDR bytes, as `ros2 bag play`
does), with the sensor-data QoS (best effort, keep last 5) unless `reliable`. Topic names are
the bag's, remapped with `remap` ({bag topic: published topic}). The node's answers and its
~/status (for its latency_ms and counters) are collected per header stamp by `Answers`.
"""

from __future__ import annotations

import importlib
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np

from ckd_tracker_ros.bag_tools import BagError, BagIndex, RawPair, header_stamp_ns, \
    iter_pairs, read_index

CONSECUTIVE_TIMEOUTS = 3  # unanswered pairs in a row before a lock-step replay gives up


def message_class(type_name: str):
    """'sensor_msgs/msg/Image' -> the rclpy message class."""
    pkg, kind, name = type_name.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


def stamp_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def qos_profile(reliable: bool, depth: int = 5):
    """The sensor-data profile (best effort, keep last `depth`, volatile), or reliable."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE if reliable
                      else ReliabilityPolicy.BEST_EFFORT, durability=DurabilityPolicy.VOLATILE)


# ---------------------------------------------------------------------------------------------
# What the node answers
# ---------------------------------------------------------------------------------------------

class Answers:
    """Collects a tracker node's `<node>/detections` and `<node>/status` by header stamp.

    `detections[stamp_ns] = (Detection2DArray, time.monotonic() at arrival)`;
    `status[stamp_ns] = TrackerStatus` (the last one with that stamp); `last_status` = the
    newest status of any stamp (heartbeats included)."""

    def __init__(self, node, node_name: str, depth: int = 100):
        from vision_msgs.msg import Detection2DArray

        from ckd_tracker_ros.msg import TrackerStatus
        self.node_name = node_name.rstrip("/")
        self.detections: dict[int, tuple[object, float]] = {}
        self.status: dict[int, object] = {}
        self.last_status = None
        self._cond = threading.Condition()
        self._subs = [
            node.create_subscription(Detection2DArray, f"{self.node_name}/detections",
                                     self._on_detections, depth),
            node.create_subscription(TrackerStatus, f"{self.node_name}/status",
                                     self._on_status, depth)]

    def _on_detections(self, msg) -> None:
        with self._cond:
            self.detections[stamp_ns(msg.header.stamp)] = (msg, time.monotonic())
            self._cond.notify_all()

    def _on_status(self, msg) -> None:
        with self._cond:
            self.status[stamp_ns(msg.header.stamp)] = msg
            self.last_status = msg
            self._cond.notify_all()

    def wait(self, stamps: Iterable[int], timeout: float, table: str = "detections"):
        """The first of `stamps` found in `table` ('detections' or 'status') within
        `timeout` seconds, as (stamp, entry); None on time-out."""
        stamps = tuple(stamps)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = getattr(self, table)
                for s in stamps:
                    if s in found:
                        return s, found[s]
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(min(left, 0.1))


# ---------------------------------------------------------------------------------------------
# Publishing
# ---------------------------------------------------------------------------------------------

@dataclass
class FrameRecord:
    """One published pair and the node's answer.

    detection: (cx, cy, w, h) of the first Detection2D as published (centre + size), None
    when the answer was an empty array or there was no answer. box: the same as (x, y, w, h).
    state / latency_ms / score: from the node's ~/status with this stamp (None if missing).
    wall_ms: from publishing the pair (first time) to the detections' arrival."""

    index: int
    stamp_ns: int
    answered: bool = False
    detection: tuple[float, float, float, float] | None = None
    box: tuple[float, float, float, float] | None = None
    score: float | None = None
    state: int | None = None
    latency_ms: float | None = None
    wall_ms: float | None = None
    resends: int = 0


@dataclass
class PlayResult:
    """What a replay did. records: one per published pair (lock-step), or per RGB frame
    (real time, answered when the node processed it)."""

    mode: str
    records: list[FrameRecord] = field(default_factory=list)
    messages_published: int = 0
    wall_s: float = 0.0
    aborted: str = ""

    @property
    def answered(self) -> int:
        return sum(r.answered for r in self.records)


def fill_from_answer(rec: FrameRecord, det_array, arrival: float | None = None,
                     sent: float | None = None) -> None:
    rec.answered = True
    if det_array.detections:
        d = det_array.detections[0]
        cx, cy = float(d.bbox.center.position.x), float(d.bbox.center.position.y)
        w, h = float(d.bbox.size_x), float(d.bbox.size_y)
        rec.detection = (cx, cy, w, h)
        rec.box = (cx - 0.5 * w, cy - 0.5 * h, w, h)
        if d.results:
            rec.score = float(d.results[0].hypothesis.score)
    if arrival is not None and sent is not None:
        rec.wall_ms = (arrival - sent) * 1e3


def fill_from_status(rec: FrameRecord, status) -> None:
    rec.state = int(status.state)
    rec.latency_ms = float(status.latency_ms)
    if rec.score is None:
        rec.score = float(status.score)


def attach_status(records: list[FrameRecord], answers: Answers, wait_s: float = 2.0) -> None:
    """Fill each record from the node's status with its stamp, waiting up to `wait_s` for the
    status of the last answered pair (it follows the detections)."""
    last = [r.stamp_ns for r in records if r.answered][-1:]
    if last:
        answers.wait(last, wait_s, table="status")
    for rec in records:
        st = answers.status.get(rec.stamp_ns)
        if st is not None:
            fill_from_status(rec, st)


class Player:
    """Publishes an indexed bag's image pairs on `node` (which someone else spins)."""

    def __init__(self, node, index: BagIndex, remap: Mapping[str, str] | None = None,
                 reliable: bool = False, depth: int = 5):
        remap = dict(remap or {})
        self.index = index
        self.topics = [remap.get(t, t) for t in (index.rgb_topic, index.thermal_topic)]
        qos = qos_profile(reliable, depth)
        self.pubs = [node.create_publisher(message_class(index.topics[t][0]), out, qos)
                     for t, out in zip((index.rgb_topic, index.thermal_topic), self.topics)]
        self.published = 0

    def wait_for_subscribers(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(p.get_subscription_count() > 0 for p in self.pubs):
                return True
            time.sleep(0.02)
        return False

    def publish_pair(self, pair: RawPair) -> None:
        """The two images in stamp order (as cameras would deliver them)."""
        items = [(pair.rgb_stamp_ns, 0, pair.rgb), (pair.thermal_stamp_ns, 1, pair.thermal)]
        for _, cam, raw in sorted(items):
            self.pubs[cam].publish(raw)
            self.published += 1

    # -- lock-step --------------------------------------------------------------------------
    def step(self, pair: RawPair, answers: Answers, timeout_s: float,
             resend_s: float) -> FrameRecord:
        """Publish one pair and wait for the node's answer (see the module docstring)."""
        rec = FrameRecord(pair.index, pair.rgb_stamp_ns)
        stamps = (pair.rgb_stamp_ns, pair.thermal_stamp_ns)
        sent = time.monotonic()
        deadline = sent + timeout_s
        self.publish_pair(pair)
        while True:
            wait = min(resend_s, deadline - time.monotonic())
            got = answers.wait(stamps, max(wait, 0.0))
            if got is not None:
                stamp, (msg, arrival) = got
                rec.stamp_ns = stamp
                fill_from_answer(rec, msg, arrival, sent)
                return rec
            if time.monotonic() >= deadline:
                return rec
            self.publish_pair(pair)
            rec.resends += 1

    def lockstep(self, pairs: Iterable[RawPair], answers: Answers, timeout_s: float = 30.0,
                 resend_s: float = 1.0, on_frame: Callable[[FrameRecord], None] | None = None
                 ) -> tuple[list[FrameRecord], str]:
        """Step through `pairs`; returns (records, why it stopped early or '')."""
        records: list[FrameRecord] = []
        misses = 0
        slowest = 0.0
        for pair in pairs:
            rec = self.step(pair, answers, timeout_s, max(resend_s, 3 * slowest))
            records.append(rec)
            if rec.wall_ms is not None:
                slowest = max(slowest, rec.wall_ms / 1e3)
            if on_frame is not None:
                on_frame(rec)
            misses = 0 if rec.answered else misses + 1
            if misses >= CONSECUTIVE_TIMEOUTS:
                return records, (
                    f"no answer on {answers.node_name}/detections for {misses} pairs in a row "
                    f"(waited {timeout_s:.0f} s each, last frame {pair.index}): is the node "
                    f"running, enabled and subscribed to {self.topics[0]} and "
                    f"{self.topics[1]} (with matching QoS and slop)?")
        return records, ""

    # -- real time --------------------------------------------------------------------------
    def realtime(self, rate: float = 1.0, skip_frames: Iterable[int] = (),
                 stop: int | None = None, on_message: Callable[[int], None] | None = None
                 ) -> float:
        """Publish every image of the two camera topics at its header stamp / rate, in log
        order, except the messages of `skip_frames` (frame indices), until the RGB image of
        frame `stop` (None: to the end). Returns wall seconds."""
        from ckd_tracker_ros.bag_tools import _open_reader
        if not rate > 0:
            raise BagError(f"rate {rate}: expected a positive factor")
        ix = self.index
        skip_rgb = set(int(i) for i in skip_frames)
        skip_th = {int(ix.pairs[i]) for i in skip_rgb}
        reader = _open_reader(ix.path)
        counts = [0, 0]
        t0 = first = None
        try:
            conns = [c for c in reader.connections
                     if c.topic in (ix.rgb_topic, ix.thermal_topic)]
            for conn, log_ns, raw in reader.messages(connections=conns):
                cam = 0 if conn.topic == ix.rgb_topic else 1
                k = counts[cam]
                counts[cam] += 1
                if cam == 0 and stop is not None and k >= stop:
                    break
                if k in (skip_rgb if cam == 0 else skip_th):
                    continue
                stamp = header_stamp_ns(raw) or log_ns
                if t0 is None:
                    t0, first = time.monotonic(), stamp
                due = t0 + (stamp - first) / 1e9 / rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                self.pubs[cam].publish(bytes(raw))
                self.published += 1
                if on_message is not None and cam == 0:
                    on_message(k)
        finally:
            reader.close()
        return 0.0 if t0 is None else time.monotonic() - t0


# ---------------------------------------------------------------------------------------------
# A background executor
# ---------------------------------------------------------------------------------------------

@contextmanager
def spinning(context, *nodes):
    """Spin each of `nodes` with its own SingleThreadedExecutor, each in a background thread,
    during the block: the way `ros2 run` spins a node (`rclpy.spin`), so an in-process node
    sees its callbacks as it would in its own process.

    Not one MultiThreadedExecutor for all: with it, rclpy held image and answer callbacks
    back after the message had arrived; a lock-step replay of the demo bag had a round trip
    p90 of 501 ms (max 1.8 s) for a node that needs 39 ms, against 46 ms (max 64 ms) this way
    (`benchmarks/results/bag_executor.md`, side by side). The delays could also make a
    camera look silent to the node, which then tracked single images.
    Yields the executors, in the order of `nodes`."""
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    executors = []
    threads = []
    try:
        for n in nodes:
            ex = SingleThreadedExecutor(context=context)
            ex.add_node(n)
            executors.append(ex)

            def spin(ex=ex):
                try:
                    ex.spin()
                except ExternalShutdownException:
                    pass

            t = threading.Thread(target=spin, name=f"ckd_spin_{n.get_name()}", daemon=True)
            t.start()
            threads.append(t)
        yield executors
    finally:
        for ex in executors:
            ex.shutdown(timeout_sec=5.0)
        for t in threads:
            t.join(timeout=5.0)


@contextmanager
def ros_context(context=None):
    """The given rclpy context, or a fresh one initialised here and shut down afterwards."""
    import rclpy
    from rclpy.context import Context
    if context is not None:
        yield context
        return
    ctx = Context()
    rclpy.init(context=ctx)
    try:
        yield ctx
    finally:
        rclpy.try_shutdown(context=ctx)


# ---------------------------------------------------------------------------------------------
# play()
# ---------------------------------------------------------------------------------------------

def play(bag: str | Path, rate: float = 1.0, lockstep: bool = False,
         node: str = "/ckd_tracker", remap: Mapping[str, str] | None = None,
         reliable: bool = False, timeout_s: float = 30.0, wait_s: float = 10.0,
         start: int = 0, stop: int | None = None, rgb_topic: str | None = None,
         thermal_topic: str | None = None, context=None, progress: bool = True,
         log: Callable[[str], None] = print) -> PlayResult:
    """Replay `bag` into the graph (module docstring). `node`: the tracker node whose
    ~/detections answer lock-step pairs (and whose status is collected). start/stop: frame
    range (lock-step). wait_s: how long to wait for subscribers to the image topics (lock-step
    fails without them; real time starts anyway, with a warning)."""
    import rclpy

    index = read_index(bag, rgb_topic, thermal_topic)
    with ros_context(context) as ctx:
        player_node = rclpy.create_node("ckd_bag_player", context=ctx)
        try:
            player = Player(player_node, index, remap, reliable)
            answers = Answers(player_node, node)
            with spinning(ctx, player_node):
                have_subs = player.wait_for_subscribers(wait_s)
                if not have_subs:
                    msg = (f"nobody subscribes to {player.topics[0]} and {player.topics[1]} "
                           f"after {wait_s:.0f} s")
                    if lockstep:
                        raise BagError(msg + f"; start the node (and remap its inputs to "
                                       "these topics) before a lock-step replay")
                    log(f"warning: {msg}; publishing anyway")
                log(f"playing {index.path} ({index.num_frames} frames): "
                    f"{player.topics[0]} + {player.topics[1]}, "
                    f"{'lock-step with ' + answers.node_name if lockstep else f'{rate}x real time'}")
                t0 = time.monotonic()
                result = PlayResult("lockstep" if lockstep else "realtime")
                bar = progress_bar(progress, (stop or index.num_frames) - start)
                try:
                    if lockstep:
                        records, why = player.lockstep(
                            iter_pairs(index, start, stop), answers, timeout_s,
                            on_frame=lambda r: bar.update(1) if bar else None)
                        result.records, result.aborted = records, why
                    else:
                        player.realtime(rate, on_message=lambda k: bar.update(1) if bar
                                        else None)
                finally:
                    if bar is not None:
                        bar.close()
                result.wall_s = time.monotonic() - t0
                result.messages_published = player.published
                attach_status(result.records, answers)
        finally:
            player_node.destroy_node()
    if result.aborted:
        log(f"stopped early: {result.aborted}")
    log(f"published {result.messages_published} images in {result.wall_s:.1f} s"
        + (f"; {result.answered}/{len(result.records)} pairs answered" if lockstep else ""))
    return result


def progress_bar(progress: bool, total: int):
    if not progress:
        return None
    from tqdm import tqdm
    return tqdm(total=max(total, 0), unit="frame", desc="play", leave=False)


def percentiles(values) -> dict[str, float]:
    """mean, p50, p90, p99 and max of `values` (an empty dict when there are none)."""
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    if v.size == 0:
        return {}
    return {"mean": float(v.mean()), "p50": float(np.percentile(v, 50)),
            "p90": float(np.percentile(v, 90)), "p99": float(np.percentile(v, 99)),
            "max": float(v.max()), "n": int(v.size)}
