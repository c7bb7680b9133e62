"""Time `score_dataset` on a LasHeR-sized fake run (245 sequences x 900 frames by default).

    .venv/bin/python benchmarks/bench_scorer.py [--sequences 245] [--frames 900] [--repeat 3]

Writes ground truth (`<seq>/init.txt`, integer boxes drifting over time, with some zero and
border rows as LasHeR has) and tracker results (GT plus noise, occasional misses and w <= 0
rows, written with 2 to 4 decimals) into a temporary folder, then times the whole scoring:
reading every file, the toolkit rules and the curves. Prints the time of each repeat, the
headline numbers and the machine (CPU model, cores). Target: under 5 s on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from ckd_core.evaluation.results_io import result_path, write_result_file
from ckd_core.evaluation.scorer import score_dataset

TARGET_S = 5.0


def make_run(root: Path, n_seq: int, n_frames: int, seed: int = 0) -> tuple[Path, Path]:
    """Write a fake LasHeR test set and one tracker's results under root."""
    rng = np.random.default_rng(seed)
    gt_root, res_dir = root / "lasher", root / "results"
    for i in range(n_seq):
        name = f"seq{i:03d}"
        start = np.array([rng.integers(20, 500), rng.integers(20, 350),
                          rng.integers(10, 120), rng.integers(10, 120)])
        steps = rng.integers(-2, 3, size=(n_frames, 4))
        gt = np.maximum(start + np.cumsum(steps, axis=0), [0, 0, 2, 2]).astype(np.float64)
        gt[rng.random(n_frames) < 0.02] = 0.0          # target absent
        gt[0] = np.maximum(gt[0], 1.0)
        seq_dir = gt_root / name
        seq_dir.mkdir(parents=True)
        np.savetxt(seq_dir / "init.txt", gt, fmt="%d", delimiter=",")

        size = np.maximum(gt[:, 2:].mean(axis=1, keepdims=True), 4.0)
        res = gt + rng.normal(0.0, 1.0, gt.shape) * size / 8
        lost = rng.random(n_frames) < 0.1
        res[lost, :2] += rng.normal(0.0, 80.0, (int(lost.sum()), 2))
        res[rng.random(n_frames) < 0.01, 2] = 0.0      # w <= 0 rows (LasHeR replaces them)
        write_result_file(result_path(res_dir, name), np.round(res, int(rng.integers(2, 5))))
    return gt_root, res_dir


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sequences", type=int, default=245)
    p.add_argument("--frames", type=int, default=900)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"machine: {cpu_model()}, {cores} cores available, Python "
          f"{platform.python_version()}, numpy {np.__version__}")
    with tempfile.TemporaryDirectory(prefix="bench_scorer_") as tmp:
        t0 = time.perf_counter()
        gt_root, res_dir = make_run(Path(tmp), args.sequences, args.frames)
        print(f"generated {args.sequences} sequences x {args.frames} frames in "
              f"{time.perf_counter() - t0:.1f} s")
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            score = score_dataset("lasher", gt_root, res_dir, tracker="fake")
            times.append(time.perf_counter() - t0)
        print(score.summary())
    print("score_dataset: " + ", ".join(f"{t:.2f} s" for t in times)
          + f" (best {min(times):.2f} s; target < {TARGET_S:.0f} s: "
          + ("met" if max(times) < TARGET_S else "NOT met") + ")")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
