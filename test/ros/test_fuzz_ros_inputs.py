"""Fuzzing the ROS adapter's inputs (hypothesis): Image / CompressedImage conversion, thermal
normalisation, the approximate-time pairing and its mailbox, and the InitTarget / init_box
handlers of the node.

"A clear error" means exactly: a ValueError whose message names the problem (the words checked
below). Any other exception type fails, and so does a result that breaks the documented
contract. Hangs fail on hypothesis' per-example deadline (profile "ckd-ci", test/conftest.py)
and on the pytest timeout below. Expected outcomes are worked out here from the documented
rules (byte layouts with `struct`, the pairing policy stated as properties), not by calling
the code under test.

The converters and the pairing need no ROS: plain namespaces stand in for messages. Tests that
need rclpy (real message classes, the node) are skipped with the reason when it is missing.
"""

from __future__ import annotations

import math
import re
import struct
import zlib
from collections import deque
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ckd_tracker_ros.images import (ThermalNormalizer, compressed_to_numpy, image_to_numpy,
                                    message_to_numpy, to_rgb8)
from ckd_tracker_ros.pairing import ApproximatePairing, PairMailbox, stamp_to_ns
from fuzz_rules import init_box_problem
from ros_helpers import ros_unavailable

pytestmark = pytest.mark.timeout(120)
needs_ros = pytest.mark.skipif(bool(ros_unavailable()), reason=ros_unavailable() or "ROS ok")

U32 = 2**32 - 1
# encoding -> (struct code, channels, RGB order of the 8-bit channels); written out here, not
# taken from the module under test.
WIRE = {
    "rgb8": ("B", 3, [0, 1, 2]), "bgr8": ("B", 3, [2, 1, 0]), "8UC3": ("B", 3, [2, 1, 0]),
    "rgba8": ("B", 4, [0, 1, 2]), "bgra8": ("B", 4, [2, 1, 0]),
    "mono8": ("B", 1, [0, 0, 0]), "8UC1": ("B", 1, [0, 0, 0]),
    "mono16": ("H", 1, None), "16UC1": ("H", 1, None), "32FC1": ("f", 1, None),
}


def raw_problem(encoding, width, height, step, n_bytes) -> str | None:
    """Which documented ValueError a raw Image must raise (a regex), or None when valid."""
    if encoding not in WIRE:
        return re.escape(f"unsupported image encoding {encoding!r}")
    code, channels, _ = WIRE[encoding]
    if width == 0 or height == 0:
        return "empty"
    if step < width * channels * struct.calcsize(code):
        return f"step {step} is smaller than width"
    if n_bytes < step * height:
        return f"truncated: {n_bytes} bytes"
    return None


@st.composite
def raw_images(draw):
    """Image message fields: any encoding name, uint32 sizes (tiny or huge), any step, data
    of the right length, short by a few bytes, or short by gigabytes."""
    # one_of picks its branches evenly: about half of the messages are valid
    encoding = draw(st.one_of(st.sampled_from(sorted(WIRE)), st.sampled_from(sorted(WIRE)),
                              st.sampled_from(["yuv422", "bayer_rggb8", "16SC1", "RGB8", "",
                                               "mono16 ", "64FC1"]), st.text(max_size=6)))
    size = st.one_of(st.integers(1, 5), st.integers(1, 5), st.integers(0, 5),
                     st.sampled_from([1, 10000, 2**31, U32]))
    width, height = draw(size), draw(size)
    code, channels, _ = WIRE.get(encoding, ("B", 1, None))
    row = width * channels * struct.calcsize(code)
    step = draw(st.one_of(st.just(row), st.just(row), st.just(row + 3),
                          st.just(max(0, row - 1)), st.integers(0, U32)).map(lambda s: min(s, U32)))
    need = step * height
    if need <= 2048:
        n_bytes = draw(st.one_of(st.just(need), st.just(need + 2), st.integers(0, need + 8)))
    else:  # a huge claim with short data: must be refused without allocating it
        n_bytes = draw(st.integers(0, 64))
    return SimpleNamespace(encoding=encoding, width=width, height=height, step=step,
                           is_bigendian=draw(st.sampled_from([0, 1])),
                           data=draw(st.binary(min_size=n_bytes, max_size=n_bytes)))


def real_image(ns):
    from sensor_msgs.msg import Image
    msg = Image(encoding=ns.encoding, width=ns.width, height=ns.height, step=ns.step,
                is_bigendian=ns.is_bigendian)
    msg.data = ns.data
    return msg


