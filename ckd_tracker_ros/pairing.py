"""Pairing RGB and thermal images by stamp, and handing the newest pair to the tracker.

Three pieces, the first two pure Python (no rclpy):

- `ApproximatePairing`: the approximate-time policy with the semantics of message_filters'
  Python `ApproximateTimeSynchronizer` (our own code, for pip-only ROS where message_filters
  is not installable): per-topic queues keyed by stamp and trimmed to `queue_size` (oldest stamp
  dropped first); when a message arrives, each other queue offers its stamps within `slop` of
  it, nearest first, and the first combination whose stamp spread is STRICTLY less than `slop`
  is emitted and removed from the queues. Unmatched old messages are not purged, so a late
  message can still pair with an old one: pairs can come out of time order. Greedy: the first
  acceptable match wins, not the globally best one.
- `PairMailbox`: where the synchroniser callback drops pairs. It keeps only the newest pair
  (each pair is taken at most once; a pair replaced before it was taken counts as dropped),
  a short history for "initialise on the frame closest to this stamp", and the newest single
  message per camera so that the tracker can go on with one camera when the other is silent.
  The callback only stores and signals (message_filters calls it while holding its lock);
  inference runs in another thread.
- `PairSubscriber`: subscribes to both topics with rclpy and feeds a synchroniser:
  `message_filters.ApproximateTimeSynchronizer` when message_filters is importable (a ROS
  distro), `ApproximatePairing` otherwise. Which one runs is in `PairSubscriber.backend`.
"""

from __future__ import annotations

import itertools
import math
import numbers
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Sequence


