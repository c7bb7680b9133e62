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