@settings(max_examples=250)
@given(fields=raw_images())
@example(fields=SimpleNamespace(encoding="rgb8", width=10000, height=10000, step=30000,
                                is_bigendian=0, data=b"\x00" * 100))
@example(fields=SimpleNamespace(encoding="mono16", width=U32, height=U32, step=U32,
                                is_bigendian=1, data=b""))
@example(fields=SimpleNamespace(encoding="32FC1", width=1, height=1, step=4, is_bigendian=0,
                                data=struct.pack("<f", math.nan)))
@pytest.mark.parametrize("real", [False, pytest.param(True, marks=needs_ros)])
def test_raw_image_converts_exactly_or_names_the_problem(fields, real):
    msg = real_image(fields) if real else fields
    problem = raw_problem(fields.encoding, fields.width, fields.height, fields.step,
                          len(fields.data))
    if problem is not None:
        with pytest.raises(ValueError, match=problem):
            image_to_numpy(msg)
        return
    arr, encoding = message_to_numpy(msg)
    code, channels, order = WIRE[encoding]
    h, w = fields.height, fields.width
    assert arr.shape == ((h, w) if channels == 1 else (h, w, channels))
    assert arr.dtype.isnative and arr.dtype.char == np.dtype(code).char
    endian = ">" if fields.is_bigendian else "<"
    size = struct.calcsize(code)
    for r in range(h):
        for c in range(w):
            for k in range(channels):
                want = struct.unpack_from(endian + code, fields.data,
                                          r * fields.step + (c * channels + k) * size)[0]
                got = arr[r, c] if channels == 1 else arr[r, c, k]
                assert got == want or (math.isnan(want) and math.isnan(got))
    rgb = to_rgb8(arr, encoding, ThermalNormalizer())
    assert rgb.shape == (h, w, 3) and rgb.dtype == np.uint8
    if order is not None:  # 8-bit: reordered or replicated, values unchanged
        src = arr.reshape(h, w, -1)
        for c in range(3):
            np.testing.assert_array_equal(rgb[:, :, c], src[:, :, order[c]])


# --- CompressedImage ---------------------------------------------------------------------------

MAGICS = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"BM", b"P5\n", b"P6\n",
          b"II*\x00", b"MM\x00*", b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"GIF89a", b"#?RADIANCE\n"]


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(
        ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png_header_only(width, height) -> bytes:
    """A well-formed PNG signature + IHDR claiming width x height RGB, and almost no pixels."""
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height,
                                                                   8, 2, 0, 0, 0))
            + png_chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + png_chunk(b"IEND", b""))


def bmp_header_only(width, height) -> bytes:
    return (b"BM" + struct.pack("<IHHI", 0, 0, 0, 54)
            + struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 0, 0, 0, 0))


encodable = st.one_of(
    hnp.arrays(np.uint8, st.tuples(st.integers(1, 12), st.integers(1, 12),
                                   st.sampled_from([1, 3, 4]))),
    hnp.arrays(np.uint16, st.tuples(st.integers(1, 12), st.integers(1, 12),
                                    st.sampled_from([1, 3]))))


@st.composite
def compressed(draw):
    """(format, data): a known signature + random bytes, a JPEG, or a truncated PNG with one
    byte changed (intact PNGs: the round-trip test below)."""
    kind = draw(st.sampled_from(["garbage", "garbage", "jpeg", "damaged", "damaged"]))
    if kind == "garbage":
        return "png", draw(st.sampled_from(MAGICS)) + draw(st.binary(max_size=200))
    arr = draw(encodable)
    if arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if kind == "jpeg" and arr.dtype == np.uint8 and (arr.ndim == 2 or arr.shape[2] == 3):
        return "jpeg", cv2.imencode(".jpg", arr)[1].tobytes()
    data = cv2.imencode(".png", arr)[1].tobytes()
    cut = draw(st.integers(1, len(data)))
    flip = draw(st.integers(0, cut - 1))
    damaged = bytearray(data[:cut])
    damaged[flip] ^= draw(st.integers(1, 255))
    return "png", bytes(damaged)


def check_decoded(arr, encoding):
    channels = {"mono8": 1, "mono16": 1, "bgr8": 3, "bgra8": 4}[encoding]
    dtype = np.uint16 if encoding == "mono16" else np.uint8
    assert arr.dtype == dtype and arr.ndim == (2 if channels == 1 else 3)
    assert channels == 1 or arr.shape[2] == channels
    rgb = to_rgb8(arr, encoding, ThermalNormalizer())
    assert rgb.shape == arr.shape[:2] + (3,) and rgb.dtype == np.uint8


