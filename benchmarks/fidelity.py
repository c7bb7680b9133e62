"""Does a fast path track like fp32? Each path against the fp32 tracker on the same frames.

    .venv/bin/python benchmarks/fidelity.py                  # 6 sequences x 100 frames
    .venv/bin/python benchmarks/fidelity.py --sequences 2 --frames 40

Model: the shipped default (models/ckd_tiny_synth.safetensors, MCE on). Data: synthetic
RGB + thermal sequences (`make_benchmark_specs(seed, n)`, 640x512, every challenge
attribute round-robin). Every path runs the authors' tracker (no LOST state machine),
initialised on frame 0's ground truth, frame by frame side by side with fp32:
- agreement: the share of frames 1..N-1 whose box has IoU >= 0.9 with the fp32 box;
- one-step agreement: the same share when the path starts every frame from the fp32
  tracker's previous box (its own error does not compound: the numerics alone);
- accuracy: SR (mean of the success curve) and PR (precision at 20 px) against the ground
  truth, in percent, mean over sequences (ckd_core.evaluation.metrics), and the change
  from fp32.
A path may be offered as a default only if agreement >= 99% AND |SR change| <= 0.5 points;
the verdict is printed per path. Writes benchmarks/results/fidelity_<date>.md.
Paths: fp32 without template cache (must be identical: a self-check), bf16 (autocast), int8
(dynamic int8 Linear layers, torch.ao), ORT (the exported ONNX graph in ONNX Runtime, fp32),
ORT int8 (that graph with its weight MatMuls quantised by ONNX Runtime, `ckd export
--precision int8`).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import datetime  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

# the sibling benchmark module (a script's own folder is first on the import path)
from bench_inference import ORT_PATHS, load_model, make_tracker  # noqa: E402

from ckd_core.data.synth import make_benchmark_specs, render_sequence  # noqa: E402
from ckd_core.evaluation import metrics as M  # noqa: E402
from ckd_core.evaluation.speed import describe_machine  # noqa: E402
from ckd_core.model.onnx_export import export_onnx  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
PATHS = ("fp32 no cache", "bf16", "int8", *ORT_PATHS)
MIN_AGREEMENT = 0.99  # share of frames with IoU >= 0.9 against fp32
AGREEMENT_IOU = 0.9
MAX_SR_CHANGE = 0.5  # points (SR in %)


def sr_pr(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    """SR and PR (20 px) in percent of one sequence, frames 1..N-1."""
    ious = M.iou(pred.astype(np.float64), gt.astype(np.float64))
    sr = M.success_score(M.success_curve(ious))
    pr = M.precision_curve(M.centre_distance(pred.astype(np.float64),
                                             gt.astype(np.float64)))[M.PRECISION_INDEX]
    return 100 * sr, 100 * float(pr)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sequences", type=int, default=6)
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--seed", type=int, default=2026, help="synthetic run seed (held out)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)
    torch.set_num_threads(args.threads)
    t_start = time.time()
    model, cfg, label = load_model("tiny")
    eliminate = cfg.model.elimination.enabled
    specs = make_benchmark_specs(args.seed, args.sequences, num_frames=args.frames)
    agree = {p: [] for p in PATHS}  # per frame: IoU with fp32
    step_agree = {p: [] for p in PATHS}  # per frame: IoU with fp32 from fp32's previous box
    per_seq = []  # (sequence, {path: (share IoU >= 0.9, first frame below it or None)})
    acc = {p: [] for p in ("fp32",) + PATHS}  # per sequence: (SR, PR)
    with tempfile.TemporaryDirectory(prefix="ckd_fid_") as tmp:
        onnx_files = {p: export_onnx(model, cfg, Path(tmp) / f"tiny_{prec}.onnx", source=label,
                                     precision=prec) for p, prec in ORT_PATHS.items()}
        for spec in specs:
            seq = render_sequence(spec)
            trackers = {p: make_tracker(model, cfg, p, eliminate, onnx_files.get(p),
                                        args.threads) for p in ("fp32",) + PATHS}
            steppers = {p: make_tracker(model, cfg, p, eliminate, onnx_files.get(p),
                                        args.threads) for p in PATHS}
            box0 = tuple(float(v) for v in seq.gt_rgb[0])
            boxes = {p: [] for p in trackers}
            for t in list(trackers.values()) + list(steppers.values()):
                t.init(seq.rgb[0], seq.thermal[0], box0)
            for rgb, thermal in zip(seq.rgb[1:], seq.thermal[1:]):
                prev = trackers["fp32"].box
                for name, t in trackers.items():
                    boxes[name].append(t.update(rgb, thermal).box_xywh)
                ref_box = np.asarray([boxes["fp32"][-1]], dtype=np.float64)
                for name, t in steppers.items():
                    t._box = prev  # benchmark only: restart from fp32's state (no LOST logic)
                    b = np.asarray([t.update(rgb, thermal).box_xywh], dtype=np.float64)
                    step_agree[name].append(float(M.iou(b, ref_box)[0]))
            ref = np.asarray(boxes["fp32"], dtype=np.float64)
            gt = np.asarray(seq.gt_rgb[1:], dtype=np.float64)
            for name in trackers:
                b = np.asarray(boxes[name], dtype=np.float64)
                acc[name].append(sr_pr(b, gt))
                if name != "fp32":
                    agree[name].extend(M.iou(b, ref).tolist())
            seq_row = {}
            for name in PATHS:
                ok = np.nan_to_num(np.asarray(agree[name][-len(gt):]), nan=0.0) >= AGREEMENT_IOU
                seq_row[name] = (float(ok.mean()), None if ok.all() else int(np.argmin(ok)) + 1)
            per_seq.append((spec.name, seq_row))
            print(f"{spec.name}: done ({time.time() - t_start:.0f} s)", flush=True)
    sr0, pr0 = np.mean(acc["fp32"], axis=0)
    lines = ["| path | frames IoU >= 0.9 vs fp32 | mean IoU vs fp32 | one-step: frames IoU "
             ">= 0.9 | SR | SR change | PR | PR change | verdict |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|",
             f"| fp32 (reference) | - | - | - | {sr0:.2f} | - | {pr0:.2f} | - | reference |"]
    for name in PATHS:
        ious = np.nan_to_num(np.asarray(agree[name]), nan=0.0)
        share = float(np.mean(ious >= AGREEMENT_IOU))
        step = float(np.mean(np.nan_to_num(np.asarray(step_agree[name]), nan=0.0)
                             >= AGREEMENT_IOU))
        sr, pr = np.mean(acc[name], axis=0)
        ok = share >= MIN_AGREEMENT and abs(sr - sr0) <= MAX_SR_CHANGE
        verdict = ("may be a default" if ok else
                   "NOT default: " + ", ".join(
                       r for r, bad in ((f"agreement < {100 * MIN_AGREEMENT:.0f}%",
                                         share < MIN_AGREEMENT),
                                        (f"SR change beyond +-{MAX_SR_CHANGE}",
                                         abs(sr - sr0) > MAX_SR_CHANGE)) if bad))
        lines.append(f"| {name} | {100 * share:.1f}% | {ious.mean():.4f} | "
                     f"{100 * step:.1f}% | {sr:.2f} | "
                     f"{sr - sr0:+.2f} | {pr:.2f} | {pr - pr0:+.2f} | {verdict} |")
        print(f"{name}: {100 * share:.1f}% frames IoU >= 0.9 vs fp32 ({100 * step:.1f}% one "
              f"step), SR {sr - sr0:+.2f}, "
              f"PR {pr - pr0:+.2f} -> {verdict}")
    print("\n".join(lines))
    machine = describe_machine()
    date = datetime.date.today().isoformat()
    out = args.out or RESULTS / f"fidelity_{date}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    n_frames = args.sequences * (args.frames - 1)
    text = [f"# Fast-path fidelity, {date}", "",
            f"`.venv/bin/python benchmarks/fidelity.py --sequences {args.sequences} "
            f"--frames {args.frames} --seed {args.seed}` ({time.time() - t_start:.0f} s).",
            "",
            f"Model: {label}, elimination {'on (MCE)' if eliminate else 'off'}. Data: "
            f"{args.sequences} synthetic sequences x {args.frames} frames (640x512, seed "
            f"{args.seed}, every attribute round-robin); {n_frames} tracked frames per path. "
            "Authors' tracker (no LOST logic), init on frame 0's ground truth. SR/PR in %, "
            "mean over sequences, against the RGB ground truth. Rule: a path may be a "
            f"default only with >= {100 * MIN_AGREEMENT:.0f}% of frames at IoU >= "
            f"{AGREEMENT_IOU} against the fp32 box AND an SR change within +-{MAX_SR_CHANGE} "
            "points. One-step: the path restarts each frame from the fp32 tracker's previous "
            "box, so only that frame's numerics count (not part of the rule). "
            "NOTE: the shipped model is under-trained (see models/MODEL_CARD.md), so its "
            "peaks are flat and small numerical changes "
            "can move the box more than they would "
            "for a well-trained model; re-run on a trained checkpoint before deciding.", "",
            ""] + lines + [
                "", "## Per sequence", "",
                "Share of frames at IoU >= 0.9 against fp32, and the first frame below it (a "
                "trajectory that leaves fp32's once rarely comes back: one flipped peak "
                "compounds).", "",
                "| sequence | " + " | ".join(PATHS) + " |",
                "|---|" + "---:|" * len(PATHS)] + [
                f"| {name} | " + " | ".join(
                    f"{100 * share:.0f}%" + ("" if first is None else f" (from {first})")
                    for share, first in (row[p] for p in PATHS)) + " |"
                for name, row in per_seq] + ["", "## Machine", ""] + [
                f"- {k}: {v}" for k, v in machine.items()]
    out.write_text("\n".join(text) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
