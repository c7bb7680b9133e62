"""Score tracker result files against a benchmark's ground truth, toolkit-exact.

Published RGBT numbers come from the Python toolkit `rgbt` 1.0.1 (GTOT, RGBT210, RGBT234,
LasHeR) and from VTUAV's MATLAB scripts. `score_dataset` reproduces each, with the per-frame
math in `metrics.py` (see its docstring for the float32 / threshold details). The conventions:

| dataset | GT used                       | numbers   | frame 0     | rounding       | headline
|---------|-------------------------------|-----------|-------------|----------------|---------
| lasher  | init.txt (one GT), rounded    | float32   | := GT       | half-to-even   | PR, NPR, SR
| rgbt234 | visible.txt + infrared.txt    | float32   | as written  | half-to-even   | MPR, MSR
| rgbt210 | init.txt (one GT)             | float32   | := GT       | half-to-even   | PR, SR
| gtot    | groundTruth_v/_i (w = x2-x1)  | float32   | as written  | half-to-even   | MPR, MSR
| vtuav   | rgb.txt + ir.txt, every 10th  | float64   | as written  | none           | MPR, MSR, PR_RGB, SR_RGB

- PR / MPR: share of frames with centre error <= 20 px (thresholds 0..50). NPR: normalised
  error <= 0.20 (thresholds 0..0.5 step 0.01); the value at 0.20, not an area.
  SR / MSR: mean over the 21 thresholds 0, 0.05, ..., 1 of the share with IoU > t.
  MPR / MSR take per frame the better of the two modalities' GT (min error, max IoU).
- LasHeR only: a predicted row with w <= 0 or h <= 0 (after rounding) takes the previous row;
  a GT row with any of x, y, w, h <= 0 (target absent, or touching the top/left border)
  counts as a hit for PR and NPR and a miss for SR.
- GTOT: centre errors strictly below the threshold (thresholds 0..25 step 0.5), MPR at 5 px;
  MSR is the trapezoid area of the success curve; both POOLED over all frames of all
  sequences (not a mean of per-sequence scores). Centres are x + w / 2 (the toolkit's mode
  for GTOT; distances are the same as with x + (w - 1) / 2 up to round-off).
- VTUAV: results are dense; rows 0, 10, 20, ... are scored against the GT rows (row k =
  frame 10 k), not rounded, no invalid-GT rule; RGB-only PR_RGB / SR_RGB use rgb.txt alone.
- Every dataset but GTOT: dataset score = mean over sequences of the per-sequence score.
- A result file shorter than the ground truth is an error; a longer one is truncated.

Layout: `gt_root/<sequence>/<GT files>` (as `ckd_core.data.groundtruth` reads them) and
`results_dir/<sequence>.txt`. Sequences: the given list, else every sub-folder of gt_root that
holds the dataset's GT files, sorted by name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from ckd_core.data.groundtruth import GroundTruth, has_groundtruth, load_groundtruth
from ckd_core.evaluation import metrics as M
from ckd_core.evaluation.results_io import load_result

SCORED_DATASETS = ("gtot", "rgbt210", "rgbt234", "lasher", "vtuav")
DISPLAY_NAMES = {"gtot": "GTOT", "rgbt210": "RGBT210", "rgbt234": "RGBT234",
                 "lasher": "LasHeR", "vtuav": "VTUAV"}


# ---------------------------------------------------------------------------------------------
# Conventions
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MetricSpec:
    """One reported metric: which per-frame error, which GT, which thresholds.

    error: "distance" (centre error, px), "normalised" (centre error / GT size) or "overlap"
    (IoU). modalities: "visible" (one GT) or "both" (min error / max IoU over the two).
    index: for precision metrics, the threshold index of the headline value; None for
    success metrics (headline = mean of the curve, or the trapezoid area when pooled).
    """

    name: str
    error: str
    modalities: str
    thresholds: np.ndarray
    index: int | None = None
    strict: bool = False
    label: str = ""

    @property
    def kind(self) -> str:
        return "success" if self.error == "overlap" else "precision"


@dataclass(frozen=True)
class Convention:
    """How one benchmark's published numbers are computed (see the module docstring)."""

    dataset: str
    source: str                 # whose numbers we reproduce
    metrics: tuple[MetricSpec, ...]
    dtype: type = np.float32    # float32: the rgbt toolkit's arithmetic; float64: MATLAB's
    round_results: bool = True  # read as float32, round half to even
    round_gt: bool = False      # LasHeR: the toolkit reads its GT like a result file
    frame0_from_gt: bool = False
    lasher_rules: bool = False  # invalid-prediction replacement + invalid-GT rule
    pooled: bool = False        # GTOT: pool frames of all sequences
    inclusive_centre: bool = True
    # Arithmetic dtype when it differs from `dtype` (rgbt under numpy 1.x: float64 on the
    # float32-read values; see `convention`).
    compute_dtype: type | None = None