@settings(max_examples=200)
@given(case=compressed())
@example(case=("png", png_header_only(100000, 100000)))   # over OpenCV's pixel limit
@example(case=("png", png_header_only(20000, 20000)))     # under it, and hardly any pixels
@example(case=("bmp", bmp_header_only(100000, 100000)))
@example(case=("bmp", bmp_header_only(20000, 20000)))
@example(case=("pgm", b"P5\n100000 100000\n255\n" + bytes(16)))
@example(case=("16UC1; compressedDepth png", b"\x00" * 20))
@example(case=("jpeg", b""))
def test_compressed_image_decodes_or_names_the_problem(case):
    fmt, data = case
    try:
        arr, encoding = message_to_numpy(SimpleNamespace(format=fmt, data=data))
    except ValueError as e:
        assert str(e).startswith("CompressedImage"), e
        return
    check_decoded(arr, encoding)


@settings(max_examples=60)
@given(arr=encodable)
def test_intact_png_round_trips_or_is_refused_as_16_bit_colour(arr):
    if arr.shape[2] == 1:
        arr = arr[:, :, 0]
    msg = SimpleNamespace(format="png", data=cv2.imencode(".png", arr)[1].tobytes())
    if arr.ndim == 3 and arr.dtype == np.uint16:
        with pytest.raises(ValueError, match="decodes to uint16 with 3 channel"):
            compressed_to_numpy(msg)
        return
    out, encoding = compressed_to_numpy(msg)
    np.testing.assert_array_equal(out, arr)
    assert encoding == {(1, 1): "mono8", (1, 2): "mono16", (3, 1): "bgr8", (4, 1): "bgra8"}[
        (1 if arr.ndim == 2 else arr.shape[2], arr.dtype.itemsize)]
    check_decoded(out, encoding)


# --- thermal normalisation ---------------------------------------------------------------------

thermal_frames = st.one_of(
    hnp.arrays(np.uint16, st.tuples(st.integers(1, 9), st.integers(1, 9))),
    hnp.arrays(np.float32, st.tuples(st.integers(1, 9), st.integers(1, 9)),
               elements=st.floats(width=32, allow_nan=True, allow_infinity=True)),
    hnp.arrays(np.float32, st.tuples(st.integers(1, 9), st.integers(1, 9), st.just(1)),
               elements=st.floats(-50, 150, width=32)))


@settings(max_examples=120)
@given(frames=st.lists(thermal_frames, min_size=1, max_size=4),
       mode=st.sampled_from(["fixed", "percentile"]),
       lo=st.floats(-1e4, 7e4), span=st.floats(1e-3, 7e4),
       plo=st.floats(0, 49), phi=st.floats(51, 100), smoothing=st.floats(0.01, 0.99))
@example(frames=[np.arange(65536, dtype=np.uint16).reshape(256, 256)], mode="fixed",
         lo=1000.0, span=3000.0, plo=1.0, phi=99.0, smoothing=0.9)  # a large 16-bit frame
def test_thermal_normaliser_maps_any_frame_sequence_to_rgb8(frames, mode, lo, span, plo, phi,
                                                            smoothing):
    norm = ThermalNormalizer(mode=mode, window=(lo, lo + span), percentiles=(plo, phi),
                             smoothing=smoothing)
    for f in frames:  # sizes change from frame to frame: the window is per sequence, not size
        out = norm(f)
        grey = f.reshape(f.shape[0], f.shape[1])
        assert out.shape == grey.shape + (3,) and out.dtype == np.uint8
        assert (out[..., 0] == out[..., 1]).all() and (out[..., 0] == out[..., 2]).all()
        assert (out[..., 0][np.isnan(grey)] == 0).all()
        wlo, whi = norm.current_window
        assert math.isfinite(wlo) and math.isfinite(whi) and wlo <= whi
        if mode == "fixed":  # linear in float64, independently of the code's float32 maths
            v = grey.astype(np.float64)
            with np.errstate(invalid="ignore", over="ignore"):
                want = np.clip((v - lo) * 255.0 / span, 0, 255)
            ok = np.isfinite(v)
            assert np.all(np.abs(out[..., 0][ok].astype(float) - want[ok]) <= 1.0)


# --- pairing -----------------------------------------------------------------------------------

MS = 1_000_000


