"""`ckd track`: track one RGB + thermal pair (image folders or videos), write an overlay video.

    ckd track --rgb run/rgb.mp4 --thermal run/ir.mp4 --box 310,220,40,60 --out out.mp4
    ckd track --rgb seq/visible --thermal seq/infrared            # draw the box by hand

Without --box the first RGB frame opens in OpenCV's box selector (needs a display and an
OpenCV build with a GUI; opencv-python-headless has none). Writes the overlay (RGB | thermal
with box, score, state, health; a PNG folder when no video writer opens) and the boxes in
toolkit format (one `x,y,w,h` row per frame, frame 0 included).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from ckd_core.cli import CLIError

DEFAULT_OUT = Path("demo_out") / "track.mp4"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rgb", required=True, type=Path, metavar="PATH",
                        help="RGB image folder or video file")
    parser.add_argument("--thermal", required=True, type=Path, metavar="PATH",
                        help="thermal image folder or video file (same frame count and rate)")
    parser.add_argument("--box", metavar="x,y,w,h",
                        help="target box in the first RGB frame (pixels, top-left x, y); "
                             "default: draw it in a window")
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", type=Path, metavar="FILE",
                     help="ckd-tracker weights (.safetensors); default: the shipped model")
    src.add_argument("--preset", metavar="NAME",
                     help="a preset's architecture with RANDOM weights (tests only)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="VIDEO",
                        help=f"overlay video (.mp4; other names: a PNG folder); default "
                             f"{DEFAULT_OUT}")
    parser.add_argument("--no-video", action="store_true", help="do not write the overlay")
    parser.add_argument("--results", type=Path, metavar="TXT",
                        help="boxes, toolkit format (default: the --out path with .txt)")
    parser.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")
    parser.add_argument("--fps", type=float,
                        help="overlay frame rate (default: the RGB video's, else 25)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--authors-tracker", action="store_true",
                        help="the authors' tracker exactly: no TRACKING/LOST state machine")


def parse_box(text: str) -> tuple[float, float, float, float]:
    """'x,y,w,h' -> four floats with w, h > 0 (CLIError otherwise)."""
    parts = [p.strip() for p in text.split(",")]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise CLIError(f"--box {text!r}: expected four numbers x,y,w,h")
    if values[2] <= 0 or values[3] <= 0:
        raise CLIError(f"--box {text!r}: width and height must be > 0")
    return values  # type: ignore[return-value]


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ckd_core.evaluation.results_io import write_result_file
    from ckd_core.evaluation.runner import TrackerSpec
    from ckd_core.tracking.video import DEFAULT_FPS, open_frames, select_box, track_pair

    if args.max_frames is not None and args.max_frames < 1:
        raise CLIError(f"--max-frames must be >= 1, got {args.max_frames}")
    box = parse_box(args.box) if args.box else None
    rgb_src, th_src = open_frames(args.rgb), open_frames(args.thermal)
    if box is None:
        first = next(iter(rgb_src), None)
        if first is None:
            raise CLIError(f"--rgb {args.rgb}: no frames")
        try:
            box = select_box(first)
        except RuntimeError as exc:
            raise CLIError(str(exc)) from None

    tracker = TrackerSpec.model(args.checkpoint, args.preset, device=args.device,
                                state_machine=not args.authors_tracker).build()

    overlay = None if args.no_video else args.out
    results_path = args.results or args.out.with_suffix(".txt")
    counts = [c for c in (rgb_src.count, th_src.count, args.max_frames) if c]
    with tqdm(total=min(counts) if counts else None, unit="frame", desc="tracking",
              disable=None) as bar:
        results = track_pair(rgb_src, th_src, box, tracker, overlay_path=overlay,
                             fps=args.fps or rgb_src.fps or DEFAULT_FPS,
                             max_frames=args.max_frames, on_frame=lambda k, r: bar.update())
    write_result_file(results_path, [r.box_xywh for r in results])
    lost = sum(r.state.value == "LOST" for r in results)
    model_s = [r.timings["model"] for r in results[1:] if "model" in r.timings]
    speed = f", {len(model_s) / sum(model_s):.1f} FPS model only" if sum(model_s) > 0 else ""
    print(f"tracked {len(results)} frames ({lost} LOST{speed})")
    if (rgb_src.count and th_src.count and rgb_src.count != th_src.count
            and args.max_frames is None):
        print(f"note: {rgb_src.count} RGB and {th_src.count} thermal frames; stopped at the "
              "shorter input")
    if overlay is not None:
        print(f"wrote {_written(overlay)}")
    print(f"wrote {results_path}")
    return 0


def _written(overlay: Path) -> Path:
    """The video, or the PNG folder the writer fell back to."""
    if overlay.is_file():
        return overlay
    return overlay if overlay.is_dir() else overlay.with_name(overlay.stem + "_frames")
