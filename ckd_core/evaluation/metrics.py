"""Tracking accuracy metrics as the RGBT benchmark toolkits compute them. Pure numpy.

Boxes are (N, 4) arrays of x, y, w, h in pixels, (x, y) the top-left corner; `pred` is the
tracker's box, `gt` the ground truth of the same frame. The rules (from
../shared/evaluation_protocol.md; which dataset uses which is in `scorer.py`):

- centre (inclusive pixels, rgbt toolkit default): c = x + (w - 1) / 2;
  centre (continuous, GTOT): c = x + w / 2. Both give the same distances up to round-off.
- centre error d = Euclidean distance of the centres (pixels).
- normalised error nd: both centres divided by (gt.w + 1e-8, gt.h + 1e-8), then distance.
- IoU with inclusive pixels: x2 = x + w - 1, inter_w = max(0, min(x2) - max(x1) + 1), same
  for y, IoU = inter / (w_p h_p + w_g h_g - inter); a zero union gives NaN, which fails every
  overlap threshold (NaN > t is False).
- precision P(t) = share of frames with d <= t (GTOT: d < t); success S(t) = share with
  IoU > t (strict).
- two-modality datasets: d = min(d_visible, d_thermal), IoU = max(IoU_visible, IoU_thermal),
  with numpy's NaN-propagating min/max as the toolkit has it.
- result files are read as float32 and rounded half to even (`toolkit_round`).

Bit-exactness. Every function computes in the dtype of its inputs and in the toolkit's order
of operations. `rgbt` 1.0.1 reads boxes as float32 and does its per-frame math on numpy
float32 scalars, which numpy >= 2 keeps in float32: with float32 inputs our distances and
overlaps are the toolkit's bit for bit. (Under numpy 1.x the same code promoted the scalar
math to float64; `scorer.convention(..., toolkit_numpy=1)` reproduces such runs by passing
float64 copies of the float32-read boxes.) One exception: the toolkit's `x ** 0.5` on a
float32 scalar is the C library's powf, which differs from the correctly rounded `np.sqrt` by
one unit in the last place for about 0.06 % of inputs (never for a perfect square, nor for
sqrt(x * x) = x); that changes a score only if a value lies within one float32 ulp of a
threshold without being on it.

Thresholds are built exactly as the toolkit builds them (`np.linspace`), and values are
compared with them in float64. Both matter only at exact ties. `np.linspace(0, 1, 21)` holds
0.15000000000000002, 0.35000000000000003, 0.7000000000000001, ... where `np.arange(21) / 20`
holds 0.15, 0.35, 0.7: no float32 value lies between the two, but a float64 error (numpy-1
runs) can, so integer steps would not be toolkit-exact there. An error exactly on a threshold
that float32 cannot hold is decided by float32 round-off, as in the toolkit: an IoU of 3/20
computes to float32 0.150000006 > 0.15000000000000002, a success; an nd of exactly 0.2
(dy = 0, dx = w / 5) computes, depending on the box position, a little above or below 0.2
and so is a miss or a hit at t = 0.2 (about half each); under numpy 1 the float64 math can
decide differently. The scorer's `toolkit_numpy` option picks which toolkit run to reproduce.
VTUAV's MATLAB scripts work in float64 on unrounded values; for it `scorer.py` passes float64
boxes and the integer-step thresholds below.
"""

from __future__ import annotations

import numpy as np


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


# Thresholds as `rgbt` 1.0.1 builds them (see the module docstring for why linspace).
PRECISION_THRESHOLDS = _frozen(np.linspace(0, 50, 51))           # pixels, d <= t
PRECISION_INDEX = 20                                               # PR = P(20 px)
NORM_PRECISION_THRESHOLDS = _frozen(np.linspace(0, 0.5, 51))      # nd <= t
NORM_PRECISION_INDEX = 20                                          # NPR = value at 0.20
SUCCESS_THRESHOLDS = _frozen(np.linspace(0, 1, 21))                # IoU > t
GTOT_PRECISION_THRESHOLDS = _frozen(np.linspace(0, 25, 51))        # pixels, d < t (strict)
GTOT_PRECISION_INDEX = 10                                          # MPR = P(5 px)
# VTUAV (MATLAB 0:50 and 0:0.05:1, float64): integer steps.
VTUAV_PRECISION_THRESHOLDS = _frozen(np.arange(51, dtype=np.float64))
VTUAV_SUCCESS_THRESHOLDS = _frozen(np.arange(21, dtype=np.float64) / 20)

