"""Write synthetic sequences to disk in the VTUAV or LasHeR layout.

VTUAV (`<out>` plays the role of a split folder such as test_ST):
    <out>/sequences.txt                 one sequence name a line
    <out>/<seq>/rgb/000000.jpg ...      RGB, JPEG
    <out>/<seq>/ir/000000.jpg ...       thermal, single-channel JPEG (8-bit) or
    <out>/<seq>/ir/000000.png ...       thermal, single-channel 16-bit PNG (radiometric counts)
    <out>/<seq>/rgb.txt, ir.txt         space-separated xywh, ONE ROW EVERY 10 FRAMES
                                        (row k = frame 10k, frame 0 included)
    <out>/<seq>/dense_rgb.txt, dense_ir.txt   the same, one row per frame (extra: the VTUAV
                                        toolkit ignores them; training and tests use them)
LasHeR:
    <out>/sequences.txt
    <out>/<seq>/visible/v000000.jpg ... RGB, JPEG
    <out>/<seq>/infrared/i000000.jpg    thermal (or i000000.png for 16-bit)
    <out>/<seq>/visible.txt, infrared.txt, init.txt   comma-separated xywh, one row a frame;
                                        init.txt = visible.txt. LasHeR has ONE ground truth
                                        (init.txt, what readers and the toolkit use), so a
                                        registration / time offset shows only in
                                        infrared.txt there: use VTUAV to train on offsets.
Both layouts also get, per sequence:
    attributes.txt      the sequence's challenge attributes, one name a line (names from
                        synth_spec.ATTRIBUTES; empty when none)
    synth_spec.json     the SequenceSpec that regenerates the sequence exactly
                        (synth_spec.spec_from_dict(json.load(...)))
GT values are integers (pixels); a target out of view has the row 0 0 0 0. Frame file names
are 0-based. Images are written with fixed encoder settings, so a spec always gives
byte-identical files.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Iterable

import cv2
import numpy as np

from .synth_plan import plan_sequence
from .synth_render import SequenceRenderer
from .synth_spec import SequenceSpec, spec_to_dict

LAYOUTS = ("vtuav", "lasher")
VTUAV_GT_STEP = 10
JPEG_QUALITY = 90
# PNG is lossless whatever the settings: fast zlib level with run-length matching (about
# 1.5x faster than the default strategy on noisy 16-bit thermal, and smaller).
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY,
              cv2.IMWRITE_PNG_STRATEGY_RLE]


def frame_paths(layout: str, seq_dir: Path, k: int, thermal_bits: int) -> tuple[Path, Path]:
    """(rgb, thermal) image paths of 0-based frame k."""
    ext = "png" if thermal_bits == 16 else "jpg"
    if layout == "vtuav":
        return seq_dir / "rgb" / f"{k:06d}.jpg", seq_dir / "ir" / f"{k:06d}.{ext}"
    if layout == "lasher":
        return seq_dir / "visible" / f"v{k:06d}.jpg", seq_dir / "infrared" / f"i{k:06d}.{ext}"
    raise ValueError(f"layout {layout!r} is invalid; expected one of {', '.join(LAYOUTS)}")


def format_boxes(boxes: np.ndarray, sep: str) -> str:
    """(N, 4) integer boxes -> text, one `x{sep}y{sep}w{sep}h` row a line."""
    return "".join(sep.join(str(int(v)) for v in row) + "\n" for row in np.asarray(boxes))


def gt_files(layout: str, gt_rgb: np.ndarray, gt_thermal: np.ndarray) -> dict[str, str]:
    """File name -> content of the ground-truth files of one sequence."""
    if layout == "vtuav":
        return {"rgb.txt": format_boxes(gt_rgb[::VTUAV_GT_STEP], " "),
                "ir.txt": format_boxes(gt_thermal[::VTUAV_GT_STEP], " "),
                "dense_rgb.txt": format_boxes(gt_rgb, " "),
                "dense_ir.txt": format_boxes(gt_thermal, " ")}
    if layout == "lasher":
        visible = format_boxes(gt_rgb, ",")
        return {"visible.txt": visible, "infrared.txt": format_boxes(gt_thermal, ","),
                "init.txt": visible}
    raise ValueError(f"layout {layout!r} is invalid; expected one of {', '.join(LAYOUTS)}")


def _imwrite(path: Path, image: np.ndarray, params: list[int]) -> None:
    if not cv2.imwrite(str(path), image, params):
        raise OSError(f"could not write {path}")


def write_sequence(spec: SequenceSpec, out_dir: str | Path, layout: str, *,
                   jpeg_quality: int = JPEG_QUALITY, overwrite: bool = False,
                   progress: Callable[[int], None] | None = None) -> Path:
    """Render `spec` and write it under out_dir/spec.name; returns that folder.

    An existing non-empty sequence folder is an error unless overwrite=True (then that
    folder, and only it, is deleted first). progress(n) is called after every n frames.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r} is invalid; expected one of {', '.join(LAYOUTS)}")
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality={jpeg_quality} is invalid; expected 1..100")
    seq_dir = Path(out_dir) / spec.name
    if seq_dir.exists() and any(seq_dir.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{seq_dir} exists and is not empty; choose another output "
                                  f"folder or pass overwrite=True (--overwrite)")
        shutil.rmtree(seq_dir)
    rgb0, th0 = frame_paths(layout, seq_dir, 0, spec.thermal_bits)
    rgb0.parent.mkdir(parents=True, exist_ok=True)
    th0.parent.mkdir(parents=True, exist_ok=True)

    plan = plan_sequence(spec)
    renderer = SequenceRenderer(plan)
    jpeg = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
    th_params = PNG_PARAMS if spec.thermal_bits == 16 else jpeg
    for k in range(spec.num_frames):
        rgb_path, th_path = frame_paths(layout, seq_dir, k, spec.thermal_bits)
        _imwrite(rgb_path, cv2.cvtColor(renderer.rgb(k), cv2.COLOR_RGB2BGR), jpeg)
        _imwrite(th_path, renderer.thermal(k), th_params)
        if progress is not None:
            progress(1)
    for name, text in gt_files(layout, plan.gt_rgb, plan.gt_thermal).items():
        (seq_dir / name).write_text(text)
    (seq_dir / "attributes.txt").write_text("".join(a + "\n" for a in spec.attributes))
    (seq_dir / "synth_spec.json").write_text(json.dumps(spec_to_dict(spec), indent=1,
                                                        sort_keys=True) + "\n")
    return seq_dir