@st.composite
def stamp_streams(draw):
    """(camera, Time-like stamp) arrivals: jitter, drops, repeats, stamps going backwards,
    clock jumps of hours, negative stamps, stamps at the ends of the int32 seconds range."""
    t = draw(st.one_of(st.integers(-10**12, 10**12),
                       st.integers(-2**31 * 10**9, 2**31 * 10**9 - 1)))
    events = []
    for _ in range(draw(st.integers(1, 40))):
        t += draw(st.one_of(st.integers(-30 * MS, 60 * MS), st.just(0),
                            st.sampled_from([-3600 * 10**9, 3600 * 10**9, -1, 1])))
        sec, nanosec = divmod(t, 10**9)
        if -2**31 <= sec < 2**31:
            # Time messages may also carry nanosec >= 1e9 (the field is a uint32).
            extra = draw(st.sampled_from([0, 0, 0, 1]))
            stamp = SimpleNamespace(sec=int(sec) - extra, nanosec=int(nanosec) + extra * 10**9)
            events.append((draw(st.integers(0, 1)), stamp))
    return events


@settings(max_examples=150)
@given(events=stamp_streams(), slop_ms=st.floats(0.001, 200), queue_size=st.integers(1, 8))
def test_pairing_policy_holds_for_any_stamp_stream(events, slop_ms, queue_size):
    pairing = ApproximatePairing(2, queue_size=queue_size, slop=slop_ms / 1e3)
    slop_ns = round(slop_ms * 1e6)
    live = [{}, {}]  # what the policy says is still queued: stamp -> message
    used = set()
    for n, (cam, stamp) in enumerate(events):
        s = stamp_to_ns(stamp)
        assert s == stamp.sec * 10**9 + stamp.nanosec
        msg = (cam, n, s)
        live[cam][s] = msg  # a repeated stamp replaces the queued message
        while len(live[cam]) > queue_size:
            del live[cam][min(live[cam])]  # oldest stamp dropped first (maybe this one)
        partner = live[1 - cam]
        best = min((abs(t - s) for t in partner), default=None)
        out = pairing.add(cam, s, msg)
        if s not in live[cam] or best is None or best >= slop_ns:  # spread STRICTLY < slop
            assert out is None
            continue
        assert out is not None and [m[0] for m in out] == [0, 1]  # in topic order
        other = out[1 - cam]
        assert out[cam] is msg and partner.get(other[2]) is other  # still queued, not evicted
        assert abs(other[2] - s) == best  # the nearest candidate wins
        assert not set(out) & used  # each message is used at most once
        used |= set(out)
        del live[0][out[0][2]], live[1][out[1][2]]
        assert all(len(q) <= queue_size for q in pairing.queues)


@settings(max_examples=150)
@given(queue_size=st.one_of(st.integers(-3, 12), st.floats(allow_nan=True), st.booleans(),
                            st.text(max_size=2), st.none()),
       slop=st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                      st.sampled_from([1e-12, 1e-9, 1e300, 0.0, -0.0]), st.integers(-2, 3),
                      st.booleans(), st.text(max_size=2), st.none()))
def test_pairing_settings_are_validated(queue_size, slop):
    q_ok = isinstance(queue_size, int) and not isinstance(queue_size, bool) and queue_size >= 1
    # slop: seconds, a whole number of nanoseconds >= 1 once rounded (0 ns could never pair)
    s_ok = (isinstance(slop, (int, float)) and not isinstance(slop, bool)
            and math.isfinite(slop * 1e9) and round(slop * 1e9) >= 1)
    if q_ok and s_ok:
        p = ApproximatePairing(2, queue_size, slop)
        assert p.queue_size == queue_size and p.slop == pytest.approx(slop, rel=1e-9, abs=1e-9)
        return
    with pytest.raises(ValueError, match="queue_size" if not q_ok else "slop"):
        ApproximatePairing(2, queue_size, slop)


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


mailbox_ops = st.lists(st.one_of(
    st.tuples(st.just("pair"), st.integers(-10**10, 10**10)),
    st.tuples(st.just("single"), st.integers(0, 1), st.integers(-10**10, 10**10)),
    st.tuples(st.just("tick"), st.floats(0, 3)),
    st.tuples(st.just("take")),
    st.tuples(st.just("closest"), st.one_of(st.just(0), st.integers(-10**10, 10**10))),
    st.tuples(st.just("clear"))), max_size=40)


