"""Choosing the LOST / recover thresholds from measured scores (pure functions).

The tracker's score is the raw score-map value at the chosen cell. Which values mean "the
target is here" depends on the weights, so the thresholds are measured per model: run it
with the state machine off on sequences with known GT and label every frame
(`label_frames`):
- positive: the target is visible and the box is on it (IoU >= `on_iou`);
- negative: the target is out of view (GT all zeros) or the box has left it (IoU < `off_iou`);
- frames in between are not used.
Then
- `lost_threshold` = the cut that best separates the two (largest balanced accuracy =
  (TPR + TNR) / 2 over cuts at the observed values; a frame counts as "low" when its score is
  strictly below the cut, as in the tracker);
- `recover_threshold` = the smallest cut >= lost_threshold above which at least
  `min_precision` of the frames are positives (re-acquiring on a distractor costs more than
  re-acquiring a few frames late). When no cut reaches it (a model that scores distractors
  as high as the target), the fallback is the cut >= lost_threshold with the highest
  precision among those that still keep `min_recall` of the on-target frames above them
  (`best_precision_threshold`): a recover threshold of 1.0 would never re-acquire at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ckd_core.evaluation.metrics import iou

POSITIVE, NEGATIVE, UNUSED = 1, 0, -1


def label_frames(pred_xywh, gt_xywh, on_iou: float = 0.5, off_iou: float = 0.1) -> np.ndarray:
    """Per frame: POSITIVE (visible, IoU >= on_iou), NEGATIVE (out of view, i.e. GT all
    zeros, or IoU < off_iou) or UNUSED. Frame 0 (the init frame) is UNUSED."""
    pred = np.asarray(pred_xywh, dtype=np.float64).reshape(-1, 4)
    gt = np.asarray(gt_xywh, dtype=np.float64).reshape(-1, 4)
    if pred.shape != gt.shape:
        raise ValueError(f"{len(pred)} predicted boxes for {len(gt)} GT rows")
    if not 0 <= off_iou <= on_iou <= 1:
        raise ValueError(f"need 0 <= off_iou ({off_iou}) <= on_iou ({on_iou}) <= 1")
    absent = ~gt.any(axis=1)
    ov = np.where(absent, 0.0, iou(pred, np.where(absent[:, None], 1.0, gt)))
    labels = np.full(len(gt), UNUSED, dtype=np.int64)
    labels[ov >= on_iou] = POSITIVE
    labels[(ov < off_iou) | absent] = NEGATIVE
    if len(labels):
        labels[0] = UNUSED
    return labels


@dataclass(frozen=True)
class ThresholdChoice:
    lost_threshold: float
    recover_threshold: float
    balanced_accuracy: float  # of lost_threshold on the calibration frames
    recover_precision: float  # positives among frames scoring >= recover_threshold
    positives: int
    negatives: int
    recover_fallback: bool = False  # min_precision not reachable: best_precision_threshold


def _check(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if s.shape != y.shape:
        raise ValueError(f"{s.size} scores for {y.size} labels")
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or inf")
    keep = y != UNUSED
    s, y = s[keep], y[keep]
    if not (y == POSITIVE).any() or not (y == NEGATIVE).any():
        raise ValueError("need both positive and negative frames to choose a threshold "
                         f"(got {int((y == POSITIVE).sum())} positive, "
                         f"{int((y == NEGATIVE).sum())} negative)")
    return s, y


def best_lost_threshold(scores, labels) -> tuple[float, float]:
    """(cut, balanced accuracy): "low" = score < cut. Cuts tried: every observed score and
    1 + the largest (nothing above it). Ties in accuracy go to the lowest cut."""
    s, y = _check(scores, labels)
    pos, neg = s[y == POSITIVE], s[y == NEGATIVE]
    cuts = np.unique(np.concatenate([s, [s.max() + 1.0]]))
    tn = np.searchsorted(np.sort(neg), cuts, side="left")  # negatives < cut
    tp = pos.size - np.searchsorted(np.sort(pos), cuts, side="left")  # positives >= cut
    merit = tp * neg.size + tn * pos.size  # = 2 P N x balanced accuracy, exact in integers
    k = int(np.argmax(merit))
    return float(min(cuts[k], 1.0)), float(merit[k] / (2 * pos.size * neg.size))


def recover_threshold(scores, labels, lower: float, min_precision: float = 0.95
                      ) -> tuple[float, float]:
    """(cut, precision): the smallest cut >= lower such that, among frames scoring >= cut,
    a fraction >= min_precision are positives. (1.0, precision at 1.0 or nan) if none."""
    s, y = _check(scores, labels)
    if not 0 < min_precision <= 1:
        raise ValueError(f"min_precision must be in (0, 1], got {min_precision}")
    order = np.argsort(-s, kind="stable")
    s_sorted, pos_sorted = s[order], (y[order] == POSITIVE)
    cum_pos = np.cumsum(pos_sorted)
    for cut in np.unique(s[s >= lower]):
        n = int(np.searchsorted(-s_sorted, -cut, side="right"))  # frames with score >= cut
        prec = cum_pos[n - 1] / n
        if prec >= min_precision:
            return float(cut), float(prec)
    top = s >= 1.0
    return 1.0, float((y[top] == POSITIVE).mean()) if top.any() else float("nan")


def best_precision_threshold(scores, labels, lower: float, min_recall: float = 0.2
                             ) -> tuple[float, float]:
    """(cut, precision): among cuts >= lower (the observed scores) that keep at least
    `min_recall` of the positive frames at or above them, the one with the highest
    precision; ties go to the lowest cut. (lower, precision at lower) when no observed
    score >= lower keeps that many."""
    s, y = _check(scores, labels)
    if not 0 <= min_recall <= 1:
        raise ValueError(f"min_recall must be in [0, 1], got {min_recall}")
    pos = y == POSITIVE
    best = None
    for cut in np.unique(s[s >= lower]):
        above = s >= cut
        if pos[above].sum() < min_recall * pos.sum():
            break  # higher cuts keep even fewer
        prec = float(pos[above].mean())
        if best is None or prec > best[1]:
            best = (float(cut), prec)
    if best is None:
        above = s >= lower
        return float(lower), float(pos[above].mean()) if above.any() else float("nan")
    return best


def choose_thresholds(scores, labels, min_precision: float = 0.95,
                      min_recall: float = 0.2) -> ThresholdChoice:
    s, y = _check(scores, labels)
    lost, bacc = best_lost_threshold(s, y)
    rec, prec = recover_threshold(s, y, lost, min_precision)
    fallback = not prec >= min_precision  # also NaN: nothing scored 1.0
    if fallback:
        rec, prec = best_precision_threshold(s, y, lost, min_recall)
    return ThresholdChoice(lost, max(rec, lost), bacc, prec, int((y == POSITIVE).sum()),
                           int((y == NEGATIVE).sum()), fallback)
