"""One-pass evaluation (OPE) of a tracker over a benchmark: parallel, resumable.

    job = EvalJob(dataset="lasher", root=Path("LasHeR/testingset"),
                  out_dir=Path("runs/eval/lasher"), tracker=TrackerSpec(checkpoint=path))
    summary = run_benchmark(job)        # writes OUT/<tracker name>/<seq>.txt and times/

Per sequence: `init` on frame 0 with the reference modality's frame-0 ground truth (RGB for
every dataset unless the tracker's `reference_camera` is thermal; for VTUAV that is rgb.txt
row 0), then `update` on every following frame. The result file has one row per frame, frame
0 = the init box (toolkit format, see `results_io`); the timing file is described in `speed`.

Parallelism: `workers` processes started with the multiprocessing *spawn* method (no fork of
a process that already holds torch threads). Each builds the tracker once, takes sequences
from a queue (longest first) and uses max(1, cores // workers) torch threads. One worker runs
in the calling process instead (easier to debug; no start-up cost).

A script that calls `run_benchmark` with workers > 1 needs the usual
`if __name__ == "__main__":` guard (spawn imports the script again in each worker).

Resumability: the result file is the "done" marker. A sequence is written as its timing file
then its result file, each replaced atomically (temporary file + `os.replace`), so a killed run
leaves either a complete pair or no result file, never a partial one. A re-run skips every
sequence whose result and timing files exist and have one row per frame. `run.json` in the
results folder records what produced the results (weights and their hash, preset and seed,
baseline, state machine, frame limit); resuming with different settings is refused instead
of silently mixing two trackers' results (pass `overwrite=True` to start again).
"""

from __future__ import annotations

import contextlib
import json
import math
import multiprocessing as mp
import queue
import signal
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ckd_core.data.sequences import Sequence, SequenceError, list_sequences, open_sequence
from ckd_core.evaluation.baselines import BASELINES, make_baseline
from ckd_core.evaluation.results_io import (read_result_file, result_path, write_result_file,
                                            write_text_atomic)
from ckd_core.evaluation.scorer import SCORED_DATASETS
from ckd_core.evaluation.speed import read_times, times_path, usable_cores, write_times

MANIFEST = "run.json"
# How often a worker reports finished frames to the progress bar (seconds).
_PROGRESS_INTERVAL_S = 0.5
# How long stopped workers get to finish their current frame before they are terminated.
_STOP_GRACE_S = 20.0


class ResultsMismatchError(ValueError):
    """The results folder holds results that another tracker or setting produced."""


class RunnerError(RuntimeError):
    """A benchmark run failed; the message names the sequence. `details`: a worker traceback
    for unexpected errors ('' for user errors such as a bad init box)."""

    def __init__(self, message: str, details: str = ""):
        super().__init__(message)
        self.details = details


