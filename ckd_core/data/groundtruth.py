"""Ground-truth box files of the RGBT benchmarks, parsed in one place.

`read_box_file(path)` reads any box text file (ground truth or tracker results): one box per
line, four numbers separated by commas, tabs or spaces (mixed too, e.g. `1, 2\t3 4`).
`load_groundtruth(dataset, seq_dir)` finds and reads a sequence's ground truth for both
modalities, as each dataset distributes it:

| dataset  | visible GT          | thermal GT          | format                 | frame_step |
|----------|---------------------|---------------------|------------------------|------------|
| lasher   | `init.txt` (else `visible.txt`) | `init.txt` (else `infrared.txt`) | xywh | 1 |
| rgbt234  | `visible.txt`       | `infrared.txt`      | xywh                   | 1          |
| rgbt210  | `init.txt`          | `init.txt`          | xywh                   | 1          |
| gtot     | `groundTruth_v.txt` | `groundTruth_i.txt` | x1 y1 x2 y2 (*)        | 1          |
| vtuav    | `rgb.txt`           | `ir.txt`            | xywh                   | 10         |
| generic  | `groundtruth.txt` (else `init.txt`), the same file for both | xywh | 1   |

(*) GTOT corners are converted with w = x2 - x1, h = y2 - y1 (no +1), the convention under
which the published GTOT numbers were computed (see ../shared/evaluation_protocol.md).

`frame_step`: row k of the ground truth is frame k * frame_step (VTUAV annotates one frame in
ten, frame 0 included). Rows are returned as written: zero or out-of-image rows (targets out of
view) are for the scorer and the samplers to judge.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# A field separator: one comma with optional whitespace around it, or a run of whitespace.
# Two commas in a row therefore leave an empty field, which is an error, not a merged delimiter.
_FIELD_SEPARATOR = re.compile(r"[ \t]*,[ \t]*|[ \t]+")


@dataclass(frozen=True)
class GroundTruthFiles:
    """Where one dataset keeps its ground truth, relative to a sequence folder."""

    visible: str
    thermal: str


@dataclass(frozen=True)
class GroundTruthLayout:
    """A dataset's ground-truth convention.

    candidates: file pairs tried in order; the first pair whose files both exist is read.
    corners: rows are (x1, y1, x2, y2) and are converted to xywh with w = x2 - x1.
    frame_step: row k is frame k * frame_step.
    """

    candidates: tuple[GroundTruthFiles, ...]
    corners: bool = False
    frame_step: int = 1

    def describe(self) -> str:
        """The expected files in words, e.g. `init.txt, or visible.txt + infrared.txt`."""
        options = [f.visible if f.visible == f.thermal else f"{f.visible} + {f.thermal}"
                   for f in self.candidates]
        return ", or ".join(options)


LAYOUTS: dict[str, GroundTruthLayout] = {
    "lasher": GroundTruthLayout((GroundTruthFiles("init.txt", "init.txt"),
                                 GroundTruthFiles("visible.txt", "infrared.txt"))),
    "rgbt234": GroundTruthLayout((GroundTruthFiles("visible.txt", "infrared.txt"),)),
    "rgbt210": GroundTruthLayout((GroundTruthFiles("init.txt", "init.txt"),)),
    "gtot": GroundTruthLayout((GroundTruthFiles("groundTruth_v.txt", "groundTruth_i.txt"),),
                              corners=True),
    "vtuav": GroundTruthLayout((GroundTruthFiles("rgb.txt", "ir.txt"),), frame_step=10),
    "generic": GroundTruthLayout((GroundTruthFiles("groundtruth.txt", "groundtruth.txt"),
                                  GroundTruthFiles("init.txt", "init.txt"))),
}
DATASETS = tuple(LAYOUTS)


@dataclass(frozen=True, eq=False)
class GroundTruth:
    """One sequence's ground truth.

    visible, thermal: (N, 4) xywh boxes in pixels (float64 unless another dtype was asked
    for); row k is frame k * frame_step. For datasets with one GT file both are equal.
    visible_file, thermal_file: the files they were read from (the same path when shared).
    """

    visible: np.ndarray
    thermal: np.ndarray
    frame_step: int
    visible_file: Path
    thermal_file: Path

    def __len__(self) -> int:
        return len(self.visible)

    @property
    def frame_ids(self) -> np.ndarray:
        """(N,) int: the frame index of each GT row (0, step, 2 step, ...)."""
        return np.arange(len(self.visible)) * self.frame_step


def read_box_file(path: str | Path) -> np.ndarray:
    """Read a box file: one box per line, four numbers separated by commas, tabs or spaces.

    Returns an (N, 4) float64 array (N = number of non-blank lines; blank lines at the end of
    the file are ignored). Raises ValueError naming the file and the 1-based line for a line
    that is not four numbers, an empty field (`1,,2,3`), NaN or infinity, or a blank line
    before the last box (it would shift every following frame); FileNotFoundError when the
    file does not exist.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.rstrip().splitlines()
    if not lines:
        return np.zeros((0, 4), dtype=np.float64)
    boxes = _parse_fast(text, lines)
    if boxes is None:
        boxes = _parse_lines(path, lines)  # raises with the line that is wrong
    bad = ~np.isfinite(boxes).all(axis=1)
    if bad.any():
        row = int(np.argmax(bad))
        raise ValueError(f"{path}, line {row + 1}: '{lines[row].strip()}' contains NaN or "
                         "infinity; every box must be four finite numbers")
    return boxes