def _pr(name, modalities, label="Location error threshold (pixels)"):
    return MetricSpec(name, "distance", modalities, M.PRECISION_THRESHOLDS,
                      M.PRECISION_INDEX, label=label)


def _sr(name, modalities, thresholds=M.SUCCESS_THRESHOLDS):
    return MetricSpec(name, "overlap", modalities, thresholds, label="Overlap threshold")


_RGBT = "rgbt 1.0.1 (Python toolkit)"
CONVENTIONS: dict[str, Convention] = {
    "lasher": Convention(
        "lasher", _RGBT,
        (_pr("PR", "visible"),
         MetricSpec("NPR", "normalised", "visible", M.NORM_PRECISION_THRESHOLDS,
                    M.NORM_PRECISION_INDEX, label="Normalised location error threshold"),
         _sr("SR", "visible")),
        round_gt=True, frame0_from_gt=True, lasher_rules=True),
    "rgbt234": Convention("rgbt234", _RGBT, (_pr("MPR", "both"), _sr("MSR", "both"))),
    "rgbt210": Convention("rgbt210", _RGBT, (_pr("PR", "visible"), _sr("SR", "visible")),
                          frame0_from_gt=True),
    "gtot": Convention(
        "gtot", _RGBT + ", GTOT mode",
        (MetricSpec("MPR", "distance", "both", M.GTOT_PRECISION_THRESHOLDS,
                    M.GTOT_PRECISION_INDEX, strict=True,
                    label="Location error threshold (pixels)"),
         _sr("MSR", "both")),
        pooled=True, inclusive_centre=False),
    "vtuav": Convention(
        "vtuav", "VTUAV authors' MATLAB scripts",
        (MetricSpec("MPR", "distance", "both", M.VTUAV_PRECISION_THRESHOLDS,
                    M.PRECISION_INDEX, label="Location error threshold (pixels)"),
         _sr("MSR", "both", M.VTUAV_SUCCESS_THRESHOLDS),
         MetricSpec("PR_RGB", "distance", "visible", M.VTUAV_PRECISION_THRESHOLDS,
                    M.PRECISION_INDEX, label="Location error threshold (pixels)"),
         _sr("SR_RGB", "visible", M.VTUAV_SUCCESS_THRESHOLDS)),
        dtype=np.float64, round_results=False),
}


TOOLKIT_NUMPY_VERSIONS = (2, 1)