def stamp_to_ns(stamp) -> int:
    """builtin_interfaces/Time -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


class ApproximatePairing:
    """Approximate-time matching of N topics (message_filters' Python policy).

    `add(index, stamp_ns, msg)` returns the matched tuple of messages (one per topic, in topic
    order) or None. Stamps are integer nanoseconds; `slop` is in seconds.
    """

    def __init__(self, n_topics: int, queue_size: int, slop: float):
        if n_topics < 2:
            raise ValueError(f"pairing needs at least 2 topics, got {n_topics}")
        if isinstance(queue_size, bool) or not isinstance(queue_size, numbers.Integral) \
                or queue_size < 1:
            raise ValueError(f"queue_size {queue_size!r}: expected an integer >= 1")
        self.queue_size = int(queue_size)
        self.slop = slop  # validated by the setter
        self.queues: list[dict[int, Any]] = [{} for _ in range(n_topics)]

    @property
    def slop(self) -> float:
        return self._slop_ns / 1e9

    @slop.setter
    def slop(self, seconds: float) -> None:
        # At least 1 ns: a spread must be strictly less than slop, so 0 ns would never pair.
        if (isinstance(seconds, bool) or not isinstance(seconds, numbers.Real)
                or not math.isfinite(seconds * 1e9) or round(seconds * 1e9) < 1):
            raise ValueError(f"slop {seconds!r}: expected a finite number of seconds "
                             ">= 1e-9")
        self._slop_ns = int(round(seconds * 1e9))

    def add(self, index: int, stamp_ns: int, msg: Any) -> tuple | None:
        queue = self.queues[index]
        queue[stamp_ns] = msg  # a repeated stamp replaces the earlier message
        while len(queue) > self.queue_size:
            del queue[min(queue)]
        if stamp_ns not in queue:
            return None  # older than everything in a full queue: dropped at once, not paired
        candidates: list[list[int]] = []
        for j, other in enumerate(self.queues):
            if j == index:
                continue
            near = [s for s in other if abs(s - stamp_ns) <= self._slop_ns]
            if not near:
                return None
            candidates.append(sorted(near, key=lambda s: abs(s - stamp_ns)))
        for combo in itertools.product(*candidates):
            stamps = list(combo)
            stamps.insert(index, stamp_ns)
            if max(stamps) - min(stamps) < self._slop_ns:
                return tuple(q.pop(s) for q, s in zip(self.queues, stamps))
        return None


@dataclass
class Item:
    """What the worker gets: both messages of a pair, or one of them (the other camera is
    silent) with None for the other. `stamp_ns` is the reference camera's stamp (or the stamp
    of the one message); `received` is time.monotonic() when it arrived."""

    msgs: tuple[Any, Any]
    stamp_ns: int
    received: float

    @property
    def is_pair(self) -> bool:
        return self.msgs[0] is not None and self.msgs[1] is not None


@dataclass
class _Camera:
    count: int = 0
    first_arrival: float | None = None
    last_arrival: float | None = None
    newest: Item | None = None
    newest_taken: bool = True


class PairMailbox:
    """Newest-pair hand-off between the synchroniser callback and the tracker thread.

    `reference` (0 or 1) says whose stamp a pair carries. The last `history` pairs are kept for
    `closest()`. A camera counts as silent when nothing came from it for `silent_after`
    seconds while the other one is alive; then `take()` also hands out the other camera's
    single messages, once each. Thread-safe. `clock` (seconds, monotonic) is for tests.
    """

    def __init__(self, reference: int = 0, history: int = 10, silent_after: float = 1.0,
                 clock: Callable[[], float] = time.monotonic):
        if reference not in (0, 1):
            raise ValueError(f"reference {reference}: expected 0 or 1")
        self.reference = reference
        self.silent_after = float(silent_after)
        self.pairs_received = 0
        self.pairs_dropped = 0
        self._clock = clock
        self._lock = threading.Lock()
        self._event = threading.Event()
        self._newest: Item | None = None
        self._recent: deque[Item] = deque(maxlen=max(1, int(history)))
        self._cameras = [_Camera(), _Camera()]

    # --- producer side (subscription / synchroniser callbacks): store and signal only -------
    def put_pair(self, msgs: Sequence[Any], stamp_ns: int) -> None:
        item = Item((msgs[0], msgs[1]), int(stamp_ns), self._clock())
        with self._lock:
            self.pairs_received += 1
            if self._newest is not None:
                self.pairs_dropped += 1
            self._newest = item
            self._recent.append(item)
            self._event.set()

    def put_single(self, index: int, msg: Any, stamp_ns: int) -> None:
        now = self._clock()
        with self._lock:
            cam = self._cameras[index]
            cam.count += 1
            if cam.first_arrival is None:
                cam.first_arrival = now
            cam.last_arrival = now
            msgs = (msg, None) if index == 0 else (None, msg)
            cam.newest, cam.newest_taken = Item(msgs, int(stamp_ns), now), False
            if self._silent_locked(1 - index, now):
                self._event.set()

    # --- consumer side -----------------------------------------------------------------------
    def _silent_locked(self, index: int, now: float) -> bool:
        other = self._cameras[1 - index]
        cam = self._cameras[index]
        if other.last_arrival is None or now - other.last_arrival >= self.silent_after:
            return False  # the other camera is not alive either
        # A camera that never sent anything is given silent_after from the other's first image.
        since = cam.last_arrival if cam.last_arrival is not None else other.first_arrival
        return now - since >= self.silent_after

    def silent_cameras(self) -> list[int]:
        """Indices of cameras that are silent while the other one is alive."""
        now = self._clock()
        with self._lock:
            return [i for i in (0, 1) if self._silent_locked(i, now)]

    def seconds_since_any(self) -> float | None:
        """Seconds since the newest image of either camera arrived (None: none yet)."""
        with self._lock:
            last = [c.last_arrival for c in self._cameras if c.last_arrival is not None]
            return None if not last else self._clock() - max(last)

    def take(self, timeout: float | None = None) -> Item | None:
        """The newest pair not handed out yet; else, when one camera is silent, the other
        camera's newest unhandled message; else wait up to `timeout` seconds, then None."""
        if timeout is not None and math.isnan(timeout):
            raise ValueError("take timeout is NaN; expected seconds or None (wait forever)")
        deadline = None if timeout is None else self._clock() + timeout
        while True:
            with self._lock:
                if self._newest is not None:
                    item, self._newest = self._newest, None
                    self._event.clear()
                    return item
                now = self._clock()
                for i in (0, 1):
                    cam = self._cameras[i]
                    if not cam.newest_taken and self._silent_locked(1 - i, now):
                        cam.newest_taken = True
                        return cam.newest
                self._event.clear()
            remaining = None if deadline is None else deadline - self._clock()
            if remaining is not None and remaining <= 0:
                return None
            # Wake up at least every 0.1 s: a camera turns silent by the clock, not by a message.
            self._event.wait(0.1 if remaining is None else min(remaining, 0.1))

    def closest(self, stamp_ns: int = 0) -> Item | None:
        """The buffered pair whose stamp is closest to `stamp_ns` (0 = the newest pair)."""
        with self._lock:
            if not self._recent:
                return None
            if stamp_ns == 0:
                return self._recent[-1]
            return min(self._recent, key=lambda it: abs(it.stamp_ns - stamp_ns))

    def camera_counts(self) -> tuple[int, int]:
        with self._lock:
            return self._cameras[0].count, self._cameras[1].count

    def clear(self) -> None:
        """Forget pairs (not counters), e.g. on reset."""
        with self._lock:
            self._newest = None
            self._recent.clear()
            for cam in self._cameras:
                cam.newest_taken = True


