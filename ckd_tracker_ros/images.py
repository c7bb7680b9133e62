"""sensor_msgs Image / CompressedImage <-> numpy, and thermal normalisation, in one place.

What the tracker wants: uint8 (H, W, 3) RGB for both cameras. What cameras send:
- colour cameras: rgb8, bgr8, rgba8, bgra8 (sometimes mono8);
- thermal cameras: mono16 / 16UC1 radiometric counts (a few thousand), 32FC1 temperatures,
  mono8, or colour-mapped bgr8.

Conversion backends:
- raw `Image`: cv_bridge (`imgmsg_to_cv2(msg, "passthrough")`) when it is importable (a ROS
  distro); our numpy code otherwise (pip-only ROS). Both honour `step` (row padding) and
  `is_bigendian`. rosbags-image's `message_to_cvimage` is NOT used for raw images: it ignores
  `step`, so padded rows come out sheared. Every message is validated by us first, whichever
  backend runs, so bad input always gives the same clear ValueError.
- `CompressedImage`: `cv2.imdecode` (what cv_bridge and rosbags-image do too).

Non-8-bit data (mono16, 16UC1, 32FC1) becomes uint8 through a `ThermalNormalizer`: a fixed
window, or percentiles smoothed over time. Never per-frame auto-gain, which flickers, and never
cv_bridge's fixed 255/65535 scaling, which turns radiometric counts nearly black.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ckd_core.imaging import WindowedFrame, to_three_channels, window_to_uint8

# encoding -> (numpy dtype, channels). Channel order of multi-channel encodings is in the name.
ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (np.dtype(np.uint8), 3),
    "bgr8": (np.dtype(np.uint8), 3),
    "rgba8": (np.dtype(np.uint8), 4),
    "bgra8": (np.dtype(np.uint8), 4),
    "mono8": (np.dtype(np.uint8), 1),
    "8UC1": (np.dtype(np.uint8), 1),
    "8UC3": (np.dtype(np.uint8), 3),  # OpenCV's convention: BGR order
    "mono16": (np.dtype(np.uint16), 1),
    "16UC1": (np.dtype(np.uint16), 1),
    "32FC1": (np.dtype(np.float32), 1),
}
_BGR_ORDER = ("bgr8", "bgra8", "8UC3")

try:  # a ROS distro's cv_bridge; not pip-installable (the PyPI "cv-bridge" is a ROS 1 copy)
    from cv_bridge import CvBridge as _CvBridge  # type: ignore[import-not-found]
    _BRIDGE = _CvBridge()
except Exception:  # noqa: BLE001 - ImportError, or a broken install that fails on import
    _BRIDGE = None

BACKEND = "cv_bridge" if _BRIDGE is not None else "numpy"


def _encoding_info(encoding: str) -> tuple[np.dtype, int]:
    try:
        return ENCODINGS[encoding]
    except KeyError:
        raise ValueError(f"unsupported image encoding {encoding!r}; supported: "
                         f"{', '.join(ENCODINGS)}") from None


def _validate(msg) -> tuple[np.dtype, int]:
    """Check an Image message's sizes against its encoding; return (dtype, channels)."""
    dtype, channels = _encoding_info(msg.encoding)
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0:
        raise ValueError(f"image is empty ({w}x{h} pixels)")
    row = w * channels * dtype.itemsize
    if step < row:
        raise ValueError(f"image step {step} is smaller than width*bytes_per_pixel = "
                         f"{w}*{channels * dtype.itemsize} = {row} ({msg.encoding})")
    need = step * h
    if len(msg.data) < need:
        raise ValueError(f"image data is truncated: {len(msg.data)} bytes, expected "
                         f"step*height = {step}*{h} = {need} ({w}x{h} {msg.encoding})")
    return dtype, channels


def image_to_numpy(msg) -> np.ndarray:
    """sensor_msgs/Image -> a READ-ONLY array (H, W) or (H, W, C) of the encoding's dtype,
    native byte order, channels in the encoding's order. Raises ValueError naming the problem.

    When the data is already in native byte order the array is a view of `msg.data` (rows
    padded by `step` stay strided): no copy of the frame (6 MB for 1920x1080 rgb8, which
    costs ~1 ms in fresh pages) - it keeps the message's buffer alive and cannot be written.
    Otherwise (the other byte order) it is a converted copy, also read-only."""
    dtype, channels = _validate(msg)
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    native = dtype.newbyteorder("=")
    if _BRIDGE is not None:
        arr = np.asarray(_BRIDGE.imgmsg_to_cv2(msg, desired_encoding="passthrough"))
    else:
        wire = dtype.newbyteorder(">" if msg.is_bigendian else "<")
        shape = (h, w) if channels == 1 else (h, w, channels)
        strides = (step, channels * wire.itemsize) + ((wire.itemsize,) if channels > 1 else ())
        arr = np.ndarray(shape, dtype=wire, buffer=memoryview(msg.data).cast("B"),
                         strides=strides)
    arr = arr.astype(native, copy=False)  # a copy only when the byte order differs
    arr.flags.writeable = False
    return arr


