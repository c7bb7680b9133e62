"""Training throughput of a preset on this machine: samples/s of the trainer's own step.

    .venv/bin/python benchmarks/bench_train_step.py --preset ckd_tiny_train_s1 --threads 1
    .venv/bin/python benchmarks/bench_train_step.py --preset ckd_tiny_train_s2 --threads 2

Renders a few synthetic sequences (the preset's frame geometry) into a temporary folder,
draws the preset's training pairs, then times `trainer.train_step` (forward, loss, backward,
clip, AdamW) on the preset's batch size. Prints per step: wall time and this process's CPU
time, so a run on a busy machine still gives the CPU cost of a sample (samples per
CPU-second), and the data cost per sample. A stage-2 preset runs with random weights (the
cost does not depend on them).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import default_collate

from ckd_core.config import load_config
from ckd_core.data import synth
from ckd_core.data.sampling import PairDataset
from ckd_core.data.sequences import list_sequences
from ckd_core.model import build_training_model
from ckd_core.train import data as train_data
from ckd_core.train.distributed import DistInfo
from ckd_core.train.optim import (build_optimizer, build_scheduler, set_train_mode,
                                  set_trainable, trainable_parameters)
from ckd_core.train.trainer import AMP_DTYPES, train_step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="ckd_tiny_train_s1")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    ap.add_argument("--steps", type=int, default=4, help="timed steps (after one warm-up)")
    ap.add_argument("--sequences", type=int, default=4)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(args.preset)
    t = cfg.train
    with tempfile.TemporaryDirectory() as tmp:
        specs = synth.make_benchmark_specs(12345, args.sequences, num_frames=60,
                                           width=train_data.SYNTH_WIDTH,
                                           height=train_data.SYNTH_HEIGHT)
        synth.write_dataset(specs, tmp, layout=train_data.SYNTH_LAYOUT)
        dataset = PairDataset(list_sequences(train_data.SYNTH_LAYOUT, Path(tmp)), cfg.data,
                              cfg.model, samples_per_epoch=10**6, seed=0)
        n = (args.steps + 1) * t.batch_size
        w0, c0 = time.perf_counter(), time.process_time()
        items = [dataset[i] for i in range(n)]
        data_wall, data_cpu = (time.perf_counter() - w0) / n, (time.process_time() - c0) / n
    batches = [default_collate(items[i:i + t.batch_size]) for i in range(0, n, t.batch_size)]

    model = build_training_model(cfg.model)
    set_trainable(model, t)
    optimizer = build_optimizer(model, t)
    scheduler = build_scheduler(optimizer, t, t.epochs * 1000)
    set_train_mode(model, t)
    params = trainable_parameters(model)
    info = DistInfo(0, 1, 0, torch.device("cpu"))
    step = lambda i: train_step(model, batches[i], cfg, i, info, optimizer, scheduler, None,
                                params, AMP_DTYPES.get(t.amp))
    step(0)  # warm-up
    w0, c0 = time.perf_counter(), time.process_time()
    for i in range(1, args.steps + 1):
        step(i)
    wall = (time.perf_counter() - w0) / args.steps
    cpu = (time.process_time() - c0) / args.steps

    print(f"{args.preset}: stage {t.stage}, batch {t.batch_size}, "
          f"{torch.get_num_threads()} torch thread(s); {platform.processor() or platform.machine()}"
          f", {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    print(f"  step: {wall:.2f} s wall ({t.batch_size / wall:.2f} samples/s), "
          f"{cpu:.2f} s CPU ({t.batch_size / cpu:.2f} samples per CPU-second)")
    print(f"  data: {1000 * data_wall:.1f} ms wall, {1000 * data_cpu:.1f} ms CPU per sample")
    samples = t.epochs * t.samples_per_epoch
    print(f"  the preset's {samples:,} samples: {samples * wall / t.batch_size / 60:.0f} min at "
          f"this wall rate, {samples * cpu / t.batch_size / 60:.0f} CPU-minutes")


if __name__ == "__main__":
    main()
