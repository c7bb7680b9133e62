"""Grey -> three channels: the fast OpenCV path equals plain repetition for every dtype."""

import numpy as np
import pytest

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