INVALID = -1.0  # the toolkit's marker for a frame whose GT is invalid (see mark_invalid_gt)
NORM_EPS = 1e-8


# ---------------------------------------------------------------------------------------------
# Reading conventions
# ---------------------------------------------------------------------------------------------

def toolkit_round(values) -> np.ndarray:
    """Values as the toolkit reads result files: cast to float32, then round half to even.

    (...) array-like -> same shape, float32. Casting first matters: '2.50000001' is 2.5 in
    float32 and rounds to 2, whereas float64 would round it to 3.
    """
    return np.round(np.asarray(values, dtype=np.float32))


def replace_invalid_predictions(pred: np.ndarray) -> np.ndarray:
    """LasHeR rule: a row (after the first) with w <= 0 or h <= 0 takes the previous row.

    (N, 4) -> (N, 4) copy. Chained: several bad rows in a row all take the last good one
    before them. Row 0 is never replaced (the scorer has set it to the ground truth).
    """
    keep = (pred[:, 2] > 0) & (pred[:, 3] > 0)
    keep[:1] = True
    source = np.maximum.accumulate(np.where(keep, np.arange(len(pred)), 0))
    return pred[source]


def invalid_gt_mask(gt: np.ndarray) -> np.ndarray:
    """LasHeR rule: (N, 4) -> (N,) bool, True where ANY of x, y, w, h is <= 0.

    This includes boxes touching the image border (x = 0 or y = 0), as in the toolkit.
    """
    return (gt <= 0).any(axis=1)


