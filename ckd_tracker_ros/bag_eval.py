"""Evaluate the ckd_tracker node on a bag: replay, collect its answers, score, report.

    result = eval_bag("bags/seq0", out_dir="eval_out")        # lock-step, in-process node
    print(result.summary())

Steps:
1. Index the bag (`bag_tools.read_index`); it must hold ground truth (`/ground_truth/rgb`,
   written by `ckd bag from-sequence`) including frame 0.
2. Start the node in this process (`TrackerNode`, spun by its own single-threaded executor in
   a background thread, as `ros2 run` spins it; in namespace `namespace`), or use a running
   one (`node="/ns/name"`; its image inputs must be remapped to the bag's topics, or pass
   `remap`). The in-process node gets: the checkpoint, the device, reliable image QoS (the
   player publishes reliable: nothing is lost), the compressed flags and a slop wide enough
   for the bag's largest RGB-thermal stamp difference, and the checkpoint's own lost /
   recover thresholds and reference camera, so that it behaves exactly as
   `Tracker.from_checkpoint(checkpoint)` does offline; in lock-step also a `silent_after`
   as long as the per-pair time-out (both images of every pair are published, so a camera
   is never silent, and a slow pair on a loaded machine must not make the node track the
   next pair's first image alone). `params` override any of them.
3. Publish pair 0, wait for its (empty, IDLE) answer, call `~/init_target` with the
   reference camera's ground-truth box of frame 0 and frame 0's stamp.
4. Replay frames 1.. in lock-step (default; see bag_play) or in real time (`lockstep=False`).
5. Result file (toolkit format, one row per frame): row 0 = the init box; a frame answered
   with a detection = its box ((cx - w/2, cy - h/2, w, h) of the published centre/size); a
   frame answered with an EMPTY array (the node reports LOST) or not answered at all repeats
   the previous row. With the tracker's state machine on, a LOST tracker holds its box, so
   this equals the offline tracker's boxes except on the frame where it turns LOST (its
   box is not published).
6. Score with the project's scorer under the bag's dataset convention (`ckd.dataset` in the
   bag's custom data; VTUAV: only the annotated frames 0, 10, 20, ... are scored; datasets
   without a convention of their own, e.g. generic, use RGBT234's), and write
   `report.json`, `report.md`, `frames.csv` and `results/<sequence>.txt` in `out_dir`
   (+ an overlay video with `overlay=True`).
Latency is reported twice: the node's own (status latency_ms: pair received -> result
published) and the round trip seen by the player (pair published -> detections received).
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from ckd_tracker_ros.bag_play import (Answers, FrameRecord, Player, attach_status,
                                      fill_from_answer, percentiles, ros_context, spinning)
from ckd_tracker_ros.bag_tools import BagError, BagIndex, iter_pairs, read_index

NODE_NAME = "ckd_tracker"
DEFAULT_NAMESPACE = "/ckd_bag_eval"
DEFAULT_SLOP = 0.05
RESULT_RULE = ("row 0 = the init box; a frame answered with a detection = its box; a frame "
               "answered with an empty Detection2DArray (LOST) or not answered = the previous "
               "row")
STATE_NAMES = {0: "IDLE", 1: "TRACKING", 2: "LOST", 3: "DISABLED"}


@dataclass
class EvalResult:
    """Everything `eval_bag` measured. boxes: (N, 4) xywh, the result file's rows."""

    index: BagIndex
    records: list[FrameRecord]
    boxes: np.ndarray
    score: Any  # ckd_core.evaluation.scorer.DatasetScore
    report: dict[str, Any]
    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)

    def summary(self) -> str:
        r = self.report
        head = "  ".join(f"{k} {100 * v:.2f}" for k, v in r["scores"].items())
        lat = r["latency_ms"]["node"]
        rt = r["latency_ms"]["round_trip"]
        fr = r["frames"]
        lines = [f"{r['sequence']} ({r['dataset']}, {r['mode']}): {head} "
                 f"(%, {r['scored_frames']} scored frames)",
                 f"frames: {fr['answered']}/{fr['published']} answered, "
                 f"{fr['with_detection']} with a box, {fr['empty']} empty (LOST), "
                 f"{fr['unanswered']} unanswered, {fr['resends']} re-sent; node dropped "
                 f"{r['node_counters'].get('pairs_dropped', '?')} pairs"]
        if lat:
            lines.append(f"latency (node): p50 {lat['p50']:.1f} ms, p90 {lat['p90']:.1f} ms, "
                         f"max {lat['max']:.1f} ms")
        if rt:
            lines.append(f"latency (round trip): p50 {rt['p50']:.1f} ms, p90 {rt['p90']:.1f} "
                         f"ms, max {rt['max']:.1f} ms")
        lines.append(f"replay: {r['wall_s']:.1f} s, {r['fps']:.1f} answered frames/s")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Node set-up