def convention(dataset: str, toolkit_numpy: int = 2) -> Convention:
    """The scoring convention of `dataset`; ValueError naming the choices if unknown.

    toolkit_numpy: the numpy major version of the `rgbt` run to reproduce. The toolkit
    reads boxes as float32 and does its per-frame math on numpy scalars, whose arithmetic
    numpy >= 2 (the default, and what this project pins) keeps in float32 while numpy 1.x
    promoted it to float64. The two differ only for frames whose error is exactly on a
    threshold (e.g. nd = 0.2 with dy = 0 and dx = w / 5, or IoU = 3/20), where the round-off
    of float32 or float64 math decides hit or miss (see `metrics`); on realistic LasHeR data
    the headline numbers move by about 1e-4. Papers from before mid-2024 used numpy 1.
    toolkit_numpy=1 is exact for integer ground truth (the GT files of all four datasets
    are integers); with fractional GT, the few float32 products and sums the numpy-1 toolkit
    kept inside its IoU (x + w, w * h) are not reproduced. Ignored for VTUAV (float64).
    """
    try:
        conv = CONVENTIONS[dataset]
    except KeyError:
        raise ValueError(f"cannot score dataset '{dataset}'; expected one of "
                         f"{', '.join(SCORED_DATASETS)}") from None
    if toolkit_numpy not in TOOLKIT_NUMPY_VERSIONS:
        raise ValueError(f"toolkit_numpy must be 2 or 1, got {toolkit_numpy!r}")
    if toolkit_numpy == 1 and conv.dtype == np.float32:
        conv = replace(conv, compute_dtype=np.float64)
    return conv


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Curve:
    """A dataset-level curve: values[i] at thresholds[i]; kind 'precision' or 'success'."""

    metric: str
    kind: str
    thresholds: np.ndarray
    values: np.ndarray
    label: str


@dataclass(frozen=True, eq=False)
class SequenceScore:
    """One sequence: frames scored, per-metric hit counts (T,) and headline values."""

    name: str
    n_frames: int
    counts: dict[str, np.ndarray]
    values: dict[str, float]


@dataclass(frozen=True, eq=False)
class DatasetScore:
    """A tracker's score on a dataset: headline numbers, full curves, per-sequence values."""

    dataset: str
    tracker: str
    headline: dict[str, float]
    curves: dict[str, Curve]
    sequences: tuple[SequenceScore, ...]
    source: str
    pooled: bool

    @property
    def n_frames(self) -> int:
        return sum(s.n_frames for s in self.sequences)

    def summary(self) -> str:
        """One line: `LasHeR  tracker: PR 52.31  NPR 48.10  SR 41.92  (245 sequences, ...)`."""
        nums = "  ".join(f"{k} {100 * v:.2f}" for k, v in self.headline.items())
        return (f"{DISPLAY_NAMES.get(self.dataset, self.dataset)}  {self.tracker}: {nums}  "
                f"(%, {len(self.sequences)} sequences, {self.n_frames} frames)")

    def subset(self, names: Iterable[str]) -> "DatasetScore":
        """The same score over some of the sequences (e.g. those with one attribute)."""
        wanted = set(names)
        unknown = wanted - {s.name for s in self.sequences}
        if unknown:
            raise ValueError(f"sequences not in this {self.dataset} score: "
                             f"{', '.join(sorted(unknown))}")
        return aggregate(self.dataset, self.tracker,
                         [s for s in self.sequences if s.name in wanted])

    def to_dict(self) -> dict:
        """JSON-ready: headline, curves (thresholds + values) and per-sequence values."""
        return {
            "dataset": self.dataset,
            "tracker": self.tracker,
            "source": self.source,
            "pooled": self.pooled,
            "n_sequences": len(self.sequences),
            "n_frames": self.n_frames,
            "headline": dict(self.headline),
            "curves": {k: {"kind": c.kind, "thresholds": c.thresholds.tolist(),
                           "values": c.values.tolist()} for k, c in self.curves.items()},
            "sequences": [{"name": s.name, "n_frames": s.n_frames, **s.values}
                          for s in self.sequences],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)


# ---------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------

def read_sequence_list(path: str | Path) -> list[str]:
    """Sequence names from a text file, one a line (blank lines skipped, names stripped)."""
    path = Path(path)
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    names = [n for n in names if n]
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise ValueError(f"{path}: sequence '{n}' is listed twice")
        seen.add(n)
    if not names:
        raise ValueError(f"{path} lists no sequences")
    return names


def find_sequences(dataset: str, gt_root: str | Path) -> list[str]:
    """Every sub-folder of gt_root holding the dataset's GT files, sorted by name."""
    gt_root = Path(gt_root)
    if not gt_root.is_dir():
        raise FileNotFoundError(f"ground-truth root {gt_root} is not a folder")
    names = sorted(p.name for p in gt_root.iterdir() if p.is_dir() and has_groundtruth(dataset, p))
    if not names:
        raise FileNotFoundError(f"no {dataset} sequence folders with ground truth under "
                                f"{gt_root}")
    return names


