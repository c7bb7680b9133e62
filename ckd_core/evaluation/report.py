"""Score a finished benchmark run and write its report.

`write_evaluation(summary)` scores `OUT/<tracker>/` with the toolkit-exact scorer (and any
other result folders given for comparison), then writes into OUT:
- `report.md`: headline numbers (a comparison table when several trackers), the plots, the
  speed summary with the hardware named, per-attribute scores (each attribute = the score
  over the sequences having it) and a per-sequence table;
- `plots/<dataset>_<metric>.png`: precision and success curves of every tracker;
- `scores.json`: the same numbers, machine-readable.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping

from ckd_core.data.groundtruth import GroundTruth
from ckd_core.data.sequences import Sequence
from ckd_core.evaluation.runner import RunSummary, expected_rows
from ckd_core.evaluation.scorer import (DISPLAY_NAMES, DatasetScore, comparison_table,
                                        load_dataset_groundtruth, score_results)
from ckd_core.evaluation.speed import SpeedSummary, hardware_name, speed_summary

REPORT_FILE = "report.md"
SCORES_FILE = "scores.json"
PLOTS_DIR = "plots"


@dataclass(frozen=True)
class EvalOutputs:
    """What `write_evaluation` produced. scores: {tracker: score}, this run's tracker first."""

    scores: dict[str, DatasetScore]
    attributes: dict[str, DatasetScore]
    speed: SpeedSummary
    report: Path
    scores_json: Path
    plots: list[Path]


def truncate_groundtruth(gt: GroundTruth, rows: int) -> GroundTruth:
    """The first `rows` rows of a sequence's ground truth (for --max-frames runs)."""
    return GroundTruth(visible=gt.visible[:rows], thermal=gt.thermal[:rows],
                       frame_step=gt.frame_step, visible_file=gt.visible_file,
                       thermal_file=gt.thermal_file)


def load_run_groundtruth(summary: RunSummary) -> dict[str, GroundTruth]:
    """The GT the run is scored against: every row, or the rows of the frames tracked."""
    job = summary.job
    names = [s.name for s in summary.sequences]
    gts = load_dataset_groundtruth(job.dataset, job.root, names)
    if job.max_frames is not None:
        gts = {s.name: truncate_groundtruth(gts[s.name], expected_rows(job, s))
               for s in summary.sequences}
    return gts


def attribute_scores(score: DatasetScore, sequences: list[Sequence]
                     ) -> dict[str, DatasetScore]:
    """{attribute: score over the sequences that have it}, attributes sorted by name."""
    by_attr: dict[str, list[str]] = {}
    for seq in sequences:
        for attr in seq.attributes:
            by_attr.setdefault(attr, []).append(seq.name)
    return {a: score.subset(by_attr[a]) for a in sorted(by_attr)}


def write_evaluation(summary: RunSummary, compare: Mapping[str, Path] | None = None,
                     device: str = "cpu") -> EvalOutputs:
    """Score the run (and the `compare` result folders), write report, plots and JSON."""
    from ckd_core.evaluation.plots import plot_curves

    job = summary.job
    out = Path(job.out_dir)
    gts = load_run_groundtruth(summary)
    ours = score_results(job.dataset, gts, job.results_dir, job.tracker_name)
    scores = {job.tracker_name: ours}
    for name, folder in (compare or {}).items():
        if name in scores:
            raise ValueError(f"comparison tracker '{name}' has the name of this run's "
                             "tracker; name it with NAME=DIR")
        scores[name] = score_results(job.dataset, gts, folder, name)
    attrs = attribute_scores(ours, summary.sequences)
    speed = speed_summary(job.results_dir, [s.name for s in summary.sequences])
    plots = plot_curves(scores, out / PLOTS_DIR)
    hardware = hardware_name(device)

    report = out / REPORT_FILE
    report.write_text(render_report(summary, scores, attrs, speed, hardware, plots, device),
                      encoding="utf-8")
    doc = {"dataset": job.dataset, "tracker": job.tracker_name, "run": job.manifest(),
           "speed": {**speed.to_dict(), "hardware": hardware, "device": device,
                     "workers": job.workers},
           "attributes": {a: {"sequences": len(s.sequences), **s.headline}
                          for a, s in attrs.items()},
           "attributes_by_tracker": {
               n: {a: s.headline for a, s in attribute_scores(sc, summary.sequences).items()}
               for n, sc in scores.items()},
           "trackers": {n: s.to_dict() for n, s in scores.items()}}
    scores_json = out / SCORES_FILE
    scores_json.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return EvalOutputs(scores, attrs, speed, report, scores_json, plots)


