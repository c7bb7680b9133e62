"""Dataset scoring on tiny fake benchmarks in each real layout, worked out by hand; result-file
I/O; the `ckd score` command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ckd_core.cli import main as ckd_main
from ckd_core.data.groundtruth import GroundTruth
from ckd_core.evaluation.results_io import (load_result, read_result_file, result_path,
                                            write_result_file)
from ckd_core.evaluation.scorer import (comparison_table, find_sequences, read_sequence_list,
                                        score_arrays, score_dataset)

GOOD = [10, 10, 20, 20]  # the GT box most frames use: x 10..29, y 10..29, centre (19.5, 19.5)


def write_rows(path: Path, rows, sep: str = ",") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(sep.join(str(v) for v in r) + "\n" for r in rows))


def gt_of(visible, thermal=None, step: int = 1) -> GroundTruth:
    v = np.asarray(visible, dtype=np.float64)
    t = v if thermal is None else np.asarray(thermal, dtype=np.float64)
    return GroundTruth(v, t, step, Path("v.txt"), Path("t.txt"))


# ---------------------------------------------------------------------------------------------
# LasHeR: frame 0 := GT, rounding, w <= 0 replacement, invalid-GT rule, mean over sequences
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def lasher(tmp_path):
    gt_root, res = tmp_path / "LasHeR", tmp_path / "results" / "mine"
    # Sequence a, 4 frames.
    write_rows(gt_root / "a" / "init.txt", [GOOD, GOOD, [0, 10, 20, 20], GOOD])
    write_rows(res / "a.txt", [
        [500, 500, 5, 5],            # 0: replaced by the GT -> d 0, IoU 1
        [22, 26, 20, 20],            # 1: d = |(12, 16)| = 20; nd = |(0.6, 0.8)| = 1;
                                     #    IoU: inter 8 x 4 = 32, union 768 -> 0.042
        [100, 100, -3, 7],           # 2: w <= 0 -> row 1 again; GT x = 0 -> invalid:
                                     #    hit for PR and NPR, miss for SR whatever the box
        [10.5, 9.5, 20.4, 19.6],     # 3: half to even -> (10, 10, 20, 20): d 0, IoU 1
    ])
    # Sequence b, 2 frames, the result has one row too many (truncated).
    write_rows(gt_root / "b" / "init.txt", [GOOD, GOOD])
    write_rows(res / "b.txt", [[0, 0, 1, 1],          # 0: replaced by the GT
                               [30.6, 10, 20, 20],    # 1: x -> 31: d = 21, nd = 1.05, IoU 0
                               [999, 999, 9, 9]])     # extra row: ignored
    (gt_root / "not_a_sequence").mkdir()              # no init.txt: not scored
    return gt_root, res


def test_lasher_hand_worked(lasher):
    gt_root, res = lasher
    score = score_dataset("lasher", gt_root, res)
    assert [s.name for s in score.sequences] == ["a", "b"]
    a, b = score.sequences
    # a: PR(20) frames 0, 1 (d = 20 counts), 2 (invalid GT), 3 -> 4/4
    #    NPR(0.2) frames 0, 2, 3 -> 3/4
    #    SR: thresholds passed per frame 20 + 1 (0.042 > 0 only) + 0 + 20 = 41 of 84
    assert a.values == {"PR": 1.0, "NPR": 0.75, "SR": pytest.approx(41 / 84)}
    # b: PR frame 0 only (d = 21 > 20) -> 1/2; NPR 1/2; SR (20 + 0) / 42
    assert b.values == {"PR": 0.5, "NPR": 0.5, "SR": pytest.approx(20 / 42)}
    assert score.headline["PR"] == pytest.approx((1 + 0.5) / 2)
    assert score.headline["NPR"] == pytest.approx((0.75 + 0.5) / 2)
    assert score.headline["SR"] == pytest.approx((41 / 84 + 20 / 42) / 2)
    assert score.curves["PR"].values[19] == pytest.approx((3 / 4 + 1 / 2) / 2)  # d = 20 misses
    assert (a.n_frames, b.n_frames) == (4, 2)


def test_lasher_w_replacement_uses_previous_row_not_the_bad_one():
    # Frame 2 predicts w = 0.4, which rounds to 0 -> replaced by frame 1, a perfect box.
    gts = {"s": gt_of([GOOD, GOOD, GOOD])}
    score = score_arrays("lasher", gts, {"s": np.array([GOOD, GOOD, [200, 200, 0.4, 20]])})
    assert score.headline["PR"] == 1.0 and score.headline["SR"] == pytest.approx(20 / 21)


# ---------------------------------------------------------------------------------------------
# RGBT234: two GTs (min distance / max IoU), frame 0 scored as written, no LasHeR rules
# ---------------------------------------------------------------------------------------------

def test_rgbt234_mpr_msr(tmp_path):
    gt_root, res = tmp_path / "RGBT234", tmp_path / "res"
    write_rows(gt_root / "car" / "visible.txt", [GOOD, GOOD, GOOD])
    write_rows(gt_root / "car" / "infrared.txt", [GOOD, [40, 10, 20, 20], [0, 10, 20, 20]])
    write_rows(res / "car.txt", [
        [200, 200, 20, 20],   # 0: far from both; scored as written (no GT replacement)
        [40, 10, 20, 20],     # 1: d_v = 30, d_t = 0 -> 0; IoU_v = 0, IoU_t = 1 -> 1
        [14, 10, 20, 20],     # 2: d_v = 4, d_t = 14 -> 4; IoU_v: inter 16 x 20 = 320,
                              #    union 480 -> 2/3 (passes 0..0.65: 14 thresholds);
                              #    IoU_t (x 0..19): inter 6 x 20 = 120 / 680 -> smaller
    ], sep="\t")
    score = score_dataset("rgbt234", gt_root, res)
    assert score.headline["MPR"] == pytest.approx(2 / 3)
    assert score.headline["MSR"] == pytest.approx((0 + 20 + 14) / 63)
    # No invalid-GT rule here: the thermal GT with x = 0 is an ordinary box.


def test_rgbt234_iou_tie_depends_on_the_toolkit_numpy_version():
    # IoU = 300 / 500 = 0.6 exactly; threshold 12 is linspace's 0.6000000000000001.
    # numpy 2 (float32 math): float32(0.6) = 0.60000002 > 0.6000000000000001 -> 13 thresholds
    # numpy 1 (float64 math): 0.6 > 0.6000000000000001 is false -> 12 thresholds
    gts = {"s": gt_of([GOOD])}
    res = {"s": np.array([[15, 10, 20, 20]])}
    assert score_arrays("rgbt234", gts, res).headline["MSR"] == pytest.approx(13 / 21)
    assert score_arrays("rgbt234", gts, res, toolkit_numpy=1).headline["MSR"] == \
        pytest.approx(12 / 21)
    with pytest.raises(ValueError, match="toolkit_numpy must be 2 or 1"):
        score_arrays("rgbt234", gts, res, toolkit_numpy=3)


# ---------------------------------------------------------------------------------------------
# RGBT210: one GT (init.txt), frame 0 := GT, no invalid-GT rule
# ---------------------------------------------------------------------------------------------

def test_rgbt210_frame0_replaced_no_invalid_rule(tmp_path):
    gt_root, res = tmp_path / "RGBT210", tmp_path / "res"
    write_rows(gt_root / "s" / "init.txt", [GOOD, [0, 10, 20, 20]])
    write_rows(res / "s.txt", [[300, 300, 5, 5],    # replaced by the GT: d 0, IoU 1
                               [60, 10, 20, 20]])    # GT x = 0 is an ordinary box: d = 60,
    score = score_dataset("rgbt210", gt_root, res)   # IoU 0 (a LasHeR GT would be a PR hit)
    assert score.headline == {"PR": 0.5, "SR": pytest.approx(20 / 42)}


# ---------------------------------------------------------------------------------------------
# GTOT: corners, strict 5 px, trapezoid, pooled over frames
# ---------------------------------------------------------------------------------------------

def test_gtot_pooled_strict_trapezoid(tmp_path):
    gt_root, res = tmp_path / "GTOT", tmp_path / "res"
    corners = [10, 10, 30, 30]   # x1 y1 x2 y2 -> xywh (10, 10, 20, 20) with w = x2 - x1
    for name, n in (("A", 3), ("B", 1)):
        write_rows(gt_root / name / "groundTruth_v.txt", [corners] * n, sep=" ")
        write_rows(gt_root / name / "groundTruth_i.txt", [corners] * n, sep=" ")
    write_rows(res / "A.txt", [GOOD,                 # d 0 (< 5), IoU 1 (so no +1 in w)
                               [13, 14, 20, 20],     # d = |(3, 4)| = 5: NOT < 5;
                                                     # IoU 17 x 16 = 272 / 528 = 0.515
                               [100, 100, 20, 20]])  # miss, IoU 0
    write_rows(res / "B.txt", [GOOD])                # d 0, IoU 1
    score = score_dataset("gtot", gt_root, res)
    # Pooled over the 4 frames: 2 below 5 px -> 0.5 (a mean of sequences would say 2/3).
    assert score.headline["MPR"] == 0.5
    assert [s.values["MPR"] for s in score.sequences] == [pytest.approx(1 / 3), 1.0]
    # Success counts: 3 for th = 0..0.5, 2 for 0.55..0.95, 0 at 1 ->
    # (0.05 * 48 + 0.05 * 51) / 2 / 4 = 0.61875
    assert score.headline["MSR"] == pytest.approx(0.61875)
    assert score.pooled


def test_gtot_perfect_tracker_and_normal_sr():
    gts = {"s": gt_of([GOOD] * 5)}
    perfect = {"s": np.array([GOOD] * 5, dtype=float)}
    assert score_arrays("gtot", gts, perfect).headline == {"MPR": 1.0,
                                                           "MSR": pytest.approx(0.975)}
    assert score_arrays("rgbt234", gts, perfect).headline["MSR"] == pytest.approx(20 / 21)


# ---------------------------------------------------------------------------------------------
# VTUAV: every 10th result row, no rounding, no invalid-GT rule, RGB-only numbers
# ---------------------------------------------------------------------------------------------

def test_vtuav_subsampling_no_rounding(tmp_path):
    gt_root, res = tmp_path / "test_ST", tmp_path / "res"
    write_rows(gt_root / "uav" / "rgb.txt", [[0, 10, 20, 20], GOOD, GOOD], sep=" ")
    write_rows(gt_root / "uav" / "ir.txt", [[0, 10, 20, 20], GOOD, [40, 10, 20, 20]], sep=" ")
    dense = np.full((23, 4), 500.0)      # frames 0..22; only 0, 10, 20 are scored
    dense[0] = [0, 10, 20, 20]           # frame 0: GT x = 0 is fine here (no LasHeR rule)
    dense[10] = [10.4, 10, 20, 20]       # d = 0.4 (not rounded to 0); IoU 19.6 x 20 / 408
    dense[20] = [40, 10, 20, 20]         # d_rgb = 30, d_ir = 0
    res.mkdir()
    write_result_file(result_path(res, "uav"), dense)
    score = score_dataset("vtuav", gt_root, res)
    h = score.headline
    assert h["MPR"] == 1.0 and h["PR_RGB"] == pytest.approx(2 / 3)
    # IoU frame 10: 392 / 408 = 0.961 passes 20 thresholds; frame 20: max(0, 1)
    assert h["MSR"] == pytest.approx(60 / 63) and h["SR_RGB"] == pytest.approx(40 / 63)
    # Unrounded: at t = 0 frame 10 (d = 0.4) misses.
    assert score.curves["MPR"].values[0] == pytest.approx(2 / 3)
    assert score.sequences[0].n_frames == 3


def test_vtuav_short_result_names_the_step(tmp_path):
    gt_root, res = tmp_path / "gt", tmp_path / "res"
    write_rows(gt_root / "uav" / "rgb.txt", [GOOD] * 3, sep=" ")
    write_rows(gt_root / "uav" / "ir.txt", [GOOD] * 3, sep=" ")
    write_rows(res / "uav.txt", [GOOD] * 20)   # frames 0..19: frame 20 is missing
    with pytest.raises(ValueError, match=r"'uav'.* 20 rows .* 3 rows \(one GT row every 10 "
                                         r"frames\), which needs 21"):
        score_dataset("vtuav", gt_root, res)


# ---------------------------------------------------------------------------------------------
# Errors, sequence lists, reports
# ---------------------------------------------------------------------------------------------

def test_short_result_is_an_error_naming_sequence_and_lengths(lasher):
    gt_root, res = lasher
    write_rows(res / "a.txt", [GOOD] * 3)
    with pytest.raises(ValueError, match=r"sequence 'a'.* 3 rows but the ground truth has 4"):
        score_dataset("lasher", gt_root, res)


@pytest.mark.parametrize("row, words", [("1,2,nan,4", "NaN or infinity"),
                                        ("1,2,three,4", "not four numbers")])
def test_bad_result_rows_name_file_and_line(lasher, row, words):
    gt_root, res = lasher
    (res / "b.txt").write_text(f"1,2,3,4\n{row}\n")
    with pytest.raises(ValueError, match=f"b.txt, line 2.*{words}"):
        score_dataset("lasher", gt_root, res)


def test_empty_ground_truth_names_the_sequence(lasher):
    gt_root, res = lasher
    (gt_root / "b" / "init.txt").write_text("\n")
    with pytest.raises(ValueError, match="sequence 'b': nothing to score"):
        score_dataset("lasher", gt_root, res)


def test_missing_result_file(lasher):
    gt_root, res = lasher
    (res / "b.txt").unlink()
    with pytest.raises(FileNotFoundError, match="sequence 'b': no result file"):
        score_dataset("lasher", gt_root, res)


def test_sequence_list_and_discovery(lasher, tmp_path):
    gt_root, res = lasher
    assert find_sequences("lasher", gt_root) == ["a", "b"]
    listed = tmp_path / "test.txt"
    listed.write_text("b\n\n")
    assert read_sequence_list(listed) == ["b"]
    score = score_dataset("lasher", gt_root, res, sequences=read_sequence_list(listed))
    assert [s.name for s in score.sequences] == ["b"] and score.headline["PR"] == 0.5
    listed.write_text("a\na\n")
    with pytest.raises(ValueError, match="'a' is listed twice"):
        read_sequence_list(listed)
    with pytest.raises(FileNotFoundError, match="no rgbt234 sequence folders"):
        find_sequences("rgbt234", gt_root)


def test_unknown_dataset():
    with pytest.raises(ValueError, match="cannot score dataset 'otb'"):
        score_arrays("otb", {"s": gt_of([GOOD])}, {"s": np.array([GOOD])})


def test_json_subset_and_table(lasher):
    gt_root, res = lasher
    score = score_dataset("lasher", gt_root, res, tracker="mine")
    doc = json.loads(score.to_json())
    assert doc["headline"] == score.headline and doc["n_frames"] == 6
    assert len(doc["curves"]["NPR"]["thresholds"]) == 51
    assert doc["sequences"][0] == {"name": "a", "n_frames": 4, **score.sequences[0].values}
    only_b = score.subset(["b"])
    assert only_b.headline["PR"] == 0.5
    other = score_dataset("lasher", gt_root, res, sequences=["a"], tracker="other")
    table = comparison_table({"mine": score, "other": other})
    lines = table.splitlines()
    assert lines[0] == "| Tracker | PR | NPR | SR |"
    assert lines[2].startswith("| other | 100.00 | 75.00 |")   # best PR first
    assert lines[3].startswith("| mine | 75.00 | 62.50 |")


# ---------------------------------------------------------------------------------------------
# Result files
# ---------------------------------------------------------------------------------------------

def test_write_result_file_round_trips_exactly(tmp_path):
    boxes = np.array([[0.1, 1 / 3, 123.456789, 7.0], [-2.5, 1e-7, 1e6, 2.0]])
    path = write_result_file(tmp_path / "out" / "seq.txt", boxes)
    lines = path.read_text().splitlines()
    assert lines[0] == "0.1,0.3333333333333333,123.456789,7.0"   # one delimiter, floats
    np.testing.assert_array_equal(read_result_file(path), boxes)
    assert [p.name for p in path.parent.iterdir()] == ["seq.txt"]  # no temporary left


def test_write_result_file_refuses_nan_and_keeps_the_old_file(tmp_path):
    path = write_result_file(tmp_path / "s.txt", [[1, 2, 3, 4]])
    with pytest.raises(ValueError, match="frame 1 is"):
        write_result_file(path, [[1, 2, 3, 4], [1, np.nan, 3, 4]])
    assert path.read_text() == "1.0,2.0,3.0,4.0\n"
    with pytest.raises(ValueError, match=r"expected \(frames, 4\)"):
        write_result_file(path, [[1, 2, 3]])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.txt"]


def test_load_result_truncates_longer_files(tmp_path):
    write_result_file(tmp_path / "s.txt", np.arange(20.0).reshape(5, 4))
    np.testing.assert_array_equal(load_result(tmp_path, "s", 2), [[0, 1, 2, 3], [4, 5, 6, 7]])
    np.testing.assert_array_equal(load_result(tmp_path, "s", 2, step=3)[1], [12, 13, 14, 15])


# ---------------------------------------------------------------------------------------------
# ckd score
# ---------------------------------------------------------------------------------------------

def test_cli_one_tracker(lasher, capsys):
    gt_root, res = lasher
    assert ckd_main(["score", "--dataset", "lasher", "--gt-root", str(gt_root),
                     "--results", str(res)]) == 0
    out = capsys.readouterr().out
    assert "LasHeR  mine: PR 75.00  NPR 62.50  SR 48.21" in out


def test_cli_several_trackers_json_and_plots(lasher, tmp_path, capsys):
    gt_root, res = lasher
    other = tmp_path / "other"
    other.mkdir()
    for name in ("a", "b"):
        (other / f"{name}.txt").write_text((res / f"{name}.txt").read_text())
    (other / "b.txt").write_text("0,0,1,1\n10,10,20,20\n")    # b perfect -> PR 100
    out_json, plots = tmp_path / "s.json", tmp_path / "plots"
    rc = ckd_main(["score", "--dataset", "lasher", "--gt-root", str(gt_root),
                   "--results", f"base={res}", "--results", f"better={other}",
                   "--json", str(out_json), "--plots", str(plots)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "| better | 100.00 |" in out and "| base | 75.00 |" in out
    doc = json.loads(out_json.read_text())
    assert set(doc["trackers"]) == {"base", "better"}
    assert doc["trackers"]["better"]["headline"]["PR"] == 1.0
    pngs = sorted(p.name for p in plots.iterdir())
    assert pngs == ["lasher_NPR.png", "lasher_PR.png", "lasher_SR.png"]
    assert all((plots / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_cli_errors_exit_2_with_the_reason(lasher, tmp_path, capsys):
    gt_root, res = lasher
    write_rows(res / "b.txt", [GOOD])
    rc = ckd_main(["score", "--dataset", "lasher", "--gt-root", str(gt_root),
                   "--results", str(res)])
    assert rc == 2
    assert "sequence 'b'" in capsys.readouterr().err
    rc = ckd_main(["score", "--dataset", "lasher", "--gt-root", str(gt_root),
                   "--results", str(tmp_path / "missing")])
    assert rc == 2 and "is not a folder" in capsys.readouterr().err
    rc = ckd_main(["score", "--dataset", "lasher", "--gt-root", str(gt_root),
                   "--results", f"x={res}", "--results", f"x={res}"])
    assert rc == 2 and "two result folders are named 'x'" in capsys.readouterr().err