# ---------------------------------------------------------------------------------------------

def checkpoint_tracker_params(checkpoint: str | Path | None) -> dict[str, Any]:
    """The node parameters that make it track as `Tracker.from_checkpoint(checkpoint)` does:
    the checkpoint's lost / recover thresholds and reference camera (the node takes the rest
    of the checkpoint's tracker section itself)."""
    from ckd_core.config import TrackerConfig, from_dict
    from ckd_core.model.checkpoint import read_checkpoint_meta
    from ckd_core.tracking.default_model import default_checkpoint_path

    path = Path(checkpoint) if checkpoint else default_checkpoint_path()
    meta = read_checkpoint_meta(path)
    cfg = from_dict(json.loads(meta["config"])).tracker if meta else TrackerConfig()
    return {"lost_threshold": float(cfg.lost_threshold),
            "recover_threshold": float(cfg.recover_threshold),
            "reference_camera": cfg.reference_camera}


def node_parameters(index: BagIndex, checkpoint: str | Path | None, device: str,
                    params: Mapping[str, Any] | None,
                    lockstep_timeout_s: float | None = None) -> dict[str, Any]:
    """Parameters of the in-process node (module docstring, step 2). lockstep_timeout_s: the
    per-pair time-out of a lock-step replay (None: real time)."""
    values: dict[str, Any] = {
        "checkpoint": str(checkpoint) if checkpoint else "",
        "device": device,
        "qos_reliability": "reliable",
        "rgb_compressed": index.compressed[0],
        "thermal_compressed": index.compressed[1],
        "slop": max(DEFAULT_SLOP, round(1.5 * index.pair_spread_s() + 0.001, 4)),
        "publish_debug_image": False,
    }
    if lockstep_timeout_s is not None:
        values["silent_after"] = max(float(lockstep_timeout_s), 1.0)
    values.update(checkpoint_tracker_params(checkpoint))
    values.update(params or {})
    return values


def _start_node(ctx, namespace: str, values: Mapping[str, Any]):
    from rclpy.parameter import Parameter

    from ckd_tracker_ros.node import TrackerNode
    overrides = [Parameter(k, value=list(v) if isinstance(v, tuple) else v)
                 for k, v in values.items()]
    try:
        return TrackerNode(namespace=namespace, context=ctx, parameter_overrides=overrides)
    except FileNotFoundError as e:
        raise BagError(f"the node cannot start: {e}") from None


def _call(node, srv_type, name: str, request, timeout: float):
    client = node.create_client(srv_type, name)
    try:
        if not client.wait_for_service(timeout_sec=timeout):
            raise BagError(f"service {name} is not available after {timeout:.0f} s")
        future = client.call_async(request)
        deadline = time.monotonic() + timeout
        while not future.done():
            if time.monotonic() > deadline:
                raise BagError(f"no response from {name} within {timeout:.0f} s")
            time.sleep(0.01)
        return future.result()
    finally:
        node.destroy_client(client)


# ---------------------------------------------------------------------------------------------
# eval_bag
# ---------------------------------------------------------------------------------------------

