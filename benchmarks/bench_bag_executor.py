"""Lock-step `ckd bag eval` round trip with the two ways of spinning the in-process node and
the player: one rclpy MultiThreadedExecutor for both (2 threads; what `bag_play.spinning`
did until 2026-11-24) and one SingleThreadedExecutor per node (what it does now, and how
`ros2 run` spins the node).

    scripts/with_env.sh python benchmarks/bench_bag_executor.py [--frames 60] [--rounds 2]
        [--out benchmarks/results/bag_executor.md]

A synthetic VTUAV-style sequence (the demo's recipe) is written as a rosbag2 once; then each
setting replays it in lock-step with the shipped model, alternately, `--rounds` times, so both
see the same machine. Round trip = the player publishing a pair -> the node's Detection2DArray
arriving at the player; node = the node's own latency (its ~/status). Also reported: whether
the lock-step boxes of every run are identical (they must not depend on timing).
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from soak_node import isolate_ros_domain, machine_facts  # noqa: E402

SETTINGS = ("one MultiThreadedExecutor (2 threads)", "one SingleThreadedExecutor per node")


@contextmanager
def multi_threaded(context, *nodes):
    """The previous `spinning`: every node in one MultiThreadedExecutor."""
    from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
    ex = MultiThreadedExecutor(num_threads=2, context=context)
    for n in nodes:
        ex.add_node(n)

    def spin():
        try:
            ex.spin()
        except ExternalShutdownException:
            pass

    t = threading.Thread(target=spin, daemon=True)
    t.start()
    try:
        yield [ex]
    finally:
        ex.shutdown(timeout_sec=5.0)
        t.join(timeout=5.0)


def run_once(bag: Path, out: Path, multi: bool, frames: int) -> dict:
    import ckd_tracker_ros.bag_eval as bag_eval
    from ckd_tracker_ros.bag_play import spinning
    bag_eval.spinning = multi_threaded if multi else spinning
    try:
        t0 = time.monotonic()
        r = bag_eval.eval_bag(bag, out_dir=out, progress=False, log=lambda s: None,
                              max_frames=frames)
        wall = time.monotonic() - t0
    finally:
        bag_eval.spinning = spinning
    rt = np.array([x.wall_ms for x in r.records[1:] if x.wall_ms is not None])
    node = np.array([x.latency_ms for x in r.records[1:] if x.latency_ms is not None])
    return {"rt": rt, "node": node, "wall": wall, "boxes": np.asarray(r.boxes),
            "resends": r.report["frames"]["resends"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/bag_executor.md"))
    args = ap.parse_args()
    isolate_ros_domain()
    from ckd_tracker_ros.bag_tools import from_sequence
    from ckd_tracker_ros.demo import (JITTER_S, RATE_HZ, SEED, THERMAL_OFFSET_S,
                                      make_sequence)
    from ckd_tracker_ros.process import settle_process
    settle_process()
    facts = machine_facts()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        seq = make_sequence(tmp / "seq", args.frames)
        bag = tmp / "bag"
        from_sequence(seq, bag, "vtuav", rate_hz=RATE_HZ, thermal_offset_s=THERMAL_OFFSET_S,
                      jitter_s=JITTER_S, seed=SEED, progress=False)
        runs: dict[str, list[dict]] = {s: [] for s in SETTINGS}
        for k in range(args.rounds):
            for s in SETTINGS:
                res = run_once(bag, tmp / f"ev{k}", s == SETTINGS[0], args.frames)
                runs[s].append(res)
                print(f"round {k + 1}, {s}: round trip p50 {np.median(res['rt']):.1f} ms, "
                      f"p90 {np.percentile(res['rt'], 90):.1f} ms, wall {res['wall']:.1f} s",
                      flush=True)
    first = runs[SETTINGS[1]][0]["boxes"]
    same = all(np.array_equal(r["boxes"], first) for rs in runs.values() for r in rs)
    rows = []
    for s in SETTINGS:
        rt = np.concatenate([r["rt"] for r in runs[s]])
        node = np.concatenate([r["node"] for r in runs[s]])
        wall = np.mean([r["wall"] for r in runs[s]])
        resends = sum(r["resends"] for r in runs[s])
        rows.append(f"| {s} | {np.median(rt):.1f} / {np.percentile(rt, 90):.1f} / "
                    f"{rt.max():.1f} | {np.median(node):.1f} / {np.percentile(node, 90):.1f} | "
                    f"{args.frames / wall:.1f} | {resends} |")
    text = "\n".join([
        "# Lock-step bag evaluation: how the in-process node and the player are spun", "",
        f"Produced by `benchmarks/bench_bag_executor.py --frames {args.frames} --rounds "
        f"{args.rounds}`; milliseconds over {args.rounds} x {args.frames - 1} timed pairs "
        "per setting, the settings alternating; shipped model, CPU, demo-style synthetic "
        "bag (640x512 rgb8 + mono8, 30 Hz).", "",
        f"- date: {facts['date']}",
        f"- CPU: {facts['cpu']}; Python {facts['python']}, torch {facts['torch']}, rclpy "
        f"(ros-kilted-rclpy) {facts['rclpy']}, Fast DDS", "",
        "| spinning | round trip p50 / p90 / max | node latency p50 / p90 | pairs / s "
        "(incl. start-up) | re-sends |",
        "|---|---:|---:|---:|---:|", *rows, "",
        f"Lock-step boxes identical across every run and both settings: "
        f"{'yes' if same else 'NO'}.", ""])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
