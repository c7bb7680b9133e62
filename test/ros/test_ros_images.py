"""Image message <-> numpy for every encoding, validation errors, thermal normalisation.

Messages are built here byte by byte (struct / explicit padding), independently of the code
under test. Plain namespaces stand in for sensor_msgs/Image where no ROS is needed; one test
uses the real message class.
"""

from __future__ import annotations

import struct
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from ckd_core.imaging import window_to_uint8
from ckd_tracker_ros.images import (ThermalNormalizer, compressed_to_numpy, image_to_numpy,
                                    message_to_numpy, numpy_to_image, percentiles_of,
                                    to_rgb8, to_tracker_image)


def raw_msg(rows: list[bytes], width, encoding, step, bigendian=False):
    """An Image-like message from explicit row bytes, each row padded to `step`."""
    data = b"".join(r + b"\xee" * (step - len(r)) for r in rows)
    return SimpleNamespace(height=len(rows), width=width, encoding=encoding, step=step,
                           is_bigendian=int(bigendian), data=data)


def test_rgb8_with_row_padding():
    rows = [bytes([1, 2, 3, 4, 5, 6]), bytes([7, 8, 9, 10, 11, 12])]
    arr = image_to_numpy(raw_msg(rows, 2, "rgb8", step=8))
    assert arr.dtype == np.uint8 and arr.shape == (2, 2, 3)
    assert arr[1, 0].tolist() == [7, 8, 9] and arr[0, 1].tolist() == [4, 5, 6]
    assert to_rgb8(arr, "rgb8")[1, 1].tolist() == [10, 11, 12]


@pytest.mark.parametrize("encoding", ["bgr8", "8UC3"])
def test_bgr8_is_reordered_to_rgb(encoding):
    arr = image_to_numpy(raw_msg([bytes([10, 20, 30])], 1, encoding, step=3))
    assert arr[0, 0].tolist() == [10, 20, 30]  # native order kept by the decoder
    assert to_rgb8(arr, encoding)[0, 0].tolist() == [30, 20, 10]


@pytest.mark.parametrize("encoding,expect", [("rgba8", [1, 2, 3]), ("bgra8", [3, 2, 1])])
def test_four_channel_drops_alpha(encoding, expect):
    msg = raw_msg([bytes([1, 2, 3, 99, 5, 6, 7, 99])], 2, encoding, step=12)
    arr = image_to_numpy(msg)
    assert arr.shape == (1, 2, 4)
    out = to_rgb8(arr, encoding)
    assert out.shape == (1, 2, 3) and out[0, 0].tolist() == expect


@pytest.mark.parametrize("encoding", ["mono8", "8UC1"])
def test_mono8_is_replicated(encoding):
    arr = image_to_numpy(raw_msg([bytes([5, 6, 7]), bytes([8, 9, 10])], 3, encoding, step=4))
    assert arr.shape == (2, 3) and arr[1, 2] == 10
    out = to_rgb8(arr, encoding)
    assert out.shape == (2, 3, 3) and out[1, 2].tolist() == [10, 10, 10]


@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
@pytest.mark.parametrize("bigendian", [False, True])
def test_mono16_endianness_and_padding(encoding, bigendian):
    fmt = ">HH" if bigendian else "<HH"
    rows = [struct.pack(fmt, 1000, 4000), struct.pack(fmt, 65535, 258)]
    arr = image_to_numpy(raw_msg(rows, 2, encoding, step=6, bigendian=bigendian))
    assert arr.dtype == np.uint16 and arr.dtype.isnative
    assert arr.tolist() == [[1000, 4000], [65535, 258]]


@pytest.mark.parametrize("bigendian", [False, True])
def test_32fc1(bigendian):
    fmt = ">ff" if bigendian else "<ff"
    rows = [struct.pack(fmt, 21.5, -3.25), struct.pack(fmt, float("nan"), 100.0)]
    arr = image_to_numpy(raw_msg(rows, 2, "32FC1", step=12, bigendian=bigendian))
    assert arr.dtype == np.float32 and arr.dtype.isnative
    assert arr[0].tolist() == [21.5, -3.25] and np.isnan(arr[1, 0]) and arr[1, 1] == 100.0


def test_sixteen_bit_needs_a_normalizer():
    arr = np.full((2, 2), 3000, np.uint16)
    with pytest.raises(ValueError, match="ThermalNormalizer"):
        to_rgb8(arr, "mono16")
    out = to_rgb8(arr, "mono16", ThermalNormalizer(mode="fixed", window=(2000, 4000)))
    # 255 * 1000 / 2000 = 127.5 -> 128 (rounded, half to even)
    assert out.shape == (2, 2, 3) and out.dtype == np.uint8 and (out == 128).all()


