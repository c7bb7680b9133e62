"""`ckd score`: score result files against a benchmark's ground truth, toolkit-exact.

    ckd score --dataset lasher --gt-root LasHeR/testingset --results runs/ckd/lasher
    ckd score --dataset rgbt234 --gt-root RGBT234 --results ours=runs/a --results base=runs/b \\
              --json scores.json --plots plots/

Prints the headline numbers (in %) of each tracker and, for several trackers, a markdown
comparison table. The conventions per dataset are in `ckd_core/evaluation/scorer.py`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ckd_core.cli import CLIError
from ckd_core.evaluation.results_io import write_text_atomic
from ckd_core.evaluation.scorer import (SCORED_DATASETS, TOOLKIT_NUMPY_VERSIONS,
                                        comparison_table, load_dataset_groundtruth,
                                        read_sequence_list, score_results)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, choices=SCORED_DATASETS,
                        help="benchmark whose scoring convention to use")
    parser.add_argument("--gt-root", required=True, type=Path, metavar="DIR",
                        help="folder holding one sub-folder of ground truth per sequence")
    parser.add_argument("--results", required=True, action="append", metavar="[NAME=]DIR",
                        help="folder of <sequence>.txt result files; repeat to compare "
                             "trackers (NAME defaults to the folder's name)")
    parser.add_argument("--sequences", type=Path, metavar="FILE",
                        help="score only these sequences (one name per line); default: "
                             "every sequence folder under --gt-root")
    parser.add_argument("--json", type=Path, metavar="OUT",
                        help="write headline numbers, curves and per-sequence values here")
    parser.add_argument("--plots", type=Path, metavar="DIR",
                        help="write precision / success plots (PNG) into this folder")
    parser.add_argument("--toolkit-numpy", type=int, choices=TOOLKIT_NUMPY_VERSIONS, default=2,
                        help="reproduce an rgbt toolkit run under numpy 2 (default) or 1; "
                             "they differ only for frames exactly on a threshold")


def parse_results(values: list[str]) -> dict[str, Path]:
    """['DIR', 'NAME=DIR', ...] -> {name: dir}. A value that is an existing folder is a
    folder even if it contains '='; otherwise NAME=DIR splits at the first '='."""
    out: dict[str, Path] = {}
    for value in values:
        if "=" in value and not Path(value).is_dir():
            name, _, folder = value.partition("=")
            if not name or not folder:
                raise CLIError(f"--results {value!r}: expected DIR or NAME=DIR")
            path = Path(folder)
        else:
            path = Path(value)
            name = path.resolve().name
        if not path.is_dir():
            raise CLIError(f"--results {value!r}: {path} is not a folder")
        if name in out:
            raise CLIError(f"--results: two result folders are named '{name}'; name them "
                           "with NAME=DIR")
        out[name] = path
    return out


def run(args: argparse.Namespace) -> int:
    trackers = parse_results(args.results)
    if not args.gt_root.is_dir():
        raise CLIError(f"--gt-root {args.gt_root} is not a folder")
    sequences = read_sequence_list(args.sequences) if args.sequences else None
    groundtruth = load_dataset_groundtruth(args.dataset, args.gt_root, sequences)

    scores = {name: score_results(args.dataset, groundtruth, folder, name, args.toolkit_numpy)
              for name, folder in trackers.items()}
    for score in scores.values():
        print(score.summary())
    if len(scores) > 1:
        print()
        print(comparison_table(scores))

    if args.json:
        doc = {"dataset": args.dataset, "toolkit_numpy": args.toolkit_numpy,
               "trackers": {name: s.to_dict() for name, s in scores.items()}}
        write_text_atomic(args.json, json.dumps(doc, indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.plots:
        from ckd_core.evaluation.plots import plot_curves  # matplotlib: only when asked
        for path in plot_curves(scores, args.plots):
            print(f"wrote {path}")
    return 0
