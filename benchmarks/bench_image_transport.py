"""What one camera image costs to move through rclpy + Fast DDS inside one process, with
glibc's default malloc settings and with the node's `settle_process()`.

    scripts/with_env.sh python benchmarks/bench_image_transport.py
    scripts/with_env.sh python benchmarks/bench_image_transport.py --sizes 1920x1080 --images 30

Per setting, a fresh child process (malloc settings are process-wide and cannot be undone)
publishes one rgb8 `sensor_msgs/Image` at a time (reliable QoS, depth 5) to its own
subscription and waits for the callback; latency = `publish` called -> callback entered
(publisher conversion + serialisation, DDS delivery, the executor waking up, taking and
converting the message). Medians and 90th percentiles over `--images` images after 5 unmeasured
ones. The two settings run alternately, `--rounds` times each, so both see the same machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from soak_node import isolate_ros_domain, machine_facts  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = ("glibc defaults", "settle_process()")


def child(settle: bool, sizes: list[tuple[int, int]], images: int) -> dict:
    """Runs in the child process: {size label: [latency s, ...]}."""
    import threading
    import time

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile
    from sensor_msgs.msg import Image

    from ckd_tracker_ros.images import numpy_to_image
    from ckd_tracker_ros.process import settle_process

    rclpy.init()
    node = rclpy.create_node("image_transport_bench")
    arrived = threading.Event()
    stamps: list[float] = []

    def on_image(_msg):
        stamps.append(time.perf_counter())
        arrived.set()
    node.create_subscription(Image, "bench_image", on_image, QoSProfile(depth=5))
    pub = node.create_publisher(Image, "bench_image", QoSProfile(depth=5))
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()
    if settle:
        settle_process()
    out = {}
    try:
        for w, h in sizes:
            frame = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
            msg = numpy_to_image(frame, "rgb8")
            times = []
            for k in range(images + 5):
                arrived.clear()
                t = time.perf_counter()
                pub.publish(msg)
                if not arrived.wait(5.0):
                    raise RuntimeError(f"{w}x{h}: image {k} did not arrive within 5 s")
                if k >= 5:
                    times.append(stamps[-1] - t)
            out[f"{w}x{h}"] = times
    finally:
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown()
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", nargs="+", default=["640x512", "1280x720", "1920x1080"])
    p.add_argument("--images", type=int, default=40)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/image_transport.md")
    p.add_argument("--child", choices=["0", "1"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes]
    if args.child is not None:
        print(json.dumps(child(args.child == "1", sizes, args.images)))
        return 0

    isolate_ros_domain()
    results: dict[str, dict[str, list[float]]] = {s: {} for s in SETTINGS}
    for r in range(args.rounds):
        for settle, name in enumerate(SETTINGS):
            print(f"round {r + 1}/{args.rounds}: {name}", flush=True)
            run = subprocess.run([sys.executable, __file__, "--child", str(settle),
                                  "--images", str(args.images), "--sizes", *args.sizes],
                                 capture_output=True, text=True, check=False, env=os.environ)
            if run.returncode != 0:
                raise SystemExit(f"child ({name}) failed:\n{run.stderr[-3000:]}")
            for size, times in json.loads(run.stdout.strip().splitlines()[-1]).items():
                results[name].setdefault(size, []).extend(times)

    facts = machine_facts()
    lines = ["# One camera image through rclpy + Fast DDS in one process: malloc settings", "",
             "Produced by `benchmarks/bench_image_transport.py "
             + " ".join(argv if argv is not None else sys.argv[1:]) + "`; milliseconds from "
             "`publish` to the subscription callback, median / p90, one rgb8 Image at a time "
             "(reliable QoS), each setting in fresh processes, alternating.", "",
             f"- date: {facts['date']}",
             f"- CPU: {facts['cpu']}; Python {facts['python']}, rclpy (ros-kilted-rclpy) "
             f"{facts['rclpy']}, Fast DDS", "",
             "| image | " + " | ".join(SETTINGS) + " | ratio |",
             "|---|" + "---:|" * (len(SETTINGS) + 1)]
    for size in args.sizes:
        med = {}
        cells = []
        for name in SETTINGS:
            v = np.asarray(results[name][size]) * 1e3
            med[name] = float(np.median(v))
            cells.append(f"{med[name]:.2f} / {np.percentile(v, 90):.2f}")
        ratio = med[SETTINGS[0]] / med[SETTINGS[1]]
        lines.append(f"| {size} rgb8 | " + " | ".join(cells) + f" | {ratio:.1f}x |")
    lines += ["", "`settle_process()` (ckd_tracker_ros/process.py, called by the node's `main`) "
              "raises glibc's mmap threshold to 32 MiB and keeps freed memory for reuse, so "
              "image-sized buffers are not fresh kernel pages each time (page faults and "
              "zeroing cost more than the copies themselves); it also freezes the start-up "
              "objects out of the garbage collector's generations.", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
