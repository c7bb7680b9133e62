"""Speed of the synthetic RGB + thermal generator on ONE CPU core (OpenCV single-threaded).

    .venv/bin/python benchmarks/bench_synth.py [--frames 300] [--width 640 --height 512]

For a few representative sequences (top-down UAV and ground-robot views, static and moving
camera, 8- and 16-bit thermal) prints:
  setup   planning + background canvas + sprites + noise banks, once per sequence (s)
  render  RGB + thermal frame pairs per second, in memory (setup excluded)
  +setup  the same with the setup spread over --frames frames
  encode  render + JPEG/PNG encoding in memory (what writing costs besides the disk)
  write   setup + render + encode + write files (`write_sequence`, VTUAV layout, into a
          temporary folder): what `ckd synth` achieves per core
then the same numbers for a 16-sequence `make_benchmark_specs` set (every attribute, both
profiles). Target: hundreds of rendered frame pairs per second at 640x512.

Times are CPU time of this process (user + system), i.e. one core's work, so that other
jobs on a shared machine do not distort them; wall time is higher when the core is shared.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import cv2

from ckd_core.data.synth import (SequenceRenderer, make_benchmark_specs, make_sequence_spec,
                                 plan_sequence, write_sequence)
from ckd_core.data.synth_write import JPEG_QUALITY, PNG_PARAMS
from ckd_core.evaluation.speed import hardware_name


def measure(spec) -> dict[str, float]:
    """CPU seconds of setup, render, render + encode, and setup + render + write of one
    sequence."""
    n = spec.num_frames
    t = time.process_time()
    renderer = SequenceRenderer(plan_sequence(spec))
    setup = time.process_time() - t

    t = time.process_time()
    for k in range(n):
        renderer.rgb(k)
        renderer.thermal(k)
    render = time.process_time() - t

    jpeg = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    th_ext, th_params = (".png", PNG_PARAMS) if spec.thermal_bits == 16 else (".jpg", jpeg)
    t = time.process_time()
    for k in range(n):
        cv2.imencode(".jpg", cv2.cvtColor(renderer.rgb(k), cv2.COLOR_RGB2BGR), jpeg)
        cv2.imencode(th_ext, renderer.thermal(k), th_params)
    encode = time.process_time() - t

    with tempfile.TemporaryDirectory() as tmp:
        t = time.process_time()
        write_sequence(spec, tmp, "vtuav")
        write = time.process_time() - t  # setup included: write_sequence does its own
    return {"setup": setup, "render": render, "encode": encode, "write": write}


def row(name: str, n: int, m: dict[str, float]) -> str:
    def fps(seconds: float) -> float:
        return n / max(seconds, 1e-9)
    return (f"{name:<34} {m['setup']:6.2f} {fps(m['render']):8.0f} "
            f"{fps(m['render'] + m['setup']):8.0f} {fps(m['encode']):8.0f} "
            f"{fps(m['write']):8.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    common = dict(num_frames=args.frames, width=args.width, height=args.height)
    cases = {
        "uav, static camera": dict(profile="uav", attributes=("similar_distractor",)),
        "uav, camera motion": dict(profile="uav", attributes=("camera_motion",
                                                              "scale_variation")),
        "uav, night, occlusion": dict(profile="uav", attributes=("low_illumination",
                                                                 "occlusion")),
        "robot, static camera": dict(profile="robot", attributes=("fast_motion",)),
        "robot, camera motion": dict(profile="robot", attributes=("camera_motion",
                                                                  "out_of_view")),
        "uav, static, 16-bit thermal": dict(profile="uav", attributes=(), thermal_bits=16),
    }
    print(f"{hardware_name('cpu')}; OpenCV {cv2.__version__} single-threaded; "
          f"{args.width}x{args.height}, {args.frames} frames a sequence")
    print(f"{'sequence':<34} {'setup s':>6} {'render':>8} {'+setup':>8} {'encode':>8} "
          f"{'write':>8}   (frame pairs / s)")
    for i, (name, kw) in enumerate(cases.items()):
        spec = make_sequence_spec(args.seed, i, **common, **kw)
        print(row(name, args.frames, measure(spec)), flush=True)

    specs = make_benchmark_specs(args.seed, 16, **common)
    total = {"setup": 0.0, "render": 0.0, "encode": 0.0, "write": 0.0}
    for spec in specs:
        for key, v in measure(spec).items():
            total[key] += v
    print(row("benchmark set (16 seqs, all attrs)", args.frames * len(specs), total))
    print(f"benchmark set: mean setup {total['setup'] / len(specs):.2f} s a sequence; "
          f"render-only {args.frames * len(specs) / total['render']:.0f} frame pairs/s")


if __name__ == "__main__":
    main()
