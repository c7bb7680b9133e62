"""Measure the LOST / recover thresholds for a model on synthetic out-of-view sequences.

    scripts/with_env.sh python benchmarks/calibrate_lost.py                 # shipped model
    scripts/with_env.sh python benchmarks/calibrate_lost.py --checkpoint F --sequences 16

1. Renders `--sequences` synthetic 640x512 sequences (run seed 3030: neither the training
   seed 1000 nor the held-out 2026), each with the out_of_view attribute (the target leaves
   the frame once and comes back) and, in every other block of four, occlusion too.
2. Calibration half (indices 0, 1, 4, 5, ...): runs the tracker with the state machine OFF
   (the authors' logic), labels each frame (lost_calibration.label_frames: on target / out of view or off
   target) and chooses the thresholds (lost_calibration.choose_thresholds).
3. Validation half (indices 2, 3, 6, 7, ...): runs the tracker with the state machine ON
   and those thresholds, and reports how often LOST is reported while the target is out of view, how
   often while it is visible and tracked, and how many frames re-acquisition takes after
   the target is back in view.
Writes a markdown report and a score histogram (PNG) next to it. With --store, the chosen
thresholds are also written into the checkpoint's own tracker section (weights unchanged:
ckd_core.model.checkpoint.set_tracker_settings), which is how the shipped model carries them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
from pathlib import Path

import numpy as np
import torch

from ckd_core.data.synth import make_sequence_spec, render_sequence
from ckd_core.evaluation.metrics import iou
from ckd_core.evaluation.speed import hardware_name
from ckd_core.tracking.default_model import default_checkpoint_path
from ckd_core.tracking.lost_calibration import (NEGATIVE, POSITIVE, choose_thresholds,
                                                label_frames)
from ckd_core.tracking.tracker import Tracker, TrackState


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default=None, help="default: the shipped model")
    p.add_argument("--sequences", type=int, default=12, help="half calibrate, half validate")
    p.add_argument("--frames", type=int, default=240)
    p.add_argument("--seed", type=int, default=3030)
    p.add_argument("--profile", default="mixed", choices=("mixed", "uav", "robot"),
                   help="target sizes: UAV-like (small), ground-robot-like or both")
    p.add_argument("--min-precision", type=float, default=0.95)
    p.add_argument("--min-recall", type=float, default=0.2,
                   help="the recover fallback keeps at least this share of on-target frames")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="benchmarks/results/lost_thresholds.md")
    p.add_argument("--store", action="store_true",
                   help="write the chosen thresholds into the checkpoint's tracker section")
    return p.parse_args()


def spec_for(seed: int, index: int, frames: int, profile: str):
    attrs = ("out_of_view",) if (index // 4) % 2 == 0 else ("occlusion", "out_of_view")
    return make_sequence_spec(seed, index, num_frames=frames, attributes=attrs,
                              profile=profile)


def run(tracker: Tracker, rgb, thermal, gt) -> tuple[np.ndarray, np.ndarray, list]:
    tracker.init(rgb[0], thermal[0], tuple(float(v) for v in gt[0]))
    boxes, scores, states = [tuple(float(v) for v in gt[0])], [1.0], [TrackState.TRACKING]
    for k in range(1, len(gt)):
        r = tracker.update(rgb[k], thermal[k])
        boxes.append(r.box_xywh)
        scores.append(r.score)
        states.append(r.state)
    return np.asarray(boxes), np.asarray(scores), states


def reacquire_delays(gt: np.ndarray, boxes: np.ndarray, states: list) -> list[int | None]:
    """For every return into view (an absent frame followed by a visible one): frames until
    the tracker is TRACKING with IoU >= 0.5 (None: never, before the sequence ends or the
    target leaves again)."""
    absent = ~gt.any(axis=1)
    out = []
    for k in range(1, len(gt)):
        if absent[k - 1] and not absent[k]:
            delay = None
            for j in range(k, len(gt)):
                if absent[j]:
                    break
                on = iou(boxes[j:j + 1].astype(float), gt[j:j + 1].astype(float))[0] >= 0.5
                if states[j] == TrackState.TRACKING and on:
                    delay = j - k
                    break
            out.append(delay)
    return out


def histogram_png(scores, labels, choice, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6))
    bins = np.linspace(0, 1, 41)
    ax.hist(scores[labels == POSITIVE], bins=bins, alpha=0.6, label="on target (IoU >= 0.5)")
    ax.hist(scores[labels == NEGATIVE], bins=bins, alpha=0.6,
            label="out of view / off target (IoU < 0.1)")
    ax.axvline(choice.lost_threshold, color="k", ls="--",
               label=f"lost_threshold {choice.lost_threshold:.3f}")
    ax.axvline(choice.recover_threshold, color="r", ls=":",
               label=f"recover_threshold {choice.recover_threshold:.3f}")
    ax.set_xlabel("tracker score (raw score map at the chosen cell)")
    ax.set_ylabel("frames")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    args = parse_args()
    if args.sequences < 4:
        raise SystemExit("--sequences must be >= 4 (half calibrate, half validate)")
    torch.set_num_threads(args.threads)
    ckpt = args.checkpoint or str(default_checkpoint_path())
    calib, valid = [], []
    for i in range(args.sequences):
        # pairs of indices alternate: 0 1 calibrate, 2 3 validate, ... so that with "mixed"
        # (profiles alternate per index) and the attribute rule (blocks of 4) both halves
        # hold both target sizes and both attribute sets
        (calib if (i // 2) % 2 == 0 else valid).append(i)

    all_scores, all_labels = [], []
    tr = Tracker.from_checkpoint(ckpt, tracker_overrides={"state_machine": False})
    for i in calib:  # (init resets the tracker: one per phase serves every sequence)
        rgb, thermal, gt, _, _ = render_sequence(
            spec_for(args.seed, i, args.frames, args.profile))
        boxes, scores, _ = run(tr, rgb, thermal, gt)
        all_scores.append(scores)
        all_labels.append(label_frames(boxes, gt))
        print(f"calibration sequence {i}: {len(gt)} frames, "
              f"{int((~gt.any(axis=1)).sum())} out of view", flush=True)
    scores, labels = np.concatenate(all_scores), np.concatenate(all_labels)
    choice = choose_thresholds(scores, labels, args.min_precision, args.min_recall)
    print(choice, flush=True)

    n_absent = n_absent_lost = n_on = n_on_lost = 0
    delays: list[int | None] = []
    tr = Tracker.from_checkpoint(ckpt, tracker_overrides={
        "lost_threshold": choice.lost_threshold,
        "recover_threshold": choice.recover_threshold})
    for i in valid:
        rgb, thermal, gt, _, _ = render_sequence(
            spec_for(args.seed, i, args.frames, args.profile))
        boxes, _, states = run(tr, rgb, thermal, gt)
        absent = ~gt.any(axis=1)
        lost = np.array([s == TrackState.LOST for s in states])
        on = np.zeros(len(gt), bool)
        vis = ~absent
        on[vis] = iou(boxes[vis].astype(float), gt[vis].astype(float)) >= 0.5
        on[0] = False
        n_absent += int(absent.sum())
        n_absent_lost += int((absent & lost).sum())
        n_on += int(on.sum())
        n_on_lost += int((on & lost).sum())
        delays += reacquire_delays(gt, boxes, states)
        print(f"validation sequence {i}: LOST on {int((absent & lost).sum())}/"
              f"{int(absent.sum())} out-of-view frames", flush=True)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    png = out.with_suffix(".png")
    histogram_png(scores, labels, choice, png)
    found = [d for d in delays if d is not None]
    pos, neg = scores[labels == POSITIVE], scores[labels == NEGATIVE]
    lines = [
        f"# LOST / recover thresholds for `{Path(ckpt).name}`",
        "",
        f"Measured {dt.date.today().isoformat()} by `benchmarks/calibrate_lost.py` on "
        f"{hardware_name()} ({args.threads} thread(s)).",
        f"Synthetic 640x512 sequences ({args.profile} target sizes), run seed {args.seed}, "
        f"{args.frames} frames each, all "
        "with the target leaving the view once (half of them with occlusion too); "
        f"calibration on {len(calib)} sequences (state machine off), validation on "
        f"{len(valid)} others (state machine on, the chosen thresholds).",
        "",
        "## Calibration (state machine off)",
        "",
        "| frames | count | score median | 10th pct | 90th pct |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| on target (IoU >= 0.5) | {pos.size} | {np.median(pos):.3f} | "
        f"{np.percentile(pos, 10):.3f} | {np.percentile(pos, 90):.3f} |",
        f"| out of view or off target (IoU < 0.1) | {neg.size} | {np.median(neg):.3f} | "
        f"{np.percentile(neg, 10):.3f} | {np.percentile(neg, 90):.3f} |",
        "",
        f"- lost_threshold = **{choice.lost_threshold:.3f}** (best balanced accuracy, "
        f"{choice.balanced_accuracy:.3f})",
        f"- recover_threshold = **{choice.recover_threshold:.3f}** "
        + (f"(smallest cut with >= {args.min_precision:.0%} of frames above it on target: "
           f"{choice.recover_precision:.3f})" if not choice.recover_fallback else
           f"(no cut reaches {args.min_precision:.0%} of frames on target: fallback = the "
           f"most precise cut keeping >= {args.min_recall:.0%} of the on-target frames, "
           f"precision {choice.recover_precision:.3f})"),
        "",
        f"![score histogram]({png.name})",
        "",
        "## Validation (state machine on, lost_frames 3)",
        "",
        f"- out-of-view frames reported LOST: {n_absent_lost}/{n_absent} "
        f"({n_absent_lost / max(n_absent, 1):.1%}; the first lost_frames - 1 frames of each "
        "exit cannot be, by design)",
        f"- on-target frames reported LOST (false alarms): {n_on_lost}/{n_on} "
        f"({n_on_lost / max(n_on, 1):.1%})",
        f"- returns into view: {len(delays)}; re-acquired (TRACKING, IoU >= 0.5) in "
        f"{len(found)}"
        + (f", median delay {int(np.median(found))} frames, max {max(found)}" if found else ""),
        "",
    ]
    out.write_text("\n".join(lines))
    print(f"report: {out}\nplot: {png}")
    if args.store:
        from ckd_core.model.checkpoint import set_tracker_settings
        set_tracker_settings(ckpt, lost_threshold=round(choice.lost_threshold, 3),
                             recover_threshold=round(choice.recover_threshold, 3))
        print(f"stored lost_threshold {choice.lost_threshold:.3f}, recover_threshold "
              f"{choice.recover_threshold:.3f} in {ckpt}")


if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    main()
