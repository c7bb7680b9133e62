"""Square crops around a box, exactly as OSTrack's `sample_target` (and so CKD) makes them.

Both the tracker and the training-pair sampler use these; keep them bit-compatible with the
authors' code, quirks included:
- crop side = ceil(sqrt(w h) * factor) pixels; a side < 1 is an error;
- x1 = round(x + w/2 - side/2) with Python's round (half to even), x2 = x1 + side;
- the right/bottom padding is max(x2 - W + 1, 0): one pixel more than needed, so a crop that
  touches the right or bottom edge gets one extra zero column/row (OSTrack's off-by-one);
- padding is constant zero; the crop is resized with cv2.resize (bilinear) to `out_size`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Crop:
    """A crop and how it maps back: image = crop_pixel / resize_factor + (x1, y1)."""

    image: np.ndarray  # (out_size, out_size, C), same dtype as the input
    resize_factor: float  # out_size / side
    x1: int  # top-left of the crop window in image pixels (may be negative)
    y1: int
    side: int  # crop window side in image pixels, before resizing
    pad_mask: np.ndarray | None  # (out_size, out_size) bool, True where the crop is padding
    # (None when sample_target was asked for no mask: the tracker does not use it)


def crop_side(box_xywh, factor: float) -> int:
    x, y, w, h = (float(v) for v in box_xywh)
    side = math.ceil(math.sqrt(w * h) * factor)
    if side < 1:
        raise ValueError(f"box (w={w:g}, h={h:g}) is too small to crop (side {side} < 1 px)")
    return side


def sample_target(image: np.ndarray, box_xywh, factor: float, out_size: int,
                  with_mask: bool = True) -> Crop:
    """Crop a square of side ceil(sqrt(w h) * factor) centred on the box, zero padded.

    with_mask=False skips the padding mask (`Crop.pad_mask` is None): it costs a full-size
    array per crop, and only training uses it. A window inside the image is resized straight
    from the image (no padded copy: the same pixels, so the same result)."""
    x, y, w, h = (float(v) for v in box_xywh)
    side = crop_side((x, y, w, h), factor)
    x1 = round(x + 0.5 * w - side * 0.5)
    y1 = round(y + 0.5 * h - side * 0.5)
    x2 = x1 + side
    y2 = y1 + side
    H, W = image.shape[:2]
    x1_pad = max(0, -x1)
    x2_pad = max(x2 - W + 1, 0)
    y1_pad = max(0, -y1)
    y2_pad = max(y2 - H + 1, 0)
    patch = image[y1 + y1_pad:y2 - y2_pad, x1 + x1_pad:x2 - x2_pad]
    if patch.size == 0:
        # The window lies entirely outside the image: everything is padding.
        shape = (side, side) + image.shape[2:]
        padded = np.zeros(shape, dtype=image.dtype)
    elif x1_pad or x2_pad or y1_pad or y2_pad:
        padded = cv2.copyMakeBorder(patch, y1_pad, y2_pad, x1_pad, x2_pad, cv2.BORDER_CONSTANT)
        if padded.ndim == 2 and image.ndim == 3:
            padded = padded[:, :, None]
    else:
        padded = patch
    resized = cv2.resize(padded, (out_size, out_size))
    if resized.ndim == 2 and image.ndim == 3:
        resized = resized[:, :, None]
    if not with_mask:
        return Crop(resized, out_size / side, x1, y1, side, None)
    mask = np.ones(padded.shape[:2], dtype=np.uint8)
    ph, pw = padded.shape[:2]
    mask[y1_pad:ph - y2_pad if y2_pad else ph, x1_pad:pw - x2_pad if x2_pad else pw] = 0
    pad_mask = cv2.resize(mask, (out_size, out_size), interpolation=cv2.INTER_NEAREST) > 0
    return Crop(resized, out_size / side, x1, y1, side, pad_mask)


def box_in_crop(box_xywh, crop_box_xywh, resize_factor: float, out_size: int,
                normalize: bool = True) -> np.ndarray:
    """OSTrack's transform_image_to_crop: a box in image pixels -> its xywh in a crop made
    around `crop_box_xywh` (the box the crop was centred on), optionally normalised by out_size.
    """
    bx, by, bw, bh = (float(v) for v in box_xywh)
    cx, cy, cw, ch = (float(v) for v in crop_box_xywh)
    center_crop = np.array([cx + 0.5 * cw, cy + 0.5 * ch])
    center_box = np.array([bx + 0.5 * bw, by + 0.5 * bh])
    center_out = (out_size - 1) / 2 + (center_box - center_crop) * resize_factor
    wh_out = np.array([bw, bh]) * resize_factor
    out = np.concatenate([center_out - 0.5 * wh_out, wh_out])
    return out / out_size if normalize else out
