"""Ground-truth parsing: delimiters, error messages, and each dataset's layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ckd_core.data.groundtruth import (DATASETS, corners_to_xywh, has_groundtruth,
                                       load_groundtruth, read_box_file)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------------------------
# read_box_file
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "1,2,3,4\n5,6,7,8\n",            # comma (LasHeR, RGBT234)
    "1\t2\t3\t4\n5\t6\t7\t8\n",      # tab (GTOT init.txt)
    "1 2 3 4\n5  6   7 8\n",         # spaces, runs of them (GTOT corners, VTUAV)
    "1, 2,\t3 4\n5 ,6\t7,8",         # mixed, no final newline
    "1,2,3,4\r\n5,6,7,8\r\n\r\n\n",  # Windows line ends, blank lines at the end
])
def test_read_box_file_delimiters(tmp_path, text):
    boxes = read_box_file(_write(tmp_path / "gt.txt", text))
    assert boxes.dtype == np.float64
    np.testing.assert_array_equal(boxes, [[1, 2, 3, 4], [5, 6, 7, 8]])


def test_read_box_file_keeps_decimals_and_negatives(tmp_path):
    boxes = read_box_file(_write(tmp_path / "r.txt", "-1.5,2.25,1e2,0.1\n"))
    np.testing.assert_array_equal(boxes, [[-1.5, 2.25, 100.0, 0.1]])


def test_read_box_file_empty_file_has_no_rows(tmp_path):
    assert read_box_file(_write(tmp_path / "e.txt", "\n")).shape == (0, 4)


@pytest.mark.parametrize("text, line, words", [
    ("1,2,3,4\n1,2,3\n", 2, "has 3 values; expected 4"),
    ("1,2,3,4,5\n", 1, "has 5 values"),
    ("1,2,x,4\n", 1, "is not four numbers"),
    ("1,2,nan,4\n", 1, "NaN or infinity"),
    ("1,2,3,4\n1,2,inf,4\n", 2, "NaN or infinity"),
    ("1,,2,3\n", 1, "empty field"),
    ("1,2,,3,4\n", 1, "empty field"),  # would be 4 numbers if ",," were merged
    ("1,2,3,4,\n", 1, "empty field"),
    ("1,2,3,4\n\n5,6,7,8\n", 2, "is blank, but boxes follow"),
])
def test_read_box_file_errors_name_file_and_line(tmp_path, text, line, words):
    path = _write(tmp_path / "bad.txt", text)
    with pytest.raises(ValueError) as info:
        read_box_file(path)
    msg = str(info.value)
    assert f"{path}, line {line}" in msg
    assert words in msg


def test_read_box_file_missing(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_box_file(tmp_path / "nope.txt")


# ---------------------------------------------------------------------------------------------
# load_groundtruth, one case per layout
# ---------------------------------------------------------------------------------------------

def test_lasher_reads_init_txt_for_both(tmp_path):
    _write(tmp_path / "init.txt", "1,2,3,4\n0,0,0,0\n")
    _write(tmp_path / "visible.txt", "9,9,9,9\n9,9,9,9\n")  # init.txt wins
    gt = load_groundtruth("lasher", tmp_path)
    np.testing.assert_array_equal(gt.visible, [[1, 2, 3, 4], [0, 0, 0, 0]])  # zero row kept
    np.testing.assert_array_equal(gt.thermal, gt.visible)
    assert gt.frame_step == 1 and len(gt) == 2
    assert gt.visible_file == gt.thermal_file == tmp_path / "init.txt"


def test_lasher_falls_back_to_visible_and_infrared(tmp_path):
    _write(tmp_path / "visible.txt", "1,2,3,4\n")
    _write(tmp_path / "infrared.txt", "5,6,7,8\n")
    gt = load_groundtruth("lasher", tmp_path)
    np.testing.assert_array_equal(gt.visible, [[1, 2, 3, 4]])
    np.testing.assert_array_equal(gt.thermal, [[5, 6, 7, 8]])


def test_rgbt234_two_files(tmp_path):
    _write(tmp_path / "visible.txt", "1,2,3,4\n")
    _write(tmp_path / "infrared.txt", "2,3,4,5\n")
    _write(tmp_path / "init.txt", "9,9,9,9\n")  # not used by RGBT234
    gt = load_groundtruth("rgbt234", tmp_path)
    np.testing.assert_array_equal(gt.visible, [[1, 2, 3, 4]])
    np.testing.assert_array_equal(gt.thermal, [[2, 3, 4, 5]])


def test_rgbt210_init_for_both(tmp_path):
    _write(tmp_path / "init.txt", "1,2,3,4\n")
    gt = load_groundtruth("rgbt210", tmp_path)
    np.testing.assert_array_equal(gt.visible, gt.thermal)


def test_gtot_corners_become_xywh_without_plus_one(tmp_path):
    # x1 y1 x2 y2 = 10 20 50 80 -> w = 50 - 10 = 40, h = 80 - 20 = 60 (not 41 x 61)
    _write(tmp_path / "groundTruth_v.txt", "10 20 50 80\n")
    _write(tmp_path / "groundTruth_i.txt", "11 21 51 81\n")
    gt = load_groundtruth("gtot", tmp_path)
    np.testing.assert_array_equal(gt.visible, [[10, 20, 40, 60]])
    np.testing.assert_array_equal(gt.thermal, [[11, 21, 40, 60]])


def test_gtot_conversion_happens_in_the_requested_dtype(tmp_path):
    # float32 first, then subtract: x2 = 0.1 + 1e-9 is 0.1 in float32, so w = 0 exactly,
    # whereas float64 keeps the 1e-9.
    _write(tmp_path / "groundTruth_v.txt", "0.1 0 0.100000001 1\n")
    _write(tmp_path / "groundTruth_i.txt", "0.1 0 0.100000001 1\n")
    assert load_groundtruth("gtot", tmp_path, dtype=np.float32).visible[0, 2] == 0.0
    assert load_groundtruth("gtot", tmp_path).visible[0, 2] == pytest.approx(1e-9, rel=1e-3)


def test_corners_to_xywh_hand_case():
    np.testing.assert_array_equal(corners_to_xywh(np.array([[1.0, 2.0, 4.0, 8.0]])),
                                  [[1, 2, 3, 6]])


def test_vtuav_one_row_every_ten_frames(tmp_path):
    _write(tmp_path / "rgb.txt", "1 2 3 4\n5 6 7 8\n9 10 11 12\n")
    _write(tmp_path / "ir.txt", "1 2 3 4\n5 6 7 8\n9 10 11 12\n")
    gt = load_groundtruth("vtuav", tmp_path)
    assert gt.frame_step == 10
    np.testing.assert_array_equal(gt.frame_ids, [0, 10, 20])


@pytest.mark.parametrize("name", ["groundtruth.txt", "init.txt"])
def test_generic_one_file_for_both(tmp_path, name):
    _write(tmp_path / name, "1\t2\t3\t4\n")
    gt = load_groundtruth("generic", tmp_path)
    np.testing.assert_array_equal(gt.visible, [[1, 2, 3, 4]])
    np.testing.assert_array_equal(gt.thermal, gt.visible)


@pytest.mark.parametrize("dataset, expected", [
    ("lasher", "init.txt, or visible.txt + infrared.txt"),
    ("rgbt234", "visible.txt + infrared.txt"),
    ("gtot", "groundTruth_v.txt + groundTruth_i.txt"),
    ("vtuav", "rgb.txt + ir.txt"),
])
def test_missing_gt_names_path_and_expected_files(tmp_path, dataset, expected):
    with pytest.raises(FileNotFoundError) as info:
        load_groundtruth(dataset, tmp_path)
    assert str(tmp_path) in str(info.value)
    assert expected in str(info.value)


def test_missing_second_file_is_named(tmp_path):
    _write(tmp_path / "visible.txt", "1,2,3,4\n")
    with pytest.raises(FileNotFoundError, match="infrared.txt not found"):
        load_groundtruth("rgbt234", tmp_path)


def test_modalities_with_different_row_counts(tmp_path):
    _write(tmp_path / "visible.txt", "1,2,3,4\n1,2,3,4\n")
    _write(tmp_path / "infrared.txt", "1,2,3,4\n")
    with pytest.raises(ValueError, match="visible.txt has 2 rows but infrared.txt has 1"):
        load_groundtruth("rgbt234", tmp_path)


def test_unknown_dataset(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'otb'"):
        load_groundtruth("otb", tmp_path)


def test_has_groundtruth(tmp_path):
    _write(tmp_path / "a" / "init.txt", "1,2,3,4\n")
    assert has_groundtruth("lasher", tmp_path / "a")
    assert not has_groundtruth("rgbt234", tmp_path / "a")
    assert set(DATASETS) == {"lasher", "rgbt234", "rgbt210", "gtot", "vtuav", "generic"}