def load_dataset_groundtruth(dataset: str, gt_root: str | Path,
                             sequences: Iterable[str] | None = None
                             ) -> dict[str, GroundTruth]:
    """{sequence: GroundTruth} read as the dataset's convention needs (float32 for rgbt)."""
    conv = convention(dataset)
    names = list(sequences) if sequences is not None else find_sequences(dataset, gt_root)
    return {n: load_groundtruth(dataset, Path(gt_root) / n, dtype=conv.dtype) for n in names}


def score_dataset(dataset: str, gt_root: str | Path, results_dir: str | Path,
                  sequences: Iterable[str] | None = None, tracker: str | None = None,
                  toolkit_numpy: int = 2) -> DatasetScore:
    """Score `results_dir/<seq>.txt` against `gt_root/<seq>/` for one tracker.

    sequences: names to score (default: every sequence folder with GT under gt_root).
    tracker: the name shown in reports (default: the results folder's name).
    toolkit_numpy: 2 or 1, see `convention`.
    Raises FileNotFoundError / ValueError naming the sequence and file for a missing, short
    or unreadable file.
    """
    gts = load_dataset_groundtruth(dataset, gt_root, sequences)
    return score_results(dataset, gts, results_dir, tracker, toolkit_numpy)


def score_results(dataset: str, groundtruth: Mapping[str, GroundTruth],
                  results_dir: str | Path, tracker: str | None = None,
                  toolkit_numpy: int = 2) -> DatasetScore:
    """Score one tracker's result folder against already loaded ground truth."""
    results_dir = Path(results_dir)
    results = {name: load_result(results_dir, name, len(gt), gt.frame_step)
               for name, gt in groundtruth.items()}
    return score_arrays(dataset, groundtruth, results, tracker or results_dir.name,
                        toolkit_numpy)


def score_arrays(dataset: str, groundtruth: Mapping[str, GroundTruth],
                 results: Mapping[str, np.ndarray], tracker: str = "tracker",
                 toolkit_numpy: int = 2) -> DatasetScore:
    """Score in-memory results: {seq: (len(gt), 4) xywh as written, one row per GT row}.

    For VTUAV pass the rows of GT frames only (rows 0, 10, 20, ... of a dense result).
    """
    conv = convention(dataset, toolkit_numpy)
    if not groundtruth:
        raise ValueError(f"no {dataset} sequences to score")
    seqs = []
    for name, gt in groundtruth.items():
        if name not in results:
            raise ValueError(f"sequence '{name}': no result given")
        seqs.append(score_sequence(conv, name, gt, np.asarray(results[name])))
    return aggregate(dataset, tracker, seqs)