def eval_bag(bag: str | Path, checkpoint: str | Path | None = None,
             out_dir: str | Path = "bag_eval", lockstep: bool = True, rate: float = 1.0,
             device: str = "cpu", params: Mapping[str, Any] | None = None,
             node: str | None = None, remap: Mapping[str, str] | None = None,
             namespace: str = DEFAULT_NAMESPACE, timeout_s: float = 60.0, wait_s: float = 30.0,
             max_frames: int | None = None, overlay: bool | str | Path = False,
             context=None, progress: bool = True,
             log: Callable[[str], None] = print) -> EvalResult:
    """Replay `bag` through the tracker node and score it (module docstring).

    checkpoint: the model file (None = the shipped default). node: the fully qualified name of
    an already running node to evaluate instead of starting one (then checkpoint, device and
    params are its own business). lockstep=False: real time at `rate`. timeout_s: per pair
    (lock-step) / for the last answers (real time). max_frames: only the first frames.
    overlay: True (out_dir/overlay.mp4) or a path: also write the overlay video.
    context: an rclpy context to use (default: a new one, shut down at the end).
    """
    import rclpy

    from ckd_tracker_ros.srv import InitTarget

    t_start = time.monotonic()
    out_dir = Path(out_dir)
    index = read_index(bag)
    gt = index.gt
    if gt is None:
        raise BagError(f"{index.path} has no ground truth (/ground_truth/rgb): `ckd bag eval` "
                       "needs a bag written by `ckd bag from-sequence`; `ckd bag play` "
                       "replays any bag")
    if not len(gt.frame_ids) or gt.frame_ids[0] != 0:
        raise BagError(f"{index.path}: frame 0 has no ground truth; the tracker is "
                       "initialised on frame 0's box")
    n = index.num_frames if max_frames is None else max(1, min(index.num_frames, max_frames))

    values = (node_parameters(index, checkpoint, device, params,
                              timeout_s if lockstep else None) if node is None else {})
    ref = 1 if values.get("reference_camera") == "thermal" else 0
    init_box = tuple(float(v) for v in (gt.rgb, gt.thermal)[ref][0])
    if not (init_box[2] > 0 and init_box[3] > 0):
        raise BagError(f"{index.path}: the ground-truth box of frame 0 {init_box} has no "
                       "area; cannot initialise on it")

    with ros_context(context) as ctx:
        tracker = None
        if node is None:
            log(f"starting the tracker node in {namespace} (checkpoint: "
                f"{values['checkpoint'] or 'shipped default'}, device {device})")
            tracker = _start_node(ctx, namespace, values)
            fqn = tracker.get_fully_qualified_name()
            remap = {index.rgb_topic: f"{namespace.rstrip('/')}/rgb/image"
                     + ("/compressed" if index.compressed[0] else ""),
                     index.thermal_topic: f"{namespace.rstrip('/')}/thermal/image"
                     + ("/compressed" if index.compressed[1] else ""),
                     **(remap or {})}
        else:
            fqn = node if node.startswith("/") else "/" + node
        player_node = rclpy.create_node("ckd_bag_eval_player", context=ctx)
        try:
            player = Player(player_node, index, remap, reliable=node is None)
            answers = Answers(player_node, fqn)
            with spinning(ctx, *(n_ for n_ in (tracker, player_node) if n_ is not None)):
                if not player.wait_for_subscribers(wait_s):
                    raise BagError(f"{fqn} does not subscribe to {player.topics[0]} and "
                                   f"{player.topics[1]} after {wait_s:.0f} s")
                if node is not None:
                    from std_srvs.srv import Trigger
                    _call(player_node, Trigger, f"{fqn}/reset", Trigger.Request(), wait_s)
                records, wall_s, aborted = _run(
                    index, n, player, answers, player_node, fqn, InitTarget, init_box,
                    lockstep, rate, timeout_s, wait_s, progress, log)
                attach_status(records, answers)
                final_status = answers.last_status
        finally:
            player_node.destroy_node()
            if tracker is not None:
                tracker.destroy_node()

    boxes = result_boxes(records, init_box, n)
    score = score_boxes(index, boxes)
    report = _report(index, records, score, boxes, values, fqn, checkpoint, lockstep, rate,
                     wall_s, final_status, aborted, time.monotonic() - t_start)
    result = EvalResult(index, records, boxes, score, report, out_dir)
    write_outputs(result)
    if overlay:
        path = out_dir / "overlay.mp4" if overlay is True else Path(overlay)
        result.files["overlay"] = write_overlay(index, result.records, boxes, path)
        report["files"]["overlay"] = str(result.files["overlay"])
        _write_json(out_dir / "report.json", report)
    if aborted:
        log(f"warning: the replay stopped early: {aborted}")
    return result


