"""Resumable checkpoints of a training run: files, RNG states, atomic writes.

A run folder holds
    config.yaml                      the full config of the run (what --resume re-reads)
    checkpoints/step_00001000.safetensors   the training model (all branches and heads, BN
                                            buffers), our checkpoint format
    checkpoints/step_00001000.state.pt      optimizer, scheduler, AMP scaler, step, epoch,
                                            RNG states of every rank, config (weights-only)
    checkpoints/latest.json          {"step": ..., "model": ..., "state": ...}: the newest
                                     COMPLETE pair; written last, so a kill or a full disk
                                     in the middle of a save never points at a partial pair
    inference.safetensors            the exported students + fused head (end of the run)
    tensorboard/, metrics.jsonl      logs

Each file is written to a temporary name and renamed (`checkpoint.save_checkpoint` and
`save_training_state` do this). If any write fails (full disk, permissions) the files of that
step are removed, `latest.json` keeps pointing at the previous checkpoint and
`CheckpointWriteError` says what happened.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ckd_core.atomic import write_text_atomic

LATEST = "latest.json"
STATE_FORMAT = "ckd-train-state/1"


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written; nothing partial was left behind."""


@dataclass(frozen=True)
class RunPaths:
    """Where a run keeps its files (see the module docstring)."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def latest(self) -> Path:
        return self.checkpoints / LATEST

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def export(self) -> Path:
        return self.root / "inference.safetensors"

    def model_file(self, step: int) -> Path:
        return self.checkpoints / f"step_{step:08d}.safetensors"

    def state_file(self, step: int) -> Path:
        return self.checkpoints / f"step_{step:08d}.state.pt"


# ---------------------------------------------------------------------------------------------
# RNG states (plain data: what `save_training_state` accepts)
# ---------------------------------------------------------------------------------------------

def capture_rng() -> dict[str, Any]:
    """This process's global RNG states: Python, NumPy (legacy global), torch CPU and CUDA."""
    np_state = np.random.get_state(legacy=False)
    return {
        "python": random.getstate(),
        "numpy": {"bit_generator": np_state["bit_generator"],
                  "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
                  "pos": int(np_state["state"]["pos"]),
                  "has_gauss": int(np_state["has_gauss"]),
                  "gauss": float(np_state["gauss"])},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
    }


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of `capture_rng`."""
    random.setstate(_as_tuple(state["python"]))
    n = state["numpy"]
    np.random.set_state({"bit_generator": n["bit_generator"],
                         "state": {"key": n["key"].numpy().astype(np.uint32), "pos": n["pos"]},
                         "has_gauss": n["has_gauss"], "gauss": n["gauss"]})
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(x: Any) -> Any:
    # random.setstate needs tuples all the way down; a round trip may give lists
    return tuple(_as_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every CUDA device) from one integer."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def derive_seed(*parts: int) -> int:
    """A 63-bit seed that depends on every part (e.g. run seed, step, rank), via SeedSequence."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0]
               >> np.uint64(1))


# ---------------------------------------------------------------------------------------------
# Writing and finding checkpoints
# ---------------------------------------------------------------------------------------------

def _remove(paths: list[Path]) -> None:
    for p in paths:
        try:
            p.unlink()
        except FileNotFoundError:
            pass


def _write_json_atomic(path: Path, data: dict) -> None:
    write_text_atomic(path, json.dumps(data, indent=1))


def write_checkpoint(paths: RunPaths, step: int, write_model: Callable[[Path], Any],
                     write_state: Callable[[Path], Any], keep: int = 2) -> Path:
    """Write the model and the training state of `step`, then point latest.json at them.

    write_model(path) / write_state(path): write one file atomically (our checkpoint
    functions). keep: how many step checkpoints to keep (older ones are deleted after the new
    one is complete; the one latest.json names is never deleted). Returns the state file.
    Raises CheckpointWriteError (with no partial files left) when a write fails.
    """
    paths.checkpoints.mkdir(parents=True, exist_ok=True)
    model_file, state_file = paths.model_file(step), paths.state_file(step)
    try:
        write_model(model_file)
        write_state(state_file)
        _write_json_atomic(paths.latest, {"step": step, "model": model_file.name,
                                          "state": state_file.name})
    except OSError as exc:
        _remove([model_file, state_file])
        _remove(list(paths.checkpoints.glob(".*.tmp-*")))
        previous = latest_checkpoint(paths)
        keep_note = (f"the previous checkpoint (step {previous[0]}) is intact" if previous
                     else "no earlier checkpoint exists")
        raise CheckpointWriteError(
            f"could not write the step-{step} checkpoint in {paths.checkpoints}: {exc}. "
            f"Nothing partial was left; {keep_note}. Free disk space (or use --out on another "
            f"disk) and run again with --resume") from exc
    _prune(paths, keep)
    return state_file


def latest_checkpoint(paths: RunPaths) -> tuple[int, Path, Path] | None:
    """(step, model file, state file) named by latest.json, or None for a fresh run."""
    if not paths.latest.is_file():
        return None
    try:
        info = json.loads(paths.latest.read_text())
        step, model, state = int(info["step"]), info["model"], info["state"]
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointWriteError(f"{paths.latest} is not a valid checkpoint pointer ({exc}); "
                                   "delete it to resume from scratch") from None
    model_file, state_file = paths.checkpoints / model, paths.checkpoints / state
    for f in (model_file, state_file):
        if not f.is_file():
            raise FileNotFoundError(f"{paths.latest} names {f.name}, which does not exist")
    return step, model_file, state_file


def _prune(paths: RunPaths, keep: int) -> None:
    if keep <= 0:
        return
    steps = sorted({int(p.name[5:13]) for p in paths.checkpoints.glob("step_*.state.pt")})
    latest = latest_checkpoint(paths)
    for step in steps[:-keep]:
        if latest and step == latest[0]:
            continue
        _remove([paths.model_file(step), paths.state_file(step)])