@settings(max_examples=150)
@given(ops=mailbox_ops, history=st.integers(0, 4), reference=st.integers(0, 1))
def test_mailbox_hands_each_item_out_once_and_never_blocks(ops, history, reference):
    clock = FakeClock()
    box = PairMailbox(reference=reference, history=history, silent_after=1.0, clock=clock)
    recent = deque(maxlen=max(1, history))
    pending, received, dropped = None, 0, 0
    handed = set()
    for n, op in enumerate(ops):
        if op[0] == "pair":
            msgs = (("rgb", n), ("thermal", n))
            box.put_pair(msgs, op[1])
            received, dropped = received + 1, dropped + (pending is not None)
            pending = (msgs, op[1])
            recent.append(pending)
        elif op[0] == "single":
            box.put_single(op[1], ("single", n), op[2])
        elif op[0] == "tick":
            clock.now += op[1]
        elif op[0] == "take":
            item = box.take(timeout=0)  # must return at once (the fake clock never moves)
            if pending is not None:
                assert item is not None and (item.msgs, item.stamp_ns) == pending
                pending = None
            elif item is not None:  # a single image of the live camera, the other silent
                assert not item.is_pair and sum(m is not None for m in item.msgs) == 1
            if item is not None:
                key = tuple(m for m in item.msgs if m is not None)
                assert key not in handed  # each item at most once
                handed.add(key)
        elif op[0] == "closest":
            item = box.closest(op[1])
            if not recent:
                assert item is None
            else:
                dist = [abs(s - op[1]) for _, s in recent]
                want = recent[-1] if op[1] == 0 else recent[dist.index(min(dist))]
                assert (item.msgs, item.stamp_ns) == want
        else:
            box.clear()
            pending = None
            recent.clear()
        assert box.pairs_received == received and box.pairs_dropped == dropped
    with pytest.raises(ValueError, match="NaN"):
        box.take(timeout=math.nan)


# --- the node's InitTarget / init_box handlers -------------------------------------------------

IMG_ENCODINGS = {"rgb8": (np.uint8, 3), "bgr8": (np.uint8, 3), "mono8": (np.uint8, None),
                 "mono16": (np.uint16, None)}


@st.composite
def camera_messages(draw):
    """(message, (height, width) when it converts, else None)."""
    from sensor_msgs.msg import CompressedImage, Image

    from ckd_tracker_ros.images import numpy_to_image
    kind = draw(st.sampled_from(["raw"] * 5 + ["png", "truncated", "encoding", "garbage"]))
    h, w = draw(st.integers(1, 24)), draw(st.integers(1, 32))
    if kind == "png":
        arr = draw(hnp.arrays(np.uint8, (h, w, 3)))
        return CompressedImage(format="png",
                               data=cv2.imencode(".png", arr)[1].tobytes()), (h, w)
    if kind == "garbage":
        return CompressedImage(format="jpeg", data=b"\x00junk" + draw(st.binary())), None
    encoding = draw(st.sampled_from(sorted(IMG_ENCODINGS)))
    dtype, channels = IMG_ENCODINGS[encoding]
    shape = (h, w) if channels is None else (h, w, channels)
    msg = numpy_to_image(draw(hnp.arrays(dtype, shape)), encoding)
    if kind == "truncated":
        msg.data = msg.data[:draw(st.integers(0, len(msg.data) - 1))]
        return msg, None
    if kind == "encoding":
        msg.encoding = draw(st.sampled_from(["yuv422", "bayer_rggb8", "", "RGB8"]))
        return msg, None
    return Image(height=msg.height, width=msg.width, encoding=msg.encoding, step=msg.step,
                 is_bigendian=0, data=msg.data), (h, w)


box_values = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-10, 40),
                       st.sampled_from([0.0, 1.0, 1e-300, 1e12, -1e308, 1.7e308]))
hostile_boxes = st.tuples(box_values, box_values, box_values, box_values)
# valid in every image of at least 1x1 pixels
small_boxes = st.tuples(st.floats(0, 0.9), st.floats(0, 0.9), st.floats(0.05, 1),
                        st.floats(0.05, 1))


@pytest.fixture(scope="module")
def node(ros_context):
    """A TrackerNode with the real Tracker (tiny random model). Its worker thread is stopped:
    the test fills the pair mailbox itself and calls the handlers directly."""
    from rclpy.parameter import Parameter

    from ckd_core.config import load_config
    from ckd_core.model import build_inference_model
    from ckd_core.tracking import Tracker
    from ckd_tracker_ros.node import TrackerNode
    cfg = load_config("ckd_tiny_mce")
    n = TrackerNode(tracker_factory=lambda s: Tracker(build_inference_model(cfg.model), cfg),
                    namespace="/fuzz", context=ros_context,
                    parameter_overrides=[Parameter("init_buffer", value=3)])
    n._stop.set()
    n._worker.join(timeout=5.0)
    assert not n._worker.is_alive()
    yield n
    n.destroy_node()


