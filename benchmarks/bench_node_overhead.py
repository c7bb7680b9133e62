"""What the ROS node adds on top of the model: end-to-end latency per pair minus model time.

    OMP_NUM_THREADS=1 scripts/with_env.sh python benchmarks/bench_node_overhead.py
    OMP_NUM_THREADS=1 scripts/with_env.sh python benchmarks/bench_node_overhead.py --pairs 50 \
        --sizes 640x512 --out /tmp/overhead.md                                  # quick look

One process holds the real TrackerNode (shipped model, CPU, debug image off; spun by its own
single-threaded executor, as `ros2 run` spins it) and a tester node (its own executor thread).
The tracker the node builds is wrapped to record every `Tracker.update`'s own timings, so each
pair's MODEL time (`TrackResult.timings['model']`, the network forward) is known exactly. After
building the node the process is settled as the node's `main()` settles it
(`ckd_tracker_ros.process.settle_process`: gc.freeze, glibc malloc keeping image buffers).

Lock-step, one pair in flight: the tester publishes an rgb8 + thermal Image pair (pre-built:
a synthetic sequence the model tracks; thermal as mono16 counts by default, so the node's
normaliser runs), waits for the Detection2DArray with that stamp and for the status, then
sends the next one. Per pair:
- end to end: publish of the first image -> Detection2DArray received by the tester;
- overhead = end to end - model time (everything the node and ROS add: transport, message
  -> array conversion, the tracker's crops / normalisation / decoding, filling and publishing
  the messages);
- node internal = the node's status latency_ms (pair received -> result published) - model;
- tracker non-model = the tracker's total - model (crops, normalisation, decoding);
- node and ROS only = end to end - the tracker's total: what the adapter adds to the library.
Before the node runs, the same pairs go to a bare subscriber (callbacks that only note the
time, same QoS and executor layout): the transport floor, publish of the rgb image -> the
thermal image's callback, which any rclpy node pays before doing work of its own; the overhead
minus the floor (medians) is then the node's own share.
The conversion is also timed with the thermal frame mapped whole, side by side: the node
hands the tracker a `WindowedFrame` that maps only what the tracker reads (its crop and a
thumbnail), and that part of the mapping is in the tracker's time.
Also the CPU time of the node's executor and worker threads per pair minus the CPU time of
the forward (robust to other jobs on the cores). Then the conversion (Image messages -> uint8
RGB arrays, the node's own `_to_arrays`) is timed alone on the same messages. Medians and
90th percentiles over `--pairs` pairs after `--warmup` pairs; the target is <= 5 ms
overhead (median) on 2 CPU cores.
Both nodes share one process, so DDS delivers in-process: transport between processes
(shared memory, see config/fastdds_large_images.xml) is not included.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import os
import threading
import time
from pathlib import Path

import numpy as np

# soak_node is next to this file (a script's own folder is first on the import path)
from soak_node import Stream, isolate_ros_domain, machine_facts, stamp_of  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TARGET_MS = 5.0


class RecordingTracker:
    """Wraps the node's Tracker; `updates` = [(timings dict), ...] in call order, and
    `model_cpu` = CPU seconds of each network forward (the calling thread's)."""

    def __init__(self, tracker):
        self._t = tracker
        self.updates: list[dict] = []
        self.model_cpu: list[float] = []
        forward = tracker._forward

        def timed_forward(*args, **kwargs):
            c = time.thread_time()
            out = forward(*args, **kwargs)
            self.model_cpu.append(time.thread_time() - c)
            return out
        tracker._forward = timed_forward  # an instance attribute shadows the method

    def update(self, rgb, thermal):
        c = time.thread_time()
        result = self._t.update(rgb, thermal)
        self.updates.append({**result.timings, "tracking": result.state.name == "TRACKING",
                             "cpu": time.thread_time() - c})
        return result

    def __getattr__(self, name):
        return getattr(self._t, name)


def _stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


class SynthScene:
    """A ckd_core.data.synth sequence (what the shipped model was trained on, so it mostly
    TRACKS: realistic crop sizes), `n` frames played forwards then backwards in a loop.
    Thermal as rendered (8-bit); `run_size` sends it as mono8 or as mono16 counts."""

    def __init__(self, width: int, height: int, n: int = 60, seed: int = 1):
        from ckd_core.data.synth import make_sequence_spec, render_sequence
        spec = make_sequence_spec(seed, 0, num_frames=n, width=width, height=height,
                                  profile="robot", attributes=())
        self.seq = render_sequence(spec)
        self.n = n

    def _index(self, k: int) -> int:
        i = k % (2 * self.n - 2)
        return i if i < self.n else 2 * self.n - 2 - i

    def frame(self, k: int):
        i = self._index(k)
        return self.seq.rgb[i], self.seq.thermal[i]

    def box(self, k: int):
        return tuple(float(v) for v in self.seq.gt_rgb[self._index(k)])


def _wait_for_subscribers(pubs, who: str, timeout_s: float = 30.0) -> None:
    """Until every publisher in `pubs` has a subscriber (a RuntimeError naming `who` after
    `timeout_s`)."""
    deadline = time.monotonic() + timeout_s
    while not all(p.get_subscription_count() for p in pubs):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{who} did not subscribe")
        time.sleep(0.05)


def transport_floor(ctx, msgs, n_pairs: int, warmup: int, ns: str) -> np.ndarray:
    """Milliseconds per pair from publishing the rgb image until a BARE subscriber has had
    both images' callbacks (each only notes the time), with the same pairs, QoS and executor
    layout as the node's run: what any rclpy node pays for these messages before it can do
    any work of its own. Lock-step, one pair in flight."""
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from ckd_tracker_ros.bag_play import spinning

    sink = rclpy.create_node("transport_floor_sink", namespace=ns, context=ctx)
    src = rclpy.create_node("transport_floor_source", namespace=ns, context=ctx)
    done = threading.Event()
    got: dict[tuple[int, int], float] = {}  # (camera, stamp) -> callback time

    def on_msg(index):
        def cb(msg):
            stamp = _stamp_ns(msg)
            got[(index, stamp)] = time.perf_counter()
            if (1 - index, stamp) in got:
                done.set()
        return cb
    for i, topic in enumerate(("rgb/image", "thermal/image")):
        sink.create_subscription(Image, topic, on_msg(i), qos_profile_sensor_data)
    pubs = [src.create_publisher(Image, t, qos_profile_sensor_data)
            for t in ("rgb/image", "thermal/image")]
    out = []
    try:
        with spinning(ctx, sink):
            _wait_for_subscribers(pubs, "the bare subscriber")
            k = 0
            while len(out) < n_pairs and k < 3 * (n_pairs + warmup):
                m = msgs[k % len(msgs)]
                done.clear()
                t = time.perf_counter()
                pubs[0].publish(m[0])
                pubs[1].publish(m[1])
                stamp = _stamp_ns(m[1])
                done.wait(2.0)
                both = [got.get((i, stamp)) for i in (0, 1)]
                if None not in both and k >= warmup:  # else lost (best effort): not counted
                    out.append((max(both) - t) * 1e3)
                got.clear()
                k += 1
                time.sleep(0.03)  # as in the node's run, a model step's time between pairs
    finally:
        sink.destroy_node()
        src.destroy_node()
    return np.asarray(out)


def run_size(ctx, width: int, height: int, n_pairs: int, warmup: int, checkpoint,
             scene: str = "synth", thermal_encoding: str = "mono16", reinit: bool = True):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    from ckd_tracker_ros.images import numpy_to_image
    from ckd_tracker_ros.msg import TrackerStatus
    from ckd_tracker_ros.node import TrackerNode, build_tracker
    from ckd_tracker_ros.process import settle_process
    from ckd_tracker_ros.pairing import Item
    from ckd_tracker_ros.srv import InitTarget

    rate = 30.0
    stream = SynthScene(width, height) if scene == "synth" else \
        Stream(rate, width=width, height=height)
    total = warmup + n_pairs + 1
    msgs = []
    for k in range(total):
        rgb, th = stream.frame(k)
        if thermal_encoding == "mono16" and th.dtype == np.uint8:
            th = th.astype(np.uint16) * 16 + 2000  # radiometric-like counts
        elif thermal_encoding == "mono8" and th.dtype != np.uint8:
            th = (th >> 8).astype(np.uint8)
        pair = numpy_to_image(rgb, "rgb8"), numpy_to_image(th, thermal_encoding)
        for m, frame in zip(pair, ("bench_rgb", "bench_thermal")):
            m.header.stamp.sec, m.header.stamp.nanosec = divmod(stamp_of(k, rate),
                                                                1_000_000_000)
            m.header.frame_id = frame
        msgs.append(pair)

    ns = f"/overhead_{width}x{height}_{thermal_encoding}"
    floor = transport_floor(ctx, msgs, n_pairs, warmup, ns + "_floor")
    holder: dict = {}

    def factory(settings):
        holder["t"] = RecordingTracker(build_tracker(settings))
        return holder["t"]
    params = [Parameter("device", value="cpu"), Parameter("publish_debug_image", value=False)]
    if checkpoint:
        params.append(Parameter("checkpoint", value=checkpoint))
    node = TrackerNode(tracker_factory=factory, namespace=ns, context=ctx,
                       parameter_overrides=params)
    settle_process()  # as main() does after building the node
    tester = rclpy.create_node("overhead_tester", namespace=ns, context=ctx)
    pubs = [tester.create_publisher(Image, t, qos_profile_sensor_data)
            for t in ("rgb/image", "thermal/image")]
    cond = threading.Condition()
    arrivals: dict[int, float] = {}
    statuses: dict[int, float] = {}

    def on_det(msg):
        t = time.perf_counter()
        with cond:
            arrivals.setdefault(_stamp_ns(msg), t)
            cond.notify_all()

    def on_status(msg):
        with cond:
            statuses[_stamp_ns(msg)] = float(msg.latency_ms)
            cond.notify_all()
    tester.create_subscription(Detection2DArray, "ckd_tracker/detections", on_det, 10)
    tester.create_subscription(TrackerStatus, "ckd_tracker/status", on_status, 10)
    init_cli = tester.create_client(InitTarget, "ckd_tracker/init_target")

    executors, threads = [], []
    for n in (node, tester):
        ex = SingleThreadedExecutor(context=ctx)
        ex.add_node(n)
        executors.append(ex)
        threads.append(threading.Thread(target=ex.spin, daemon=True))
        threads[-1].start()
    rows = []
    try:
        _wait_for_subscribers(pubs, "the node")

        def send(k: int) -> float:
            t = time.perf_counter()
            pubs[0].publish(msgs[k][0])
            pubs[1].publish(msgs[k][1])
            return t

        def step(k: int, timeout: float = 10.0):
            """Publish pair k (again every second until answered); (t_sent, t_answered)."""
            s = stamp_of(k, rate)
            t_sent = send(k)
            end = time.monotonic() + timeout
            with cond:
                while s not in arrivals:
                    if not cond.wait(1.0):
                        if time.monotonic() > end:
                            raise RuntimeError(f"pair {k} was not answered in {timeout} s")
                        t_sent = send(k)  # lost in transit (best effort): measure the resend
                cond.wait_for(lambda: s in statuses, 1.0)
            return t_sent, arrivals[s]

        def init_on(k: int) -> None:
            """init_target on the true box of pair k (already received by the node)."""
            x, y, w, h = stream.box(k)
            req = InitTarget.Request(x=x, y=y, width=w, height=h)
            req.stamp.sec, req.stamp.nanosec = divmod(stamp_of(k, rate), 1_000_000_000)
            fut = init_cli.call_async(req)
            while not fut.done():
                time.sleep(0.005)
            if not fut.result().success:
                raise RuntimeError(fut.result().message)

        step(0)
        init_on(0)
        tracker = holder["t"]
        reinits = 0
        # CPU clocks of the node's two threads: its executor (receives, deserialises, pairs)
        # and its worker (converts, tracks, publishes). Unlike wall time, CPU time hardly
        # changes when other jobs share the cores.
        clocks = [time.pthread_getcpuclockid(t.ident) for t in (threads[0], node._worker)]
        for k in range(1, total):
            n_before = len(tracker.updates)
            cpu0 = [time.clock_gettime(c) for c in clocks]
            t_sent, t_ans = step(k)
            cpu = sum(time.clock_gettime(c) - c0 for c, c0 in zip(clocks, cpu0)) * 1e3
            if k <= warmup:
                continue
            if len(tracker.updates) != n_before + 1:
                raise RuntimeError(f"pair {k}: {len(tracker.updates) - n_before} tracker "
                                   "updates, expected 1")
            tim = tracker.updates[-1]
            if reinit and not tim["tracking"]:
                # Steady-state tracking is what is measured: a LOST tracker searches a window
                # up to 3x larger (bigger crops). Re-initialise on the truth, untimed.
                init_on(k)
                reinits += 1
            e2e = (t_ans - t_sent) * 1e3
            model = tim.get("model", 0.0) * 1e3
            node_ms = statuses.get(stamp_of(k, rate))
            rows.append((e2e, model, tim.get("total", 0.0) * 1e3,
                         np.nan if node_ms is None else node_ms, cpu,
                         tracker.model_cpu[-1] * 1e3, tim["cpu"] * 1e3))
        # The conversion alone, on the same messages, with the node's own code; side by side
        # with mapping the thermal frame whole (as the node did before it handed the tracker
        # a WindowedFrame, which maps only the pixels the tracker reads).
        conv, conv_whole = [], []
        for k in range(1, min(total, 51)):
            item = Item(msgs[k], stamp_of(k, rate), time.monotonic())
            t = time.thread_time()
            node._to_arrays(item)
            conv.append((time.thread_time() - t) * 1e3)
            t = time.thread_time()
            for a in node._to_arrays(item):
                np.asarray(a)
            conv_whole.append((time.thread_time() - t) * 1e3)
    finally:
        for ex in executors:
            ex.shutdown(timeout_sec=5)
        for t in threads:
            t.join(timeout=5)
        tester.destroy_node()
        node.destroy_node()
    a = np.asarray(rows)
    n_track = sum(1 for tim in holder["t"].updates[-len(rows):] if tim.get("tracking"))
    return {"size": f"{width}x{height}, thermal {thermal_encoding}", "pairs": len(rows),
            "tracking": n_track, "reinits": reinits,
            "e2e": a[:, 0], "model": a[:, 1], "overhead": a[:, 0] - a[:, 1],
            "node_internal": a[:, 3] - a[:, 1], "tracker_non_model": a[:, 2] - a[:, 1],
            "conversion": np.asarray(conv), "conversion_whole": np.asarray(conv_whole),
            "cpu_overhead": a[:, 4] - a[:, 5],
            "node_only": a[:, 0] - a[:, 2], "node_only_cpu": a[:, 4] - a[:, 6],
            "floor": floor}


def _pp(v) -> str:
    v = np.asarray(v, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return "-"
    return f"{np.median(v):.1f} / {np.percentile(v, 90):.1f}"


COLUMNS = [("end to end", "e2e"), ("model", "model"), ("overhead = e2e - model", "overhead"),
           ("node internal - model", "node_internal"),
           ("tracker total - model", "tracker_non_model"),
           ("msg -> arrays, both (CPU)", "conversion"),
           ("same, thermal mapped whole (CPU)", "conversion_whole"),
           ("CPU overhead (node threads' CPU - model CPU)", "cpu_overhead"),
           ("node and ROS only = e2e - tracker total", "node_only"),
           ("node and ROS only, CPU", "node_only_cpu"),
           ("transport floor (bare subscriber, publish -> both images in)", "floor")]


def table(results) -> str:
    lines = ["| size | pairs (TRACKING, re-inits) | " + " | ".join(c for c, _ in COLUMNS)
             + " | overhead - floor (medians) | <= 5 ms? (wall / CPU) |",
             "|---|---|" + "---|" * len(COLUMNS) + "---|---|"]
    for r in results:
        met = ["yes" if np.median(r[k]) <= TARGET_MS else "NO"
               for k in ("overhead", "cpu_overhead")]
        own = np.median(r["overhead"]) - np.median(r["floor"]) if len(r["floor"]) else np.nan
        lines.append(f"| {r['size']} | {r['pairs']} ({r['tracking']}, {r['reinits']}) | "
                     + " | ".join(_pp(r[k]) for _, k in COLUMNS)
                     + f" | {own:.1f} | {' / '.join(met)} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", nargs="+", default=["640x512", "1920x1080"])
    p.add_argument("--pairs", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--checkpoint", help="model file (default: the shipped model)")
    p.add_argument("--scene", choices=["synth", "lissajous"], default="synth",
                   help="synth: a ckd_core.data.synth sequence the model tracks; lissajous: "
                   "the soak test's rectangle (the model mostly loses it: LOST, with search "
                   "windows up to 3x larger)")
    p.add_argument("--no-reinit", action="store_true",
                   help="do not re-initialise a LOST tracker on the true box (default: do, so "
                   "that steady-state TRACKING is measured)")
    p.add_argument("--thermal-encodings", nargs="+", default=["mono16"],
                   choices=["mono16", "mono8"], help="how the thermal image is sent")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/node_overhead.md")
    p.add_argument("--notes", default="", help="text appended to the report (analysis)")
    p.add_argument("--conditions", default="",
                   help="what else ran on the machine (shown next to the load average)")
    args = p.parse_args(argv)

    import rclpy
    import torch
    from rclpy.context import Context

    isolate_ros_domain()
    facts = machine_facts()
    load0 = os.getloadavg()
    ctx = Context()
    rclpy.init(context=ctx)
    try:
        results = []
        for size, enc in itertools.product(args.sizes, args.thermal_encodings):
            w, h = (int(v) for v in size.lower().split("x"))
            results.append(run_size(ctx, w, h, args.pairs, args.warmup, args.checkpoint,
                                    args.scene, enc, not args.no_reinit))
            print(f"{size} {enc}: overhead median "
                  f"{np.median(results[-1]['overhead']):.2f} ms wall, "
                  f"{np.median(results[-1]['cpu_overhead']):.2f} ms CPU", flush=True)
    finally:
        rclpy.try_shutdown(context=ctx)
    load1 = os.getloadavg()
    text = "\n".join([
        "# ckd_tracker node overhead (end to end minus model time)",
        "",
        f"Produced by `benchmarks/bench_node_overhead.py --pairs {args.pairs} --warmup "
        f"{args.warmup} --sizes {' '.join(args.sizes)} --scene {args.scene} "
        f"--thermal-encodings {' '.join(args.thermal_encodings)}"
        f"{' --no-reinit' if args.no_reinit else ''}`; milliseconds, median / p90 over "
        "the timed pairs; lock-step (one pair in flight).",
        "",
        f"- date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- CPU: {facts['cpu']}; Python {facts['python']}, torch {facts['torch']} "
        f"({torch.get_num_threads()} thread(s)), rclpy (ros-kilted-rclpy) {facts['rclpy']}, "
        "Fast DDS (node and tester in one process: in-process delivery)",
        f"- OMP_NUM_THREADS={facts['omp_num_threads']}; load average (1, 5, 15 min) at start "
        f"{', '.join(f'{v:.2f}' for v in load0)}, at end {', '.join(f'{v:.2f}' for v in load1)}"
        + (f" ({args.conditions})" if args.conditions else ""),
        "- pairs: rgb8 + thermal (mono16 counts = 8-bit x 16 + 2000, normalised by the node's "
        "percentile window; or mono8) of the same size ("
        + ("a ckd_core.data.synth 'robot' sequence, 60 frames played back and forth"
           if args.scene == "synth" else "the soak test's moving rectangle")
        + "); the model runs on every pair; "
        + ("a pair answered LOST is followed by an untimed init_target on the true box, so "
           "the steady TRACKING state is measured (LOST searches a window up to 3x larger)"
           if not args.no_reinit else "no re-initialisation (TRACKING and LOST mixed)")
        + "; shipped model, CPU, debug image off",
        "",
        table(results),
        "",
        f"Target: overhead (median) <= {TARGET_MS:g} ms. Wall-clock numbers grow with the "
        "machine's load (every process gets a share of the 2 cores); the CPU overhead (CPU "
        "time of the node's executor and worker threads per pair, minus the CPU time of the "
        "network forward) is what the node costs on an unshared core.",
        "",
    ]) + (args.notes + "\n" if args.notes else "")
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