def _run(index, n, player, answers, node, fqn, InitTarget, init_box, lockstep, rate,
         timeout_s, wait_s, progress, log):
    """Pair 0 + init, then frames 1..n-1. Returns (records, wall seconds, aborted)."""
    from ckd_tracker_ros.bag_play import progress_bar

    pairs = iter_pairs(index, 0, n)
    first = next(pairs)
    rec0 = player.step(first, answers, timeout_s, resend_s=1.0)
    if not rec0.answered:
        raise BagError(f"{fqn} did not answer the first image pair within {timeout_s:.0f} s "
                       "(a node that has processed these stamps before, less than a second "
                       "of bag earlier, skips them as out of order: restart it)")
    x, y, w, h = init_box
    req = InitTarget.Request(x=x, y=y, width=w, height=h, label="")
    req.stamp.sec, req.stamp.nanosec = divmod(first.rgb_stamp_ns, 1_000_000_000)
    resp = _call(node, InitTarget, f"{fqn}/init_target", req, wait_s)
    if not resp.success:
        raise BagError(f"init_target refused: {resp.message}")
    log(f"initialised: {resp.message}")
    rec0.box, rec0.detection = init_box, None
    records = [rec0]
    bar = progress_bar(progress, n - 1)
    t0 = time.monotonic()
    aborted = ""
    try:
        if lockstep:
            recs, aborted = player.lockstep(
                pairs, answers, timeout_s, on_frame=lambda r: bar.update(1) if bar else None)
            records += recs
        else:
            pairs.close()
            player.realtime(rate, skip_frames=[0], stop=n,
                            on_message=lambda k: bar.update(1) if bar else None)
            stamps = {int(index.rgb_stamps[i]): i for i in range(1, n)}
            # Wait for the node to finish the pair in flight: answers stop coming.
            seen, deadline = -1, time.monotonic() + timeout_s
            while time.monotonic() < deadline and len(answers.detections) != seen:
                seen = len(answers.detections)
                time.sleep(1.0)
            for s, i in stamps.items():
                rec = FrameRecord(i, s)
                got = answers.detections.get(s)
                if got is not None:
                    fill_from_answer(rec, got[0])
                records.append(rec)
    finally:
        if bar is not None:
            bar.close()
    return records, time.monotonic() - t0, aborted


# ---------------------------------------------------------------------------------------------
# Results and scores
# ---------------------------------------------------------------------------------------------

def result_boxes(records: list[FrameRecord], init_box, n: int) -> np.ndarray:
    """(n, 4) result rows by the rule in the module docstring (step 5)."""
    boxes = np.empty((n, 4), dtype=np.float64)
    boxes[0] = init_box
    by_index = {r.index: r for r in records}
    for i in range(1, n):
        rec = by_index.get(i)
        boxes[i] = rec.box if rec is not None and rec.box is not None else boxes[i - 1]
    return boxes


def scoring_dataset(index: BagIndex) -> str:
    from ckd_core.evaluation.scorer import SCORED_DATASETS
    return index.dataset if index.dataset in SCORED_DATASETS else "rgbt234"


