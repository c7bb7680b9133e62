"""Soak test of the ckd_tracker node: a long synthetic 30 Hz RGB + thermal stream, memory and
latency over time.

    OMP_NUM_THREADS=1 scripts/with_env.sh python benchmarks/soak_node.py             # 2 x 20 min
    OMP_NUM_THREADS=1 scripts/with_env.sh python benchmarks/soak_node.py --minutes 0.5 \
        --warmup-s 5 --out /tmp/soak.md                                              # smoke run

For each mode the node runs in its OWN process (`python -m ckd_tracker_ros.node`, the shipped
model, CPU, debug image off), so its resident memory can be read from /proc/<pid>/status
alone. This process is the camera: it draws 640x512 frames on the fly (a textured background
and a bright rectangle on a slow Lissajous path; rgb8 + mono16 radiometric-like thermal, so
the thermal normaliser runs too), publishes them with the sensor-data QoS, initialises the
node on the target with ~/init_target, and listens to ~/detections and ~/status.

Modes:
- realtime: pairs at `--rate` Hz by the wall clock for `--minutes`; a node slower than the
  camera drops pairs (counted in its status), as it would live.
- lockstep: one pair in flight at a time (publish, wait for its Detection2DArray, next;
  re-published after 1 s without an answer) for `--minutes` of wall time: as many pairs as
  the node answers in that time.

Measured per mode: node RSS every `--sample-s` seconds; "start" is the first sample after
`--warmup-s` (model warm-up, allocator and DDS history pools filling), "middle" the sample
closest to half-way, "end" the last one; growth start -> end must stay within 5 %.
Pairs published vs the node's pairs_received / pairs_dropped / frames_processed counters;
end-to-end latency (first image of a pair published -> its Detection2DArray received, in
this process) and the node's own latency_ms (pair received -> result published) as
percentiles; node CPU seconds per processed frame. Writes a Markdown report (`--out`) and
optionally JSON (`--json`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
W, H = 640, 512
T0_NS = 1_000_000_000_000  # stamps of the stream: 1000 s + k / rate (far from wall-clock time)
RSS_GROWTH_LIMIT = 0.05
# Without it, Fast DDS sends images over 512 KiB as best-effort UDP fragments and loses most
# of them between processes (see the file).
DDS_PROFILE = ROOT / "config/fastdds_large_images.xml"
_DOMAIN_LOCK = None


# ---------------------------------------------------------------------------------------------
# Environment
# ---------------------------------------------------------------------------------------------

def isolate_ros_domain() -> str:
    """Loopback-only discovery on a ROS_DOMAIN_ID nobody else on this machine holds (the
    same lock files as test/ros/conftest.py); an ID already set in the environment is kept."""
    global _DOMAIN_LOCK
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.pop("ROS_LOCALHOST_ONLY", None)
    os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(DDS_PROFILE))
    if "ROS_DOMAIN_ID" in os.environ:
        return os.environ["ROS_DOMAIN_ID"]
    start = os.getpid() % 100
    for k in range(100):
        domain = 1 + (start + k) % 100
        f = open(Path(tempfile.gettempdir()) / f"ckd_tracker_ros_domain_{domain}.lock", "w")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            continue
        _DOMAIN_LOCK = f  # held until this process exits
        os.environ["ROS_DOMAIN_ID"] = str(domain)
        return str(domain)
    raise RuntimeError("no free ROS_DOMAIN_ID in 1..100")


def rss_kib(pid: int) -> int | None:
    """Resident set size of process `pid` in KiB (VmRSS), None once it has exited."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process `pid` (all its threads)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_facts() -> dict:
    import rclpy  # noqa: F401  (version from the wheel's metadata)
    import torch
    from importlib.metadata import PackageNotFoundError, version

    from ckd_core.evaluation.speed import hardware_name
    try:
        rclpy_version = version("ros-kilted-rclpy")
    except PackageNotFoundError:
        rclpy_version = "unknown"
    return {"date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "cpu": hardware_name("cpu"), "python": platform.python_version(),
            "torch": torch.__version__, "rclpy": rclpy_version,
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset"),
            "dds_profile": os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE", "none")}


# ---------------------------------------------------------------------------------------------
# The synthetic camera pair
# ---------------------------------------------------------------------------------------------

class Stream:
    """Frame k of a width x height scene (640x512 by default): smooth random texture, a bright
    48x40 rectangle moving on a Lissajous path (at most ~4 px per frame at 30 Hz at 640x512).
    RGB as uint8 (H, W, 3), thermal as uint16 counts (background ~3000, target ~6000).
    Drawing a frame costs two image copies."""

    TW, TH = 48, 40

    def __init__(self, rate: float, seed: int = 0, width: int = W, height: int = H):
        import cv2
        self.width, self.height = width, height
        rng = np.random.default_rng(seed)
        low = rng.random((height // 16, width // 16, 3)).astype(np.float32)
        smooth = cv2.resize(low, (width, height), interpolation=cv2.INTER_CUBIC)
        fine = rng.random((height, width, 3)).astype(np.float32)
        self.rgb_bg = np.clip(60 + 100 * smooth + 30 * fine, 0, 255).astype(np.uint8)
        self.th_bg = (2800 + 400 * smooth.mean(axis=2) + 50 * fine[..., 0]).astype(np.uint16)
        self.target = np.zeros((self.TH, self.TW, 3), np.uint8)
        self.target[:] = (230, 50, 40)
        self.target[::8] = (250, 230, 60)  # stripes: something for the tracker to lock onto
        self.rate = rate

    def box(self, k: int) -> tuple[float, float, float, float]:
        """Top-left (x, y, w, h) of the target in frame k, integer pixels."""
        t = k / self.rate
        w, h = self.width, self.height
        cx = w / 2 + 0.33 * w * math.sin(2 * math.pi * t / 12.0)
        cy = h / 2 + 0.28 * h * math.sin(2 * math.pi * t / 17.0)
        return (float(round(cx - self.TW / 2)), float(round(cy - self.TH / 2)),
                float(self.TW), float(self.TH))

    def frame(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        x, y, w, h = (int(v) for v in self.box(k))
        rgb = self.rgb_bg.copy()
        th = self.th_bg.copy()
        rgb[y:y + h, x:x + w] = self.target
        th[y:y + h, x:x + w] = 6000 + (k % 16)
        rgb[0, 0] = (k & 255, (k >> 8) & 255, (k >> 16) & 255)  # never two equal frames
        return rgb, th


def stamp_of(k: int, rate: float) -> int:
    return T0_NS + int(round(k * 1e9 / rate))


# ---------------------------------------------------------------------------------------------
# The node process
# ---------------------------------------------------------------------------------------------

def start_node(ns: str, log_path: Path, checkpoint: str | None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "ckd_tracker_ros.node", "--ros-args", "-r", f"__ns:={ns}",
           "-p", "device:=cpu", "-p", "publish_debug_image:=false"]
    if checkpoint:
        cmd += ["-p", f"checkpoint:={checkpoint}"]
    log = open(log_path, "w")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                            env=dict(os.environ), start_new_session=True)


def stop_node(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    return proc.returncode


# ---------------------------------------------------------------------------------------------
# The camera / observer side
# ---------------------------------------------------------------------------------------------

class Driver:
    """Publishes the stream into namespace `ns` and records the node's answers."""

    def __init__(self, ctx, ns: str, stream: Stream):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image
        from vision_msgs.msg import Detection2DArray

        from ckd_tracker_ros.msg import TrackerStatus
        from ckd_tracker_ros.srv import InitTarget

        self.stream = stream
        self.node = rclpy.create_node("soak_camera", namespace=ns, context=ctx)
        self.pubs = [self.node.create_publisher(Image, t, qos_profile_sensor_data)
                     for t in ("rgb/image", "thermal/image")]
        self.node.create_subscription(Detection2DArray, "ckd_tracker/detections",
                                      self._on_detections, 50)
        self.node.create_subscription(TrackerStatus, "ckd_tracker/status", self._on_status, 50)
        self._hardware_id = f"{ns}/ckd_tracker"
        self.frames_rejected = 0  # the node's count, from /diagnostics
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)
        self.init_cli = self.node.create_client(InitTarget, "ckd_tracker/init_target")
        self._InitTarget = InitTarget
        self._cond = threading.Condition()
        self.sent: dict[int, float] = {}  # stamp_ns -> monotonic time of the first publish
        self.answered: set[int] = set()
        self.e2e_ms: list[float] = []
        self.node_ms: list[float] = []
        self.n_dets = 0
        self.n_tracking = 0
        self.last_status = None
        self.published_pairs = 0
        self.recording = False

    def _on_detections(self, msg) -> None:
        now = time.monotonic()
        s = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self._cond:
            t = self.sent.get(s)
            if t is not None and s not in self.answered:
                self.answered.add(s)
                if self.recording:
                    self.e2e_ms.append((now - t) * 1e3)
                    self.n_dets += 1
                    self.n_tracking += bool(msg.detections)
            self._cond.notify_all()

    def _on_diag(self, msg) -> None:
        for st in msg.status:
            if st.hardware_id == self._hardware_id:
                for kv in st.values:
                    if kv.key == "frames_rejected":
                        self.frames_rejected = int(kv.value)

    def _on_status(self, msg) -> None:
        s = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self._cond:
            self.last_status = msg
            if self.recording and s < 2 * T0_NS:  # a processed pair, not an idle heartbeat
                self.node_ms.append(float(msg.latency_ms))

    def publish(self, k: int) -> int:
        from ckd_tracker_ros.images import numpy_to_image
        rgb, th = self.stream.frame(k)
        s = stamp_of(k, self.stream.rate)
        msgs = numpy_to_image(rgb, "rgb8"), numpy_to_image(th, "mono16")
        for m, frame in zip(msgs, ("soak_rgb", "soak_thermal")):
            m.header.stamp.sec, m.header.stamp.nanosec = divmod(s, 1_000_000_000)
            m.header.frame_id = frame
        with self._cond:
            self.sent.setdefault(s, time.monotonic())
            if len(self.sent) > 2000:  # forget pairs the node dropped long ago
                for old in [x for x in self.sent if x < s - 10 * 1_000_000_000]:
                    del self.sent[old]
                    self.answered.discard(old)
        for pub, m in zip(self.pubs, msgs):
            pub.publish(m)
        self.published_pairs += 1
        return s

    def wait_answer(self, s: int, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: s in self.answered, timeout)

    def wait_subscribed(self, proc: subprocess.Popen, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not all(p.get_subscription_count() for p in self.pubs):
            if proc.poll() is not None:
                raise RuntimeError(f"the node exited with code {proc.returncode} at start-up")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the node did not subscribe within {timeout:.0f} s")
            time.sleep(0.1)

    def initialise(self, k0: int) -> int:
        """Publish pairs k0, k0+1, ... until the node answers one, then init_target on it.
        Returns the next frame index."""
        k = k0
        deadline = time.monotonic() + 60
        while True:
            s = self.publish(k)
            k += 1
            if self.wait_answer(s, 0.5):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the node answered no pair within 60 s")
        x, y, w, h = self.stream.box(k - 1)
        req = self._InitTarget.Request(x=x, y=y, width=w, height=h, label="soak_target")
        req.stamp.sec, req.stamp.nanosec = divmod(s, 1_000_000_000)
        if not self.init_cli.wait_for_service(timeout_sec=10):
            raise RuntimeError("~/init_target is not offered")
        fut = self.init_cli.call_async(req)
        t_end = time.monotonic() + 10
        while not fut.done() and time.monotonic() < t_end:
            time.sleep(0.01)
        resp = fut.result() if fut.done() else None
        if resp is None or not resp.success:
            raise RuntimeError(f"init_target failed: {resp and resp.message}")
        return k


class Sampler(threading.Thread):
    """RSS and CPU time of the node process every `period` s: [(t since start, KiB, cpu s)]."""

    def __init__(self, pid: int, period: float):
        super().__init__(daemon=True, name="rss_sampler")
        self.pid, self.period = pid, period
        self.samples: list[tuple[float, int, float]] = []
        self._stop_ev = threading.Event()
        self.t0 = time.monotonic()

    def sample(self) -> None:
        r, c = rss_kib(self.pid), cpu_seconds(self.pid)
        if r is not None and c is not None:
            self.samples.append((time.monotonic() - self.t0, r, c))

    def run(self) -> None:
        while not self._stop_ev.wait(self.period):
            self.sample()

    def stop(self) -> None:
        self._stop_ev.set()
        self.join(timeout=5)
        self.sample()


def percentiles(values) -> dict:
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return {"n": 0}
    return {"n": int(v.size), "p50": float(np.percentile(v, 50)),
            "p90": float(np.percentile(v, 90)), "p99": float(np.percentile(v, 99)),
            "max": float(v.max())}


def memory_summary(samples, warmup_s: float) -> dict:
    after = [s for s in samples if s[0] >= warmup_s] or samples[-1:]
    start, end = after[0], after[-1]
    mid_t = (start[0] + end[0]) / 2
    middle = min(after, key=lambda s: abs(s[0] - mid_t))
    growth = (end[1] - start[1]) / start[1]
    return {"first_kib": samples[0][1], "first_t": samples[0][0],
            "start_kib": start[1], "start_t": start[0], "middle_kib": middle[1],
            "middle_t": middle[0], "end_kib": end[1], "end_t": end[0],
            "max_kib": max(s[1] for s in after), "growth": growth,
            "ok": growth <= RSS_GROWTH_LIMIT}


# ---------------------------------------------------------------------------------------------
# One mode
# ---------------------------------------------------------------------------------------------

def run_mode(mode: str, duration_s: float, rate: float, warmup_s: float, sample_s: float,
             log_dir: Path, checkpoint: str | None, progress) -> dict:
    import rclpy
    from rclpy.context import Context

    from ckd_tracker_ros.bag_play import spinning

    ns = f"/soak_{mode}_{os.getpid()}"
    log_path = log_dir / f"soak_node_{mode}.log"
    proc = start_node(ns, log_path, checkpoint)
    ctx = Context()
    rclpy.init(context=ctx)
    result: dict = {"mode": mode, "node_log": str(log_path)}
    try:
        driver = Driver(ctx, ns, Stream(rate))
        with spinning(ctx, driver.node):
            driver.wait_subscribed(proc, timeout=120)
            k = driver.initialise(0)
            sampler = Sampler(proc.pid, sample_s)
            sampler.sample()
            sampler.start()
            cpu0 = cpu_seconds(proc.pid) or 0.0
            status0 = driver.last_status
            base = (status0.pairs_received, status0.pairs_dropped, status0.frames_processed) \
                if status0 is not None else (0, 0, 0)
            published0 = driver.published_pairs
            rejected0 = driver.frames_rejected
            driver.recording = True
            t0 = time.monotonic()
            late = unanswered = resends = 0
            k_first = k
            next_report = t0 + 60
            while True:
                now = time.monotonic()
                if now - t0 >= duration_s:
                    break
                if proc.poll() is not None:
                    raise RuntimeError(f"the node exited with code {proc.returncode} "
                                       f"(log: {log_path})")
                if mode == "realtime":
                    due = t0 + (k - k_first) / rate
                    if due > now:
                        time.sleep(due - now)
                    elif now - due > 1.0 / rate:
                        late += 1
                    driver.publish(k)
                else:
                    s = driver.publish(k)
                    tries = 0
                    while not driver.wait_answer(s, 1.0):
                        tries += 1
                        if tries >= 10 or proc.poll() is not None:
                            unanswered += 1
                            break
                        driver.publish(k)
                        resends += 1
                k += 1
                if progress and time.monotonic() >= next_report:
                    next_report += 60
                    st = driver.last_status
                    progress(f"[{mode}] {time.monotonic() - t0:.0f} s: published "
                             f"{driver.published_pairs - published0} pairs, node processed "
                             f"{st.frames_processed - base[2] if st else '?'}, RSS "
                             f"{(rss_kib(proc.pid) or 0) / 1024:.1f} MiB, load "
                             f"{os.getloadavg()[0]:.1f}")
            wall = time.monotonic() - t0
            time.sleep(1.5)  # the last answers, and a heartbeat status with the final counters
            driver.recording = False
            sampler.stop()
            cpu1 = cpu_seconds(proc.pid) or cpu0
            st = driver.last_status
            processed = st.frames_processed - base[2]
            result.update({
                "wall_s": wall, "rate_hz": rate,
                "pairs_published": driver.published_pairs - published0,
                "resends": resends, "late_publishes": late,
                "publish_rate_hz": (driver.published_pairs - published0) / wall,
                "pairs_received": st.pairs_received - base[0],
                "pairs_dropped": st.pairs_dropped - base[1],
                "frames_processed": processed,
                "answers": driver.n_dets, "answers_tracking": driver.n_tracking,
                "unanswered": unanswered,
                "frames_rejected": driver.frames_rejected - rejected0,
                "e2e_ms": percentiles(driver.e2e_ms),
                "node_latency_ms": percentiles(driver.node_ms),
                "node_cpu_ms_per_frame": 1e3 * (cpu1 - cpu0) / max(processed, 1),
                "memory": memory_summary(sampler.samples, warmup_s),
                "rss_samples": [(round(t, 1), r) for t, r, _ in sampler.samples],
            })
        driver.node.destroy_node()
    finally:
        result["node_exit_code"] = stop_node(proc)
        rclpy.try_shutdown(context=ctx)
    return result


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------

def _p(d: dict, key: str) -> str:
    return f"{d[key]:.1f}" if key in d else "-"


def report_markdown(facts: dict, results: list[dict], args) -> str:
    lines = [
        "# Soak test of the ckd_tracker node",
        "",
        f"Produced by `benchmarks/soak_node.py --minutes {args.minutes:g} --rate {args.rate:g} "
        f"--warmup-s {args.warmup_s:g}` (modes: {', '.join(args.modes)}).",
        "",
        f"- date: {facts['date']}",
        f"- CPU: {facts['cpu']}; Python {facts['python']}, torch {facts['torch']}, "
        f"rclpy (ros-kilted-rclpy) {facts['rclpy']}; Fast DDS on loopback with "
        f"FASTDDS_DEFAULT_PROFILES_FILE={facts['dds_profile']}",
        f"- threads: OMP_NUM_THREADS={facts['omp_num_threads']} (node and camera process)",
        f"- load average (1, 5, 15 min) at start: {facts['load_start']}; at end: "
        f"{facts['load_end']}" + (f" ({args.conditions})" if args.conditions else ""),
        f"- stream: {W}x{H} rgb8 + mono16 thermal, drawn on the fly (moving textured target), "
        f"{args.rate:g} Hz stamps; node: shipped model, CPU, debug image off, own process",
        "- memory: RSS of the node process (/proc/<pid>/status VmRSS) every "
        f"{args.sample_s:g} s; \"start\" = first sample at or after {args.warmup_s:g} s of the "
        "timed run (after model warm-up, init and DDS pools filling; the node was already up "
        "and answering before the timed run began), \"middle\" = closest to half-way, "
        f"\"end\" = last; limit: growth start -> end <= {100 * RSS_GROWTH_LIMIT:.0f} %",
        "- lock-step: one pair in flight, for the same wall time as real time (as many pairs "
        "as the node answers); real time: pairs published on the wall clock, the node drops "
        "what it cannot keep up with",
        "",
        "| | " + " | ".join(r["mode"] for r in results) + " |",
        "|---|" + "---|" * len(results),
    ]

    def row(name, fn):
        lines.append(f"| {name} | " + " | ".join(fn(r) for r in results) + " |")

    row("wall time", lambda r: f"{r['wall_s'] / 60:.1f} min")
    row("pairs published (camera)", lambda r: f"{r['pairs_published']}"
        + (f" ({r['publish_rate_hz']:.1f} Hz)" if r["mode"] == "realtime" else ""))
    row("pairs received (node)", lambda r: str(r["pairs_received"]))
    row("pairs dropped (node, newest wins)", lambda r: str(r["pairs_dropped"]))
    row("frames processed (node)", lambda r: f"{r['frames_processed']} "
        f"({r['frames_processed'] / r['wall_s']:.1f} /s)")
    row("frames rejected / skipped with an error (node)", lambda r: str(r["frames_rejected"]))
    row("answers received (camera)", lambda r: f"{r['answers']} ({r['answers_tracking']} "
        "with a box)")
    row("lock-step re-sends / unanswered", lambda r: f"{r['resends']} / {r['unanswered']}"
        if r["mode"] == "lockstep" else "-")
    row("end-to-end latency p50 / p90 / p99 / max (ms)", lambda r: " / ".join(
        _p(r["e2e_ms"], k) for k in ("p50", "p90", "p99", "max")))
    row("node latency_ms p50 / p90 / p99 / max", lambda r: " / ".join(
        _p(r["node_latency_ms"], k) for k in ("p50", "p90", "p99", "max")))
    row("node CPU per processed frame", lambda r: f"{r['node_cpu_ms_per_frame']:.1f} ms")
    mib = lambda kib: f"{kib / 1024:.1f}"  # noqa: E731
    row("RSS first sample (MiB)", lambda r: f"{mib(r['memory']['first_kib'])} "
        f"(t={r['memory']['first_t']:.0f} s)")
    row("RSS start / middle / end (MiB)", lambda r: " / ".join(
        mib(r["memory"][k]) for k in ("start_kib", "middle_kib", "end_kib"))
        + f" (t={r['memory']['start_t']:.0f}/{r['memory']['middle_t']:.0f}/"
        f"{r['memory']['end_t']:.0f} s)")
    row("RSS max after start (MiB)", lambda r: mib(r["memory"]["max_kib"]))
    row("RSS growth start -> end", lambda r: f"{100 * r['memory']['growth']:+.2f} % "
        + ("(ok)" if r["memory"]["ok"] else "(OVER the 5 % limit)"))
    row("node exit code after SIGINT", lambda r: str(r["node_exit_code"]))
    ok = all(r["memory"]["ok"] for r in results)
    lines += ["", f"Memory target (<= 5 % growth start -> end): "
              f"{'met' if ok else 'NOT met'} in {'all modes' if ok else 'some modes'}.", ""]
    lines.append("RSS over time (MiB, every ~10th sample):")
    lines.append("")
    for r in results:
        pts = r["rss_samples"][::max(1, len(r["rss_samples"]) // 12)] + r["rss_samples"][-1:]
        lines.append(f"- {r['mode']}: " + ", ".join(f"{t:.0f} s {kib / 1024:.1f}"
                                                   for t, kib in pts))
    lines.append("")
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=20.0, help="duration of EACH mode")
    p.add_argument("--modes", nargs="+", default=["realtime", "lockstep"],
                   choices=["realtime", "lockstep"])
    p.add_argument("--rate", type=float, default=30.0, help="camera rate, Hz")
    p.add_argument("--warmup-s", type=float, default=60.0,
                   help="seconds of the timed run before the 'start' RSS sample")
    p.add_argument("--sample-s", type=float, default=5.0, help="RSS sampling period, s")
    p.add_argument("--checkpoint", help="model file (default: the shipped model)")
    p.add_argument("--conditions", default="",
                   help="what else ran on the machine (shown next to the load average)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/soak.md")
    p.add_argument("--json", type=Path, help="also write the raw numbers here")
    p.add_argument("--log-dir", type=Path, default=Path(tempfile.gettempdir()),
                   help="where the node processes' logs go")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    domain = isolate_ros_domain()
    facts = machine_facts()
    facts["load_start"] = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"soak: {', '.join(args.modes)}, {args.minutes:g} min each at {args.rate:g} Hz; "
          f"ROS_DOMAIN_ID {domain}; {facts['cpu']}", flush=True)
    results = []
    for mode in args.modes:
        try:
            res = run_mode(mode, args.minutes * 60, args.rate, args.warmup_s, args.sample_s,
                           args.log_dir, args.checkpoint, lambda s: print(s, flush=True))
        except RuntimeError as e:  # the next mode may still run; the report says what failed
            print(f"[{mode}] FAILED: {e}", flush=True)
            facts.setdefault("failures", []).append(f"{mode}: {e}")
            continue
        m = res["memory"]
        print(f"[{mode}] done: {res['frames_processed']} frames processed of "
              f"{res['pairs_received']} pairs received ({res['pairs_published']} published); "
              f"e2e p50 {res['e2e_ms'].get('p50', float('nan')):.1f} ms; RSS "
              f"{m['start_kib'] / 1024:.1f} -> {m['end_kib'] / 1024:.1f} MiB "
              f"({100 * m['growth']:+.2f} %)", flush=True)
        results.append(res)
        write_report(facts, results, args)  # after each mode: a later failure keeps this one
    text = write_report(facts, results, args)
    print(text)
    ok = results and not facts.get("failures") and all(r["memory"]["ok"] for r in results)
    return 0 if ok else 1


def write_report(facts: dict, results: list[dict], args) -> str:
    facts["load_end"] = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    text = report_markdown(facts, results, args) if results else "# Soak test: no mode ran\n"
    text += "".join(f"\nFAILED: {f}\n" for f in facts.get("failures", []))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    if args.json:
        args.json.write_text(json.dumps({"facts": facts, "results": results}, indent=1))
    return text


if __name__ == "__main__":
    raise SystemExit(main())