@pytest.mark.parametrize("encoding,dtype", [("mono8", np.uint8), ("mono16", np.uint16),
                                            ("32FC1", np.float32), ("rgb8", np.uint8),
                                            ("bgra8", np.uint8)])
def test_tracker_image_is_grey_for_one_channel_sources_and_equals_to_rgb8(encoding, dtype):
    rng = np.random.default_rng(3)
    channels = {"rgb8": 3, "bgra8": 4}.get(encoding, 1)
    shape = (300, 260) if channels == 1 else (300, 260, channels)
    arr = (rng.integers(0, 255, shape) * (40 if dtype != np.uint8 else 1) + 7).astype(dtype)
    a, b = ThermalNormalizer(), ThermalNormalizer()  # same state for both paths
    got = to_tracker_image(arr, encoding, a)
    ref = to_rgb8(arr, encoding, b)
    assert got.dtype == np.uint8
    if channels == 1:
        assert got.shape == arr.shape[:2]
        np.testing.assert_array_equal(np.repeat(got[:, :, None], 3, axis=2), ref)
    else:
        np.testing.assert_array_equal(got, ref)
    assert a.current_window == b.current_window


@pytest.mark.parametrize("encoding,dtype", [("mono16", np.uint16), ("16UC1", np.uint16),
                                            ("32FC1", np.float32), ("mono8", np.uint8)])
@pytest.mark.parametrize("mode", ["fixed", "percentile"])
def test_windowed_tracker_image_stands_for_the_mapped_one(encoding, dtype, mode):
    """windowed=True (what the node asks for): 16-bit and float frames come back as a
    WindowedFrame holding the same window, whose pixels equal the mapped frame's; the
    normaliser's window moves exactly as with the mapped path; 8-bit data is unchanged."""
    from ckd_core.imaging import WindowedFrame
    rng = np.random.default_rng(5)
    a, b = ThermalNormalizer(mode=mode, window=(900.0, 9000.0)), \
        ThermalNormalizer(mode=mode, window=(900.0, 9000.0))
    for k in range(3):  # a moving percentile window
        arr = (rng.integers(0, 255, (120, 90)) * (30 + 5 * k) + 7).astype(dtype)
        got = to_tracker_image(arr, encoding, a, windowed=True)
        want = to_tracker_image(arr, encoding, b)
        if dtype == np.uint8:
            assert got is arr and want is arr
            continue
        assert isinstance(got, WindowedFrame) and got.raw is arr
        assert got.window == b.current_window == a.current_window
        np.testing.assert_array_equal(got[10:70, 5:80], want[10:70, 5:80])
        np.testing.assert_array_equal(np.asarray(got), want)


def test_sixteen_bit_lookup_equals_the_float_formula():
    rng = np.random.default_rng(4)
    arr = rng.integers(0, 65536, (300, 400)).astype(np.uint16)  # >= 65536 px: the table path
    norm = ThermalNormalizer(mode="fixed", window=(1234.5, 50000.0))
    span = np.float32(255.0 / (50000.0 - 1234.5))
    want = np.clip(np.rint((arr.astype(np.float32) - np.float32(1234.5)) * span), 0, 255)
    np.testing.assert_array_equal(norm.to_grey(arr), want.astype(np.uint8))
    # one definition with the sequence readers (ckd_core.imaging.window_to_uint8), whose
    # small frames take the formula itself
    np.testing.assert_array_equal(norm.to_grey(arr), window_to_uint8(arr, (1234.5, 50000.0)))
    np.testing.assert_array_equal(norm.to_grey(arr)[:100, :100],
                                  window_to_uint8(arr[:100, :100], (1234.5, 50000.0)))


def test_native_order_image_is_a_read_only_view_of_the_message_data():
    """No copy of the frame when nothing needs converting (6 MB per 1920x1080 rgb8 frame):
    the array views the message's buffer, padded rows included, and cannot be written."""
    rows = [bytes([1, 2, 3, 4, 5, 6]), bytes([7, 8, 9, 10, 11, 12])]
    msg = raw_msg(rows, 2, "rgb8", step=8)
    msg.data = bytearray(msg.data)  # a writable buffer, as rclpy's array.array is
    arr = image_to_numpy(msg)
    assert np.shares_memory(arr, np.frombuffer(msg.data, np.uint8))
    assert not arr.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        arr[0, 0, 0] = 99
    msg.data[8] = 70  # the view follows its buffer: row 1, pixel 0, red
    assert arr[1, 0].tolist() == [70, 8, 9]


def test_other_byte_order_is_converted_into_a_read_only_copy():
    msg = raw_msg([struct.pack(">HH", 1000, 4000)], 2, "mono16", step=4, bigendian=True)
    msg.data = bytearray(msg.data)
    arr = image_to_numpy(msg)
    assert arr.tolist() == [[1000, 4000]] and arr.dtype.isnative
    assert not np.shares_memory(arr, np.frombuffer(msg.data, np.uint8))
    assert not arr.flags.writeable


