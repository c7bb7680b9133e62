"""Image normalisation, in one place: both modalities use ImageNet mean/std on [0, 1] RGB.

Thermal frames are 3-channel (a single-channel frame is repeated to 3 channels), exactly as
the datasets distribute them and as the authors' code reads them. Raw 16-bit / float thermal
data becomes 8-bit by one mapping (`window_to_uint8`), also on demand (`WindowedFrame`).
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
        return _lookup_rows(_window_table(lo, hi), raw)
    with np.errstate(over="ignore", invalid="ignore"):  # +-inf and NaN: mapped next
        scaled = (raw.astype(np.float32) - np.float32(lo)) * k
    scaled = np.nan_to_num(scaled, nan=0.0, posinf=255.0, neginf=0.0)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


class WindowedFrame:
    """A raw one-channel thermal frame and its window, standing for the uint8 (H, W) image
    `window_to_uint8(raw, window)` but mapped only where it is read.

    The tracker reads a frame through slices (the search-region crop) and a 1-in-16 thumbnail
    (`thumbnail`, for its health checks), so a 16-bit frame is never mapped whole unless the
    crop covers it (at 1920x1080 the whole-frame mapping is most of the node's thermal
    conversion time: `benchmarks/results/node_overhead.md`, `thermal_windowed.md`). Every
    value read is the value `window_to_uint8` gives the whole frame (the mapping is per
    pixel). `np.asarray(frame)` maps the whole frame (once; kept)."""

    ndim = 2
    dtype = np.dtype(np.uint8)
    RAW_DTYPES = (np.dtype(np.uint16), np.dtype(np.float32))  # what `raw` may be

    def __init__(self, raw: np.ndarray, window: tuple[float, float]):
        if not isinstance(raw, np.ndarray) or raw.ndim != 2 or raw.size == 0 or \
                raw.dtype not in WindowedFrame.RAW_DTYPES:
            raise ValueError(f"a windowed frame needs a non-empty uint16 or float32 (H, W) "
                             f"array, got {getattr(raw, 'dtype', type(raw).__name__)} "
                             f"{getattr(raw, 'shape', '')}")
        self.raw = raw
        self.window = (float(window[0]), float(window[1]))
        self._whole: np.ndarray | None = None
        self._table: np.ndarray | None = None  # uint16 frames: built on the first read

    @property
    def shape(self) -> tuple[int, int]:
        return self.raw.shape

    @property
    def size(self) -> int:
        return self.raw.size

    def _map(self, raw: np.ndarray) -> np.ndarray:
        """`window_to_uint8(raw, self.window)`; uint16 data through one table per frame (the
        thumbnail and the crop share it)."""
        if raw.dtype != np.uint16 or raw.ndim != 2:
            return window_to_uint8(raw, self.window)
        if self._table is None:
            self._table = _window_table(*self.window)
        return _lookup_rows(self._table, raw)

    def __getitem__(self, key) -> np.ndarray:
        if self._whole is not None:
            return self._whole[key]
        return self._map(self.raw[key])

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        if self._whole is None:
            self._whole = self._map(self.raw)
        if dtype is not None and np.dtype(dtype) != self._whole.dtype:
            return self._whole.astype(dtype)
        return self._whole.copy() if copy else self._whole

    def thumbnail(self, size: tuple[int, int]) -> np.ndarray:
        """cv2.resize(np.asarray(self), size, interpolation=INTER_NEAREST), mapping only the
        pixels it keeps: nearest-neighbour picks the same pixels whatever the data type."""
        return self._map(cv2.resize(self.raw, size, interpolation=cv2.INTER_NEAREST))


def _window_table(lo: float, hi: float) -> np.ndarray:
    """(65536,) uint8: `window_to_uint8`'s formula for every uint16 count."""
    k = np.float32(255.0 / max(hi - lo, 1e-6))
    levels = (np.arange(65536, dtype=np.float32) - np.float32(lo)) * k
    return np.clip(np.rint(levels), 0, 255).astype(np.uint8)


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


def normalization_table() -> np.ndarray:
    """(3, 256) float32: `normalize_crop`'s output for each channel and 8-bit level, computed
    by `normalize_crop` itself on the 256 levels, so a lookup in it gives the same floats."""
    levels = np.ascontiguousarray(np.broadcast_to(
        np.arange(256, dtype=np.uint8)[None, :, None], (1, 256, 3)))
    return normalize_crop(levels)[0, :, 0, :].numpy().copy()


def normalize_crop_lookup(crop: np.ndarray, table: np.ndarray) -> torch.Tensor:
    """`normalize_crop` of one uint8 crop on the CPU by lookup in `normalization_table()`:
    (H, W, 3) RGB, or (H, W) grey taken as repeated to 3 channels -> (1, 3, H, W) float32,
    the same values (per-level arithmetic is the same arithmetic) from one gather per channel
    instead of four float passes, and a grey crop needs no repetition. The memory layout is
    `normalize_crop`'s too (channels last: a permuted view of (1, H, W, 3)), so the network
    sees the same tensor and runs the same kernels."""
    if crop.dtype != np.uint8 or crop.ndim not in (2, 3) or (crop.ndim == 3
                                                             and crop.shape[2] != 3):
        raise ValueError(f"crop {crop.dtype} {crop.shape}: expected uint8 (H, W) or (H, W, 3)")
    out = np.empty((1,) + crop.shape[:2] + (3,), dtype=np.float32)
    for c in range(3):
        # mode="clip" writes into `out` directly (uint8 levels are always in range)
        table[c].take(crop if crop.ndim == 2 else crop[:, :, c], out=out[0, :, :, c],
                      mode="clip")
    return torch.from_numpy(out).permute(0, 3, 1, 2)
