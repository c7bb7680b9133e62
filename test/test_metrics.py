"""Per-frame errors, curves and the toolkit's special rules, on cases worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from ckd_core.evaluation import metrics as M

F32 = np.float32


def boxes(*rows, dtype=np.float64):
    return np.array(rows, dtype=dtype).reshape(-1, 4)


# ---------------------------------------------------------------------------------------------
# Thresholds
# ---------------------------------------------------------------------------------------------

def test_threshold_grids_and_headline_indices():
    assert len(M.PRECISION_THRESHOLDS) == 51 and M.PRECISION_THRESHOLDS[M.PRECISION_INDEX] == 20
    assert M.NORM_PRECISION_THRESHOLDS[M.NORM_PRECISION_INDEX] == 0.2
    assert M.NORM_PRECISION_THRESHOLDS[-1] == 0.5
    assert M.GTOT_PRECISION_THRESHOLDS[M.GTOT_PRECISION_INDEX] == 5.0
    assert M.GTOT_PRECISION_THRESHOLDS[1] == 0.5 and M.GTOT_PRECISION_THRESHOLDS[-1] == 25
    assert len(M.SUCCESS_THRESHOLDS) == 21 and M.SUCCESS_THRESHOLDS[10] == 0.5
    # Built like the toolkit (linspace), not 3 / 20: see the metrics docstring.
    assert M.SUCCESS_THRESHOLDS[3] == 0.15000000000000002
    np.testing.assert_array_equal(M.VTUAV_SUCCESS_THRESHOLDS[3], 0.15)
    with pytest.raises(ValueError):
        M.PRECISION_THRESHOLDS[0] = 1.0  # read-only


# ---------------------------------------------------------------------------------------------
# Rounding and the LasHeR rules
# ---------------------------------------------------------------------------------------------

def test_round_half_to_even():
    # 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, 3.5 -> 4, -0.5 -> -0, -1.5 -> -2
    out = M.toolkit_round([0.5, 1.5, 2.5, 3.5, -0.5, -1.5, 2.4999, 2.6])
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [0, 2, 2, 4, 0, -2, 2, 3])


def test_round_reads_float32_first():
    # float32 has ~7 significant digits: 2.50000001 is exactly 2.5 there and rounds (to even)
    # to 2; in float64 it is above 2.5 and would round to 3. Likewise 3.49999999 -> 3.5 -> 4
    # (float64: 3). 16777217 = 2^24 + 1 is not a float32: it reads as 16777216.
    np.testing.assert_array_equal(M.toolkit_round([2.50000001, 3.49999999, 16777217.0]),
                                  [2, 4, 16777216])
    assert np.round(2.50000001) == 3 and np.round(3.49999999) == 3


def test_replace_invalid_predictions_chains_and_keeps_row0():
    pred = boxes([5, 5, 0, 10],     # row 0: never replaced (the scorer set it to the GT)
                 [1, 1, 10, 10],    # good
                 [2, 2, 0, 10],     # w = 0  -> row 1
                 [3, 3, 10, -1],    # h < 0  -> row 2, which is now row 1
                 [4, 4, 10, 10],    # good
                 [6, 6, -5, -5])    # -> row 4
    out = M.replace_invalid_predictions(pred)
    np.testing.assert_array_equal(out, boxes([5, 5, 0, 10], [1, 1, 10, 10], [1, 1, 10, 10],
                                             [1, 1, 10, 10], [4, 4, 10, 10], [4, 4, 10, 10]))


def test_invalid_gt_any_value_at_or_below_zero():
    gt = boxes([10, 10, 20, 20],   # valid
               [0, 10, 20, 20],    # x = 0: a box on the left border counts as invalid
               [10, 0, 20, 20],    # y = 0
               [10, 10, 0, 20],    # w = 0
               [10, 10, 20, -1],   # h < 0
               [0, 0, 0, 0],       # target absent
               [0.5, 1, 1, 1])     # small but positive: valid
    np.testing.assert_array_equal(M.invalid_gt_mask(gt), [0, 1, 1, 1, 1, 1, 0])


def test_marked_invalid_frame_hits_precision_and_misses_success():
    gt = boxes([0, 0, 0, 0])
    d = M.mark_invalid_gt(np.array([999.0]), gt)          # far away, but GT is invalid
    o = M.mark_invalid_gt(np.array([1.0]), gt)            # perfect, but GT is invalid
    assert d[0] == -1 and o[0] == -1
    assert M.precision_curve(d).min() == 1.0              # hit even at t = 0 (-1 <= 0)
    assert M.success_curve(o).max() == 0.0                # miss even at th = 0 (-1 > 0 no)


# ---------------------------------------------------------------------------------------------
# Distances
# ---------------------------------------------------------------------------------------------

def test_centres_inclusive_and_continuous():
    b = boxes([10, 20, 5, 8])
    cx, cy = M.centres(b)                      # 10 + (5 - 1) / 2 = 12, 20 + 7 / 2 = 23.5
    assert (cx[0], cy[0]) == (12.0, 23.5)
    cx, cy = M.centres(b, inclusive=False)     # 10 + 5 / 2 = 12.5, 20 + 8 / 2 = 24
    assert (cx[0], cy[0]) == (12.5, 24.0)


def test_centre_distance_hand_cases():
    gt = boxes([10, 10, 20, 20], [10, 10, 20, 20], [10, 10, 20, 20])
    pred = boxes([13, 14, 20, 20],   # same size: centre moves (3, 4) -> 5
                 [22, 26, 20, 20],   # (12, 16) -> 20 exactly
                 [10, 10, 30, 40])   # grows: centre (10 + 29/2, 10 + 39/2) vs (19.5, 19.5)
    # third: (24.5 - 19.5, 29.5 - 19.5) = (5, 10) -> sqrt(125)
    np.testing.assert_allclose(M.centre_distance(pred, gt), [5, 20, np.sqrt(125)])
    # The same in float32 (how the toolkit works) is exact for these integers.
    np.testing.assert_array_equal(M.centre_distance(pred.astype(F32), gt.astype(F32)),
                                  F32([5, 20, np.sqrt(125)]))


def test_min_distance_takes_the_closer_modality():
    pred = boxes([40, 10, 20, 20], [15, 10, 20, 20])
    gt_v = boxes([10, 10, 20, 20], [10, 10, 20, 20])
    gt_t = boxes([40, 10, 20, 20], [12, 10, 20, 20])
    # frame 0: d_v = 30, d_t = 0 -> 0; frame 1: d_v = 5, d_t = 3 -> 3
    np.testing.assert_array_equal(M.min_distance(pred, gt_v, gt_t), [0, 3])


def test_normalised_distance_hand_case():
    # GT 50 x 40, prediction moved 10 px right and 8 px down: (10/50, 8/40) = (0.2, 0.2)
    nd = M.normalised_distance(boxes([10, 8, 50, 40]), boxes([0, 0, 50, 40]))
    assert nd[0] == pytest.approx(np.hypot(0.2, 0.2), abs=1e-9)


def test_normalised_tie_is_decided_by_float32_round_off_like_the_toolkit():
    # dx = 10 on a 50 px wide GT, dy = 0: nd = 0.2 exactly on paper. The toolkit divides each
    # centre by 50 in float32 and subtracts, so the result depends on where the box is:
    # x = 0:  centres 24.5 / 34.5 -> 0.49000001 / 0.68999999 -> nd = 0.19999998807907104
    # x = 20: centres 44.5 / 54.5 -> 0.88999999 / 1.09000003 -> nd = 0.20000004768371582
    gt = boxes([0, 0, 50, 40], [20, 0, 50, 40], dtype=F32)
    pred = boxes([10, 0, 50, 40], [30, 0, 50, 40], dtype=F32)
    nd = M.normalised_distance(pred, gt)
    assert nd.dtype == F32
    assert [float(v) for v in nd] == [0.19999998807907104, 0.20000004768371582]
    # At t = 0.2 (index 20) the first is a hit and the second a miss, as in rgbt 1.0.1.
    assert M.count_within(nd, M.NORM_PRECISION_THRESHOLDS)[M.NORM_PRECISION_INDEX] == 1


# ---------------------------------------------------------------------------------------------
# IoU
# ---------------------------------------------------------------------------------------------

def test_iou_inclusive_pixels_hand_cases():
    gt = boxes([0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10])
    pred = boxes([0, 0, 10, 10],    # identical -> 1
                 [5, 0, 10, 10],    # x 5..14 vs 0..9: inter 5 x 10 = 50, union 150 -> 1/3
                 [10, 0, 10, 10],   # x 10..19 touches 0..9 without sharing a pixel -> 0
                 [0, 0, 10, 5])     # inter 10 x 5 = 50, union 100 + 50 - 50 = 100 -> 0.5
    np.testing.assert_allclose(M.iou(pred, gt), [1, 1 / 3, 0, 0.5])


def test_iou_half_is_not_a_success_at_half():
    o = M.iou(boxes([0, 0, 10, 5]), boxes([0, 0, 10, 10]))  # exactly 0.5
    curve = M.success_curve(o)
    assert curve[9] == 1.0    # 0.5 > 0.45
    assert curve[10] == 0.0   # 0.5 > 0.5 is false (strict)


def test_zero_union_is_nan_and_fails_every_threshold():
    o = M.iou(boxes([5, 5, 0, 0]), boxes([1, 1, 0, 0]))
    assert np.isnan(o[0])
    assert M.success_curve(o).max() == 0.0   # NaN > 0 is false


def test_no_overlap_fails_even_threshold_zero():
    assert M.success_curve(np.array([0.0]))[0] == 0.0   # 0 > 0 is false


def test_max_overlap_takes_the_better_modality_and_propagates_nan():
    pred = boxes([0, 0, 10, 10], [0, 0, 10, 10])
    gt_v = boxes([5, 0, 10, 10], [0, 0, 0, 0])
    gt_t = boxes([0, 0, 10, 10], [3, 0, 10, 10])
    # frame 0: max(1/3, 1) = 1; frame 1: empty visible GT -> inter 0, union 100 -> 0;
    # thermal: x 3..12 vs 0..9: inter 7 x 10 = 70, union 130 -> 7/13
    np.testing.assert_allclose(M.max_overlap(pred, gt_v, gt_t), [1, 7 / 13])
    # An empty prediction on an empty visible GT: 0 / 0 = NaN, and numpy's maximum keeps it
    # even though the thermal IoU is a valid 0: the toolkit fails such a frame.
    o = M.max_overlap(boxes([0, 0, 0, 0]), boxes([0, 0, 0, 0]), boxes([0, 0, 10, 10]))
    assert np.isnan(o[0])


def test_iou_tie_at_a_non_representable_threshold():
    # IoU = 3 / 20 (3 x 1 inside 20 x 1). Threshold 3 is linspace's 0.15000000000000002.
    # float32 (the toolkit under numpy 2): 3 / 20 = 0.150000006 > 0.15000000000000002 -> success
    # float64: 0.15 (= 0.1499999999999999944) > 0.15000000000000002 -> failure
    pred, gt = boxes([0, 0, 3, 1]), boxes([0, 0, 20, 1])
    assert M.count_above(M.iou(pred.astype(F32), gt.astype(F32)), M.SUCCESS_THRESHOLDS)[3] == 1
    assert M.count_above(M.iou(pred, gt), M.SUCCESS_THRESHOLDS)[3] == 0


# ---------------------------------------------------------------------------------------------
# Curves and scores
# ---------------------------------------------------------------------------------------------

def test_precision_curve_counts_d_equal_t():
    d = np.array([0.0, 0.5, 20.0, 20.5, 51.0])
    curve = M.precision_curve(d)
    # t = 0: {0}; t = 1: {0, 0.5}; t = 20: {0, 0.5, 20}; t = 50: all but 51
    assert curve[0] == 1 / 5 and curve[1] == 2 / 5
    assert curve[19] == 2 / 5 and curve[20] == 3 / 5 and curve[21] == 4 / 5
    assert curve[50] == 4 / 5


def test_gtot_precision_is_strict():
    d = np.array([4.5, 5.0, 0.0])
    counts = M.count_within(d, M.GTOT_PRECISION_THRESHOLDS, strict=True)
    assert counts[0] == 0           # 0 < 0 is false
    assert counts[9] == 1           # t = 4.5: only d = 0
    assert counts[10] == 2          # t = 5: 0 and 4.5; d = 5 is NOT < 5
    assert counts[11] == 3          # t = 5.5


def test_success_score_of_a_perfect_tracker_is_20_over_21():
    curve = M.success_curve(np.ones(7))
    # IoU 1 > th for th = 0, ..., 0.95 (20 points) but not for th = 1
    np.testing.assert_array_equal(curve, [1] * 20 + [0])
    assert M.success_score(curve) == pytest.approx(20 / 21)


def test_trapezoid_success_perfect_and_hand_case():
    n = 4
    perfect = M.count_above(np.ones(n), M.SUCCESS_THRESHOLDS)          # [4]*20 + [0]
    # (0.05 * (19 * 4) + 0.05 * (20 * 4)) / 2 / 4 = (3.8 + 4) / 8 = 0.975
    assert M.trapezoid_success_score(perfect, n) == pytest.approx(0.975)
    # IoUs 1, 1, 0.52, 0: counts 3 for th = 0..0.5 (11 points), 2 for 0.55..0.95 (9), 0 at 1
    counts = M.count_above(np.array([1.0, 1.0, 0.52, 0.0]), M.SUCCESS_THRESHOLDS)
    np.testing.assert_array_equal(counts, [3] * 11 + [2] * 9 + [0])
    # a = 0.05 * (10 * 3 + 9 * 2) = 2.4, b = 0.05 * (11 * 3 + 9 * 2) = 2.55
    # (2.4 + 2.55) / 2 / 4 = 0.61875
    assert M.trapezoid_success_score(counts, n) == pytest.approx(0.61875)


def test_empty_curves_are_an_error():
    with pytest.raises(ValueError, match="zero frames"):
        M.precision_curve(np.zeros(0))
    with pytest.raises(ValueError, match="zero frames"):
        M.success_curve(np.zeros(0))