# ---------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------

def _pct(v: float) -> str:
    return f"{100 * v:.2f}"


def _table(header: list[str], rows: list[list[str]], right_from: int = 1) -> list[str]:
    align = ["---"] * right_from + ["---:"] * (len(header) - right_from)
    return ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|",
            *("| " + " | ".join(r) + " |" for r in rows)]


def _fps(v: float) -> str:
    return "n/a" if math.isnan(v) else f"{v:.1f}"


def _ms(frames: int, seconds: float) -> str:
    return "n/a" if frames == 0 else f"{1000 * seconds / frames:.1f}"


def _attribute_comparison(scores: Mapping[str, DatasetScore], sequences: list[Sequence],
                          metrics: list[str]) -> list[str]:
    """Per attribute, each tracker's success score (SR / MSR) and precision (PR / MPR)."""
    per = {n: attribute_scores(s, sequences) for n, s in scores.items()}
    shown = [m for m in metrics if m.endswith("SR")] + [m for m in metrics
                                                       if m.endswith("PR") and "N" not in m]
    lines = ["", "### Per attribute, every tracker (%)", ""]
    for m in shown:
        rows = [[a, *(_pct(per[n][a].headline[m]) for n in scores)] for a in per[next(
            iter(scores))]]
        lines += [f"{m}:", ""] + _table(["Attribute", *scores], rows) + [""]
    return lines[:-1]


def render_report(summary: RunSummary, scores: Mapping[str, DatasetScore],
                  attrs: Mapping[str, DatasetScore], speed: SpeedSummary, hardware: str,
                  plots: list[Path], device: str) -> str:
    """report.md as text (see the module docstring for its sections)."""
    job = summary.job
    ours = scores[job.tracker_name]
    metrics = list(ours.headline)
    display = DISPLAY_NAMES.get(job.dataset, job.dataset)
    ident = ", ".join(f"{k}={v}" for k, v in job.tracker.identity().items())
    lines = [f"# {job.tracker_name} on {display}", "",
             f"- Tracker: {job.tracker_name} ({ident})",
             f"- Dataset: {display}, {len(ours.sequences)} sequences, {ours.n_frames} scored "
             f"frames, from {job.root}",
             f"- Scoring: {ours.source}" + (", pooled over all frames" if ours.pooled else
                                           ", mean over sequences"),
             f"- Written {datetime.now(timezone.utc).isoformat(timespec='seconds')}; this run "
             f"tracked {len(summary.ran)} sequences and reused {len(summary.skipped)} "
             f"finished ones ({summary.seconds:.1f} s)"]
    if job.max_frames is not None:
        lines.append(f"- **Only the first {job.max_frames} frames of each sequence were "
                     "tracked and scored (--max-frames): not comparable with published "
                     "numbers.**")
    lines += ["", "## Headline (%)", ""]
    lines.append(comparison_table(scores))
    lines += ["", "## Plots", ""]
    lines += [f"![{p.stem}]({PLOTS_DIR}/{p.name})" for p in plots]
    lines += ["", "## Speed", ""]
    lines += _table(["", "FPS", "ms / frame"],
                    [["model only", _fps(speed.model_fps),
                      _ms(speed.frames, speed.model_seconds)],
                     ["end to end (images in, box out)", _fps(speed.end_to_end_fps),
                      _ms(speed.frames, speed.end_to_end_seconds)]])
    lines += ["", f"Hardware: {hardware}; device `{device}`; {job.workers} worker process(es) "
              f"sharing it. {speed.frames} tracked frames (frame 0 of each sequence, the "
              "init, left out). Image decoding from disk is not included. With several "
              "workers on one CPU the per-frame times include their contention; measure "
              "speed with one worker (or `benchmarks/bench_track_speed.py`)."]
    if attrs:
        lines += ["", "## Per attribute (%)", ""]
        rows = [[a, str(len(s.sequences)), *(_pct(s.headline[m]) for m in metrics)]
                for a, s in attrs.items()]
        lines += _table(["Attribute", "Sequences", *metrics], rows)
        if len(scores) > 1:
            lines += _attribute_comparison(scores, summary.sequences, metrics)
    lines += ["", "## Per sequence (%)", ""]
    rows = [[s.name, str(s.n_frames), *(_pct(s.values[m]) for m in metrics)]
            for s in sorted(ours.sequences, key=lambda s: s.name)]
    lines += _table(["Sequence", "Scored frames", *metrics], rows)
    return "\n".join(lines) + "\n"