def mark_invalid_gt(values: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Set per-frame distances or overlaps (N,) to -1 where the GT is invalid (LasHeR).

    -1 is <= every distance threshold (a hit for PR and NPR) and not > any overlap
    threshold (a miss for SR), which is the toolkit's rule.
    """
    return np.where(invalid_gt_mask(gt), np.asarray(INVALID, dtype=values.dtype), values)


# ---------------------------------------------------------------------------------------------
# Per-frame errors
# ---------------------------------------------------------------------------------------------

def centres(boxes: np.ndarray, inclusive: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(N, 4) xywh -> (cx, cy), each (N,), in the boxes' dtype.

    inclusive: c = x + (w - 1) / 2 (pixel centres; rgbt toolkit default); else c = x + w / 2
    (what the GTOT numbers were computed with).
    """
    x, y, w, h = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    if inclusive:
        return (w - 1) / 2.0 + x, (h - 1) / 2.0 + y
    return w / 2.0 + x, h / 2.0 + y


def centre_distance(pred: np.ndarray, gt: np.ndarray, inclusive: bool = True) -> np.ndarray:
    """(N, 4), (N, 4) -> (N,) Euclidean distance between box centres, pixels."""
    px, py = centres(pred, inclusive)
    gx, gy = centres(gt, inclusive)
    return np.sqrt((px - gx) ** 2 + (py - gy) ** 2)


def normalised_distance(pred: np.ndarray, gt: np.ndarray, inclusive: bool = True
                        ) -> np.ndarray:
    """(N, 4), (N, 4) -> (N,) centre distance in units of the GT size (dimensionless).

    Each centre coordinate is divided by (gt.w + 1e-8) or (gt.h + 1e-8) before subtracting,
    the toolkit's order (it matters for float32 round-off at exact thresholds).
    """
    px, py = centres(pred, inclusive)
    gx, gy = centres(gt, inclusive)
    sx = gt[:, 2] + NORM_EPS
    sy = gt[:, 3] + NORM_EPS
    return np.sqrt((px / sx - gx / sx) ** 2 + (py / sy - gy / sy) ** 2)


def iou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(N, 4), (N, 4) -> (N,) intersection over union with inclusive pixel boxes.

    NaN where the union is zero (both boxes empty); such a frame fails every threshold.
    """
    x1, y1 = pred[:, 0], pred[:, 1]
    x2, y2 = pred[:, 2] + x1 - 1, pred[:, 3] + y1 - 1
    gx1, gy1 = gt[:, 0], gt[:, 1]
    gx2, gy2 = gt[:, 2] + gx1 - 1, gt[:, 3] + gy1 - 1
    inter_w = np.maximum(0, np.minimum(gx2, x2) - np.maximum(gx1, x1) + 1)
    inter_h = np.maximum(0, np.minimum(gy2, y2) - np.maximum(gy1, y1) + 1)
    inter = inter_w * inter_h
    area_p = pred[:, 3] * pred[:, 2]
    area_g = gt[:, 3] * gt[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / (area_p + area_g - inter)


def min_distance(pred: np.ndarray, gt_visible: np.ndarray, gt_thermal: np.ndarray,
                 inclusive: bool = True) -> np.ndarray:
    """(N,) per-frame min of the centre errors against both modalities' GT (for MPR)."""
    return np.minimum(centre_distance(pred, gt_visible, inclusive),
                      centre_distance(pred, gt_thermal, inclusive))


def max_overlap(pred: np.ndarray, gt_visible: np.ndarray, gt_thermal: np.ndarray
                ) -> np.ndarray:
    """(N,) per-frame max of the IoUs against both modalities' GT (for MSR).

    NaN-propagating (np.maximum), as in the toolkit: a NaN in either modality fails the frame.
    """
    return np.maximum(iou(pred, gt_visible), iou(pred, gt_thermal))


# ---------------------------------------------------------------------------------------------
# Curves and scores
# ---------------------------------------------------------------------------------------------

def count_within(errors: np.ndarray, thresholds: np.ndarray, strict: bool = False
                 ) -> np.ndarray:
    """(N,) errors, (T,) thresholds -> (T,) int: frames with error <= t (< t when strict)."""
    e = np.asarray(errors)[:, None]
    t = np.asarray(thresholds)[None, :]
    hits = e < t if strict else e <= t
    return hits.sum(axis=0)


def count_above(overlaps: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """(N,) overlaps, (T,) thresholds -> (T,) int: frames with IoU > t (NaN never is)."""
    return (np.asarray(overlaps)[:, None] > np.asarray(thresholds)[None, :]).sum(axis=0)


def precision_curve(errors: np.ndarray, thresholds: np.ndarray = PRECISION_THRESHOLDS,
                    strict: bool = False) -> np.ndarray:
    """(N,) centre (or normalised) errors -> (T,) share of frames within each threshold."""
    n = len(errors)
    if n == 0:
        raise ValueError("cannot compute a precision curve over zero frames")
    return count_within(errors, thresholds, strict) / n


def success_curve(overlaps: np.ndarray, thresholds: np.ndarray = SUCCESS_THRESHOLDS
                  ) -> np.ndarray:
    """(N,) IoUs -> (T,) share of frames with IoU > t (strict)."""
    n = len(overlaps)
    if n == 0:
        raise ValueError("cannot compute a success curve over zero frames")
    return count_above(overlaps, thresholds) / n


def success_score(curve: np.ndarray) -> float:
    """SR / MSR: the mean of the success curve's points (a perfect tracker scores 20/21)."""
    return float(np.mean(curve))


def trapezoid_success_score(counts: np.ndarray, n_frames: int,
                            thresholds: np.ndarray = SUCCESS_THRESHOLDS) -> float:
    """GTOT MSR: trapezoid-rule area under the success curve, from pooled counts.

    counts: (T,) frames with IoU > t, summed over all sequences; n_frames: all their frames.
    Area = step * (sum(counts[1:]) + sum(counts[:-1])) / 2 / n_frames with step = t[1] - t[0]
    (0.05), the toolkit's order of operations. A perfect tracker scores 0.975 (the last
    point, IoU > 1, is 0).
    """
    step = thresholds[1]
    a = (counts[1:] * step).sum()
    b = (counts[:-1] * step).sum()
    return float((a + b) / 2.0 / n_frames)
