"""`ckd track` and `ckd_core.tracking.video`: image folders and video files in, an overlay
video (or PNG folder) and a toolkit-format result file out; the no-display error."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from ckd_core.cli import main
from ckd_core.evaluation.results_io import read_result_file
from ckd_core.tracking import TrackResult, TrackState
from ckd_core.tracking.video import (OverlayWriter, draw_overlay, gui_problem, open_frames,
                                     track_pair)

N, W, H = 8, 96, 80
BOX = (30.0, 24.0, 16.0, 14.0)


def _frames(i: int) -> tuple[np.ndarray, np.ndarray]:
    """A bright square moving right by 2 px a frame on a textured background (RGB, grey)."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(20, 90, (H, W, 3), dtype=np.uint8)
    thermal = rng.integers(10, 60, (H, W), dtype=np.uint8)
    x, y, w, h = (int(v) for v in BOX)
    rgb[y:y + h, x + 2 * i:x + 2 * i + w] = (230, 200, 40)
    thermal[y:y + h, x + 2 * i:x + 2 * i + w] = 240
    return rgb, thermal


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("pair")
    rgb_dir, th_dir = root / "rgb", root / "thermal"
    rgb_dir.mkdir()
    th_dir.mkdir()
    for i in range(N):  # names that sort wrongly as text: 2 before 10
        rgb, thermal = _frames(i)
        cv2.imwrite(str(rgb_dir / f"frame{i * 5}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(th_dir / f"ir_{i * 5}.png"), thermal)
    return rgb_dir, th_dir


class ShiftTracker:
    """Moves the box 2 px right per update, like the target (a stand-in for the model)."""

    def init(self, rgb, thermal, box):
        self.box = tuple(box)

    def update(self, rgb, thermal):
        x, y, w, h = self.box
        self.box = (x + 2, y, w, h)
        return TrackResult(self.box, 0.9, TrackState.TRACKING, {"model": 0.001},
                           {"rgb": "ok", "thermal": "ok"})


def test_folders_sort_naturally_and_read_as_rgb(folders):
    rgb_dir, th_dir = folders
    src = open_frames(rgb_dir)
    assert src.kind == "folder" and src.count == N
    assert [p.name for p in src.files[:3]] == ["frame0.png", "frame5.png", "frame10.png"]
    first = next(iter(src))
    np.testing.assert_array_equal(first, _frames(0)[0])  # RGB order
    thermal = next(iter(open_frames(th_dir)))
    assert thermal.shape == (H, W, 3)


def test_sixteen_bit_thermal_folder_uses_one_window(tmp_path):
    for i, scale in enumerate((1, 2)):
        img = np.full((4, 4), 4000, np.uint16)
        img[0, 0] = 5000 * scale
        cv2.imwrite(str(tmp_path / f"{i}.png"), img)
    a, b = list(open_frames(tmp_path))
    assert a.dtype == np.uint8 and a[1, 1, 0] == b[1, 1, 0]  # same window for both frames


def test_track_pair_one_result_per_frame_and_overlay_video(folders, tmp_path):
    rgb_dir, th_dir = folders
    results = track_pair(open_frames(rgb_dir), open_frames(th_dir), BOX, ShiftTracker(),
                         overlay_path=tmp_path / "o.mp4")
    assert len(results) == N
    assert results[0].box_xywh == BOX and results[-1].box_xywh[0] == BOX[0] + 2 * (N - 1)
    cap = cv2.VideoCapture(str(tmp_path / "o.mp4"))
    count = 0
    while cap.read()[0]:
        count += 1
    assert count == N
    assert cap.get(cv2.CAP_PROP_FRAME_WIDTH) == 2 * W


def test_overlay_draws_box_on_both_halves():
    rgb, thermal = _frames(0)
    r = TrackResult(BOX, 0.5, TrackState.LOST, {}, {"rgb": "ok", "thermal": "frozen"})
    img = draw_overlay(rgb, thermal[::2, ::2], r)  # thermal at half size: scaled to RGB's
    assert img.shape == (H, 2 * W, 3) and img.dtype == np.uint8
    x, y = int(BOX[0]), int(BOX[1]) + 10  # below the text lines
    np.testing.assert_array_equal(img[y, x], (230, 40, 40))  # LOST = red, left edge
    np.testing.assert_array_equal(img[y, W + x], (230, 40, 40))


def test_writer_falls_back_to_png_folder(tmp_path):
    with OverlayWriter(tmp_path / "frames.avi-not-a-video") as w:  # unknown suffix
        w.write(np.zeros((8, 8, 3), np.uint8))
    assert (tmp_path / "frames_frames" / "000000.png").is_file()
    assert w.output == tmp_path / "frames_frames"


@pytest.mark.slow
def test_ckd_track_on_folders_writes_video_and_results(folders, tmp_path, capsys):
    rgb_dir, th_dir = folders
    out = tmp_path / "track.mp4"
    rc = main(["track", "--rgb", str(rgb_dir), "--thermal", str(th_dir),
               "--box", ",".join(str(v) for v in BOX), "--preset", "ckd_tiny",
               "--out", str(out)])
    assert rc == 0
    assert out.is_file() and out.stat().st_size > 0
    boxes = read_result_file(tmp_path / "track.txt")
    assert boxes.shape == (N, 4)
    np.testing.assert_array_equal(boxes[0], BOX)
    assert f"tracked {N} frames" in capsys.readouterr().out


def test_ckd_track_on_video_files_with_max_frames(folders, tmp_path):
    rgb_dir, th_dir = folders
    for src, name in ((rgb_dir, "rgb.mp4"), (th_dir, "thermal.mp4")):
        with OverlayWriter(tmp_path / name) as w:
            for frame in open_frames(src):
                w.write(frame)
    rc = main(["track", "--rgb", str(tmp_path / "rgb.mp4"), "--thermal",
               str(tmp_path / "thermal.mp4"), "--box", "30,24,16,14", "--preset", "ckd_tiny",
               "--no-video", "--results", str(tmp_path / "r.txt"), "--max-frames", "3"])
    assert rc == 0
    assert read_result_file(tmp_path / "r.txt").shape == (3, 4)


def test_without_box_and_without_display_exits_2_with_the_message(folders, tmp_path,
                                                                  capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert gui_problem() is not None
    rgb_dir, th_dir = folders
    rc = main(["track", "--rgb", str(rgb_dir), "--thermal", str(th_dir), "--preset",
               "ckd_tiny", "--out", str(tmp_path / "o.mp4")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "no display / no GUI in this OpenCV build" in err and "--box x,y,w,h" in err
    assert not (tmp_path / "o.txt").exists()


@pytest.mark.parametrize("box", ["1,2,3", "a,b,c,d", "1,2,0,4", "1,2,3,nan"])
def test_bad_box_is_a_clear_error(folders, box, capsys):
    rgb_dir, th_dir = folders
    assert main(["track", "--rgb", str(rgb_dir), "--thermal", str(th_dir), "--box", box,
                 "--preset", "ckd_tiny", "--no-video"]) == 2
    assert "--box" in capsys.readouterr().err