def _parse_fast(text: str, lines: list[str]) -> np.ndarray | None:
    """Vectorised parse of a well-formed file; None when anything looks off (the line-by-line
    parser then names the problem)."""
    # Empty fields and blank lines, found with substring searches once spaces are gone.
    body = text.replace(" ", "").replace("\t", "").replace("\r", "").rstrip("\n")
    if (",," in body or "\n," in body or ",\n" in body or "\n\n" in body
            or body[:1] in (",", "\n") or body.endswith(",")):
        return None
    try:
        boxes = np.loadtxt(io.StringIO(text.replace(",", " ")), dtype=np.float64, ndmin=2,
                           comments=None)
    except ValueError:
        return None
    if boxes.shape != (len(lines), 4):
        return None
    return boxes


def _parse_lines(path: Path, lines: list[str]) -> np.ndarray:
    out = np.empty((len(lines), 4), dtype=np.float64)
    for i, line in enumerate(lines):
        where = f"{path}, line {i + 1}"
        stripped = line.strip()
        if not stripped:
            raise ValueError(f"{where} is blank, but boxes follow it; a box file has one box "
                             "per frame and no blank lines between them")
        fields = _FIELD_SEPARATOR.split(stripped)
        if "" in fields:
            raise ValueError(f"{where}: '{stripped}' has an empty field (two delimiters in a "
                             "row, or one at the start or end of the line)")
        if len(fields) != 4:
            raise ValueError(f"{where}: '{stripped}' has {len(fields)} values; expected 4 "
                             "(x, y, w, h, or x1, y1, x2, y2 for GTOT)")
        try:
            out[i] = [float(v) for v in fields]
        except ValueError:
            raise ValueError(f"{where}: '{stripped}' is not four numbers") from None
    return out


def groundtruth_files(dataset: str, seq_dir: str | Path) -> tuple[Path, Path] | None:
    """The (visible, thermal) GT files of a sequence folder, or None when it has none."""
    layout = _layout(dataset)
    seq_dir = Path(seq_dir)
    for files in layout.candidates:
        v, t = seq_dir / files.visible, seq_dir / files.thermal
        if v.is_file() and t.is_file():
            return v, t
    return None


def has_groundtruth(dataset: str, seq_dir: str | Path) -> bool:
    """True when `seq_dir` holds the dataset's ground-truth files (used to find sequences)."""
    return groundtruth_files(dataset, seq_dir) is not None


def load_groundtruth(dataset: str, seq_dir: str | Path, dtype=np.float64) -> GroundTruth:
    """Read a sequence's ground truth as the dataset distributes it (table at the top).

    dtype: the values are parsed as float64 and then cast to `dtype` BEFORE the GTOT corner
    conversion, so `dtype=np.float32` reproduces a reader that loads the text as float32 (the
    `rgbt` toolkit does; the scorer relies on it). Raises FileNotFoundError naming the folder
    and the files this dataset expects, ValueError for an unreadable file (see
    `read_box_file`) or when the two modalities have different numbers of rows.
    """
    layout = _layout(dataset)
    seq_dir = Path(seq_dir)
    files = groundtruth_files(dataset, seq_dir)
    if files is None:
        wanted = layout.candidates[0]
        first = next((p for p in (seq_dir / wanted.visible, seq_dir / wanted.thermal)
                      if not p.is_file()), seq_dir / wanted.visible)
        raise FileNotFoundError(f"{first} not found: no {dataset} ground truth in {seq_dir}; "
                                f"a {dataset} sequence folder holds {layout.describe()}")
    v_path, t_path = files
    visible = read_box_file(v_path).astype(dtype)
    thermal = visible.copy() if t_path == v_path else read_box_file(t_path).astype(dtype)
    if len(visible) != len(thermal):
        raise ValueError(f"{seq_dir}: {v_path.name} has {len(visible)} rows but {t_path.name} "
                         f"has {len(thermal)}; both modalities must be annotated on the same "
                         "frames")
    if layout.corners:
        visible, thermal = corners_to_xywh(visible), corners_to_xywh(thermal)
    return GroundTruth(visible=visible, thermal=thermal, frame_step=layout.frame_step,
                       visible_file=v_path, thermal_file=t_path)


def corners_to_xywh(corners: np.ndarray) -> np.ndarray:
    """(N, 4) GTOT corners (x1, y1, x2, y2) -> (N, 4) xywh with w = x2 - x1, h = y2 - y1.

    Computed in the array's dtype. No +1: this is the convention of the published GTOT
    numbers, not the inclusive-pixel one.
    """
    out = corners.copy()
    out[:, 2] = corners[:, 2] - corners[:, 0]
    out[:, 3] = corners[:, 3] - corners[:, 1]
    return out


def _layout(dataset: str) -> GroundTruthLayout:
    try:
        return LAYOUTS[dataset]
    except KeyError:
        raise ValueError(f"unknown dataset '{dataset}'; expected one of "
                         f"{', '.join(DATASETS)}") from None
