"""LOST / recover threshold choice, against values worked out by hand."""

import numpy as np
import pytest

from ckd_core.tracking.lost_calibration import (NEGATIVE, POSITIVE, UNUSED,
                                                best_lost_threshold, best_precision_threshold,
                                                choose_thresholds, label_frames,
                                                recover_threshold)

P, N, U = POSITIVE, NEGATIVE, UNUSED


def test_label_frames_by_iou_and_absence():
    gt = [[10, 10, 10, 10],   # frame 0: init, never used
          [10, 10, 10, 10],   # same box: IoU 1 -> positive
          [15, 10, 10, 10],   # inclusive boxes: overlap 5x10 = 50, union 150 -> 1/3: unused
          [40, 40, 10, 10],   # no overlap -> negative
          [0, 0, 0, 0]]       # out of view -> negative whatever the box
    pred = [[10, 10, 10, 10]] * 5
    assert label_frames(pred, gt).tolist() == [U, P, U, N, N]
    # with on_iou 1/3 the third frame becomes positive
    assert label_frames(pred, gt, on_iou=0.3).tolist() == [U, P, P, N, N]


def test_label_frames_rejects_bad_input():
    with pytest.raises(ValueError, match="predicted boxes"):
        label_frames([[0, 0, 1, 1]], [[0, 0, 1, 1]] * 2)
    with pytest.raises(ValueError, match="off_iou"):
        label_frames([[0, 0, 1, 1]], [[0, 0, 1, 1]], on_iou=0.1, off_iou=0.5)


def test_best_lost_threshold_separable():
    # positives 0.6, 0.7, 0.8; negatives 0.1, 0.2. Cut 0.6: TPR 3/3, TNR 2/2 -> 1.0; any cut
    # in (0.2, 0.6] does as well, and the tried cuts are the observed values, lowest wins.
    cut, bacc = best_lost_threshold([0.6, 0.7, 0.8, 0.1, 0.2], [P, P, P, N, N])
    assert cut == 0.6 and bacc == 1.0


def test_best_lost_threshold_overlapping_by_hand():
    # pos: 0.3, 0.5, 0.9; neg: 0.2, 0.4, 0.6, unused 0.0 ignored.
    # cut 0.3: TPR 3/3, TNR 1/3 -> 2/3;  cut 0.5: TPR 2/3, TNR 2/3 -> 2/3;
    # cut 0.9: TPR 1/3, TNR 3/3 -> 2/3;  cut 0.2: TPR 1, TNR 0 -> 1/2; cut 0.4: 2/3, 1/3 -> 1/2
    cut, bacc = best_lost_threshold([0.3, 0.5, 0.9, 0.2, 0.4, 0.6, 0.0],
                                    [P, P, P, N, N, N, U])
    assert cut == 0.3 and bacc == pytest.approx(2 / 3)


def test_recover_threshold_precision_by_hand():
    scores = [0.9, 0.8, 0.7, 0.6, 0.5]
    labels = [P, P, N, P, N]
    # >= 0.9: 1/1; >= 0.8: 2/2; >= 0.7: 2/3; >= 0.6: 3/4; >= 0.5: 3/5
    assert recover_threshold(scores, labels, lower=0.5, min_precision=0.75) == (0.6, 0.75)
    assert recover_threshold(scores, labels, lower=0.5, min_precision=0.95) == (0.8, 1.0)
    assert recover_threshold(scores, labels, lower=0.85, min_precision=0.5) == (0.9, 1.0)
    # nothing precise enough -> 1.0 (never re-acquire on score alone)
    cut, prec = recover_threshold([0.9, 0.8], [N, P], lower=0.0, min_precision=0.9)
    assert cut == 1.0 and np.isnan(prec)


def test_best_precision_threshold_by_hand():
    scores = [0.9, 0.8, 0.7, 0.6, 0.5]
    labels = [N, P, N, P, P]
    # >= 0.9: 0/1 (recall 0/3); >= 0.8: 1/2 (1/3); >= 0.7: 1/3 (1/3); >= 0.6: 2/4 (2/3);
    # >= 0.5: 3/5 (3/3)
    assert best_precision_threshold(scores, labels, lower=0.5, min_recall=0.2) == (0.5, 0.6)
    # from 0.55: 0.8 and 0.6 tie at 1/2 -> the lower cut
    assert best_precision_threshold(scores, labels, lower=0.55, min_recall=0.2) == (0.6, 0.5)
    # recall >= 0.5 rules out 0.8 and 0.7 (1/3 each)
    assert best_precision_threshold(scores, labels, lower=0.55, min_recall=0.5) == (0.6, 0.5)
    # no cut from 0.85 keeps a positive: (lower, precision at lower)
    assert best_precision_threshold(scores, labels, lower=0.85, min_recall=0.2) == (0.85, 0.0)


def test_choose_thresholds_falls_back_when_precision_is_unreachable():
    # a distractor scores as high as the target: no cut reaches 95% precision
    c = choose_thresholds([0.9, 0.8, 0.7, 0.6, 0.5, 0.1], [N, P, N, P, P, N],
                          min_precision=0.95, min_recall=0.2)
    # lost: cut 0.5 -> TPR 1, TNR 1/3 -> 2/3; cut 0.6 -> 2/3, 1/3 -> 1/2; cut 0.8 -> 1/3,
    # 2/3 -> 1/2; cut 0.9 -> 0, 2/3 -> 1/3; cut 0.1 -> 1, 0 -> 1/2: 0.5 wins.
    assert c.lost_threshold == 0.5
    assert c.recover_fallback and (c.recover_threshold, c.recover_precision) == (0.5, 0.6)
    ok = choose_thresholds([0.6, 0.7, 0.8, 0.1, 0.2, 0.65], [P, P, P, N, N, N])
    assert not ok.recover_fallback


def test_choose_thresholds_orders_and_counts():
    c = choose_thresholds([0.6, 0.7, 0.8, 0.1, 0.2, 0.65], [P, P, P, N, N, N],
                          min_precision=0.95)
    # lost: cut 0.6 gives TPR 1, TNR 2/3 (0.65 is a negative above it) -> 5/6;
    # cut 0.7 gives TPR 2/3, TNR 1 -> 5/6 too: the lower cut wins.
    assert c.lost_threshold == 0.6 and c.balanced_accuracy == pytest.approx(5 / 6)
    # recover: >= 0.6: 3/4; >= 0.65: 2/3; >= 0.7: 2/2 -> 0.7
    assert c.recover_threshold == 0.7 and c.recover_precision == 1.0
    assert (c.positives, c.negatives) == (3, 3)


def test_choose_thresholds_needs_both_classes_and_finite_scores():
    with pytest.raises(ValueError, match="both positive and negative"):
        choose_thresholds([0.5, 0.6], [P, P])
    with pytest.raises(ValueError, match="NaN"):
        choose_thresholds([0.5, float("nan")], [P, N])