class PairSubscriber:
    """Subscribe to two image topics and pair them by header stamp into a `PairMailbox`.

    Uses message_filters (`Subscriber(node, type, topic, qos_profile=qos)` and
    `ApproximateTimeSynchronizer([a, b], queue_size=..., slop=..., allow_headerless=False)`,
    keywords throughout: the positional signature changed between distros) when importable,
    else rclpy subscriptions feeding `ApproximatePairing`.
    """

    def __init__(self, node, topics: Sequence[tuple[Any, str]], qos, queue_size: int,
                 slop: float, mailbox: PairMailbox, callback_group=None, force_ours: bool = False):
        """`topics`: [(message type, topic name), ...] in mailbox order (rgb, thermal)."""
        self.mailbox = mailbox
        self._reference = mailbox.reference
        self._subs: list[Any] = []
        mf = None if force_ours else _import_message_filters()
        if mf is not None:
            self.backend = "message_filters"
            kwargs = {"qos_profile": qos}
            if callback_group is not None:
                kwargs["callback_group"] = callback_group
            subs = [mf.Subscriber(node, msg_type, t, **kwargs) for msg_type, t in topics]
            for i, s in enumerate(subs):
                s.registerCallback(self._make_single(i))
            self._sync = mf.ApproximateTimeSynchronizer(
                subs, queue_size=queue_size, slop=slop, allow_headerless=False)
            self._sync.registerCallback(self._on_pair)
            self._subs = subs
            self._ours = None
        else:
            self.backend = "ckd_tracker_ros.pairing"
            self._ours = ApproximatePairing(len(topics), queue_size, slop)
            self._ours_lock = threading.Lock()
            for i, (msg_type, t) in enumerate(topics):
                self._subs.append(node.create_subscription(
                    msg_type, t, self._make_ours(i), qos, callback_group=callback_group))

    def _make_single(self, index: int):
        def on_msg(msg, *_):
            self.mailbox.put_single(index, msg, stamp_to_ns(msg.header.stamp))
        return on_msg

    def _make_ours(self, index: int):
        single = self._make_single(index)

        def on_msg(msg):
            single(msg)
            with self._ours_lock:
                pair = self._ours.add(index, stamp_to_ns(msg.header.stamp), msg)
            if pair is not None:
                self._on_pair(*pair)
        return on_msg

    def _on_pair(self, *msgs) -> None:
        self.mailbox.put_pair(msgs, stamp_to_ns(msgs[self._reference].header.stamp))

    @property
    def slop(self) -> float:
        if self._ours is not None:
            return self._ours.slop
        return self._sync.slop.nanoseconds / 1e9

    def set_slop(self, seconds: float) -> None:
        if not seconds > 0:
            raise ValueError(f"slop {seconds}: expected a positive number of seconds")
        if self._ours is not None:
            with self._ours_lock:
                self._ours.slop = seconds
        else:
            from rclpy.duration import Duration
            with self._sync.lock:
                self._sync.slop = Duration(seconds=seconds)


def _import_message_filters():
    try:
        import message_filters  # type: ignore[import-not-found]
    except ImportError:
        return None
    return message_filters
