"""Image helpers: grey -> three channels (the fast OpenCV path equals plain repetition), the
thermal window mapping, crop normalisation by table lookup."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ckd_core.imaging import to_three_channels


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64, np.int32])
@pytest.mark.parametrize("shape", [(5, 7), (5, 7, 1), (1, 1), (3, 1)])
def test_grey_to_three_channels_equals_repeat(dtype, shape):
    a = (np.arange(np.prod(shape)).reshape(shape) * 37 % 251).astype(dtype)
    want = np.repeat(a.reshape(shape[0], shape[1], 1), 3, axis=2)
    got = to_three_channels(a)
    assert got.dtype == a.dtype and got.shape == shape[:2] + (3,)
    assert np.array_equal(got, want)


def test_strided_grey_input_and_three_channel_passthrough():
    a = np.arange(60, dtype=np.uint8).reshape(6, 10)[::2, ::3]  # a non-contiguous view
    assert np.array_equal(to_three_channels(a), np.repeat(a[:, :, None], 3, axis=2))
    rgb = np.zeros((4, 4, 3), np.uint8)
    assert to_three_channels(rgb) is rgb
    with pytest.raises(ValueError, match="expected"):
        to_three_channels(np.zeros((4, 4, 2), np.uint8))


def test_window_to_uint8_rounds_clips_and_maps_non_finite_values():
    from ckd_core.imaging import window_to_uint8
    raw = np.array([[500, 1000, 1510, 1512, 2020, 60000]], np.uint16)  # window (1000, 2020)
    assert window_to_uint8(raw, (1000, 2020)).tolist() == [[0, 0, 128, 128, 255, 255]]
    temps = np.array([[np.nan, -np.inf, np.inf, 19.9, 20.0, 25.1, 30.0, 31.0]], np.float32)
    # 25.1 -> 255 * 5.1 / 10 = 130.05 -> 130
    assert window_to_uint8(temps, (20.0, 30.0)).tolist() == [[0, 0, 255, 0, 0, 130, 255, 255]]
    # the table path of large uint16 frames equals the formula on the same values as float32
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 65536, (300, 400)).astype(np.uint16)
    np.testing.assert_array_equal(window_to_uint8(counts, (3000.5, 41000.0)),
                                  window_to_uint8(counts.astype(np.float32), (3000.5, 41000.0)))


def test_normalization_table_holds_imagenet_values_per_level():
    from ckd_core.imaging import IMAGENET_MEAN, IMAGENET_STD, normalization_table
    t = normalization_table()
    assert t.shape == (3, 256) and t.dtype == np.float32
    for c in range(3):  # level 0 -> -mean / std, level 255 -> (1 - mean) / std
        assert t[c, 0] == pytest.approx(-IMAGENET_MEAN[c] / IMAGENET_STD[c], rel=1e-6)
        assert t[c, 255] == pytest.approx((1 - IMAGENET_MEAN[c]) / IMAGENET_STD[c], rel=1e-6)
        assert np.all(np.diff(t[c]) > 0)


@pytest.mark.parametrize("shape", [(256, 256, 3), (128, 128), (5, 7, 3), (1, 1)])
def test_normalize_crop_lookup_equals_the_arithmetic_bit_for_bit(shape):
    import torch

    from ckd_core.imaging import normalization_table, normalize_crop, normalize_crop_lookup
    crop = np.random.default_rng(len(shape)).integers(0, 256, shape).astype(np.uint8)
    want = normalize_crop(to_three_channels(crop))
    got = normalize_crop_lookup(crop, normalization_table())
    assert got.dtype == torch.float32 and got.shape == want.shape
    # the same layout (channels last), so the network runs the same kernels
    assert got.is_contiguous(memory_format=torch.channels_last)
    assert want.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(got, want)
    strided = crop[::2, ::-1]  # views work too
    assert torch.equal(normalize_crop_lookup(strided, normalization_table()),
                       normalize_crop(to_three_channels(np.ascontiguousarray(strided))))


def test_normalize_crop_lookup_refuses_what_it_cannot_look_up():
    from ckd_core.imaging import normalization_table, normalize_crop_lookup
    for bad in (np.zeros((4, 4, 3), np.float32), np.zeros((4, 4, 4), np.uint8),
                np.zeros(4, np.uint8)):
        with pytest.raises(ValueError, match="expected uint8"):
            normalize_crop_lookup(bad, normalization_table())


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_windowed_frame_reads_the_values_of_the_whole_mapped_frame(dtype):
    import cv2

    from ckd_core.imaging import WindowedFrame, window_to_uint8
    rng = np.random.default_rng(3)
    raw = rng.integers(1000, 9000, (301, 403)).astype(dtype)
    if dtype == np.float32:
        raw[5, 7], raw[6, 8], raw[7, 9] = np.nan, np.inf, -np.inf
    window = (2500.25, 7000.0)
    whole = window_to_uint8(raw, window)
    frame = WindowedFrame(raw, window)
    assert frame.shape == (301, 403) and frame.ndim == 2 and frame.dtype == np.uint8
    assert frame.size == raw.size
    for key in (np.s_[0:10, 0:20], np.s_[50:300, 1:403], np.s_[:, :], np.s_[5:8, 7:10],
                np.s_[290:, 400:]):  # big slices take the table path, small ones the formula
        np.testing.assert_array_equal(frame[key], whole[key])
    for size in ((101, 76), (403, 301), (7, 5)):
        np.testing.assert_array_equal(frame.thumbnail(size),
                                      cv2.resize(whole, size, interpolation=cv2.INTER_NEAREST))
    assert frame._whole is None  # nothing so far mapped the whole frame
    np.testing.assert_array_equal(np.asarray(frame), whole)
    np.testing.assert_array_equal(frame[3:9, 4:6], whole[3:9, 4:6])  # now from the kept map


def test_windowed_frame_refuses_what_it_cannot_stand_for():
    from ckd_core.imaging import WindowedFrame
    for bad in (np.zeros((4, 4), np.uint8), np.zeros((4, 4, 1), np.uint16),
                np.zeros((0, 4), np.uint16), np.zeros((4, 4), np.float64), [[1, 2]]):
        with pytest.raises(ValueError, match="uint16 or float32"):
            WindowedFrame(bad, (0, 1))


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_windowed_frame_crops_equal_crops_of_the_mapped_frame(data):
    """OSTrack's crop (slice, zero padding, resize) of a WindowedFrame equals the crop of the
    whole mapped frame, for any window and any box, inside, across the edges or outside."""
    from ckd_core.crops import sample_target
    from ckd_core.imaging import WindowedFrame, window_to_uint8
    h = data.draw(st.integers(1, 90), label="h")
    w = data.draw(st.integers(1, 90), label="w")
    dtype = data.draw(st.sampled_from([np.uint16, np.float32]), label="dtype")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    raw = np.random.default_rng(seed).integers(0, 65536, (h, w)).astype(dtype)
    lo = data.draw(st.floats(0, 65000, allow_nan=False), label="lo")
    hi = lo + data.draw(st.floats(1e-3, 65535, allow_nan=False), label="span")
    bx = data.draw(st.floats(-2 * w, 2 * w, allow_nan=False), label="x")
    by = data.draw(st.floats(-2 * h, 2 * h, allow_nan=False), label="y")
    bw = data.draw(st.floats(0.5, 2 * w, allow_nan=False), label="bw")
    bh = data.draw(st.floats(0.5, 2 * h, allow_nan=False), label="bh")
    factor = data.draw(st.sampled_from([2.0, 4.0, 5.5]), label="factor")
    size = data.draw(st.sampled_from([16, 33, 64]), label="size")
    want = sample_target(window_to_uint8(raw, (lo, hi)), (bx, by, bw, bh), factor, size,
                         with_mask=False)
    got = sample_target(WindowedFrame(raw, (lo, hi)), (bx, by, bw, bh), factor, size,
                        with_mask=False)
    np.testing.assert_array_equal(got.image, want.image)
    assert (got.resize_factor, got.x1, got.y1, got.side) == \
        (want.resize_factor, want.x1, want.y1, want.side)
