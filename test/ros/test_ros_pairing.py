"""Approximate-time pairing (message_filters' Python semantics) and the newest-pair mailbox.

Stamps are integer nanoseconds; expectations are worked out by hand from the policy: greedy,
nearest first, spread strictly less than slop, unmatched old messages kept (pairs may come
out of time order), per-topic queues trimmed oldest-first.
"""

from __future__ import annotations

import threading
import time

import pytest

from ckd_tracker_ros.pairing import ApproximatePairing, PairMailbox

MS = 1_000_000  # ns


def make(slop=0.05, queue_size=10):
    return ApproximatePairing(2, queue_size=queue_size, slop=slop)


def test_within_slop_pairs_in_topic_order():
    p = make()
    assert p.add(0, 0, "rgb0") is None
    assert p.add(1, 30 * MS, "th0") == ("rgb0", "th0")
    assert p.queues == [{}, {}]  # matched messages leave the queues


def test_outside_slop_does_not_pair():
    p = make()
    p.add(0, 0, "rgb0")
    assert p.add(1, 60 * MS, "th0") is None


def test_exactly_slop_does_not_pair():
    p = make(slop=0.05)
    p.add(0, 0, "rgb0")
    assert p.add(1, 50 * MS, "th0") is None  # spread == slop: not strictly less
    assert p.add(1, 50 * MS - 1, "th1") == ("rgb0", "th1")


def test_nearest_candidate_wins_and_old_messages_stay():
    p = make()
    p.add(0, 0, "rgb_a")
    p.add(0, 40 * MS, "rgb_b")
    assert p.add(1, 35 * MS, "th_a") == ("rgb_b", "th_a")  # 5 ms beats 35 ms
    assert 0 in p.queues[0]  # rgb_a was not purged ...
    # ... so a late thermal image pairs with it: this pair is older than the previous one.
    assert p.add(1, 10 * MS, "th_late") == ("rgb_a", "th_late")


def test_dropped_frame_leaves_its_partner_queued():
    p = make(slop=0.02)
    period = 33 * MS
    out = []
    for k in range(4):
        out.append(p.add(0, k * period, f"rgb{k}"))
        if k != 2:  # thermal frame 2 is lost
            out.append(p.add(1, k * period + 3 * MS, f"th{k}"))
    pairs = [o for o in out if o is not None]
    assert pairs == [("rgb0", "th0"), ("rgb1", "th1"), ("rgb3", "th3")]
    assert list(p.queues[0].values()) == ["rgb2"]


def test_queue_size_drops_the_oldest_stamp():
    p = make(slop=0.05, queue_size=2)
    for k in range(3):
        p.add(0, k * 1000 * MS, f"rgb{k}")
    assert sorted(p.queues[0]) == [1000 * MS, 2000 * MS]
    assert p.add(1, 0, "th0") is None  # its partner was trimmed


def test_repeated_stamp_replaces_the_message():
    p = make()
    p.add(0, 5 * MS, "first")
    p.add(0, 5 * MS, "second")
    assert p.add(1, 5 * MS, "th") == ("second", "th")


def test_one_camera_silent_never_pairs():
    p = make()
    assert all(p.add(0, k * 33 * MS, k) is None for k in range(20))
    assert len(p.queues[0]) == p.queue_size


def test_slop_can_change_and_is_validated():
    p = make(slop=0.01)
    p.add(0, 0, "rgb")
    assert p.add(1, 20 * MS, "th") is None
    p.slop = 0.05
    assert p.add(1, 21 * MS, "th2") == ("rgb", "th2")
    with pytest.raises(ValueError, match="slop"):
        p.slop = 0
    with pytest.raises(ValueError, match="at least 2"):
        ApproximatePairing(1, 10, 0.1)


def test_matches_message_filters_when_available():
    mf = pytest.importorskip("message_filters", reason="message_filters is not installed "
                             "(pip-only ROS): our policy is checked against worked examples")
    import rclpy  # noqa: F401
    from std_msgs.msg import Header

    class Msg:
        def __init__(self, ns):
            self.header = Header()
            self.header.stamp.sec, self.header.stamp.nanosec = divmod(ns, 1_000_000_000)

    feeds = [mf.SimpleFilter(), mf.SimpleFilter()]
    sync = mf.ApproximateTimeSynchronizer(feeds, queue_size=10, slop=0.02,
                                          allow_headerless=False)
    theirs, ours_out = [], []
    sync.registerCallback(lambda a, b: theirs.append((a, b)))
    ours = make(slop=0.02)
    events = [(0, 0), (0, 33), (1, 36), (1, 5), (0, 66), (1, 80), (1, 99), (0, 100), (0, 133)]
    for topic, ms in events:
        m = Msg(ms * MS)
        feeds[topic].signalMessage(m)
        pair = ours.add(topic, ms * MS, m)
        if pair is not None:
            ours_out.append(pair)
    assert ours_out == theirs


# --- mailbox ---------------------------------------------------------------------------------

class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_mailbox_keeps_only_the_newest_pair_and_counts_drops():
    box = PairMailbox()
    for k in range(3):
        box.put_pair((f"rgb{k}", f"th{k}"), k)
    item = box.take(timeout=0)
    assert item.msgs == ("rgb2", "th2") and item.is_pair
    assert box.take(timeout=0) is None  # each pair at most once
    assert (box.pairs_received, box.pairs_dropped) == (3, 2)


def test_mailbox_take_waits_for_a_pair():
    box = PairMailbox()
    threading.Timer(0.05, box.put_pair, args=(("a", "b"), 7)).start()
    t0 = time.monotonic()
    item = box.take(timeout=2.0)
    assert item is not None and item.stamp_ns == 7 and time.monotonic() - t0 < 1.0
    assert box.take(timeout=0.05) is None


def test_mailbox_closest_pair_by_stamp():
    box = PairMailbox(history=3)
    for k in range(5):
        box.put_pair((k, k), k * 100)
    assert box.closest(0).stamp_ns == 400  # zero = newest
    assert box.closest(260).stamp_ns == 300
    assert box.closest(10).stamp_ns == 200  # only the last 3 pairs are kept
    box.clear()
    assert box.closest(0) is None


def test_mailbox_hands_out_single_images_when_a_camera_is_silent():
    clock = FakeClock()
    box = PairMailbox(silent_after=1.0, clock=clock)
    box.put_single(0, "rgb0", 0)
    assert box.silent_cameras() == []  # thermal gets silent_after from the first rgb image
    assert box.take(timeout=0) is None
    clock.t += 1.5
    box.put_single(0, "rgb1", 1)
    assert box.silent_cameras() == [1]
    item = box.take(timeout=0)
    assert item.msgs == ("rgb1", None) and not item.is_pair
    assert box.take(timeout=0) is None  # each single image at most once
    # The thermal camera comes back: no longer silent, single images are not handed out.
    box.put_single(1, "th2", 2)
    box.put_single(0, "rgb2", 2)
    assert box.silent_cameras() == [] and box.take(timeout=0) is None
    assert box.camera_counts() == (3, 1)


def test_mailbox_reference_camera_is_validated():
    with pytest.raises(ValueError, match="reference"):
        PairMailbox(reference=2)