def compressed_to_numpy(msg) -> tuple[np.ndarray, str]:
    """sensor_msgs/CompressedImage -> (array, encoding): bgr8 / bgra8 / mono8 / mono16,
    whatever the JPEG or PNG holds (compressed_image_transport stores colour as BGR)."""
    if "compresseddepth" in msg.format.lower():
        raise ValueError(f"CompressedImage format {msg.format!r} (compressedDepth) is not "
                         "supported; publish the thermal image as png/jpeg")
    if len(msg.data) == 0:
        raise ValueError("CompressedImage has no data")
    what = f"CompressedImage ({msg.format or 'no format'}, {len(msg.data)} bytes)"
    try:
        arr = cv2.imdecode(np.frombuffer(memoryview(msg.data).cast("B"), np.uint8),
                           cv2.IMREAD_UNCHANGED)
    except cv2.error as e:  # e.g. a header claiming more than CV_IO_MAX_IMAGE_PIXELS
        reason = str(e).strip().splitlines()[-1]
        raise ValueError(f"{what} could not be decoded: {reason}") from None
    if arr is None:
        raise ValueError(f"{what} could not be decoded")
    if arr.ndim == 2 and arr.dtype in (np.uint8, np.uint16):
        return arr, "mono16" if arr.dtype == np.uint16 else "mono8"
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    if arr.dtype != np.uint8 or channels not in (3, 4):
        raise ValueError(f"{what} decodes to {arr.dtype} with {channels} channel(s); only "
                         "8-bit colour (3 or 4 channels) and 8/16-bit grey are supported")
    return arr, "bgr8" if channels == 3 else "bgra8"


def message_to_numpy(msg) -> tuple[np.ndarray, str]:
    """Image or CompressedImage -> (array, encoding)."""
    if hasattr(msg, "format"):
        return compressed_to_numpy(msg)
    return image_to_numpy(msg), msg.encoding


def to_rgb8(image: np.ndarray, encoding: str,
            normalizer: "ThermalNormalizer | None" = None) -> np.ndarray:
    """Any supported array -> uint8 (H, W, 3) RGB.

    8-bit data is reordered / replicated only. 16-bit and float data need `normalizer`
    (a ValueError says so when it is missing), which maps them to 8 bits."""
    return to_three_channels(to_tracker_image(image, encoding, normalizer))


def to_tracker_image(image: np.ndarray, encoding: str,
                     normalizer: "ThermalNormalizer | None" = None,
                     windowed: bool = False) -> np.ndarray | WindowedFrame:
    """Any supported array -> what the Tracker takes: uint8 (H, W) grey for one-channel
    sources (mono8 / mono16 / 32FC1 thermal: the tracker repeats only its crops to three
    channels, ~1 ms less per 1920x1080 frame than repeating the frame), uint8 (H, W, 3) RGB
    for colour. Same values as `to_rgb8`; errors as there.

    windowed=True: a 16-bit or float frame comes back as a `WindowedFrame` (the raw frame and
    the normaliser's window, mapped to 8 bits only where the tracker reads it: the same
    values, without mapping the whole frame)."""
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise ValueError(f"{encoding} array has shape {image.shape}; expected (H, W) or "
                         "(H, W, C) with 1, 3 or 4 channels")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.dtype != np.uint8:
        if normalizer is None:
            raise ValueError(f"{encoding} images need a ThermalNormalizer to become 8-bit")
        return normalizer.windowed(image) if windowed else normalizer.to_grey(image)
    if image.ndim == 2:
        return image
    # cv2.cvtColor, not numpy [..., ::-1] copies: 3.5 ms -> 0.1 ms at 1920x1080.
    if image.shape[2] == 4:
        code = cv2.COLOR_BGRA2RGB if encoding in _BGR_ORDER else cv2.COLOR_RGBA2RGB
        return cv2.cvtColor(np.ascontiguousarray(image), code)
    if encoding in _BGR_ORDER:
        return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(image)


