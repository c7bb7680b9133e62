"""`ckd synth`: generate synthetic RGB + thermal sequences in the VTUAV or LasHeR layout.

Example: ckd synth --layout lasher --seed 7 --sequences 20 --out data/synth_test
(the folder layout is described in ckd_core/data/synth_write.py).
"""

from __future__ import annotations

import argparse

from . import CLIError


def _attributes(text: str) -> tuple[str, ...] | None:
    from ckd_core.data.synth_spec import ATTRIBUTES
    if text == "auto":
        return None
    if text == "none":
        return ()
    names = tuple(a.strip() for a in text.split(",") if a.strip())
    unknown = [a for a in names if a not in ATTRIBUTES]
    if unknown:
        raise CLIError(f"--attributes: unknown {', '.join(unknown)}; expected 'auto', 'none' "
                       f"or a comma list of {', '.join(ATTRIBUTES)}")
    return names


def _offset(text: str) -> tuple[int, int]:
    try:
        dx, dy = (int(v) for v in text.split(","))
    except ValueError:
        raise CLIError(f"--registration-offset {text!r}: expected two integers DX,DY") from None
    return dx, dy


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--layout", required=True, choices=("vtuav", "lasher"),
                        help="folder layout to write")
    parser.add_argument("--out", required=True, help="output folder (the split folder)")
    parser.add_argument("--seed", type=int, default=0, help="run seed (default 0)")
    parser.add_argument("--sequences", type=int, default=3, help="how many (default 3)")
    parser.add_argument("--frames", type=int, default=300, help="frames a sequence (300)")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--profile", default="mixed", choices=("uav", "robot", "mixed"),
                        help="uav: small targets from above; robot: large targets at "
                             "ground level; mixed: alternating (default)")
    parser.add_argument("--thermal-bits", type=int, default=8, choices=(8, 16),
                        help="8: JPEG; 16: PNG radiometric counts (4000 + 100 * Celsius)")
    parser.add_argument("--attributes", default="auto",
                        help="'auto' (default): sequence i gets attribute i mod 8 plus random "
                             "extras; 'none'; or a comma list every sequence gets exactly")
    parser.add_argument("--registration-offset", default="0,0", metavar="DX,DY",
                        help="thermal image shift against RGB in pixels (default 0,0)")
    parser.add_argument("--time-offset", type=int, default=0,
                        help="thermal lags RGB by this many frames (default 0)")
    parser.add_argument("--jpeg-quality", type=int, default=90)
    parser.add_argument("--workers", type=int, default=1,
                        help="processes, one sequence each (default 1)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace sequence folders that already exist")


def run(args: argparse.Namespace) -> int:
    import time
    from collections import Counter

    from tqdm import tqdm

    from ckd_core.data.synth_spec import ATTRIBUTES, make_benchmark_specs
    from ckd_core.data.synth_write import write_dataset

    if args.sequences < 1:
        raise CLIError(f"--sequences {args.sequences}: expected at least 1")
    if args.workers < 1:
        raise CLIError(f"--workers {args.workers}: expected at least 1")
    specs = make_benchmark_specs(
        args.seed, args.sequences, num_frames=args.frames, width=args.width,
        height=args.height, profile=args.profile, thermal_bits=args.thermal_bits,
        attributes=_attributes(args.attributes),
        registration_offset=_offset(args.registration_offset), time_offset=args.time_offset)
    total = sum(s.num_frames for s in specs)
    start = time.perf_counter()
    with tqdm(total=total, unit="frame", desc="synth") as bar:
        write_dataset(specs, args.out, args.layout, jpeg_quality=args.jpeg_quality,
                      overwrite=args.overwrite, workers=args.workers, progress=bar.update)
    elapsed = time.perf_counter() - start
    counts = Counter(a for s in specs for a in s.attributes)
    profiles = Counter(s.profile for s in specs)
    print(f"wrote {len(specs)} sequences, {total} frame pairs ({args.layout} layout, "
          f"{args.width}x{args.height}, {args.thermal_bits}-bit thermal) to {args.out} "
          f"in {elapsed:.1f} s ({total / max(elapsed, 1e-9):.0f} frame pairs/s)")
    print("profiles: " + ", ".join(f"{p} {n}" for p, n in sorted(profiles.items())))
    print("attributes: " + ", ".join(f"{a} {counts.get(a, 0)}" for a in ATTRIBUTES))
    missing = [a for a in ATTRIBUTES if not counts.get(a)]
    if missing and args.attributes == "auto":
        print(f"note: no sequence has {', '.join(missing)}; use at least "
              f"{len(ATTRIBUTES)} sequences to cover every attribute")
    return 0
