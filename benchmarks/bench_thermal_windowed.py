"""16-bit thermal frames: mapping the whole frame to 8 bits vs a WindowedFrame (mapped only
where the tracker reads it), side by side on the same frames.

    OMP_NUM_THREADS=1 scripts/with_env.sh python benchmarks/bench_thermal_windowed.py
    OMP_NUM_THREADS=1 scripts/with_env.sh python benchmarks/bench_thermal_windowed.py \
        --frames 20 --sizes 640x512 --out /tmp/windowed.md                     # quick look

What the ROS node does per pair, without ROS: a synthetic sequence (the shipped model's
training distribution; 'uav': small targets, 'robot': large ones) with thermal as 16-bit
counts (8-bit x 16 + 2000), mapped by the node's ThermalNormalizer (percentile window) either
whole (`to_grey`, as the node did first) or as a `WindowedFrame` (`windowed`, what it does
now), then `Tracker.update` (shipped model, CPU). Two trackers, one per way, see every frame
in alternating order; a LOST tracker is re-initialised on the true box (both at once), so
steady TRACKING is measured. Per frame: CPU time of the conversion and the update minus the
CPU time of the network forward (the model is the same work either way), median / p90 in
milliseconds; the boxes and scores of the two ways must be identical (checked).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time
from pathlib import Path

import numpy as np
import torch

from ckd_core.crops import crop_side
from ckd_core.data.synth import make_sequence_spec, render_sequence
from ckd_core.evaluation.speed import hardware_name
from ckd_core.tracking import Tracker
from ckd_tracker_ros.images import ThermalNormalizer

# bench_node_overhead is next to this file (a script's own folder is first on the import path)
from bench_node_overhead import RecordingTracker  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def run(profile: str, width: int, height: int, frames: int, seed: int) -> dict:
    spec = make_sequence_spec(seed, 0, num_frames=frames, width=width, height=height,
                              profile=profile, attributes=())
    seq = render_sequence(spec)
    raws = [t.astype(np.uint16) * 16 + 2000 for t in seq.thermal]
    ways = {"whole": lambda n, r: n.to_grey(r), "windowed": lambda n, r: n.windowed(r)}
    trackers, norms, cost = {}, {}, {}
    for w in ways:
        trackers[w] = RecordingTracker(Tracker.from_checkpoint(None))  # forwards' CPU time
        trackers[w].warmup()
        norms[w] = ThermalNormalizer()
        cost[w] = []
    box0 = tuple(float(v) for v in seq.gt_rgb[0])
    for w in ways:
        trackers[w].init(seq.rgb[0], ways[w](norms[w], raws[0]), box0)
    sides, reinits = [], 0
    for i in range(1, frames):
        order = list(ways) if i % 2 else list(ways)[::-1]
        results = {}
        for w in order:
            n_fwd = len(trackers[w].model_cpu)
            c = time.thread_time()
            results[w] = trackers[w].update(seq.rgb[i], ways[w](norms[w], raws[i]))
            spent = time.thread_time() - c - sum(trackers[w].model_cpu[n_fwd:])
            cost[w].append(spent * 1e3)
        a, b = results["whole"], results["windowed"]
        if a.box_xywh != b.box_xywh or a.score != b.score or a.health != b.health:
            raise AssertionError(f"frame {i}: the two ways differ: {a} vs {b}")
        sides.append(crop_side(trackers["whole"].box, trackers["whole"].model_cfg.search_factor))
        if a.state.name != "TRACKING":
            box = tuple(float(v) for v in seq.gt_rgb[i])
            for w in ways:
                trackers[w].init(seq.rgb[i], ways[w](norms[w], raws[i]), box)
            reinits += 1
    return {"case": f"{profile}, {width}x{height}", "frames": frames - 1, "reinits": reinits,
            "side": float(np.median(sides)), "whole": np.asarray(cost["whole"]),
            "windowed": np.asarray(cost["windowed"])}


def _pp(v: np.ndarray) -> str:
    return f"{np.median(v):.2f} / {np.percentile(v, 90):.2f}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", nargs="+", default=["640x512", "1920x1080"])
    p.add_argument("--profiles", nargs="+", default=["uav", "robot"], choices=["uav", "robot"])
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path,
                   default=ROOT / "benchmarks/results/thermal_windowed.md")
    args = p.parse_args(argv)
    rows = []
    for size in args.sizes:
        w, h = (int(v) for v in size.lower().split("x"))
        for profile in args.profiles:
            r = run(profile, w, h, args.frames, args.seed)
            rows.append(r)
            print(f"{r['case']}: whole {np.median(r['whole']):.2f} ms, windowed "
                  f"{np.median(r['windowed']):.2f} ms", flush=True)
    lines = [
        "# 16-bit thermal: whole-frame mapping vs WindowedFrame (side by side)",
        "",
        f"Produced by `benchmarks/bench_thermal_windowed.py --sizes {' '.join(args.sizes)} "
        f"--profiles {' '.join(args.profiles)} --frames {args.frames} --seed {args.seed}`; "
        "CPU milliseconds per frame of the thermal conversion plus `Tracker.update` minus "
        "the network forward, median / p90; boxes, scores and health identical between the "
        "two ways on every frame (checked).",
        "",
        f"- date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- CPU: {hardware_name('cpu')}; torch {torch.__version__} "
        f"({torch.get_num_threads()} thread(s)); OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')}; shipped model",
        "",
        "| sequence | frames (re-inits) | search window side (median px) | whole frame mapped "
        "| WindowedFrame | ratio |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['case']} | {r['frames']} ({r['reinits']}) | {r['side']:.0f} | "
                     f"{_pp(r['whole'])} | {_pp(r['windowed'])} | "
                     f"{np.median(r['whole']) / np.median(r['windowed']):.2f}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