def prepare_boxes(conv: Convention, gt: GroundTruth, result: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply the reading rules -> (pred, gt_visible, gt_thermal), each (N, 4) in the
    convention's arithmetic dtype.

    result: (N, 4) boxes as written, one per GT row. Rounds (half to even, from float32),
    sets frame 0 to the GT and replaces invalid predictions where the convention says so.
    """
    n = len(gt)
    if result.shape != (n, 4):
        raise ValueError(f"result has shape {result.shape}; expected ({n}, 4), one box per "
                         "ground-truth row")
    gt_v = np.asarray(gt.visible, dtype=conv.dtype)
    gt_t = np.asarray(gt.thermal, dtype=conv.dtype)
    if conv.round_gt:
        gt_v, gt_t = np.round(gt_v), np.round(gt_t)
    pred = M.toolkit_round(result) if conv.round_results else result.astype(conv.dtype)
    if conv.frame0_from_gt:
        pred[0] = gt_v[0]
    if conv.lasher_rules:
        pred = M.replace_invalid_predictions(pred)
    if conv.compute_dtype is not None:
        pred, gt_v, gt_t = (a.astype(conv.compute_dtype) for a in (pred, gt_v, gt_t))
    return pred, gt_v, gt_t


def score_sequence(conv: Convention, name: str, gt: GroundTruth, result: np.ndarray
                   ) -> SequenceScore:
    """Per-metric hit counts of one sequence (see `prepare_boxes` for `result`)."""
    try:
        pred, gt_v, gt_t = prepare_boxes(conv, gt, result)
    except ValueError as exc:
        raise ValueError(f"sequence '{name}': {exc}") from None
    n = len(pred)
    counts = {spec.name: _counts(conv, spec, pred, gt_v, gt_t) for spec in conv.metrics}
    values = {spec.name: _headline(conv, spec, counts[spec.name] / n, counts[spec.name], n)
              for spec in conv.metrics}
    return SequenceScore(name=name, n_frames=n, counts=counts, values=values)


def _headline(conv: Convention, spec: MetricSpec, curve: np.ndarray, counts: np.ndarray,
              n: int) -> float:
    """A metric's number from its curve (or, for GTOT's trapezoid, its pooled counts)."""
    if spec.kind == "precision":
        return float(curve[spec.index])
    if conv.pooled:
        return M.trapezoid_success_score(counts, n, spec.thresholds)
    return M.success_score(curve)


def _counts(conv: Convention, spec: MetricSpec, pred, gt_v, gt_t) -> np.ndarray:
    both = spec.modalities == "both"
    if spec.error == "distance":
        e = (M.min_distance(pred, gt_v, gt_t, conv.inclusive_centre) if both
             else M.centre_distance(pred, gt_v, conv.inclusive_centre))
    elif spec.error == "normalised":  # against one GT only (LasHeR)
        e = M.normalised_distance(pred, gt_v, conv.inclusive_centre)
    else:
        e = M.max_overlap(pred, gt_v, gt_t) if both else M.iou(pred, gt_v)
    if conv.lasher_rules:
        e = M.mark_invalid_gt(e, gt_v)
    if spec.kind == "precision":
        return M.count_within(e, spec.thresholds, spec.strict)
    return M.count_above(e, spec.thresholds)


def aggregate(dataset: str, tracker: str, sequences: Iterable[SequenceScore]) -> DatasetScore:
    """Dataset curves and headline numbers from per-sequence counts.

    Mean of per-sequence curves (every dataset but GTOT), or pooled counts over all frames
    (GTOT: MPR = pooled P(5 px), MSR = trapezoid area of the pooled success curve).
    """
    conv = convention(dataset)
    seqs = tuple(sequences)
    if not seqs:
        raise ValueError(f"no {dataset} sequences to aggregate")
    n_total = sum(s.n_frames for s in seqs)
    curves, headline = {}, {}
    for spec in conv.metrics:
        pooled = np.sum([s.counts[spec.name] for s in seqs], axis=0)
        if conv.pooled:
            values = pooled / n_total
        else:
            values = np.mean([s.counts[spec.name] / s.n_frames for s in seqs], axis=0)
        curves[spec.name] = Curve(spec.name, spec.kind, np.asarray(spec.thresholds), values,
                                  spec.label)
        headline[spec.name] = _headline(conv, spec, values, pooled, n_total)
    return DatasetScore(dataset=dataset, tracker=tracker, headline=headline, curves=curves,
                        sequences=seqs, source=conv.source, pooled=conv.pooled)


def comparison_table(scores: Mapping[str, DatasetScore]) -> str:
    """Markdown table, one row per tracker (best first by the first metric), values in %."""
    if not scores:
        raise ValueError("no scores to compare")
    datasets = {s.dataset for s in scores.values()}
    if len(datasets) != 1:
        raise ValueError(f"cannot compare scores of different datasets: {sorted(datasets)}")
    first = next(iter(scores.values()))
    keys = list(first.headline)
    rows = sorted(scores.items(), key=lambda kv: -kv[1].headline[keys[0]])
    lines = ["| Tracker | " + " | ".join(keys) + " |",
             "|---|" + "---:|" * len(keys)]
    for name, s in rows:
        lines.append(f"| {name} | " + " | ".join(f"{100 * s.headline[k]:.2f}" for k in keys)
                     + " |")
    return "\n".join(lines)