def test_real_image_message_is_viewed_not_copied():
    from sensor_msgs.msg import Image

    frame = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    msg = numpy_to_image(frame, "rgb8")
    assert isinstance(msg, Image)
    arr = image_to_numpy(msg)
    np.testing.assert_array_equal(arr, frame)
    assert np.shares_memory(arr, np.frombuffer(msg.data, np.uint8))


def test_percentiles_of_hand_worked():
    s = np.array([40, 10, 30, 20], np.uint16)
    # sorted 10 20 30 40; rank q/100 * 3: 25 % -> 0.75 -> 10 + 0.75 * 10; 50 % -> 1.5 -> 25;
    # 0 % and 100 % are the ends.
    np.testing.assert_array_equal(percentiles_of(s, (25.0, 50.0, 0.0, 100.0)),
                                  [17.5, 25.0, 10.0, 40.0])
    assert percentiles_of(np.array([7], np.uint8), (1.0, 99.0)).tolist() == [7.0, 7.0]


def test_percentiles_of_equals_numpy_bit_for_bit():
    """The histogram path must give np.percentile's exact float64 values (the thermal window
    - and so every mapped pixel - must not depend on which path computed it)."""
    rng = np.random.default_rng(11)
    for trial in range(400):
        dtype = np.uint8 if trial % 3 == 0 else np.uint16
        top = 255 if dtype == np.uint8 else int(rng.choice([40, 3000, 65535]))
        sample = rng.integers(0, top + 1, int(rng.integers(1, 5000))).astype(dtype)
        if trial % 5 == 0:
            sample = sample.reshape(1, -1)[:, ::2]  # a strided 2-D view, as sampled frames are
        q = (float(rng.uniform(0, 50)), float(rng.choice([99.0, 100.0, rng.uniform(50, 100)])))
        got, want = percentiles_of(sample, q), np.percentile(sample, q)
        assert got.dtype == want.dtype and np.array_equal(got, want), (trial, q)
    floats = rng.normal(size=100).astype(np.float32)  # not integer counts: numpy itself
    np.testing.assert_array_equal(percentiles_of(floats, (1.0, 99.0)),
                                  np.percentile(floats, (1.0, 99.0)))


@pytest.mark.parametrize("field,value,match", [
    ("height", 0, "empty"),
    ("width", 0, "empty"),
    ("encoding", "yuv422", "unsupported image encoding 'yuv422'"),
    ("step", 5, "step 5 is smaller than width"),
    ("data", b"\x00" * 11, "truncated: 11 bytes, expected step\\*height = 6\\*2 = 12"),
])
def test_invalid_messages_name_the_problem(field, value, match):
    msg = raw_msg([bytes(6), bytes(6)], 2, "rgb8", step=6)
    setattr(msg, field, value)
    with pytest.raises(ValueError, match=match):
        image_to_numpy(msg)


def test_real_sensor_msgs_image_round_trip():
    pytest.importorskip("sensor_msgs.msg", reason="sensor_msgs (ROS 2 wheels) not installed")
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    msg = numpy_to_image(rgb, "rgb8")
    assert (msg.height, msg.width, msg.step, msg.encoding) == (5, 7, 21, "rgb8")
    assert np.array_equal(image_to_numpy(msg), rgb)
    therm = np.arange(35, dtype=np.uint16).reshape(5, 7) * 1000
    back, enc = message_to_numpy(numpy_to_image(therm, "mono16"))
    assert enc == "mono16" and np.array_equal(back, therm)
    with pytest.raises(ValueError, match="does not match rgb8"):
        numpy_to_image(therm, "rgb8")


def test_compressed_png16_and_jpeg():
    therm = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000)
    ok, png = cv2.imencode(".png", therm)
    assert ok
    arr, enc = compressed_to_numpy(SimpleNamespace(format="mono16; png compressed mono16",
                                                   data=png.tobytes()))
    assert enc == "mono16" and np.array_equal(arr, therm)
    bgr = np.zeros((16, 16, 3), np.uint8)
    bgr[:, :, 2] = 250  # red in BGR
    ok, jpg = cv2.imencode(".jpg", bgr)
    arr, enc = message_to_numpy(SimpleNamespace(format="rgb8; jpeg compressed bgr8",
                                                data=jpg.tobytes()))
    assert enc == "bgr8"
    rgb = to_rgb8(arr, enc)
    assert rgb[8, 8, 0] > 240 and rgb[8, 8, 2] < 15


@pytest.mark.parametrize("fmt,data,match", [
    ("jpeg", b"", "no data"),
    ("jpeg", b"not an image", "could not be decoded"),
    ("16UC1; compressedDepth png", b"xxxx", "compressedDepth"),
])
def test_compressed_errors(fmt, data, match):
    with pytest.raises(ValueError, match=match):
        compressed_to_numpy(SimpleNamespace(format=fmt, data=data))


