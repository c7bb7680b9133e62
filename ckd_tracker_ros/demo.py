"""The end-to-end demo (`make demo`): synthetic sequence -> rosbag2 -> ROS 2 node -> scores.

    scripts/with_env.sh python -m ckd_tracker_ros.demo [--out demo_out] [--checkpoint F]
                                                       [--frames 150] [--device cpu]

1. Generate a synthetic VTUAV-layout RGB + thermal sequence (fixed seed, 640x512: a car
   that another car drives past; ground truth every 10th frame as VTUAV has it).
2. Write it as a rosbag2 MCAP bag (30 Hz; the thermal camera 10 ms late with 2 ms jitter).
3. Start the ckd_tracker node in this process with the shipped default model, initialise it
   through its ~/init_target service on frame 0's ground truth, replay the bag in lock-step
   (every pair answered before the next is sent), score the published detections with the
   VTUAV rules and report precision / success and latency.
4. Write the overlay video (RGB | thermal with the tracked box; ground truth in white).

Outputs in --out: sequence/ (the images), bag/, eval/ (report.md, report.json, frames.csv,
results/), overlay.mp4 (or overlay_frames/ when no video encoder is available).
DDS discovery is limited to this machine (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST unless set).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

SEED, INDEX = 2, 0  # a robot-view sequence: a car, occluded by another car passing in front
WIDTH, HEIGHT = 640, 512
RATE_HZ, THERMAL_OFFSET_S, JITTER_S = 30.0, 0.010, 0.002
FALLBACK_PRESET = "ckd_tiny_mce"


def say(text: str) -> None:
    print(f"[demo] {text}", flush=True)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m ckd_tracker_ros.demo",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder")
    p.add_argument("--checkpoint", type=Path, help="model file (default: the shipped model)")
    p.add_argument("--frames", type=int, default=150, help="sequence length (default 150)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    return p.parse_args(argv)


def make_sequence(out: Path, frames: int) -> Path:
    from ckd_core.data.synth import make_sequence_spec, write_sequence
    spec = make_sequence_spec(SEED, INDEX, num_frames=frames, width=WIDTH, height=HEIGHT,
                              profile="robot", attributes=("occlusion",))
    return write_sequence(spec, out, "vtuav", overwrite=True)


def choose_checkpoint(given: Path | None, out: Path) -> tuple[Path | None, str]:
    """(checkpoint for the node, description). None = the shipped default model. Falls back
    to an UNTRAINED tiny model, loudly, only when the shipped file does not exist."""
    from ckd_core.tracking.default_model import default_checkpoint_path
    if given is not None:
        if not given.is_file():
            raise SystemExit(f"[demo] error: checkpoint {given} does not exist")
        return given, str(given)
    try:
        return None, f"shipped default model ({default_checkpoint_path()})"
    except FileNotFoundError as e:
        import torch

        from ckd_core.config import load_config
        from ckd_core.model import build_inference_model
        from ckd_core.model.checkpoint import save_checkpoint
        bar = "!" * 78
        print(f"\n{bar}\n[demo] WARNING: {e}\n[demo] WARNING: falling back to a RANDOMLY "
              f"INITIALISED {FALLBACK_PRESET} model: the pipeline runs end to end, but the "
              f"boxes and scores are meaningless.\n{bar}\n", flush=True)
        torch.manual_seed(0)
        cfg = load_config(FALLBACK_PRESET)
        path = out / f"untrained_{FALLBACK_PRESET}.safetensors"
        save_checkpoint(build_inference_model(cfg.model), cfg, path)
        return path, f"UNTRAINED {FALLBACK_PRESET} (no shipped model yet)"


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.frames < 2:
        raise SystemExit("[demo] error: --frames must be at least 2")
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    t0 = time.monotonic()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    try:
        from ckd_tracker_ros.bag_eval import eval_bag
        from ckd_tracker_ros.bag_tools import from_sequence
    except ImportError as e:
        raise SystemExit(f"[demo] error: {e}; run `make setup`, then `make demo` (or "
                         "scripts/with_env.sh python -m ckd_tracker_ros.demo)") from None

    say(f"1/4 synthetic sequence: {args.frames} frames, {WIDTH}x{HEIGHT}, VTUAV layout")
    t = time.monotonic()
    seq_dir = make_sequence(out / "sequence", args.frames)
    say(f"    {seq_dir} ({time.monotonic() - t:.1f} s)")

    say(f"2/4 rosbag2 (MCAP): {RATE_HZ:.0f} Hz, thermal {THERMAL_OFFSET_S * 1e3:.0f} ms late "
        f"+-{JITTER_S * 1e3:.0f} ms")
    t = time.monotonic()
    bag = out / "bag"
    if bag.exists():
        shutil.rmtree(bag)
    from_sequence(seq_dir, bag, "vtuav", rate_hz=RATE_HZ, thermal_offset_s=THERMAL_OFFSET_S,
                  jitter_s=JITTER_S, seed=SEED, progress=False)
    size = sum(f.stat().st_size for f in bag.iterdir()) / 2**20
    say(f"    {bag} ({size:.0f} MiB, {time.monotonic() - t:.1f} s)")

    checkpoint, model_text = choose_checkpoint(args.checkpoint, out)
    say(f"3/4 node + lock-step replay: model {model_text}, device {args.device}")
    t = time.monotonic()
    overlay = out / "overlay.mp4"
    result = eval_bag(bag, checkpoint=checkpoint, out_dir=out / "eval", lockstep=True,
                      device=args.device, overlay=overlay, progress=sys.stderr.isatty(),
                      log=lambda s: say("    " + s))
    say(f"    replay + scoring + overlay: {time.monotonic() - t:.1f} s")

    say("4/4 results")
    for line in result.summary().splitlines():
        say("    " + line)
    say(f"    report:  {result.files['report_md']}")
    say(f"    overlay: {result.files['overlay']}")
    if checkpoint is not None and checkpoint.name.startswith("untrained_"):
        say("    (UNTRAINED fallback model: the numbers above mean nothing)")
    say(f"done in {time.monotonic() - t0:.1f} s")
    return 1 if result.report.get("aborted") else 0


if __name__ == "__main__":
    raise SystemExit(main())
