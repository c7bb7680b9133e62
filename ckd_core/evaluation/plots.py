"""Precision and success plots (PNG) of one or several trackers on one dataset.

Uses matplotlib's object API with the Agg canvas (no pyplot, no global backend switch), so
it works headless and never touches the state of a caller's own figures.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ckd_core.evaluation.scorer import DISPLAY_NAMES, DatasetScore, convention

_TITLES = {"precision": "Precision plots of OPE on {}", "success": "Success plots of OPE on {}"}
_Y_LABELS = {"precision": "Precision", "success": "Success rate"}


def plot_curves(scores: Mapping[str, DatasetScore] | DatasetScore, out_dir: str | Path,
                dpi: int = 120) -> list[Path]:
    """Write one PNG per curve (e.g. LasHeR: PR, NPR, SR) -> the paths written.

    scores: {tracker name: score} on the same dataset (or one score). Each PNG is
    `<out_dir>/<dataset>_<metric>.png`; trackers are listed best first with their headline
    value in the legend, e.g. `ours [52.3]`.
    """
    if isinstance(scores, DatasetScore):
        scores = {scores.tracker: scores}
    if not scores:
        raise ValueError("no scores to plot")
    datasets = {s.dataset for s in scores.values()}
    if len(datasets) != 1:
        raise ValueError(f"cannot plot scores of different datasets together: "
                         f"{sorted(datasets)}")
    dataset = datasets.pop()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    first = next(iter(scores.values()))
    paths = []
    for metric, curve in first.curves.items():
        ranked = sorted(scores.items(), key=lambda kv: -kv[1].headline[metric])
        fig = Figure(figsize=(6.0, 4.5))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        for name, score in ranked:
            c = score.curves[metric]
            ax.plot(c.thresholds, c.values, linewidth=1.8,
                    label=f"{name} [{100 * score.headline[metric]:.1f}]")
        if curve.kind == "precision":
            at = _headline_threshold(first, metric)
            if at is not None:
                ax.axvline(at, color="0.6", linestyle="--", linewidth=0.8)
        display = DISPLAY_NAMES.get(dataset, dataset)
        ax.set_title(f"{_TITLES[curve.kind].format(display)}: {metric}")
        ax.set_xlabel(curve.label or "Threshold")
        ax.set_ylabel(_Y_LABELS[curve.kind])
        ax.set_xlim(float(curve.thresholds[0]), float(curve.thresholds[-1]))
        ax.set_ylim(0.0, 1.0)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right" if curve.kind == "precision" else "lower left",
                  fontsize=8)
        fig.tight_layout()
        path = out_dir / f"{dataset}_{_safe(metric)}.png"
        fig.savefig(path, dpi=dpi)
        paths.append(path)
    return paths


def _headline_threshold(score: DatasetScore, metric: str) -> float | None:
    """The threshold at which the precision headline is read (20 px, 0.2, 5 px)."""
    for spec in convention(score.dataset).metrics:
        if spec.name == metric and spec.index is not None:
            return float(spec.thresholds[spec.index])
    return None


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)
