"""RGB + thermal benchmark sequences: one reader for every dataset layout.

`open_sequence(dataset, seq_dir)` reads one sequence folder and validates it; `list_sequences`
reads every sequence of a dataset folder (or those named in a split file). The result is a
frozen `Sequence`: frame paths, ground truth, challenge attributes and a frame loader.

Layouts (as the datasets are distributed; see ../shared/evaluation_protocol.md):

| dataset  | RGB folder  | thermal folder | ground truth (parsed by `groundtruth.py`)           |
|----------|-------------|----------------|-----------------------------------------------------|
| lasher   | `visible/`  | `infrared/`    | `init.txt` (+ identical visible.txt / infrared.txt) |
| rgbt234  | `visible/`  | `infrared/`    | `visible.txt`, `infrared.txt`                       |
| rgbt210  | `visible/`  | `infrared/`    | `init.txt` for both                                 |
| gtot     | `v/`        | `i/`           | `groundTruth_v.txt`, `groundTruth_i.txt` (x1 y1 x2 y2) |
| vtuav    | `rgb/`      | `ir/`          | `rgb.txt`, `ir.txt`: ONE ROW EVERY 10 FRAMES        |
| generic  | `rgb/`      | `thermal/`     | `groundtruth.txt` (else `init.txt`), xywh, both     |

The generic layout is "two image folders + one GT file": the folder and file names above are
the defaults and can be given to `open_sequence` (`rgb_dir`, `thermal_dir`, `gt_file`,
`thermal_gt_file`, all relative to the sequence folder; the thermal GT defaults to the RGB one).

Frames are every image file (.jpg .jpeg .png .bmp .tif .tiff) in a modality folder, sorted
naturally (`frame2` before `frame10`); both modalities must have the same number of frames.

Ground truth is xywh in pixels, float64. `gt_frame_step` is 1 (row k = frame k) except for
VTUAV, where it is 10: row k is frame 10 k, frame 0 included, so a sequence of N frames needs
ceil(N / 10) rows. A GT file with fewer rows than needed, or more, is an error. Rows are kept
as written: out-of-view rows (LasHeR writes zeros) are for the sampler and the scorer to judge.

Dense per-frame ground truth (for training) is the GT itself when `gt_frame_step` is 1; for a
sparse sequence it is read from `dense_rgb.txt` / `dense_ir.txt` next to the sparse files when
both exist (the synthetic generator writes them; real VTUAV has none). See `Sequence.dense_gt`.

Challenge attributes (`Sequence.attributes`, a set of names as the files spell them), read
when present:
- `attributes.txt` in the sequence folder (our format): names separated by commas, spaces or
  new lines, e.g. `occlusion, LI` ; `#` starts a comment.
- RGBT234-style flag files in the sequence folder: one file per attribute, `<NAME>.tag`
  (e.g. `BC.tag`, `TC.tag`), holding a 0/1 flag per frame, one a line (or a single flag for
  the whole sequence). The sequence has the attribute when any flag is non-zero.
- LasHeR: `AttriSeqsTxt/<seq>.txt` in the dataset folder (the sequence folder's parent or
  grandparent): ONE line of 19 comma-separated 0/1 flags in the fixed order of
  `LASHER_ATTRIBUTES` (NO, PO, TO, HO, MB, LI, HI, AIV, LR, DEF, BC, SA, CM, TC, FL, OV, FM,
  SV, ARC), as the LasHeR release and the `rgbt` toolkit have it.
All sources found are merged.

Thermal frames (see `Sequence.frame`): 8-bit files are read as they are (a single channel is
repeated to three). 16-bit files (PNG/TIFF from radiometric cameras) are mapped to 8 bits with
one FIXED window per sequence, so that brightness means the same temperature in every frame:
by default [1st, 99th] percentile of the pixels of up to 5 frames spread evenly over the
sequence (first and last included), computed once when the sequence is opened; value v maps to
round(255 * (v - lo) / (hi - lo)), clipped to [0, 255]. A window can be given explicitly
(`open_sequence(..., thermal_window=(lo, hi))`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ckd_core.data.groundtruth import load_groundtruth, read_box_file
from ckd_core.imaging import to_three_channels, window_to_uint8

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
# Extensions that may hold 16-bit thermal data (JPEG and BMP are always 8-bit).
_DEEP_EXTENSIONS = (".png", ".tif", ".tiff")
LASHER_ATTRIBUTES = ("NO", "PO", "TO", "HO", "MB", "LI", "HI", "AIV", "LR", "DEF", "BC", "SA",
                     "CM", "TC", "FL", "OV", "FM", "SV", "ARC")
DENSE_GT_FILES = ("dense_rgb.txt", "dense_ir.txt")  # (visible, thermal), sparse datasets only
THERMAL_WINDOW_FRAMES = 5
THERMAL_WINDOW_PERCENTILES = (1.0, 99.0)


class SequenceError(ValueError):
    """A sequence folder is missing something or is inconsistent; the message names the file."""


@dataclass(frozen=True)
class Layout:
    """Where a dataset keeps the frames of each modality, relative to a sequence folder."""

    rgb_dir: str
    thermal_dir: str


LAYOUTS: dict[str, Layout] = {
    "lasher": Layout("visible", "infrared"),
    "rgbt234": Layout("visible", "infrared"),
    "rgbt210": Layout("visible", "infrared"),
    "gtot": Layout("v", "i"),
    "vtuav": Layout("rgb", "ir"),
    "generic": Layout("rgb", "thermal"),
}
DATASETS = tuple(LAYOUTS)
GENERIC_GT_FILE = "groundtruth.txt"


@dataclass(frozen=True)
class AnnotatedFrames:
    """The frames that have a ground-truth box: frame ids (K,) and boxes (K, 4) xywh."""

    frame_ids: np.ndarray
    rgb: np.ndarray
    thermal: np.ndarray


@dataclass(frozen=True, eq=False)
class Sequence:
    """One RGB + thermal sequence. Arrays are read-only float64, boxes xywh in pixels.

    gt_rgb / gt_thermal: (N_gt, 4), row k is frame k * gt_frame_step (gt_frame_step is 1, or
    10 for VTUAV whose GT has one row every 10 frames, frame 0 included).
    dense_rgb / dense_thermal: (num_frames, 4) per-frame GT for a sparse sequence when the
    dataset folder has it, else None (use `dense_gt()`, which covers both cases).
    thermal_window: (lo, hi) raw values mapped to 0 and 255 for 16-bit thermal frames; None
    for 8-bit thermal frames.
    """

    name: str
    dataset: str
    root: Path
    rgb_frames: tuple[Path, ...]
    thermal_frames: tuple[Path, ...]
    gt_rgb: np.ndarray
    gt_thermal: np.ndarray
    gt_frame_step: int = 1
    attributes: frozenset[str] = field(default_factory=frozenset)
    dense_rgb: np.ndarray | None = None
    dense_thermal: np.ndarray | None = None
    thermal_window: tuple[float, float] | None = None

    @property
    def num_frames(self) -> int:
        return len(self.rgb_frames)

    def frame(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame i as (rgb (H, W, 3) uint8 in RGB order, thermal (H, W, 3) uint8)."""
        if not 0 <= i < self.num_frames:
            raise IndexError(f"sequence {self.name}: frame {i} is out of range "
                             f"(0..{self.num_frames - 1})")
        rgb = cv2.cvtColor(_imread(self.rgb_frames[i], cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        return rgb, self.thermal(i)

    def thermal(self, i: int) -> np.ndarray:
        """Thermal frame i as (H, W, 3) uint8 (16-bit data through `thermal_window`)."""
        path = self.thermal_frames[i]
        # Only PNG/TIFF can be 16-bit; other files are read exactly as the RGB ones are.
        deep = path.suffix.lower() in _DEEP_EXTENSIONS
        raw = _imread(path, cv2.IMREAD_UNCHANGED if deep else cv2.IMREAD_COLOR)
        if raw.dtype == np.uint16:
            if self.thermal_window is None:
                raise SequenceError(f"{path}: 16-bit thermal frame, but sequence {self.name} "
                                    "has no thermal window (its first thermal frame was 8-bit)")
            raw = window_to_uint8(raw, self.thermal_window)
        elif raw.dtype != np.uint8:
            raise SequenceError(f"{path}: thermal pixels of type {raw.dtype}; expected 8 or 16 "
                                "bit")
        if raw.ndim == 3 and raw.shape[2] == 4:
            raw = raw[:, :, :3]
        if raw.ndim == 3 and raw.shape[2] == 3:
            return cv2.cvtColor(raw, cv2.COLOR_BGR2RGB)
        return to_three_channels(raw, what=str(path))

    def dense_gt(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Per-frame GT (rgb (num_frames, 4), thermal (num_frames, 4)), or None when only
        sparse GT exists (VTUAV without a dense file)."""
        if self.gt_frame_step == 1:
            return self.gt_rgb, self.gt_thermal
        if self.dense_rgb is not None and self.dense_thermal is not None:
            return self.dense_rgb, self.dense_thermal
        return None

    def annotated_frames(self) -> AnnotatedFrames:
        """Every frame with a GT row: all frames when dense GT exists, else frames 0, step,
        2 step, ... with their sparse rows."""
        dense = self.dense_gt()
        if dense is not None:
            return AnnotatedFrames(np.arange(self.num_frames), dense[0], dense[1])
        ids = np.arange(len(self.gt_rgb)) * self.gt_frame_step
        return AnnotatedFrames(ids, self.gt_rgb, self.gt_thermal)


# ---------------------------------------------------------------------------------------------
# Opening sequences
# ---------------------------------------------------------------------------------------------

def open_sequence(dataset: str, seq_dir: str | Path, *, rgb_dir: str | None = None,
                  thermal_dir: str | None = None, gt_file: str | None = None,
                  thermal_gt_file: str | None = None,
                  thermal_window: tuple[float, float] | None = None) -> Sequence:
    """Read and validate one sequence folder of `dataset` (one of `DATASETS`).

    rgb_dir, thermal_dir, gt_file, thermal_gt_file: only for dataset "generic" (see the module
    docstring for the defaults). thermal_window: (lo, hi) for 16-bit thermal frames instead of
    the per-sequence percentile window.
    Raises SequenceError naming the file or folder that is missing or inconsistent.
    """
    if dataset not in LAYOUTS:
        raise SequenceError(f"unknown dataset '{dataset}'; expected one of {', '.join(DATASETS)}")
    seq_dir = Path(seq_dir)
    overrides = {"rgb_dir": rgb_dir, "thermal_dir": thermal_dir, "gt_file": gt_file,
                 "thermal_gt_file": thermal_gt_file}
    given = [k for k, v in overrides.items() if v is not None]
    if given and dataset != "generic":
        raise SequenceError(f"{', '.join(given)} can only be given for dataset 'generic'; "
                            f"'{dataset}' has a fixed layout")
    if not seq_dir.is_dir():
        raise SequenceError(f"sequence folder {seq_dir} does not exist")
    layout = LAYOUTS[dataset]
    rgb_frames = _list_frames(seq_dir / (rgb_dir or layout.rgb_dir), "RGB")
    thermal_frames = _list_frames(seq_dir / (thermal_dir or layout.thermal_dir), "thermal")
    if len(rgb_frames) != len(thermal_frames):
        raise SequenceError(f"{seq_dir}: {len(rgb_frames)} RGB frames in "
                            f"{rgb_frames[0].parent.name}/ but {len(thermal_frames)} thermal "
                            f"frames in {thermal_frames[0].parent.name}/; they must be equal")
    n = len(rgb_frames)

    if gt_file or thermal_gt_file:  # generic with its GT files named
        gt_path = seq_dir / (gt_file or GENERIC_GT_FILE)
        tgt_path = seq_dir / thermal_gt_file if thermal_gt_file else gt_path
        gt_rgb, gt_thermal, step = _read_gt(gt_path), _read_gt(tgt_path), 1
        gt_files = (gt_path, tgt_path)
    else:
        try:
            gt = load_groundtruth(dataset, seq_dir)
        except (OSError, ValueError) as exc:
            raise SequenceError(f"cannot read the {dataset} ground truth: {exc}") from exc
        gt_rgb, gt_thermal, step = gt.visible, gt.thermal, gt.frame_step
        gt_files = (gt.visible_file, gt.thermal_file)
    for boxes, path in zip((gt_rgb, gt_thermal), gt_files):
        _check_rows(boxes, n, step, path)

    dense_rgb = dense_thermal = None
    if step != 1:
        dense_paths = [seq_dir / f for f in DENSE_GT_FILES]
        if all(p.is_file() for p in dense_paths):
            dense_rgb, dense_thermal = (_read_gt(p) for p in dense_paths)
            for boxes, path in zip((dense_rgb, dense_thermal), dense_paths):
                _check_rows(boxes, n, 1, path)

    if thermal_window is None:
        thermal_window = _auto_thermal_window(thermal_frames)
    else:
        lo, hi = (float(v) for v in thermal_window)
        if not hi > lo:
            raise SequenceError(f"thermal_window {thermal_window!r}: expected (lo, hi), lo < hi")
        thermal_window = (lo, hi)

    return Sequence(
        name=seq_dir.name, dataset=dataset, root=seq_dir,
        rgb_frames=rgb_frames, thermal_frames=thermal_frames,
        gt_rgb=_frozen(gt_rgb), gt_thermal=_frozen(gt_thermal), gt_frame_step=step,
        attributes=read_attributes(seq_dir),
        dense_rgb=None if dense_rgb is None else _frozen(dense_rgb),
        dense_thermal=None if dense_thermal is None else _frozen(dense_thermal),
        thermal_window=thermal_window,
    )


def list_sequences(dataset: str, root: str | Path, split_file: str | Path | None = None,
                   **open_kwargs) -> list[Sequence]:
    """Open the sequences of a dataset folder.

    split_file: a text file with one sequence name a line (blank lines and lines starting with
    `#` are skipped), in the order to return them; every name must be a sub-folder of `root`.
    Without it: every sub-folder of `root` that has the dataset's RGB and thermal folders,
    sorted naturally. `open_kwargs` go to `open_sequence`.
    """
    if dataset not in LAYOUTS:
        raise SequenceError(f"unknown dataset '{dataset}'; expected one of {', '.join(DATASETS)}")
    root = Path(root)
    if not root.is_dir():
        raise SequenceError(f"dataset folder {root} does not exist")
    layout = LAYOUTS[dataset]
    rgb_dir = open_kwargs.get("rgb_dir") or layout.rgb_dir
    thermal_dir = open_kwargs.get("thermal_dir") or layout.thermal_dir
    if split_file is not None:
        names = read_split_file(split_file)
        missing = [n for n in names if not (root / n).is_dir()]
        if missing:
            shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more"
                                              if len(missing) > 10 else "")
            raise SequenceError(f"{len(missing)} of the {len(names)} sequences listed in "
                                f"{split_file} are not folders in {root}: {shown}")
    else:
        names = sorted((p.name for p in root.iterdir()
                        if (p / rgb_dir).is_dir() and (p / thermal_dir).is_dir()),
                       key=natural_key)
        if not names:
            raise SequenceError(f"no sequences in {root}: expected sub-folders that contain "
                                f"{rgb_dir}/ and {thermal_dir}/ ({dataset} layout)")
    return [open_sequence(dataset, root / n, **open_kwargs) for n in names]


def read_split_file(path: str | Path) -> list[str]:
    """Sequence names from a split list: one a line; blank lines and `#` comments skipped."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise SequenceError(f"cannot read split file {path}: {exc.strerror}") from exc
    names = [ln.strip() for ln in lines]
    names = [n for n in names if n and not n.startswith("#")]
    if not names:
        raise SequenceError(f"split file {path} lists no sequence names")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SequenceError(f"split file {path} lists {', '.join(duplicates)} more than once")
    return names


# ---------------------------------------------------------------------------------------------
# Attributes
# ---------------------------------------------------------------------------------------------

def read_attributes(seq_dir: str | Path) -> frozenset[str]:
    """Challenge attributes of a sequence from every source found (module docstring)."""
    seq_dir = Path(seq_dir)
    names: set[str] = set()
    listed = seq_dir / "attributes.txt"
    if listed.is_file():
        text = "\n".join(ln.split("#", 1)[0] for ln in listed.read_text().splitlines())
        names.update(t for t in re.split(r"[\s,;]+", text) if t)
    for tag in sorted(seq_dir.glob("*.tag")):
        if _read_flags(tag).any():
            names.add(tag.stem)
    for folder in (seq_dir.parent, seq_dir.parent.parent):
        lasher = folder / "AttriSeqsTxt" / f"{seq_dir.name}.txt"
        if lasher.is_file():
            flags = _read_flags(lasher)
            if len(flags) != len(LASHER_ATTRIBUTES):
                raise SequenceError(f"{lasher}: {len(flags)} attribute flags; expected "
                                    f"{len(LASHER_ATTRIBUTES)} ({','.join(LASHER_ATTRIBUTES)})")
            names.update(a for a, f in zip(LASHER_ATTRIBUTES, flags) if f)
            break
    return frozenset(names)


def _read_flags(path: Path) -> np.ndarray:
    tokens = [t for t in re.split(r"[\s,]+", path.read_text()) if t]
    try:
        return np.array([float(t) for t in tokens])
    except ValueError:
        raise SequenceError(f"{path}: attribute flags must be numbers (0 or 1)") from None


# ---------------------------------------------------------------------------------------------
# Frames and images
# ---------------------------------------------------------------------------------------------

def natural_key(name: str) -> tuple:
    """Sort key that orders embedded numbers by value: frame2 < frame10."""
    return tuple(int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", name))


def _list_frames(folder: Path, what: str) -> tuple[Path, ...]:
    if not folder.is_dir():
        raise SequenceError(f"{what} frame folder {folder} does not exist")
    frames = [p for p in folder.iterdir()
              if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]
    if not frames:
        raise SequenceError(f"{what} frame folder {folder} has no image files "
                            f"({' '.join(IMAGE_EXTENSIONS)})")
    return tuple(sorted(frames, key=lambda p: natural_key(p.name)))


def _imread(path: Path, flags: int) -> np.ndarray:
    image = cv2.imread(str(path), flags)
    if image is None:
        raise SequenceError(f"{path}: cannot read the image (missing, empty or not an image)")
    return image


def _auto_thermal_window(frames: tuple[Path, ...]) -> tuple[float, float] | None:
    """Percentile window over a few frames when the thermal frames are 16-bit, else None."""
    if frames[0].suffix.lower() not in _DEEP_EXTENSIONS:
        return None
    first = _imread(frames[0], cv2.IMREAD_UNCHANGED)
    if first.dtype != np.uint16:
        return None
    picks = np.unique(np.linspace(0, len(frames) - 1, THERMAL_WINDOW_FRAMES).round().astype(int))
    pixels = [first.ravel()] + [_imread(frames[i], cv2.IMREAD_UNCHANGED).ravel()
                                for i in picks if i != 0]
    lo, hi = np.percentile(np.concatenate(pixels), THERMAL_WINDOW_PERCENTILES)
    lo, hi = float(lo), float(hi)
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


# ---------------------------------------------------------------------------------------------
# Ground truth checks
# ---------------------------------------------------------------------------------------------

def _read_gt(path: Path) -> np.ndarray:
    if not path.is_file():
        raise SequenceError(f"ground-truth file {path} does not exist")
    try:
        return read_box_file(path)
    except (OSError, ValueError) as exc:
        raise SequenceError(f"cannot read the ground truth: {exc}") from exc


def _check_rows(boxes: np.ndarray, n: int, step: int, path: Path) -> None:
    """A GT file for n frames must have exactly ceil(n / step) rows."""
    needed = math.ceil(n / step)
    if len(boxes) != needed:
        per = "one row per frame" if step == 1 else f"one row every {step} frames, frame 0 included"
        raise SequenceError(f"{path}: {len(boxes)} ground-truth rows, but the sequence has {n} "
                            f"frames and needs {needed} ({per})")


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64)
    a.setflags(write=False)
    return a