# --- thermal normalisation ---------------------------------------------------------------------

def test_fixed_window_maps_linearly_and_clips():
    norm = ThermalNormalizer(mode="fixed", window=(1000.0, 2020.0))
    img = np.array([[500, 1000, 1510, 1512, 2020, 60000]], np.uint16)
    out = norm(img)
    assert out.shape == (1, 6, 3)
    # rounded to the nearest level: 1510 -> 127.5 -> 128 (half to even), 1512 -> 128.0
    assert out[0, :, 0].tolist() == [0, 0, 128, 128, 255, 255]
    assert (out[..., 0] == out[..., 2]).all()


def test_percentile_window_first_frame_then_smoothed():
    norm = ThermalNormalizer(mode="percentile", percentiles=(0.0, 100.0), smoothing=0.9,
                             sample_stride=1)
    a = np.linspace(1000, 2000, 100, dtype=np.float32).reshape(10, 10)
    norm(a)
    assert norm.current_window == pytest.approx((1000.0, 2000.0))
    norm(a + 1000.0)  # the whole scene warms up by 1000 counts in one frame
    assert norm.current_window == pytest.approx((1100.0, 2100.0))  # 0.9 old + 0.1 new
    norm.reset()
    norm(a + 1000.0)
    assert norm.current_window == pytest.approx((2000.0, 3000.0))


def test_percentile_window_is_temporally_stable():
    """Per-frame percentiles jitter with the noise of each frame (per-frame auto-gain:
    flicker); the smoothed window jitters several times less, and a constant pixel's
    brightness with it."""
    rng = np.random.default_rng(1)
    norm = ThermalNormalizer(mode="percentile", percentiles=(1.0, 99.0), smoothing=0.9,
                             sample_stride=1)
    per_frame_hi, smoothed_hi, pixel, pixel_autogain = [], [], [], []
    for _ in range(60):
        frame = rng.normal(3000, 50, (32, 32))
        # Warm pixels now below, now above 1 % of the frame: the per-frame 99th percentile
        # jumps between the background's tail and 3400.
        frame[rng.random((32, 32)) < rng.choice([0.005, 0.015])] = 3400
        frame = frame.astype(np.uint16)
        frame[0, 0] = 3000
        pixel.append(int(norm(frame)[0, 0, 0]))
        smoothed_hi.append(norm.current_window[1])
        lo, hi = np.percentile(frame.astype(np.float64), [1.0, 99.0])
        per_frame_hi.append(hi)
        pixel_autogain.append(255 * (3000 - lo) / (hi - lo))
    assert np.std(smoothed_hi[20:]) < 0.4 * np.std(per_frame_hi[20:])
    assert np.std(pixel[20:]) < 0.4 * np.std(pixel_autogain[20:])


def test_nan_pixels_map_to_zero_and_are_ignored():
    norm = ThermalNormalizer(mode="percentile", percentiles=(0.0, 100.0), sample_stride=1)
    img = np.array([[np.nan, 10.0], [20.0, 30.0]], np.float32)
    out = norm(img)
    assert norm.current_window == pytest.approx((10.0, 30.0))
    assert out[0, 0, 0] == 0 and out[1, 1, 0] == 255


@pytest.mark.parametrize("kwargs,match", [
    ({"mode": "auto"}, "mode 'auto'"),
    ({"window": (5.0, 5.0)}, "low < high"),
    ({"percentiles": (99.0, 1.0)}, "percentiles"),
    ({"smoothing": 1.0}, "smoothing"),
    ({"smoothing": 0.0}, "smoothing"),  # 0 would be per-frame auto-gain
])
def test_normalizer_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ThermalNormalizer(**kwargs)


@pytest.mark.parametrize("mode", ["fixed", "percentile"])
def test_large_uint16_frames_take_the_lookup_table_path_with_identical_values(mode):
    # >= 65536 pixels: a table lookup; the reference is the per-pixel float32 formula.
    rng = np.random.default_rng(3)
    img = rng.integers(0, 65536, (300, 400), dtype=np.uint16)
    img[0, :4] = (0, 1000, 40000, 65535)
    norm = ThermalNormalizer(mode=mode, window=(1000.0, 40000.0))
    out = norm(img)
    lo, hi = norm.current_window
    ref = np.clip(np.rint((img.astype(np.float32) - np.float32(lo))
                          * np.float32(255.0 / (hi - lo))), 0, 255).astype(np.uint8)
    assert out.shape == (300, 400, 3) and out.dtype == np.uint8
    assert np.array_equal(out[:, :, 0], ref) and np.array_equal(out[:, :, 2], ref)
