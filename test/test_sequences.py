"""Sequence readers: every benchmark layout built as a tiny fixture, and every error case."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from ckd_core.data.sequences import (LASHER_ATTRIBUTES, SequenceError, list_sequences,
                                     natural_key, open_sequence, read_split_file)

H, W = 12, 16


def _image(i: int, channels: int = 3) -> np.ndarray:
    """A small BGR (or gray) image whose pixels encode the frame index."""
    img = np.full((H, W, channels), 10 + 7 * i, dtype=np.uint8)
    return img[:, :, 0] if channels == 1 else img


def _frames(folder: Path, names: list[str], channels: int = 3) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        assert cv2.imwrite(str(folder / name), _image(i, channels))


def _boxes(n: int, offset: float = 0.0) -> np.ndarray:
    return np.array([[1 + i + offset, 2 + 0.5 * i, 5 + i % 3, 4 + i % 2] for i in range(n)],
                    dtype=np.float64)


def _write(path: Path, boxes: np.ndarray, sep: str = ",") -> None:
    path.write_text("".join(sep.join(f"{v:g}" for v in row) + "\n" for row in boxes))


def make_lasher(root: Path, name: str = "2boys", n: int = 12) -> Path:
    seq = root / name
    _frames(seq / "visible", [f"v{i:06d}.jpg" for i in range(n)])
    _frames(seq / "infrared", [f"i{i:06d}.jpg" for i in range(n)], channels=1)
    gt = _boxes(n)
    gt[3] = 0  # an out-of-view row, kept as written
    for f in ("init.txt", "visible.txt", "infrared.txt"):
        _write(seq / f, gt)
    return seq


def make_rgbt210(root: Path, name: str = "baby", n: int = 7) -> Path:
    seq = root / name
    _frames(seq / "visible", [f"{i + 1:05d}v.jpg" for i in range(n)])
    _frames(seq / "infrared", [f"{i + 1:05d}i.jpg" for i in range(n)])
    _write(seq / "init.txt", _boxes(n))
    return seq


def make_rgbt234(root: Path, name: str = "afterrain", n: int = 10) -> Path:
    """The RGBT210 layout plus one GT file per modality."""
    seq = make_rgbt210(root, name, n)
    _write(seq / "visible.txt", _boxes(n))
    _write(seq / "infrared.txt", _boxes(n, offset=0.5))
    return seq


def make_gtot(root: Path, name: str = "BlackCar", n: int = 6) -> Path:
    seq = root / name
    _frames(seq / "v", [f"{i + 1:05d}v.png" for i in range(n)])
    _frames(seq / "i", [f"{i + 1:05d}i.png" for i in range(n)])
    corners = np.array([[2 + i, 3, 9 + 2 * i, 11] for i in range(n)], dtype=np.float64)
    _write(seq / "groundTruth_v.txt", corners, sep=" ")
    _write(seq / "groundTruth_i.txt", corners + 1, sep=" ")
    _write(seq / "init.txt", _boxes(n), sep="\t")
    return seq


def make_vtuav(root: Path, name: str = "animal_001", n: int = 25, rows: int | None = None
               ) -> Path:
    seq = root / name
    _frames(seq / "rgb", [f"{i:06d}.jpg" for i in range(n)])
    _frames(seq / "ir", [f"{i:06d}.jpg" for i in range(n)])
    rows = math.ceil(n / 10) if rows is None else rows
    _write(seq / "rgb.txt", _boxes(rows), sep=" ")
    _write(seq / "ir.txt", _boxes(rows, offset=1), sep=" ")
    return seq


def make_generic(root: Path, name: str = "walk", n: int = 12) -> Path:
    seq = root / name
    # frame2 before frame10: natural, not lexicographic, order.
    _frames(seq / "rgb", [f"frame{i}.png" for i in range(n)])
    _frames(seq / "thermal", [f"frame{i}.png" for i in range(n)], channels=1)
    _write(seq / "groundtruth.txt", _boxes(n), sep="\t")
    return seq


# ---------------------------------------------------------------------------------------------
# Layouts
# ---------------------------------------------------------------------------------------------

def test_lasher_layout_and_attributes(tmp_path):
    root = tmp_path / "trainingset"
    seq_dir = make_lasher(root)
    flags = ["0"] * len(LASHER_ATTRIBUTES)
    flags[LASHER_ATTRIBUTES.index("PO")] = flags[LASHER_ATTRIBUTES.index("ARC")] = "1"
    (root / "AttriSeqsTxt").mkdir()
    (root / "AttriSeqsTxt" / "2boys.txt").write_text(",".join(flags))
    seq = open_sequence("lasher", seq_dir)
    assert (seq.name, seq.dataset, seq.root, seq.num_frames) == ("2boys", "lasher", seq_dir, 12)
    assert [p.name for p in seq.rgb_frames][:2] == ["v000000.jpg", "v000001.jpg"]
    assert [p.name for p in seq.thermal_frames][-1] == "i000011.jpg"
    expected = _boxes(12)
    expected[3] = 0
    np.testing.assert_array_equal(seq.gt_rgb, expected)
    np.testing.assert_array_equal(seq.gt_thermal, expected)
    assert seq.gt_frame_step == 1
    dense = seq.dense_gt()
    np.testing.assert_array_equal(dense[0], expected)
    assert seq.attributes == {"PO", "ARC"}
    assert not seq.gt_rgb.flags.writeable


def test_rgbt234_layout_with_tag_attributes(tmp_path):
    seq_dir = make_rgbt234(tmp_path)
    (seq_dir / "BC.tag").write_text("0\n0\n1\n" + "0\n" * 7)
    (seq_dir / "TC.tag").write_text("0\n" * 10)
    (seq_dir / "attributes.txt").write_text("# ours\nocclusion, LI\n")
    seq = open_sequence("rgbt234", seq_dir)
    assert seq.num_frames == 10
    assert seq.rgb_frames[0].name == "00001v.jpg" and seq.thermal_frames[9].name == "00010i.jpg"
    np.testing.assert_array_equal(seq.gt_rgb, _boxes(10))
    np.testing.assert_array_equal(seq.gt_thermal, _boxes(10, offset=0.5))
    assert seq.attributes == {"BC", "occlusion", "LI"}


def test_rgbt210_uses_init_for_both(tmp_path):
    seq = open_sequence("rgbt210", make_rgbt210(tmp_path))
    assert seq.num_frames == 7 and seq.attributes == frozenset()
    np.testing.assert_array_equal(seq.gt_rgb, _boxes(7))
    np.testing.assert_array_equal(seq.gt_thermal, _boxes(7))


def test_gtot_corners_converted(tmp_path):
    seq = open_sequence("gtot", make_gtot(tmp_path))
    assert seq.num_frames == 6 and seq.rgb_frames[0].parent.name == "v"
    # x1 y1 x2 y2 -> x, y, x2 - x1, y2 - y1 (no +1)
    np.testing.assert_array_equal(seq.gt_rgb[1], [3, 3, 8, 8])
    np.testing.assert_array_equal(seq.gt_thermal[1], [4, 4, 8, 8])


def test_vtuav_sparse_every_tenth_frame(tmp_path):
    seq = open_sequence("vtuav", make_vtuav(tmp_path, n=25))
    assert seq.num_frames == 25 and seq.gt_frame_step == 10
    assert seq.gt_rgb.shape == (3, 4)  # frames 0, 10, 20
    np.testing.assert_array_equal(seq.gt_thermal, _boxes(3, offset=1))
    assert seq.dense_gt() is None
    ann = seq.annotated_frames()
    np.testing.assert_array_equal(ann.frame_ids, [0, 10, 20])
    np.testing.assert_array_equal(ann.rgb, seq.gt_rgb)


def test_vtuav_dense_file_used_when_present(tmp_path):
    seq_dir = make_vtuav(tmp_path, n=25)
    _write(seq_dir / "dense_rgb.txt", _boxes(25), sep=" ")
    _write(seq_dir / "dense_ir.txt", _boxes(25, offset=2), sep=" ")
    seq = open_sequence("vtuav", seq_dir)
    rgb, tir = seq.dense_gt()
    np.testing.assert_array_equal(rgb, _boxes(25))
    np.testing.assert_array_equal(tir, _boxes(25, offset=2))
    np.testing.assert_array_equal(seq.annotated_frames().frame_ids, np.arange(25))
    assert seq.gt_rgb.shape == (3, 4)  # the sparse GT stays what the scorer reads


def test_generic_defaults_and_natural_order(tmp_path):
    seq = open_sequence("generic", make_generic(tmp_path))
    assert [p.name for p in seq.rgb_frames][:3] == ["frame0.png", "frame1.png", "frame2.png"]
    assert seq.rgb_frames[10].name == "frame10.png"
    np.testing.assert_array_equal(seq.gt_rgb, _boxes(12))
    np.testing.assert_array_equal(seq.gt_thermal, _boxes(12))


def test_generic_named_folders_and_files(tmp_path):
    seq_dir = tmp_path / "cam"
    _frames(seq_dir / "color", [f"{i}.jpg" for i in range(4)])
    _frames(seq_dir / "lwir", [f"{i}.jpg" for i in range(4)])
    _write(seq_dir / "boxes.txt", _boxes(4))
    _write(seq_dir / "boxes_ir.txt", _boxes(4, offset=3))
    seq = open_sequence("generic", seq_dir, rgb_dir="color", thermal_dir="lwir",
                        gt_file="boxes.txt", thermal_gt_file="boxes_ir.txt")
    assert seq.num_frames == 4 and seq.thermal_frames[0].parent.name == "lwir"
    np.testing.assert_array_equal(seq.gt_thermal, _boxes(4, offset=3))


def test_natural_key():
    names = ["f10.png", "f2.png", "F1.png"]
    assert sorted(names, key=natural_key) == ["F1.png", "f2.png", "f10.png"]


# ---------------------------------------------------------------------------------------------
# Frames
# ---------------------------------------------------------------------------------------------

def test_frame_is_rgb_order_and_thermal_three_channels(tmp_path):
    seq_dir = make_generic(tmp_path, n=3)
    bgr = np.zeros((H, W, 3), np.uint8)
    bgr[:, :, 2] = 200  # red in OpenCV's BGR order
    cv2.imwrite(str(seq_dir / "rgb" / "frame1.png"), bgr)
    seq = open_sequence("generic", seq_dir)
    rgb, tir = seq.frame(1)
    assert rgb.shape == (H, W, 3) and rgb.dtype == np.uint8
    assert (rgb[..., 0] == 200).all() and (rgb[..., 1:] == 0).all()
    assert tir.shape == (H, W, 3) and tir.dtype == np.uint8
    assert (tir == 10 + 7).all()
    with pytest.raises(IndexError, match="frame 3 is out of range"):
        seq.frame(3)


def test_16bit_thermal_uses_one_window_per_sequence(tmp_path):
    seq_dir = make_generic(tmp_path, n=3)
    for i in range(3):
        raw = np.linspace(1000 + 100 * i, 3000 + 100 * i, H * W).reshape(H, W).astype(np.uint16)
        cv2.imwrite(str(seq_dir / "thermal" / f"frame{i}.png"), raw)
    seq = open_sequence("generic", seq_dir)
    lo, hi = seq.thermal_window
    assert 1000 < lo < 1100 and 3100 < hi < 3200  # 1st / 99th percentile of frames 0, 1, 2
    _, tir = seq.frame(0)
    assert tir.dtype == np.uint8 and tir.shape == (H, W, 3)
    assert tir[0, 0, 0] == 0 and tir[-1, -1, 0] < 255  # frame 0 is darker than the window top
    fixed = open_sequence("generic", seq_dir, thermal_window=(1000, 2000))
    _, tir = fixed.frame(0)
    raw = cv2.imread(str(seq_dir / "thermal" / "frame0.png"), cv2.IMREAD_UNCHANGED)
    expected = np.clip(np.rint((raw.astype(np.float64) - 1000) * 255 / 1000), 0, 255)
    np.testing.assert_array_equal(tir[:, :, 1], expected)


def test_unreadable_frame_names_the_file(tmp_path):
    seq_dir = make_generic(tmp_path, n=3)
    (seq_dir / "rgb" / "frame2.png").write_bytes(b"not a png")
    seq = open_sequence("generic", seq_dir)
    with pytest.raises(SequenceError, match="frame2.png: cannot read the image"):
        seq.frame(2)


# ---------------------------------------------------------------------------------------------
# Listing
# ---------------------------------------------------------------------------------------------

def test_list_sequences_without_split(tmp_path):
    for name in ("seq10", "seq2", "seq1"):
        make_lasher(tmp_path, name, n=5)
    (tmp_path / "not_a_sequence").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    seqs = list_sequences("lasher", tmp_path)
    assert [s.name for s in seqs] == ["seq1", "seq2", "seq10"]


def test_list_sequences_with_split_file(tmp_path):
    root = tmp_path / "data"
    for name in ("a", "b", "c"):
        make_rgbt210(root, name, n=2)
    split = tmp_path / "train.txt"
    split.write_text("# training\nc\n\na\n")
    assert [s.name for s in list_sequences("rgbt210", root, split)] == ["c", "a"]
    assert read_split_file(split) == ["c", "a"]


def test_list_sequences_names_missing_sequences(tmp_path):
    make_rgbt210(tmp_path / "data", "a", n=2)
    split = tmp_path / "test.txt"
    split.write_text("a\nghost1\nghost2\n")
    with pytest.raises(SequenceError, match=r"2 of the 3 sequences listed in .*test.txt.*"
                                            r"ghost1, ghost2"):
        list_sequences("rgbt210", tmp_path / "data", split)


def test_list_sequences_errors(tmp_path):
    with pytest.raises(SequenceError, match="does not exist"):
        list_sequences("gtot", tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SequenceError, match=r"no sequences in .*empty.*v/ and i/"):
        list_sequences("gtot", tmp_path / "empty")
    split = tmp_path / "split.txt"
    split.write_text("# nothing\n\n")
    with pytest.raises(SequenceError, match="lists no sequence names"):
        list_sequences("gtot", tmp_path, split)
    split.write_text("a\na\n")
    with pytest.raises(SequenceError, match="lists a more than once"):
        list_sequences("gtot", tmp_path, split)
    with pytest.raises(SequenceError, match="cannot read split file"):
        list_sequences("gtot", tmp_path, tmp_path / "missing.txt")


# ---------------------------------------------------------------------------------------------
# Errors on open
# ---------------------------------------------------------------------------------------------

def test_missing_sequence_folder(tmp_path):
    with pytest.raises(SequenceError, match=r"sequence folder .*ghost does not exist"):
        open_sequence("lasher", tmp_path / "ghost")


def test_missing_modality_folder(tmp_path):
    seq_dir = make_lasher(tmp_path)
    for f in (seq_dir / "infrared").iterdir():
        f.unlink()
    (seq_dir / "infrared").rmdir()
    with pytest.raises(SequenceError, match=r"thermal frame folder .*infrared does not exist"):
        open_sequence("lasher", seq_dir)


def test_no_frames(tmp_path):
    seq_dir = make_rgbt234(tmp_path)
    for f in (seq_dir / "visible").iterdir():
        f.unlink()
    (seq_dir / "visible" / "readme.md").write_text("no images here")
    with pytest.raises(SequenceError, match=r"RGB frame folder .*visible has no image files"):
        open_sequence("rgbt234", seq_dir)


def test_unequal_frame_counts(tmp_path):
    seq_dir = make_gtot(tmp_path, n=6)
    (seq_dir / "i" / "00006i.png").unlink()
    with pytest.raises(SequenceError, match=r"6 RGB frames in v/ but 5 thermal frames in i/"):
        open_sequence("gtot", seq_dir)


def test_missing_groundtruth(tmp_path):
    seq_dir = make_rgbt234(tmp_path)
    (seq_dir / "infrared.txt").unlink()
    with pytest.raises(SequenceError, match=r"infrared.txt not found"):
        open_sequence("rgbt234", seq_dir)


def test_unreadable_groundtruth(tmp_path):
    seq_dir = make_rgbt210(tmp_path)
    (seq_dir / "init.txt").write_text("1,2,3,4\n1,2,three,4\n")
    with pytest.raises(SequenceError, match=r"init.txt, line 2"):
        open_sequence("rgbt210", seq_dir)


def test_groundtruth_too_short_or_too_long(tmp_path):
    seq_dir = make_lasher(tmp_path, n=12)
    _write(seq_dir / "init.txt", _boxes(11))
    with pytest.raises(SequenceError, match=r"init.txt: 11 ground-truth rows, but the sequence "
                                            r"has 12 frames and needs 12"):
        open_sequence("lasher", seq_dir)
    _write(seq_dir / "init.txt", _boxes(13))
    with pytest.raises(SequenceError, match=r"13 ground-truth rows"):
        open_sequence("lasher", seq_dir)


def test_vtuav_fewer_rows_than_every_tenth_frame(tmp_path):
    seq_dir = make_vtuav(tmp_path, n=21, rows=2)  # frames 0, 10, 20 need 3 rows
    with pytest.raises(SequenceError, match=r"rgb.txt: 2 ground-truth rows, but the sequence has "
                                            r"21 frames and needs 3 \(one row every 10 frames"):
        open_sequence("vtuav", seq_dir)


def test_vtuav_dense_file_with_wrong_rows(tmp_path):
    seq_dir = make_vtuav(tmp_path, n=25)
    _write(seq_dir / "dense_rgb.txt", _boxes(24))
    _write(seq_dir / "dense_ir.txt", _boxes(25))
    with pytest.raises(SequenceError, match=r"dense_rgb.txt: 24 ground-truth rows"):
        open_sequence("vtuav", seq_dir)


def test_generic_missing_named_gt(tmp_path):
    seq_dir = make_generic(tmp_path, n=3)
    with pytest.raises(SequenceError, match=r"ground-truth file .*boxes.txt does not exist"):
        open_sequence("generic", seq_dir, gt_file="boxes.txt")


def test_bad_lasher_attribute_file(tmp_path):
    seq_dir = make_lasher(tmp_path / "train")
    (tmp_path / "AttriSeqsTxt").mkdir()
    (tmp_path / "AttriSeqsTxt" / "2boys.txt").write_text("0,1,0")
    with pytest.raises(SequenceError, match=r"2boys.txt: 3 attribute flags; expected 19"):
        open_sequence("lasher", seq_dir)


def test_bad_arguments(tmp_path):
    seq_dir = make_lasher(tmp_path)
    with pytest.raises(SequenceError, match="unknown dataset 'otb'"):
        open_sequence("otb", seq_dir)
    with pytest.raises(SequenceError, match="rgb_dir can only be given for dataset 'generic'"):
        open_sequence("lasher", seq_dir, rgb_dir="color")
    with pytest.raises(SequenceError, match="expected \\(lo, hi\\), lo < hi"):
        open_sequence("lasher", seq_dir, thermal_window=(5, 5))
