"""ckd_core.crops.sample_target against an independent construction of OSTrack's crop: a
zero canvas of side x side holding the image pixels the window covers (OSTrack's `+ 1` in the
right / bottom padding included: a window reaching exactly to the last column gets that column
as padding), resized with cv2.resize (bilinear)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ckd_core.crops import crop_side, sample_target


def reference_crop(image, box, factor, out_size):
    x, y, w, h = box
    side = crop_side(box, factor)
    x1 = round(x + 0.5 * w - side * 0.5)
    y1 = round(y + 0.5 * h - side * 0.5)
    H, W = image.shape[:2]
    canvas = np.zeros((side, side) + image.shape[2:], image.dtype)
    pad = np.ones((side, side), bool)
    # image columns OSTrack keeps: [max(x1, 0), x1 + side - max(x1 + side - W + 1, 0))
    c0, c1 = max(x1, 0), x1 + side - max(x1 + side - W + 1, 0)
    r0, r1 = max(y1, 0), y1 + side - max(y1 + side - H + 1, 0)
    if c1 > c0 and r1 > r0:
        canvas[r0 - y1:r1 - y1, c0 - x1:c1 - x1] = image[r0:r1, c0:c1]
        pad[r0 - y1:r1 - y1, c0 - x1:c1 - x1] = False
    out = cv2.resize(canvas, (out_size, out_size))
    if out.ndim == 2 and image.ndim == 3:
        out = out[:, :, None]
    return out, out_size / side, x1, y1, side, pad


BOXES = [(100.0, 80.0, 30.0, 20.0),     # window inside the image
         (5.0, 4.0, 30.0, 20.0),        # over the top-left corner
         (190.0, 130.0, 20.0, 20.0),    # over the bottom-right corner
         (150.0, 60.0, 25.0, 25.0),     # window ending exactly at the last column
         (-400.0, -300.0, 10.0, 10.0)]  # entirely outside


@pytest.mark.parametrize("box", BOXES)
@pytest.mark.parametrize("channels", [0, 1, 3])
def test_sample_target_is_ostracks_crop(box, channels):
    rng = np.random.default_rng(7)
    shape = (160, 200) if channels == 0 else (160, 200, channels)
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    want, factor, x1, y1, side, pad = reference_crop(image, box, 4.0, 64)
    for with_mask in (True, False):
        crop = sample_target(image, box, 4.0, 64, with_mask=with_mask)
        np.testing.assert_array_equal(crop.image, want)
        assert (crop.resize_factor, crop.x1, crop.y1, crop.side) == (factor, x1, y1, side)
        if with_mask:
            # nearest-neighbour resize of the padding map
            rows = np.minimum((np.arange(64) * side / 64).astype(int), side - 1)
            np.testing.assert_array_equal(crop.pad_mask, pad[np.ix_(rows, rows)])
        else:
            assert crop.pad_mask is None


def test_window_ending_at_the_last_column_pads_it():
    box = (150.0, 60.0, 25.0, 25.0)  # side 100, x1 = 113: the window ends at column 212 > W
    image = np.full((160, 200), 200, np.uint8)
    side = crop_side(box, 4.0)
    x1 = round(150 + 12.5 - side / 2)
    assert x1 + side > 200
    crop = sample_target(image, box, 4.0, side)  # no resampling: out_size = side
    kept = 200 - 1 - x1  # OSTrack keeps columns x1 .. W - 2
    assert (crop.image[side // 2, :kept] == 200).all()
    assert (crop.image[side // 2, kept:] == 0).all()