def reset(node):
    from std_srvs.srv import Trigger
    assert node._on_reset(Trigger.Request(), Trigger.Response()).success


@needs_ros
@settings(max_examples=150)
@given(pairs=st.lists(st.tuples(camera_messages(), camera_messages(),
                                 st.integers(1, 10**12)), min_size=1, max_size=5),
       box=st.one_of(hostile_boxes, small_boxes),
       stamp_ns=st.one_of(st.just(0), st.integers(0, 2**31 * 10**9)),
       label=st.text(max_size=10))
@example(pairs=[], box=(1.0, 1.0, 2.0, 2.0), stamp_ns=0, label="")
def test_init_target_answers_every_request_clearly(node, pairs, box, stamp_ns, label):
    from builtin_interfaces.msg import Time

    from ckd_tracker_ros.msg import TrackerStatus
    from ckd_tracker_ros.srv import InitTarget
    reset(node)
    for (rgb, _), (thermal, _), s in pairs:
        node._mailbox.put_pair((rgb, thermal), s)
    inits = node._n_inits
    sec, nanosec = divmod(stamp_ns, 10**9)
    req = InitTarget.Request(x=box[0], y=box[1], width=box[2], height=box[3],
                             stamp=Time(sec=min(sec, 2**31 - 1), nanosec=nanosec), label=label)
    resp = node._on_init_target(req, InitTarget.Response())

    assert not resp.message.startswith("internal error"), resp.message
    assert isinstance(resp.success, bool) and resp.message
    if not pairs:
        assert not resp.success and resp.message.startswith("no image pair to initialise on")
        return
    recent = pairs[-3:]  # init_buffer = 3; the closest stamp wins, ties to the older pair
    want = stamp_to_ns(req.stamp)
    chosen = recent[-1] if want == 0 else min(recent, key=lambda p: abs(p[2] - want))
    (_, rgb_size), (_, thermal_size), chosen_stamp = chosen
    if rgb_size is None or thermal_size is None:
        camera = "rgb" if rgb_size is None else "thermal"
        assert not resp.success and resp.track_id == ""
        assert resp.message.startswith(f"cannot initialise: {camera} image on {camera}/image:")
        return
    problem = init_box_problem(box, rgb_size[1], rgb_size[0], "InitTarget box")  # RGB is the reference
    if problem is not None:
        assert not resp.success and resp.track_id == ""
        assert re.search(problem, resp.message), (problem, resp.message)
        assert node._n_inits == inits
        return
    assert resp.success, resp.message
    assert resp.track_id == str(inits + 1) and resp.message.startswith("tracking ")
    assert node._tracker.box == tuple(float(v) for v in box)
    assert node._state == TrackerStatus.TRACKING and node._last_stamp_ns == chosen_stamp


@needs_ros
@settings(max_examples=60)
@given(center=st.one_of(st.tuples(box_values, box_values), st.tuples(st.floats(0, 32),
                                                                        st.floats(0, 24))),
       size=st.one_of(st.tuples(box_values, box_values), st.tuples(st.floats(0.1, 32),
                                                                   st.floats(0.1, 24))),
       with_result=st.booleans())
def test_init_box_topic_never_raises(node, center, size, with_result):
    from vision_msgs.msg import Detection2D, ObjectHypothesisWithPose

    from ckd_tracker_ros.images import numpy_to_image
    reset(node)
    img = np.full((24, 32, 3), 90, np.uint8)
    node._mailbox.put_pair((numpy_to_image(img, "rgb8"), numpy_to_image(img, "rgb8")), 5)
    det = Detection2D()
    det.bbox.center.position.x, det.bbox.center.position.y = center
    det.bbox.size_x, det.bbox.size_y = size
    if with_result:
        det.results.append(ObjectHypothesisWithPose())
        det.results[0].hypothesis.class_id = "car"
    node._on_init_box(det)  # a subscription callback: it must not raise
    # (x, y) = centre - size / 2, as vision_msgs documents the box
    box = (center[0] - 0.5 * size[0], center[1] - 0.5 * size[1], size[0], size[1])
    assert node._tracker.is_initialized == (init_box_problem(box, 32, 24, "box") is None)