def score_boxes(index: BagIndex, boxes: np.ndarray):
    """Score dense result rows against the bag's ground truth (annotated frames only)."""
    from ckd_core.data.groundtruth import GroundTruth
    from ckd_core.evaluation.scorer import convention, score_arrays

    dataset = scoring_dataset(index)
    conv = convention(dataset)
    gt = index.gt
    keep = gt.frame_ids < len(boxes)
    ids = gt.frame_ids[keep]
    step = int(index.custom.get("gt_frame_step", 1))
    truth = GroundTruth(visible=gt.rgb[keep].astype(conv.dtype),
                        thermal=gt.thermal[keep].astype(conv.dtype), frame_step=step,
                        visible_file=index.path, thermal_file=index.path)
    return score_arrays(dataset, {index.sequence: truth}, {index.sequence: boxes[ids]},
                        tracker="ckd_tracker node")


def _report(index, records, score, boxes, values, fqn, checkpoint, lockstep, rate, wall_s,
            final_status, aborted, total_s) -> dict[str, Any]:
    answered = [r for r in records[1:] if r.answered]
    counters = {}
    if final_status is not None:
        counters = {k: int(getattr(final_status, k)) for k in
                    ("pairs_received", "pairs_dropped", "frames_processed")}
    return {
        "bag": str(index.path),
        "sequence": index.sequence,
        "dataset": index.dataset or "unknown",
        "scored_as": scoring_dataset(index),
        "convention": score.source,
        "mode": "lockstep" if lockstep else f"realtime x{rate}",
        "node": fqn,
        "checkpoint": str(checkpoint) if checkpoint else "shipped default",
        "node_parameters": {k: (list(v) if isinstance(v, tuple) else v)
                            for k, v in values.items()},
        "frames": {
            "in_bag": index.num_frames,
            "published": len(records) if lockstep else len(boxes),
            "answered": sum(r.answered for r in records),
            "with_detection": sum(r.box is not None for r in records[1:]),
            "empty": sum(r.answered and r.box is None for r in records[1:]),
            "unanswered": sum(not r.answered for r in records[1:]),
            "resends": sum(r.resends for r in records),
        },
        "node_counters": counters,
        "scores": {k: float(v) for k, v in score.headline.items()},
        "scored_frames": int(score.n_frames),
        "latency_ms": {
            "node": percentiles(r.latency_ms for r in answered),
            "round_trip": percentiles(r.wall_ms for r in answered),
        },
        "wall_s": round(wall_s, 3),
        "total_s": round(total_s, 3),
        "fps": len(answered) / wall_s if wall_s > 0 else 0.0,
        "result_rule": RESULT_RULE,
        "aborted": aborted,
        "files": {},
    }


def _write_json(path: Path, data) -> None:
    from ckd_core.evaluation.results_io import write_text_atomic

    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v
    write_text_atomic(path, json.dumps(clean(data), indent=2) + "\n")


def write_outputs(result: EvalResult) -> None:
    """results/<sequence>.txt, frames.csv, report.json and report.md in result.out_dir."""
    from ckd_core.evaluation.results_io import result_path, write_result_file, write_text_atomic

    out = result.out_dir
    out.mkdir(parents=True, exist_ok=True)
    files = {"results": write_result_file(result_path(out / "results", result.index.sequence),
                                          result.boxes)}
    frames = out / "frames.csv"
    with frames.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["frame", "stamp_ns", "answered", "x", "y", "w", "h", "detection",
                    "score", "state", "node_latency_ms", "round_trip_ms", "resends"])
        by_index = {r.index: r for r in result.records}
        for i, box in enumerate(result.boxes):
            r = by_index.get(i, FrameRecord(i, int(result.index.rgb_stamps[i])))
            w.writerow([i, r.stamp_ns, int(r.answered), *(f"{v:.4f}" for v in box),
                        int(r.box is not None and i > 0),
                        "" if r.score is None else f"{r.score:.4f}",
                        "INIT" if i == 0 else "" if r.state is None
                        else STATE_NAMES.get(r.state, r.state),
                        "" if r.latency_ms is None else f"{r.latency_ms:.2f}",
                        "" if r.wall_ms is None else f"{r.wall_ms:.2f}", r.resends])
    files["frames"] = frames
    files["report_json"] = out / "report.json"
    files["report_md"] = out / "report.md"
    result.files.update(files)
    result.report["files"] = {k: str(v) for k, v in files.items()}
    _write_json(files["report_json"], result.report)
    write_text_atomic(files["report_md"], render_markdown(result.report))