def _write_one(args) -> str:
    spec, out_dir, layout, jpeg_quality, overwrite = args
    cv2.setNumThreads(1)  # one sequence per process: no oversubscription
    write_sequence(spec, out_dir, layout, jpeg_quality=jpeg_quality, overwrite=overwrite)
    return spec.name


def write_dataset(specs: Iterable[SequenceSpec], out_dir: str | Path, layout: str, *,
                  jpeg_quality: int = JPEG_QUALITY, overwrite: bool = False,
                  workers: int = 1, progress: Callable[[int], None] | None = None
                  ) -> list[str]:
    """Write every spec (workers > 1: that many processes, one sequence each at a time) and
    `<out_dir>/sequences.txt`; returns the sequence names. progress(n) receives frame counts
    (per frame with one worker, per finished sequence otherwise)."""
    specs = list(specs)
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError("sequence names must be unique")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if workers <= 1:
        for spec in specs:
            write_sequence(spec, out, layout, jpeg_quality=jpeg_quality, overwrite=overwrite,
                           progress=progress)
    else:
        jobs = [(s, out, layout, jpeg_quality, overwrite) for s in specs]
        frames = {s.name: s.num_frames for s in specs}
        # spawn, not fork: callers (the trainer, tests) already run torch/tqdm threads, and a
        # forked child of a threaded process can deadlock on a lock held at fork time.
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            for name in pool.map(_write_one, jobs):
                if progress is not None:
                    progress(frames[name])
    (out / "sequences.txt").write_text("".join(n + "\n" for n in names))
    return names
