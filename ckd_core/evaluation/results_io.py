"""Tracker result files in the benchmark toolkits' format: `<results_dir>/<sequence>.txt`.

A result file has one box per frame, frame 0 included, as x, y, w, h in pixels, one
delimiter (we write commas; we read commas, tabs or spaces). Values are floats: the toolkit
rounds them when it reads (see `metrics.toolkit_round`), so writing integers would round twice.

Reading is strict where a silent mistake would change a score: a file shorter than the
ground truth needs is an error (never "score the frames there are"), and so are NaN, infinity
and unparsable rows; a longer file is truncated. Writing never writes NaN and replaces the
file atomically (a temporary file in the same folder, then `os.replace`), so an interrupted
run never leaves a half-written result that a resumed run would take as done.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ckd_core.atomic import write_text_atomic  # noqa: F401 (also imported from here)
from ckd_core.data.groundtruth import read_box_file

RESULT_SUFFIX = ".txt"


def result_path(results_dir: str | Path, sequence: str) -> Path:
    """The result file of `sequence`: `<results_dir>/<sequence>.txt`."""
    return Path(results_dir) / f"{sequence}{RESULT_SUFFIX}"


def read_result_file(path: str | Path) -> np.ndarray:
    """Read one result file -> (N, 4) float64 xywh, one row per frame.

    Same parser as the ground truth (`ckd_core.data.groundtruth.read_box_file`): ValueError
    naming the file and line for a row that is not four finite numbers; FileNotFoundError
    when the file does not exist.
    """
    return read_box_file(path)


def load_result(results_dir: str | Path, sequence: str, n_rows: int, step: int = 1
                ) -> np.ndarray:
    """The rows of a sequence's result that the scorer needs -> (n_rows, 4) float64.

    Takes rows 0, step, 2 step, ... of `<results_dir>/<sequence>.txt` (step is 10 for VTUAV,
    whose GT has one row every 10 frames) and keeps the first n_rows of them; the file must
    have at least (n_rows - 1) * step + 1 rows. Raises FileNotFoundError naming the sequence
    and the expected path, ValueError naming the sequence and both lengths when it is short.
    """
    if n_rows < 1:
        raise ValueError(f"sequence '{sequence}': nothing to score, its ground truth has no "
                         "rows")
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    path = result_path(results_dir, sequence)
    if not path.is_file():
        raise FileNotFoundError(f"sequence '{sequence}': no result file {path}")
    boxes = read_result_file(path)
    needed = (n_rows - 1) * step + 1
    if len(boxes) < needed:
        per = "" if step == 1 else f" (one GT row every {step} frames)"
        raise ValueError(f"sequence '{sequence}': result file {path} has {len(boxes)} rows but "
                         f"the ground truth has {n_rows} rows{per}, which needs {needed}; a "
                         "result must have one row per frame, frame 0 included")
    return boxes[::step][:n_rows]


def format_value(value: float) -> str:
    """One number as written in a result file: the shortest text that reads back exactly."""
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"cannot write {v!r} to a result file; boxes must be finite")
    return repr(v)  # shortest round-trip text: 12.0, 0.1, 123.456789


def write_result_file(path: str | Path, boxes) -> Path:
    """Write (N, 4) xywh boxes as `x,y,w,h` lines, atomically. Returns the path.

    Creates the folder if needed. Raises ValueError (and leaves any existing file untouched)
    for a wrong shape or a NaN / infinite value, naming the row.
    """
    path = Path(path)
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{path}: boxes have shape {arr.shape}; expected (frames, 4) xywh")
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        row = int(np.argmax(bad))
        raise ValueError(f"{path}: box of frame {row} is {arr[row].tolist()}; result files "
                         "never hold NaN or infinity (write the last valid box instead)")
    text = "".join(",".join(map(format_value, row)) + "\n" for row in arr.tolist())
    write_text_atomic(path, text)
    return path


