"""Track an RGB + thermal video pair and draw what the tracker sees.

    rgb, thermal = open_frames("run/rgb.mp4"), open_frames("run/thermal/")
    results = track_pair(rgb, thermal, (x, y, w, h), tracker, overlay_path="out.mp4")

Inputs are image folders (every .jpg .jpeg .png .bmp .tif .tiff, sorted naturally: frame2
before frame10) or video files (anything cv2.VideoCapture reads). Frames come out as (H, W, 3)
uint8 in RGB order. A 16-bit thermal image folder is mapped to 8 bits with one fixed window,
the [1st, 99th] percentile of its first frame, so brightness means the same temperature in
every frame.

The overlay shows RGB (left) and thermal (right, scaled to the RGB height) with the box, the
score, the state and each modality's health. It is written with cv2.VideoWriter (mp4v); when
the writer cannot be opened (no codec in this OpenCV build) the frames go to a PNG folder
`<overlay stem>_frames/` instead.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import cv2
import numpy as np

from ckd_core.data.sequences import IMAGE_EXTENSIONS, natural_key
from ckd_core.imaging import to_three_channels, window_to_uint8
from ckd_core.tracking.tracker import TrackResult, TrackState

DEFAULT_FPS = 25.0
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".m4v")
_COLOURS = {TrackState.TRACKING: (0, 220, 0), TrackState.LOST: (230, 40, 40)}  # RGB


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FrameSource:
    """An image folder or a video file. Iterating yields (H, W, 3) uint8 RGB frames.
    fps: the video's frame rate (None for a folder); count: frames (a video's count is
    what its header says, an estimate)."""

    path: Path
    kind: str  # "folder" | "video"
    files: tuple[Path, ...] = ()
    fps: float | None = None
    count: int | None = None

    def __iter__(self) -> Iterator[np.ndarray]:
        return self._folder() if self.kind == "folder" else self._video()

    def _folder(self) -> Iterator[np.ndarray]:
        window = None
        for path in self.files:
            image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if image is None:
                raise ValueError(f"{path}: cannot read the image")
            if image.dtype == np.uint16:
                if window is None:
                    lo, hi = np.percentile(image, (1.0, 99.0))
                    window = (float(lo), float(hi) if hi > lo else float(lo) + 1.0)
                image = window_to_uint8(image, window)
            elif image.dtype != np.uint8:
                raise ValueError(f"{path}: pixels of type {image.dtype}; expected 8 or 16 bit")
            yield _to_rgb(image, str(path))

    def _video(self) -> Iterator[np.ndarray]:
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise ValueError(f"{self.path}: cannot open the video")
        try:
            while True:
                ok, frame = cap.read()
                if not ok:
                    return
                yield _to_rgb(frame, str(self.path))
        finally:
            cap.release()


def _to_rgb(image: np.ndarray, what: str) -> np.ndarray:
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return to_three_channels(image, what)


def open_frames(path: str | Path) -> FrameSource:
    """An image folder or a video file as a `FrameSource`; ValueError / FileNotFoundError
    naming the path when it is neither or is empty."""
    path = Path(path)
    if path.is_dir():
        files = sorted((p for p in path.iterdir()
                        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
                       key=lambda p: natural_key(p.name))
        if not files:
            raise ValueError(f"{path} has no image files ({' '.join(IMAGE_EXTENSIONS)})")
        return FrameSource(path, "folder", tuple(files), None, len(files))
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (expected an image folder or a video)")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise ValueError(f"{path}: cannot open it as a video (and it is not a folder)")
        fps = cap.get(cv2.CAP_PROP_FPS)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        cap.release()
    return FrameSource(path, "video", (), fps if fps and fps > 0 else None,
                       count if count > 0 else None)


# ---------------------------------------------------------------------------------------------
# Drawing and writing
# ---------------------------------------------------------------------------------------------

def draw_overlay(rgb: np.ndarray, thermal: np.ndarray | None, result: TrackResult
                 ) -> np.ndarray:
    """RGB | thermal side by side with the box, score, state and health -> (H, W', 3) uint8
    RGB. The box is in RGB pixels; on the thermal half it is scaled with the image (the
    tracker resizes the thermal frame to the RGB size, so they are registered that way)."""
    rgb = to_three_channels(rgb, "RGB").copy()
    h, w = rgb.shape[:2]
    panels = [rgb]
    scales = [(1.0, 1.0)]
    if thermal is not None:
        th = to_three_channels(thermal, "thermal")
        tw = max(1, int(round(th.shape[1] * h / th.shape[0])))
        panels.append(cv2.resize(th, (tw, h), interpolation=cv2.INTER_LINEAR))
        scales.append((tw / w, 1.0))
    colour = _COLOURS.get(result.state, (255, 255, 0))
    x, y, bw, bh = result.box_xywh
    thick = max(1, round(h / 240))
    for panel, (sx, sy) in zip(panels, scales):
        p1 = (int(round(x * sx)), int(round(y * sy)))
        p2 = (int(round((x + bw) * sx)), int(round((y + bh) * sy)))
        cv2.rectangle(panel, p1, p2, colour, thick)
    canvas = np.ascontiguousarray(np.concatenate(panels, axis=1))
    health = "  ".join(f"{m}: {v}" for m, v in result.health.items())
    lines = [f"{result.state.value}  score {result.score:.2f}", health]
    scale = max(0.35, h / 720)
    line_h = int(36 * scale) + 2
    for k, text in enumerate(t for t in lines if t):
        org = (6, (k + 1) * line_h)
        cv2.putText(canvas, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0),
                    thick + 2, cv2.LINE_AA)
        cv2.putText(canvas, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thick,
                    cv2.LINE_AA)
    return canvas


class OverlayWriter:
    """Writes RGB frames to an mp4v video, or to a PNG folder when no video writer opens.
    `output` is the path actually written (the video, or the folder)."""

    def __init__(self, path: str | Path, fps: float = DEFAULT_FPS):
        self.path = Path(path)
        self.fps = float(fps)
        self.output: Path | None = None
        self._video = None
        self._count = 0

    @property
    def frames_written(self) -> int:
        return self._count

    def write(self, frame_rgb: np.ndarray) -> None:
        if self.output is None:
            self._open(frame_rgb.shape[1], frame_rgb.shape[0])
        bgr = cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR)
        if self._video is not None:
            self._video.write(bgr)
        elif not cv2.imwrite(str(self.output / f"{self._count:06d}.png"), bgr):
            raise OSError(f"could not write a frame to {self.output}")
        self._count += 1

    def _open(self, width: int, height: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.suffix.lower() in VIDEO_EXTENSIONS:
            video = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps,
                                    (width, height))
            if video.isOpened():
                self._video, self.output = video, self.path
                return
            video.release()
        # No suffix, another suffix, or no encoder: one PNG per frame.
        folder = self.path if not self.path.suffix else self.path.with_name(
            self.path.stem + "_frames")
        folder.mkdir(parents=True, exist_ok=True)
        self.output = folder

    def close(self) -> None:
        if self._video is not None:
            self._video.release()
            self._video = None

    def __enter__(self) -> "OverlayWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------
# Tracking a pair
# ---------------------------------------------------------------------------------------------

def track_pair(rgb_frames: Iterable[np.ndarray], thermal_frames: Iterable[np.ndarray], box,
               tracker, overlay_path: str | Path | None = None, fps: float = DEFAULT_FPS,
               max_frames: int | None = None,
               on_frame: Callable[[int, TrackResult], None] | None = None
               ) -> list[TrackResult]:
    """Init on the first pair with `box` (x, y, w, h in RGB pixels), update on the rest.

    Returns one TrackResult per frame pair, frame 0 included (its box is the init box,
    score 1, TRACKING). Stops at the shorter input or after max_frames pairs. With
    overlay_path, writes `draw_overlay` of every frame (see `OverlayWriter`).
    tracker: anything with `init(rgb, thermal, box)` and `update(rgb, thermal)`.
    """
    results: list[TrackResult] = []
    writer = OverlayWriter(overlay_path, fps) if overlay_path is not None else None
    try:
        for k, (rgb, thermal) in enumerate(zip(rgb_frames, thermal_frames)):
            if max_frames is not None and k >= max_frames:
                break
            if k == 0:
                tracker.init(rgb, thermal, box)
                result = TrackResult(tuple(float(v) for v in box), 1.0, TrackState.TRACKING,
                                     {}, {"rgb": "ok", "thermal": "ok"})
            else:
                result = tracker.update(rgb, thermal)
            results.append(result)
            if writer is not None:
                writer.write(draw_overlay(rgb, thermal, result))
            if on_frame is not None:
                on_frame(k, result)
    finally:
        if writer is not None:
            writer.close()
    if not results:
        raise ValueError("no frames to track: an input is empty")
    return results


# ---------------------------------------------------------------------------------------------
# Choosing the box by hand
# ---------------------------------------------------------------------------------------------

def gui_problem() -> str | None:
    """Why OpenCV cannot open a window here ('no display', headless build), or None."""
    if re.search(r"^\s*GUI:\s*NONE\s*$", cv2.getBuildInformation(), re.MULTILINE):
        return "OpenCV was built without a GUI backend, e.g. opencv-python-headless"
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                                 or os.environ.get("WAYLAND_DISPLAY")):
        return "DISPLAY is not set"
    return None


def select_box(rgb: np.ndarray, title: str = "select the target, then press ENTER"
               ) -> tuple[float, float, float, float]:
    """Let the user draw the box on the first RGB frame (OpenCV's ROI selector).

    RuntimeError when there is no display or no GUI (pass the box explicitly instead), or
    when the selection was cancelled."""
    problem = gui_problem()
    if problem is not None:
        raise RuntimeError(f"no display / no GUI in this OpenCV build ({problem}): pass "
                           "--box x,y,w,h")
    x, y, w, h = cv2.selectROI(title, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                               showCrosshair=True, fromCenter=False)
    cv2.destroyWindow(title)
    if w <= 0 or h <= 0:
        raise RuntimeError("no box selected (selection cancelled): pass --box x,y,w,h")
    return float(x), float(y), float(w), float(h)