def render_markdown(r: Mapping[str, Any]) -> str:
    fr, lat = r["frames"], r["latency_ms"]
    lines = [f"# Bag evaluation: {r['sequence']}", "",
             f"- bag: `{r['bag']}`", f"- dataset: {r['dataset']} (scored as {r['scored_as']}: "
             f"{r['convention']})", f"- mode: {r['mode']}", f"- node: `{r['node']}`, "
             f"checkpoint: `{r['checkpoint']}`", "",
             "| metric | value (%) |", "|---|---:|"]
    lines += [f"| {k} | {100 * v:.2f} |" for k, v in r["scores"].items()]
    lines += ["", f"{r['scored_frames']} frames scored. Result rows: {r['result_rule']}.", "",
              "| frames | count |", "|---|---:|"]
    lines += [f"| {k.replace('_', ' ')} | {v} |" for k, v in fr.items()]
    lines += [f"| node: {k.replace('_', ' ')} | {v} |" for k, v in r["node_counters"].items()]
    lines += ["", "| latency (ms) | mean | p50 | p90 | p99 | max |", "|---|---:|---:|---:|---:|---:|"]
    for name, key in (("node (status latency_ms)", "node"), ("round trip", "round_trip")):
        p = lat.get(key) or {}
        if p:
            lines.append(f"| {name} | " + " | ".join(f"{p[q]:.1f}" for q in
                                                      ("mean", "p50", "p90", "p99", "max"))
                         + " |")
    lines += ["", f"Replay wall time {r['wall_s']:.1f} s ({r['fps']:.1f} frames/s); total "
              f"{r['total_s']:.1f} s."]
    if r.get("aborted"):
        lines += ["", f"**Stopped early:** {r['aborted']}"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Overlay
# ---------------------------------------------------------------------------------------------

def write_overlay(index: BagIndex, records: list[FrameRecord], boxes: np.ndarray, path: Path,
                  fps: float | None = None) -> Path:
    """RGB | thermal with the result box (ckd_core.tracking.video.draw_overlay: green while
    TRACKING, red while the held box of a LOST target) and the ground truth in white where
    annotated; an mp4 (PNG folder when no encoder opens). Returns the path written."""
    import cv2

    from ckd_core.tracking.tracker import TrackResult, TrackState
    from ckd_core.tracking.video import OverlayWriter, draw_overlay
    from ckd_tracker_ros.bag_tools import decode_image
    from ckd_tracker_ros.images import ThermalNormalizer

    rate = float(index.custom.get("rate_hz", 0) or 0) or 25.0
    by_index = {r.index: r for r in records}
    gt_rows = {int(f): b for f, b in zip(index.gt.frame_ids, index.gt.rgb)} if index.gt \
        else {}
    types = [index.topics[t][0] for t in (index.rgb_topic, index.thermal_topic)]
    normalizer = ThermalNormalizer()
    with OverlayWriter(path, fps or rate) as writer:
        for pair in iter_pairs(index, 0, len(boxes)):
            i = pair.index
            rgb = decode_image(pair.rgb, types[0])
            thermal = decode_image(pair.thermal, types[1], normalizer)
            rec = by_index.get(i)
            lost = i > 0 and (rec is None or rec.box is None)
            score = rec.score if rec is not None and rec.score is not None else 1.0 * (i == 0)
            result = TrackResult(tuple(float(v) for v in boxes[i]), float(score),
                                 TrackState.LOST if lost else TrackState.TRACKING)
            canvas = draw_overlay(rgb, thermal, result)
            if i in gt_rows:
                x, y, w, h = (int(round(v)) for v in gt_rows[i])
                cv2.rectangle(canvas, (x, y), (x + w, y + h), (255, 255, 255), 1)
            writer.write(canvas)
        return writer.output