def numpy_to_image(image: np.ndarray, encoding: str, header=None):
    """numpy array -> sensor_msgs/Image (no row padding, little-endian); used for the debug
    image. The array must match the encoding's dtype and channel count."""
    from sensor_msgs.msg import Image  # lazily: the rest of this module needs no ROS

    dtype, channels = _encoding_info(encoding)
    have = 1 if image.ndim == 2 else image.shape[2]
    if image.dtype != dtype or have != channels or image.ndim not in (2, 3):
        raise ValueError(f"array {image.dtype} {image.shape} does not match {encoding} "
                         f"({dtype}, {channels} channel(s))")
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(image.shape[0]), int(image.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = msg.width * channels * dtype.itemsize
    msg.data = np.ascontiguousarray(image, dtype=dtype.newbyteorder("<")).tobytes()
    return msg


@dataclass
class ThermalNormalizer:
    """16-bit / float thermal frames -> uint8 (H, W, 3), with a temporally stable window.

    mode "fixed": values in [window[0], window[1]] map linearly to [0, 255], rounded to the
      nearest level and clipped (`ckd_core.imaging.window_to_uint8`: the sequence readers
      and `ckd track` map 16-bit files the same way).
    mode "percentile": the window is the frame's (percentiles[0], percentiles[1]) percentiles,
      smoothed over time with an exponential moving average (`smoothing` = weight of the past,
      in (0, 1); 0.9 follows a scene change within about 20 frames; 0, per-frame auto-gain
      that flickers, is refused). The first frame sets the
      window directly. `reset()` forgets it (e.g. when tracking is re-initialised on a new
      scene). Non-finite pixels (NaN in 32FC1) map to 0 and do not enter the percentiles.
    """

    mode: str = "percentile"
    window: tuple[float, float] = (0.0, 65535.0)
    percentiles: tuple[float, float] = (1.0, 99.0)
    smoothing: float = 0.9
    sample_stride: int = 4  # percentiles from every 4th pixel in each direction: 16x less work

    def __post_init__(self) -> None:
        if self.mode not in ("fixed", "percentile"):
            raise ValueError(f"thermal normalisation mode {self.mode!r}: expected fixed or "
                             "percentile")
        lo, hi = (float(v) for v in self.window)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"thermal window {self.window}: expected two finite numbers, "
                             "low < high")
        plo, phi = (float(v) for v in self.percentiles)
        if not 0 <= plo < phi <= 100:
            raise ValueError(f"thermal percentiles {self.percentiles}: expected "
                             "0 <= low < high <= 100")
        if not 0 < self.smoothing < 1:
            raise ValueError(f"thermal smoothing {self.smoothing}: expected a value in (0, 1) "
                             "(0 would be per-frame auto-gain, which flickers)")
        self._state: tuple[float, float] | None = None

    def reset(self) -> None:
        self._state = None

    @property
    def current_window(self) -> tuple[float, float]:
        """The (low, high) window the last frame was mapped with."""
        if self.mode == "fixed" or self._state is None:
            return tuple(float(v) for v in self.window)  # type: ignore[return-value]
        return self._state

    def _update_window(self, image: np.ndarray) -> tuple[float, float]:
        s = max(1, int(self.sample_stride))
        sample = image[::s, ::s]
        if sample.dtype.kind == "f":  # integer counts are always finite: no scan, no copy
            sample = sample[np.isfinite(sample)]
        if sample.size == 0:
            return self.current_window
        lo, hi = percentiles_of(sample, self.percentiles)
        if self._state is None:
            self._state = (float(lo), float(hi))
        else:
            a = self.smoothing
            self._state = (a * self._state[0] + (1 - a) * float(lo),
                           a * self._state[1] + (1 - a) * float(hi))
        return self._state

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """The frame as uint8 (H, W, 3) (the grey value in all three channels)."""
        return to_three_channels(self.to_grey(image))

    def to_grey(self, image: np.ndarray) -> np.ndarray:
        """The frame as uint8 (H, W); updates the window like `__call__`."""
        image, window = self._next_window(image)
        return window_to_uint8(image, window)

    def windowed(self, image: np.ndarray) -> WindowedFrame | np.ndarray:
        """`to_grey` as a `WindowedFrame` (mapped where it is read) for uint16 and float32
        frames; other types are mapped now. Updates the window like `to_grey`."""
        image, window = self._next_window(image)
        if image.dtype in WindowedFrame.RAW_DTYPES and image.size:
            return WindowedFrame(image, window)
        return window_to_uint8(image, window)

    def _next_window(self, image: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
        """(the frame as (H, W), the window to map it with), the window updated."""
        if image.ndim == 3:
            if image.shape[2] != 1:
                raise ValueError(f"thermal normalisation needs one channel, got {image.shape}")
            image = image[:, :, 0]
        if self.mode == "percentile":
            return image, self._update_window(image)
        return image, (float(self.window[0]), float(self.window[1]))


def percentiles_of(sample: np.ndarray, q) -> np.ndarray:
    """`np.percentile(sample, q)` (its default linear method), equal to it bit for bit; for
    8- and 16-bit integer samples computed from a histogram (one counting pass instead of a
    partial sort: 0.7 -> 0.2 ms for the 130 k pixels sampled from a 1920x1080 frame)."""
    q = np.asarray(q, dtype=np.float64)
    if sample.dtype not in (np.uint8, np.uint16) or sample.size == 0:
        return np.percentile(sample, q)
    counts = np.bincount(sample.ravel())
    ends = np.cumsum(counts)  # ends[v] = how many samples are <= v
    n = int(ends[-1])
    # numpy's linear method: the value at fractional rank q/100 * (n - 1) between the two
    # neighbouring order statistics, blended with its _lerp (which, for t >= 0.5, works
    # from the upper neighbour so that t = 1 lands exactly on it).
    rank = q / 100.0 * (n - 1)
    below = np.floor(rank)
    t = rank - below
    below = below.astype(np.int64)
    above = np.minimum(below + 1, n - 1)
    a = np.searchsorted(ends, below, side="right").astype(np.float64)
    b = np.searchsorted(ends, above, side="right").astype(np.float64)
    diff = b - a
    out = a + diff * t
    np.subtract(b, diff * (1 - t), out=out, where=t >= 0.5)
    return out
