"""Per-frame timing files of a benchmark run, the speed summary, and the hardware's name.

Timing file: `<results_dir>/times/<sequence>_time.txt`, one row per frame (frame 0 included,
like the result file), two comma-separated columns in seconds:

    model_seconds,end_to_end_seconds

- model: the network forward only (`TrackResult.timings['model']`); 0 for frame 0 (init runs
  no forward) and for frames where the tracker skipped the model.
- end_to_end: images in (decoded uint8 arrays) -> box out, i.e. the whole `tracker.init` /
  `tracker.update` call (crop, normalise, forward, decode). Reading and decoding the image
  files from disk is NOT included: it depends on the dataset's storage, not on the tracker.

FPS = frames / summed seconds over frames 1..N-1 of every sequence (frame 0 is the init and
is left out, as it runs no forward).
"""

from __future__ import annotations

import math
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from ckd_core.evaluation.results_io import write_text_atomic

TIMES_DIR = "times"


def times_path(results_dir: str | Path, sequence: str) -> Path:
    """`<results_dir>/times/<sequence>_time.txt`."""
    return Path(results_dir) / TIMES_DIR / f"{sequence}_time.txt"


def write_times(path: str | Path, model_s, end_to_end_s) -> Path:
    """Write (N,) model and (N,) end-to-end seconds as `model,end_to_end` rows, atomically."""
    path = Path(path)
    model = np.asarray(model_s, dtype=np.float64)
    total = np.asarray(end_to_end_s, dtype=np.float64)
    if model.shape != total.shape or model.ndim != 1:
        raise ValueError(f"{path}: model times {model.shape} and end-to-end times "
                         f"{total.shape} must be two (frames,) arrays")
    if not (np.isfinite(model).all() and np.isfinite(total).all()):
        raise ValueError(f"{path}: times must be finite")
    text = "".join(f"{m!r},{t!r}\n" for m, t in zip(model.tolist(), total.tolist()))
    write_text_atomic(path, text)
    return path


def read_times(path: str | Path) -> np.ndarray:
    """A timing file -> (N, 2) float64 [model, end_to_end] seconds; ValueError naming the
    file and line for a row that is not two finite numbers."""
    path = Path(path)
    rows = []
    for k, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(",")
        try:
            values = [float(p) for p in parts]
        except ValueError:
            values = []
        if len(values) != 2 or not all(np.isfinite(values)):
            raise ValueError(f"{path}, line {k}: '{line}' is not two numbers "
                             "(model_seconds,end_to_end_seconds)")
        rows.append(values)
    return np.asarray(rows, dtype=np.float64).reshape(-1, 2)


@dataclass(frozen=True)
class SpeedSummary:
    """Speed over the tracked frames (frame 0 of each sequence left out). Seconds, FPS."""

    frames: int
    model_seconds: float
    end_to_end_seconds: float

    @property
    def model_fps(self) -> float:
        return self.frames / self.model_seconds if self.model_seconds > 0 else float("nan")

    @property
    def end_to_end_fps(self) -> float:
        return (self.frames / self.end_to_end_seconds if self.end_to_end_seconds > 0
                else float("nan"))

    def to_dict(self) -> dict:
        """JSON-ready; an FPS with no time measured is None (JSON has no NaN)."""
        def fps(v: float) -> float | None:
            return None if math.isnan(v) else v

        return {"frames": self.frames, "model_seconds": self.model_seconds,
                "end_to_end_seconds": self.end_to_end_seconds,
                "model_fps": fps(self.model_fps), "end_to_end_fps": fps(self.end_to_end_fps)}


def speed_from_times(times: Iterable[np.ndarray]) -> SpeedSummary:
    """Sum (N, 2) per-sequence timing arrays over frames 1..N-1."""
    frames, model, total = 0, 0.0, 0.0
    for t in times:
        t = np.asarray(t, dtype=np.float64)[1:]
        frames += len(t)
        model += float(t[:, 0].sum()) if len(t) else 0.0
        total += float(t[:, 1].sum()) if len(t) else 0.0
    return SpeedSummary(frames, model, total)


def speed_summary(results_dir: str | Path, sequences: Iterable[str]) -> SpeedSummary:
    """Speed of a run from its timing files (FileNotFoundError naming a missing one)."""
    times = []
    for name in sequences:
        path = times_path(results_dir, name)
        if not path.is_file():
            raise FileNotFoundError(f"sequence '{name}': no timing file {path}")
        times.append(read_times(path))
    return speed_from_times(times)


def hardware_name(device: str = "cpu") -> str:
    """The processor that ran the tracker: the GPU's name for a CUDA device, else the CPU
    model from /proc/cpuinfo (platform.processor() elsewhere) with its logical core count."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        return f"{torch.cuda.get_device_name(dev)} (CUDA)"
    name = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    name = name or platform.processor() or platform.machine() or "unknown CPU"
    return f"{name} ({usable_cores()} logical cores available)"


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# CPU features that decide which fast paths can be fast (bf16 / int8 dot products, AMX tiles).
SPEED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_bf16",
               "amx_int8")


def describe_machine() -> dict[str, str]:
    """What a speed table needs to be read: CPU model and its relevant flags, GPU, library
    versions, thread settings and the load average (above the core count = shared CPU)."""
    import torch

    flags: set[str] = set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    gpu = (", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
           if torch.cuda.is_available() else "none")
    info = {"cpu": hardware_name("cpu"),
            "cpu flags": " ".join(f if f in flags else f"no-{f}" for f in SPEED_FLAGS)
            if flags else "unknown (no /proc/cpuinfo)",
            "gpu": gpu, "python": platform.python_version(), "torch": torch.__version__}
    for name in ("onnxruntime", "torchao"):
        try:
            info[name] = __import__(name).__version__
        except Exception:  # noqa: BLE001 - reported, not needed
            info[name] = "not installed"
    info["OMP_WAIT_POLICY"] = os.environ.get("OMP_WAIT_POLICY", "(unset)")
    info["load average"] = ", ".join(f"{v:.2f}" for v in os.getloadavg()) + " (1, 5, 15 min)"
    return info
