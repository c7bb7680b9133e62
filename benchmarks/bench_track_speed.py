"""End-to-end tracking speed on the CPU: decoded images in -> box out.

    .venv/bin/python benchmarks/bench_track_speed.py                      # the shipped model
    .venv/bin/python benchmarks/bench_track_speed.py --preset ckd_tiny_mce  # random weights
    .venv/bin/python benchmarks/bench_track_speed.py --checkpoint F --frames 100 --threads 2
    .venv/bin/python benchmarks/bench_track_speed.py --precision int8            # torch int8
    .venv/bin/python benchmarks/bench_track_speed.py --checkpoint tiny_int8.onnx # ONNX Runtime

Renders one synthetic 640x512 RGB + thermal sequence (100 frames by default) into memory
first (not timed), then initialises the tracker on frame 0 and times every `update`:
- end to end: the whole call (crops of both modalities, normalisation, forward, Hann
  window, decoding, mapping back), as a camera node would see it;
- model only: the network forward (`TrackResult.timings['model']`).
Prints FPS (frames / summed wall seconds), median and 90th-percentile latency, the CPU time
per frame (all threads summed; with --threads 1 it is what one unshared core would take,
which stays meaningful on a busy machine) and the hardware (CPU model, cores, torch threads,
load average). On a shared CPU use --threads 1 (or OMP_WAIT_POLICY=PASSIVE): OpenMP threads
spin while they wait for each other, and when other jobs hold the cores two threads run far
slower than one (measured on 2 busy cores: 1.4 FPS with 2 threads, 8.5 with 2 threads and
OMP_WAIT_POLICY=PASSIVE, 14 with 1 thread).
Speed does not depend on the weights, so `--preset` (random weights) measures the same
thing as a trained checkpoint of that preset.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from ckd_core.data.synth import make_sequence_spec, render_sequence
from ckd_core.evaluation.runner import TrackerSpec
from ckd_core.evaluation.speed import hardware_name, usable_cores


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", help="weights (.safetensors), or an exported .onnx file "
                                          "(ONNX Runtime; `ckd export`); default: the "
                                          "shipped model")
    src.add_argument("--preset", help="a preset's architecture with random weights")
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=512)
    p.add_argument("--threads", type=int, default=usable_cores(),
                   help="torch threads (default: every usable core)")
    p.add_argument("--warmup", type=int, default=3, help="dummy forwards before timing")
    p.add_argument("--seed", type=int, default=1, help="synthetic sequence seed")
    p.add_argument("--precision", choices=["fp32", "bf16", "int8"],
                   help="torch runtime arithmetic (default: the checkpoint's; an .onnx file "
                        "carries its own)")
    p.add_argument("--authors-tracker", action="store_true",
                   help="no TRACKING/LOST state machine (as in benchmark runs)")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    spec = TrackerSpec.model(args.checkpoint, args.preset,
                             state_machine=not args.authors_tracker)
    if args.precision and spec.checkpoint is None:
        raise SystemExit("--precision applies to --checkpoint runs")
    if spec.checkpoint is not None:
        from ckd_core.tracking import Tracker

        overrides = {"state_machine": not args.authors_tracker}
        if args.precision:
            overrides["precision"] = args.precision
        tracker = Tracker.from_checkpoint(spec.checkpoint, tracker_overrides=overrides)
    else:
        tracker = spec.build()
    what = args.preset + " (random weights)" if args.preset else (
        f"{spec.checkpoint} ({tracker.runtime}, {tracker.precision})")
    elim = tracker.model_cfg.elimination
    print(f"model: {what}; elimination {'on (' + elim.mode + ')' if elim.enabled else 'off'}"
          f"; template {tracker.model_cfg.template_size}, search "
          f"{tracker.model_cfg.search_size}")

    t0 = time.perf_counter()
    spec = make_sequence_spec(args.seed, 0, num_frames=args.frames, width=args.width,
                              height=args.height, profile="robot", attributes=())
    seq = render_sequence(spec)
    print(f"rendered {args.frames} frames of {args.width}x{args.height} in "
          f"{time.perf_counter() - t0:.1f} s (not timed below)")

    tracker.warmup(args.warmup)
    tracker.init(seq.rgb[0], seq.thermal[0], tuple(float(v) for v in seq.gt_rgb[0]))
    total, model, cpu = [], [], []
    for rgb, thermal in zip(seq.rgb[1:], seq.thermal[1:]):
        c, t = time.process_time(), time.perf_counter()
        result = tracker.update(rgb, thermal)
        total.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        model.append(result.timings.get("model", 0.0))
    total_ms, model_ms = 1000 * np.array(total), 1000 * np.array(model)
    cpu_ms = 1000 * np.array(cpu)

    print(f"hardware: {hardware_name('cpu')}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; load average "
          f"{', '.join(f'{v:.1f}' for v in os.getloadavg())} (1, 5, 15 min; above the "
          "core count = CPU shared with other jobs)")
    print(f"frames timed: {len(total)}")
    for name, ms in (("end to end", total_ms), ("model only", model_ms)):
        print(f"{name:>11}: {1000 * len(ms) / ms.sum():6.1f} FPS   median "
              f"{np.median(ms):6.1f} ms   p90 {np.percentile(ms, 90):6.1f} ms")
    # CPU seconds of all threads: with one thread, the speed of an unshared core.
    print(f"  CPU time: {np.median(cpu_ms):6.1f} ms / frame (median, all threads summed; "
          f"1000 / it = {1000 / np.median(cpu_ms):.1f} FPS for one unshared core at "
          f"--threads 1)")


if __name__ == "__main__":
    main()