# ---------------------------------------------------------------------------------------------
# What to run
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrackerSpec:
    """Which tracker each worker builds. Picklable (it crosses the spawn boundary).

    Exactly one source: `checkpoint` (our .safetensors weights), `preset` (that preset's
    architecture with random weights from `seed`: for tests and speed checks) or `baseline`
    (`opencv-mil-rgb` / `opencv-mil-thermal`). `state_machine=False` is the authors' tracker
    (benchmark default, comparable with papers); True turns our LOST logic on.
    """

    checkpoint: Path | None = None
    preset: str | None = None
    baseline: str | None = None
    seed: int = 0
    device: str = "cpu"
    state_machine: bool = False

    def __post_init__(self):
        given = [k for k in ("checkpoint", "preset", "baseline") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(f"give exactly one of checkpoint, preset and baseline (got "
                             f"{', '.join(given) or 'none'})")
        if self.baseline and self.baseline not in BASELINES:
            raise ValueError(f"unknown baseline '{self.baseline}'; expected one of "
                             f"{', '.join(BASELINES)}")

    @classmethod
    def model(cls, checkpoint: Path | None = None, preset: str | None = None,
              **kwargs) -> "TrackerSpec":
        """The CKD model from `checkpoint` or `preset`; the shipped default model when both
        are None (FileNotFoundError saying what to do when this checkout has none)."""
        if checkpoint is None and preset is None:
            from ckd_core.tracking.default_model import default_checkpoint_path
            checkpoint = default_checkpoint_path()
        return cls(checkpoint=checkpoint, preset=preset, **kwargs)

    def default_name(self) -> str:
        """Results folder name: the checkpoint's stem, `<preset>_random` or the baseline."""
        if self.baseline:
            return self.baseline
        name = Path(self.checkpoint).stem if self.checkpoint else f"{self.preset}_random"
        return name + ("_sm" if self.state_machine else "")

    def identity(self) -> dict:
        """What decides the trajectories (stored in run.json, compared when resuming)."""
        if self.baseline:
            return {"baseline": self.baseline}
        if self.preset:
            ident = {"preset": self.preset, "seed": self.seed}
        else:
            from ckd_core.model.checkpoint import read_checkpoint_meta
            meta = read_checkpoint_meta(self.checkpoint) or {}
            ident = {"checkpoint_sha256": meta.get("content_sha256", "unknown")}
        return {**ident, "state_machine": self.state_machine}

    def build(self):
        """The tracker: a `ckd_core.tracking.Tracker` or a baseline (same init / update)."""
        if self.baseline:
            return make_baseline(self.baseline)
        import torch

        from ckd_core.config import from_dict, load_config
        from ckd_core.model import build_inference_model
        from ckd_core.model.checkpoint import CheckpointError, load_model, read_checkpoint_meta
        from ckd_core.tracking import Tracker

        if self.preset:
            cfg = load_config(self.preset)
            torch.manual_seed(self.seed)  # the same random weights in every worker and run
            model = build_inference_model(cfg.model)
        else:
            meta = read_checkpoint_meta(self.checkpoint)
            if meta is None:
                raise CheckpointError(f"{self.checkpoint} is not a ckd-tracker checkpoint; "
                                      "convert foreign weights with `ckd inspect` first")
            cfg = from_dict(json.loads(meta["config"]))
            model = load_model(self.checkpoint)
        cfg = cfg.replace(**{"tracker.state_machine": self.state_machine})
        return Tracker(model, cfg, device=self.device)


@dataclass(frozen=True)
class EvalJob:
    """A benchmark run: which tracker on which sequences, where results go.

    root: the dataset folder holding one sub-folder per sequence (VTUAV: the split folder).
    sequences: names to run (None: every sequence folder under root, sorted naturally).
    max_frames: track only the first N frames of each sequence (smoke tests); the scores are
    then over those frames only.
    """

    dataset: str
    root: Path
    out_dir: Path
    tracker: TrackerSpec
    name: str | None = None
    sequences: tuple[str, ...] | None = None
    workers: int = 1
    max_frames: int | None = None
    overwrite: bool = False

    def __post_init__(self):
        if self.dataset not in SCORED_DATASETS:
            raise ValueError(f"cannot evaluate on '{self.dataset}'; expected one of "
                             f"{', '.join(SCORED_DATASETS)}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.max_frames is not None and self.max_frames < 2:
            raise ValueError(f"max_frames must be >= 2 (init + one tracked frame), got "
                             f"{self.max_frames}")

    @property
    def tracker_name(self) -> str:
        return self.name or self.tracker.default_name()

    @property
    def results_dir(self) -> Path:
        return Path(self.out_dir) / self.tracker_name

    def frames_of(self, seq: Sequence) -> int:
        """Frames tracked in `seq` (all, or the first max_frames)."""
        return seq.num_frames if self.max_frames is None else min(seq.num_frames,
                                                                  self.max_frames)

    def manifest(self) -> dict:
        return {"dataset": self.dataset, "tracker": self.tracker_name,
                "max_frames": self.max_frames, **self.tracker.identity()}


@dataclass
class RunSummary:
    """What `run_benchmark` did. sequences: every sequence of the job (run order irrelevant),
    skipped: those already complete before this run, ran: those tracked now."""

    job: EvalJob
    sequences: list[Sequence]
    skipped: list[str] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)
    seconds: float = 0.0


# ---------------------------------------------------------------------------------------------
# One sequence
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SequenceRun:
    """One tracked sequence: boxes (N, 4) xywh, model and end-to-end seconds (N,)."""

    name: str
    boxes: np.ndarray
    model_s: np.ndarray
    end_to_end_s: np.ndarray


class _Stopped(Exception):
    """The run was asked to stop between two frames."""


def reference_modality(tracker) -> str:
    """Whose pixels the tracker's boxes are in ('rgb' or 'thermal')."""
    ref = getattr(tracker, "reference_modality", None)
    return ref or tracker.cfg.reference_camera


def track_sequence(tracker, seq: Sequence, max_frames: int | None = None,
                   on_frame: Callable[[], None] | None = None,
                   should_stop: Callable[[], bool] | None = None) -> SequenceRun:
    """One-pass tracking of `seq`: init on frame 0 with the reference modality's GT, update
    on frames 1..N-1. Row 0 of the boxes is the init box."""
    n = seq.num_frames if max_frames is None else min(seq.num_frames, max_frames)
    ref = reference_modality(tracker)
    gt = seq.gt_rgb if ref == "rgb" else seq.gt_thermal
    init_box = tuple(float(v) for v in gt[0])
    boxes = np.empty((n, 4), dtype=np.float64)
    model_s = np.zeros(n, dtype=np.float64)
    total_s = np.zeros(n, dtype=np.float64)
    rgb, thermal = seq.frame(0)
    t0 = time.perf_counter()
    tracker.init(rgb, thermal, init_box)
    total_s[0] = time.perf_counter() - t0
    boxes[0] = init_box
    for i in range(1, n):
        if should_stop is not None and should_stop():
            raise _Stopped
        rgb, thermal = seq.frame(i)
        t0 = time.perf_counter()
        result = tracker.update(rgb, thermal)
        total_s[i] = time.perf_counter() - t0
        boxes[i] = result.box_xywh
        model_s[i] = result.timings.get("model", 0.0)
        if on_frame is not None:
            on_frame()
    return SequenceRun(seq.name, boxes, model_s, total_s)


def write_sequence_run(run: SequenceRun, results_dir: str | Path) -> Path:
    """Timing file first, result file last (the result file marks the sequence done)."""
    write_times(times_path(results_dir, run.name), run.model_s, run.end_to_end_s)
    return write_result_file(result_path(results_dir, run.name), run.boxes)


def is_complete(results_dir: str | Path, sequence: str, n_frames: int) -> bool:
    """True when the sequence's result and timing files exist with n_frames rows each."""
    res, tim = result_path(results_dir, sequence), times_path(results_dir, sequence)
    if not (res.is_file() and tim.is_file()):
        return False
    try:
        return len(read_result_file(res)) == n_frames and len(read_times(tim)) == n_frames
    except (OSError, ValueError):
        return False  # unreadable: run it again (the new file replaces it atomically)


# ---------------------------------------------------------------------------------------------
# The whole benchmark
# ---------------------------------------------------------------------------------------------

def open_job_sequences(job: EvalJob) -> list[Sequence]:
    """The job's sequences, opened and validated (SequenceError naming the folder)."""
    if job.sequences is None:
        return list_sequences(job.dataset, job.root)
    root = Path(job.root)
    missing = [n for n in job.sequences if not (root / n).is_dir()]
    if missing:
        raise SequenceError(f"{len(missing)} of the {len(job.sequences)} sequences asked for "
                            f"are not folders in {root}: {', '.join(missing[:10])}")
    return [open_sequence(job.dataset, root / n) for n in job.sequences]


def check_manifest(job: EvalJob) -> None:
    """Refuse to resume into a results folder that another tracker or setting produced;
    then (re)write run.json for this job."""
    path = job.results_dir / MANIFEST
    wanted = job.manifest()
    if path.is_file() and not job.overwrite:
        try:
            found = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ResultsMismatchError(f"{path} is unreadable ({exc}); delete it or pass "
                                       "--overwrite") from None
        diffs = [f"{k}: {found.get(k)!r} there, {v!r} now" for k, v in wanted.items()
                 if found.get(k) != v]
        if diffs:
            raise ResultsMismatchError(f"{job.results_dir} holds results of a different run "
                                       f"({'; '.join(diffs)}); use another --out or --name, "
                                       "or pass --overwrite to run every sequence again")
    write_text_atomic(path, json.dumps(wanted, indent=2) + "\n")


def run_benchmark(job: EvalJob, progress: bool | None = None,
                  on_sequence_done: Callable[[str], None] | None = None) -> RunSummary:
    """Track every sequence of the job that is not complete yet; see the module docstring.

    progress: show a tqdm bar over frames with ETA (None: only on a terminal).
    on_sequence_done: called in this process with the name of each sequence once its files
    are written (tests use it to interrupt a run).
    Raises RunnerError naming the sequence when tracking fails; the sequences finished
    before stay written, so running again resumes.
    """
    from tqdm import tqdm

    t_start = time.perf_counter()
    sequences = open_job_sequences(job)
    job.results_dir.mkdir(parents=True, exist_ok=True)
    check_manifest(job)
    summary = RunSummary(job, sequences)
    pending = []
    for seq in sequences:
        if not job.overwrite and is_complete(job.results_dir, seq.name, job.frames_of(seq)):
            summary.skipped.append(seq.name)
        else:
            pending.append(seq)
    # Longest first: the last sequences to finish are short, so workers end together.
    pending.sort(key=lambda s: -job.frames_of(s))
    if not pending:
        summary.seconds = time.perf_counter() - t_start
        return summary

    total = sum(job.frames_of(s) - 1 for s in pending)
    bar = tqdm(total=total, unit="frame", disable=(not progress) if progress is not None
               else None, desc=f"{job.tracker_name} on {job.dataset}", dynamic_ncols=True)

    def done(name: str) -> None:
        summary.ran.append(name)
        bar.set_postfix_str(f"{len(summary.ran)}/{len(pending)} sequences")
        if on_sequence_done is not None:
            on_sequence_done(name)

    try:
        workers = min(job.workers, len(pending))
        threads = max(1, usable_cores() // job.workers)
        with _sigterm_as_interrupt():
            if workers == 1:
                _run_here(job, pending, threads, bar, done)
            else:
                _run_pool(job, pending, workers, threads, bar, done)
    finally:
        bar.close()
    summary.seconds = time.perf_counter() - t_start
    return summary


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (kill, a batch scheduler) raises KeyboardInterrupt, so the workers are stopped
    between two frames instead of being orphaned. Only possible in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    before = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def _run_here(job: EvalJob, pending: list[Sequence], threads: int, bar, done) -> None:
    """One worker, in this process (torch's thread count restored afterwards)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        tracker = job.tracker.build()
        for seq in pending:
            try:
                run = track_sequence(tracker, seq, job.max_frames, on_frame=lambda: bar.update())
            except (ValueError, FileNotFoundError) as exc:
                raise RunnerError(f"sequence '{seq.name}': {exc}") from exc
            write_sequence_run(run, job.results_dir)
            done(seq.name)
    finally:
        torch.set_num_threads(before)


def _run_pool(job: EvalJob, pending: list[Sequence], workers: int, threads: int, bar,
              done) -> None:
    """`workers` spawned processes; events come back on one queue."""
    ctx = mp.get_context("spawn")
    tasks, events, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    for seq in pending:  # small tasks: workers open the sequence folder themselves
        tasks.put((seq.name, str(seq.root)))
    for _ in range(workers):
        tasks.put(None)
    procs = [ctx.Process(target=_worker_main, name=f"ckd-eval-{k}", daemon=True,
                         args=(k, job, threads, tasks, events, stop))
             for k in range(workers)]
    for p in procs:
        p.start()
    current: dict[int, str] = {}
    remaining = {s.name for s in pending}
    quiet_since_all_exited = 0
    try:
        while remaining:
            try:
                event = events.get(timeout=0.5)
            except queue.Empty:
                _check_alive(procs, current)
                # Two empty waits after every worker exited: no event is still on its way.
                quiet_since_all_exited = (0 if any(p.is_alive() for p in procs)
                                          else quiet_since_all_exited + 1)
                if quiet_since_all_exited >= 2:
                    raise RunnerError(f"every worker exited with {len(remaining)} sequences "
                                      "left to track; run again to resume") from None
                continue
            kind, worker = event[0], event[1]
            if kind == "start":
                current[worker] = event[2]
            elif kind == "frames":
                bar.update(event[2])
            elif kind == "done":
                current.pop(worker, None)
                remaining.discard(event[2])
                done(event[2])
            elif kind == "error":
                where = f"sequence '{event[2]}'" if event[2] else f"worker {worker}"
                raise RunnerError(f"{where}: {event[3]}", event[4])
    finally:
        stop.set()
        _shut_down(procs, events)
        tasks.cancel_join_thread()  # unsent tasks must not block this process's exit


def _check_alive(procs, current: dict[int, str]) -> None:
    for k, p in enumerate(procs):
        if not p.is_alive() and p.exitcode not in (0, None):
            where = f"while tracking '{current[k]}'" if k in current else "at start-up"
            raise RunnerError(f"worker {k} died {where} (exit code {p.exitcode}; a negative "
                              f"code is the signal, e.g. -9 = killed, often for memory)")


def _shut_down(procs, events) -> None:
    """Let workers finish their frame and exit (draining events so none blocks on a full
    pipe), then terminate any that did not."""
    deadline = time.monotonic() + _STOP_GRACE_S
    while any(p.is_alive() for p in procs) and time.monotonic() < deadline:
        try:
            events.get(timeout=0.1)
        except queue.Empty:
            pass
    for p in procs:
        if p.is_alive():
            p.terminate()
        p.join()
    events.cancel_join_thread()


def _worker_main(worker: int, job: EvalJob, threads: int, tasks, events, stop) -> None:
    """A worker process: build the tracker once, then track sequences until told to stop."""
    # Ctrl-C reaches the whole process group: the parent decides, workers just stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch

    torch.set_num_threads(threads)
    parent = mp.parent_process()

    def stopping() -> bool:  # asked to stop, or the parent was killed (no orphans left)
        return stop.is_set() or (parent is not None and not parent.is_alive())

    name = None
    try:
        tracker = job.tracker.build()
        while not stopping():
            task = tasks.get()
            if task is None:
                return
            name, seq_dir = task
            events.put(("start", worker, name))
            seq = open_sequence(job.dataset, seq_dir)
            pending_frames, last = 0, time.monotonic()

            def on_frame():
                nonlocal pending_frames, last
                pending_frames += 1
                if time.monotonic() - last >= _PROGRESS_INTERVAL_S:
                    events.put(("frames", worker, pending_frames))
                    pending_frames, last = 0, time.monotonic()

            run = track_sequence(tracker, seq, job.max_frames, on_frame, stopping)
            write_sequence_run(run, job.results_dir)
            events.put(("frames", worker, pending_frames))
            events.put(("done", worker, name))
            name = None
    except (_Stopped, EOFError):  # EOFError: the parent died before sending every task
        return
    except (ValueError, FileNotFoundError) as exc:  # user errors: the message is enough
        events.put(("error", worker, name, f"{type(exc).__name__}: {exc}", ""))
    except BaseException as exc:  # noqa: BLE001 - report anything, the parent decides
        events.put(("error", worker, name, f"{type(exc).__name__}: {exc}",
                    traceback.format_exc()))


def expected_rows(job: EvalJob, seq: Sequence) -> int:
    """Ground-truth rows that the frames tracked cover (VTUAV: one per 10 frames)."""
    return math.ceil(job.frames_of(seq) / seq.gt_frame_step)
