"""Image normalisation, in one place: both modalities use ImageNet mean/std on [0, 1] RGB.

Thermal frames are 3-channel (a single-channel frame is repeated to 3 channels), exactly as
the datasets distribute them and as the authors' code reads them.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_three_channels(image: np.ndarray, what: str = "image") -> np.ndarray:
    """(H, W) or (H, W, 1) -> (H, W, 3) by repetition; (H, W, 3) unchanged; else an error."""
    # cv2.cvtColor gives the same array as np.repeat, ~8x faster on large frames (OpenCV
    # takes uint8 / uint16 / float32 only; anything else falls back to np.repeat).
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        if image.dtype in (np.uint8, np.uint16, np.float32) and image.size:
            return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_GRAY2RGB)
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise ValueError(f"{what} has shape {image.shape}; expected (H, W), (H, W, 1) or (H, W, 3)")


def window_to_uint8(raw: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Raw thermal values (16-bit counts, float temperatures) -> uint8 of the same shape:
    [lo, hi] maps linearly to 0..255 by the float32 formula (raw - lo) * (255 / (hi - lo)),
    rounded to the nearest level (half to even) and clipped; NaN -> 0, +inf -> 255,
    -inf -> 0. The one definition for the sequence readers, `ckd track` and the ROS node.

    Large uint16 frames take a 65536-entry table of the same formula and one lookup per pixel
    (12 -> 2 ms at 1920x1080): the same values as the formula, pixel for pixel."""
    lo, hi = float(window[0]), float(window[1])
    k = np.float32(255.0 / max(hi - lo, 1e-6))  # a window narrower than float steps: a cut
    if raw.dtype == np.uint16 and raw.ndim == 2 and raw.size >= 65536:
        levels = (np.arange(65536, dtype=np.float32) - np.float32(lo)) * k
        return _lookup_rows(np.clip(np.rint(levels), 0, 255).astype(np.uint8), raw)
    with np.errstate(over="ignore", invalid="ignore"):  # +-inf and NaN: mapped next
        scaled = (raw.astype(np.float32) - np.float32(lo)) * k
    scaled = np.nan_to_num(scaled, nan=0.0, posinf=255.0, neginf=0.0)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


# Rows per `take` call in `_lookup_rows`: the index block `take` converts to intp is then
# ~1 MB at 1920 columns instead of 16 MB for the whole frame.
_LOOKUP_ROWS = 64


def _lookup_rows(table: np.ndarray, image: np.ndarray) -> np.ndarray:
    """`table[image]` for a uint16 (H, W) image and a 65536-entry table, a block of rows at
    a time. `take` converts its whole index array to intp first: 16 MB of fresh memory per
    1920x1080 frame, and first-touch page faults on it cost more than the lookup. Values
    identical to `table.take(image)`."""
    out = np.empty(image.shape, dtype=table.dtype)
    for r in range(0, image.shape[0], _LOOKUP_ROWS):
        # mode="clip" lets `take` write into `out` directly (mode="raise" buffers it); uint16
        # indices into 65536 entries are always in range, so nothing is ever clipped.
        table.take(image[r:r + _LOOKUP_ROWS], out=out[r:r + _LOOKUP_ROWS], mode="clip")
    return out


def normalize_crop(crop: np.ndarray | torch.Tensor, device: torch.device | str = "cpu",
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 (H, W, 3) or (B, H, W, 3) crop(s), RGB order, 0-255 -> (B, 3, H, W) normalised."""
    t = torch.as_tensor(crop, device=device)
    if t.ndim == 3:
        t = t.unsqueeze(0)
    t = t.permute(0, 3, 1, 2).to(dtype=torch.float32) / 255.0
    mean = torch.tensor(IMAGENET_MEAN, device=t.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=t.device).view(1, 3, 1, 1)
    return ((t - mean) / std).to(dtype)
