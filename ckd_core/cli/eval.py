"""`ckd eval`: run a tracker over a benchmark (one pass, parallel, resumable) and score it.

    ckd eval --dataset lasher --root LasHeR/testingset --checkpoint ckd.safetensors --workers 4
    ckd eval --dataset vtuav --root VTUAV/test_ST --baseline opencv-mil-thermal
    ckd eval --dataset lasher --root data/synth --preset ckd_tiny --max-frames 20   # smoke test
    ckd eval ... --compare mil=runs/eval/lasher/opencv-mil-rgb                      # comparison

Writes OUT/<tracker>/<seq>.txt (toolkit format), OUT/<tracker>/times/<seq>_time.txt,
OUT/report.md, OUT/plots/*.png and OUT/scores.json (OUT defaults to runs/eval/<dataset>).
Run it again after an interruption: finished sequences are skipped. Without --checkpoint,
--preset or --baseline the shipped default model is used. Benchmark runs use the authors'
tracker (no LOST logic) unless --state-machine is given.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ckd_core.cli import CLIError
from ckd_core.evaluation.baselines import BASELINES
from ckd_core.evaluation.scorer import SCORED_DATASETS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, choices=SCORED_DATASETS,
                        help="benchmark (its folder layout and scoring convention)")
    parser.add_argument("--root", required=True, type=Path, metavar="DIR",
                        help="dataset folder with one sub-folder per sequence (VTUAV: the "
                             "split folder, e.g. test_ST)")
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", type=Path, metavar="FILE",
                     help="ckd-tracker weights (.safetensors); default: the shipped model")
    src.add_argument("--preset", metavar="NAME",
                     help="a preset's architecture with RANDOM weights (tests, speed checks)")
    src.add_argument("--baseline", choices=tuple(BASELINES),
                     help="OpenCV TrackerMIL on one modality instead of the CKD model")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the random weights of --preset (default 0)")
    parser.add_argument("--sequences", type=Path, metavar="FILE",
                        help="run only these sequences (one name a line); default: every "
                             "sequence folder under --root")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="parallel worker processes, each with its own model (default 1)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="output folder (default runs/eval/<dataset>)")
    parser.add_argument("--name", metavar="NAME",
                        help="tracker name = results sub-folder (default: checkpoint stem, "
                             "<preset>_random or the baseline's name)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--state-machine", action="store_true",
                        help="turn on our TRACKING/LOST logic (off by default so numbers are "
                             "comparable with papers)")
    parser.add_argument("--max-frames", type=int, metavar="N",
                        help="track and score only the first N frames of each sequence "
                             "(smoke tests; not comparable with published numbers)")
    parser.add_argument("--compare", action="append", default=[], metavar="[NAME=]DIR",
                        help="another tracker's result folder to score and compare with; "
                             "repeatable")
    parser.add_argument("--overwrite", action="store_true",
                        help="run every sequence again instead of resuming")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ckd_core.cli.score import parse_results
    from ckd_core.data.sequences import read_split_file
    from ckd_core.evaluation.report import write_evaluation
    from ckd_core.evaluation.runner import EvalJob, RunnerError, TrackerSpec, run_benchmark

    if args.workers < 1:
        raise CLIError(f"--workers must be >= 1, got {args.workers}")
    if args.max_frames is not None and args.max_frames < 2:
        raise CLIError(f"--max-frames must be >= 2, got {args.max_frames}")
    if not args.root.is_dir():
        raise CLIError(f"--root {args.root} is not a folder")
    if args.checkpoint is not None and not args.checkpoint.is_file():
        raise CLIError(f"--checkpoint {args.checkpoint} does not exist")
    if args.preset is not None:
        from ckd_core.config import load_config
        load_config(args.preset)  # unknown preset: ConfigError (a ValueError) here, not later
    compare = parse_results(args.compare) if args.compare else {}

    if args.baseline:
        spec = TrackerSpec(baseline=args.baseline)
    else:
        spec = TrackerSpec.model(args.checkpoint, args.preset, seed=args.seed,
                                 device=args.device, state_machine=args.state_machine)
    job = EvalJob(dataset=args.dataset, root=args.root,
                  out_dir=args.out or Path("runs") / "eval" / args.dataset, tracker=spec,
                  name=args.name,
                  sequences=tuple(read_split_file(args.sequences)) if args.sequences else None,
                  workers=args.workers, max_frames=args.max_frames, overwrite=args.overwrite)
    try:
        summary = run_benchmark(job, progress=False if args.no_progress else None)
    except RunnerError as exc:
        print(f"ckd eval: error: {exc}", file=sys.stderr)
        if exc.details:
            print(exc.details, file=sys.stderr)
        print("ckd eval: finished sequences are kept; run the same command again to resume",
              file=sys.stderr)
        return 1
    print(f"tracked {len(summary.ran)} sequences, reused {len(summary.skipped)} finished ones "
          f"({summary.seconds:.1f} s); results in {job.results_dir}")

    outputs = write_evaluation(summary, compare, device=args.device)
    for score in outputs.scores.values():
        print(score.summary())
    s = outputs.speed
    print(f"speed: {s.end_to_end_fps:.1f} FPS end to end, {s.model_fps:.1f} FPS model only "
          f"({s.frames} frames)")
    print(f"wrote {outputs.report}")
    return 0
