"""What a training run reports: a tqdm progress bar, TensorBoard scalars and metrics.jsonl.

Only the main process (rank 0) reports; on other ranks `RunLogger(enabled=False)` does
nothing. On --resume the logs continue from the checkpoint's step: TensorBoard drops events
after it (`purge_step`) and metrics.jsonl loses its lines after it, so the logs of a resumed
run read like those of an uninterrupted one.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Mapping

# The loss terms shown in the progress bar (all of them go to TensorBoard and metrics.jsonl).
BAR_KEYS = ("total", "student/task", "student/iou", "sd", "cd")
BAR_NAMES = {"total": "loss", "student/task": "task", "student/iou": "iou", "sd": "sd",
             "cd": "cd"}


def truncate_metrics(path: Path, after_step: int) -> None:
    """Drop the lines of metrics.jsonl whose step is greater than `after_step`."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= after_step:
                kept.append(line)
        except json.JSONDecodeError:
            continue  # a line cut by a kill
    path.write_text("".join(k + "\n" for k in kept))


class RunLogger:
    """Progress bar + TensorBoard + metrics.jsonl for steps start_step+1 .. total_steps."""

    def __init__(self, enabled: bool, tensorboard_dir: Path, metrics_path: Path,
                 start_step: int, total_steps: int, progress: bool = True,
                 description: str = "train"):
        self.enabled = enabled
        self.writer = None
        self.bar = None
        self.metrics_path = metrics_path
        self._window_start = time.perf_counter()
        self._window_samples = 0
        self.samples_per_second = 0.0
        if not enabled:
            return
        from torch.utils.tensorboard import SummaryWriter
        truncate_metrics(metrics_path, start_step)
        # purge: events of an earlier attempt after start_step are dropped from the view
        self.writer = SummaryWriter(str(tensorboard_dir), purge_step=start_step + 1)
        if progress:
            from tqdm import tqdm
            self.bar = tqdm(total=total_steps, initial=start_step, desc=description,
                            unit="step", dynamic_ncols=True)

    def step(self, samples: int) -> None:
        """Count one finished step of `samples` samples (all processes together)."""
        self._window_samples += samples
        if self.bar is not None:
            self.bar.update(1)

    def log(self, step: int, epoch: int, values: Mapping[str, float]) -> dict[str, float]:
        """Write the values of step `step` (loss terms, learning rates, ...) and the
        samples/s since the previous call; returns what was written."""
        now = time.perf_counter()
        elapsed = now - self._window_start
        if elapsed > 0 and self._window_samples:
            self.samples_per_second = self._window_samples / elapsed
        self._window_start, self._window_samples = now, 0
        row = {"step": step, "epoch": epoch, **{k: float(v) for k, v in values.items()},
               "samples_per_s": self.samples_per_second}
        if not self.enabled:
            return row
        for k, v in row.items():
            if k not in ("step", "epoch"):
                self.writer.add_scalar(k if "/" in k else f"train/{k}", v, step)
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(row) + "\n")
        if self.bar is not None:
            post = {BAR_NAMES[k]: f"{values[k]:.4f}" for k in BAR_KEYS if k in values}
            post["smp/s"] = f"{self.samples_per_second:.1f}"
            self.bar.set_postfix(post, refresh=False)
        return row

    def message(self, text: str) -> None:
        """A line for the user, printed without breaking the progress bar."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
