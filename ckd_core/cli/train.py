"""`ckd train`: train a CKD model (stage 1 distillation or stage 2 MCE head fine-tune).

    ckd train --config ckd_tiny_train_s1 --out runs/tiny_s1
    ckd train --out runs/tiny_s1 --resume                  # after a stop or a crash
    ckd train --config ckd_tiny_train_s2 --out runs/tiny_s2 \\
              --set train.init_checkpoint=runs/tiny_s1/inference.safetensors
    torchrun --nproc_per_node 2 -m ckd_core.cli train --config ckd_vitb256 \\
             --data-root /data/LasHeR/trainingset --device cuda --out runs/ckd_s1

The stage, data and schedule come from the config (`--set key=value` changes any dotted key,
the value read as YAML). The run folder gets config.yaml, checkpoints/, tensorboard/,
metrics.jsonl and, at the end, inference.safetensors (students + fused head for the tracker).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ckd_core.cli import CLIError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="PRESET_OR_YAML",
                   help="preset name or YAML file (with --resume: default RUN_DIR/config.yaml)")
    p.add_argument("--out", metavar="RUN_DIR", type=Path,
                   help="run folder (default: runs/<config name>)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in RUN_DIR from its newest checkpoint, exactly")
    p.add_argument("--data-root", metavar="DIR", help="dataset folder (sets data.root)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default: cpu)")
    p.add_argument("--max-steps", type=int, metavar="N",
                   help="stop after global step N (the lr schedule still spans all epochs)")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="KEY=VALUE", help="override a config key, e.g. train.epochs=2 "
                   "(repeatable)")
    p.add_argument("--keep", type=int, default=2, metavar="K",
                   help="step checkpoints to keep (default 2; 0 keeps all)")
    p.add_argument("--export-dtype", choices=("fp32", "fp16"), default="fp32",
                   help="storage of the exported inference checkpoint (default fp32)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads per process (default: cores / processes)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def parse_overrides(items: list[str]) -> dict[str, object]:
    """['train.epochs=2', 'data.root=/x'] -> {'train.epochs': 2, 'data.root': '/x'}."""
    import yaml
    out: dict[str, object] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise CLIError(f"--set {item!r}: expected KEY=VALUE, e.g. train.epochs=2")
        try:
            value = yaml.safe_load(text) if text else ""
        except yaml.YAMLError as exc:
            raise CLIError(f"--set {item!r}: the value is not valid YAML ({exc})") from None
        out[key.strip()] = value
    return out


def resolve_config(args: argparse.Namespace):
    """The run's config: --config (or RUN_DIR/config.yaml on --resume) + --data-root + --set."""
    from ckd_core.config import load_config
    source = args.config
    if source is None:
        if not (args.resume and args.out):
            raise CLIError("--config is required (with --resume it defaults to "
                           "RUN_DIR/config.yaml, so give --out)")
        source = args.out / "config.yaml"
    cfg = load_config(source)
    changes = parse_overrides(args.overrides)
    if args.data_root:
        changes["data.root"] = str(args.data_root)
    if changes:
        cfg = cfg.replace(**changes)
    return cfg


def run(args: argparse.Namespace) -> int:
    from ckd_core.train import TrainError, TrainOptions, train
    from ckd_core.train.state import CheckpointWriteError

    cfg = resolve_config(args)
    out = args.out or Path("runs") / cfg.name
    options = TrainOptions(run_dir=out, device=args.device, resume=args.resume,
                           max_steps=args.max_steps, keep_checkpoints=args.keep,
                           export_dtype=args.export_dtype, progress=not args.no_progress,
                           threads=args.threads)
    try:
        result = train(cfg, options)
    except (TrainError, CheckpointWriteError) as exc:
        raise CLIError(str(exc)) from None
    if result.export_path is not None:
        print(f"done: step {result.step}, {result.samples_per_second:.2f} samples/s at the "
              f"end; inference model: {result.export_path}")
    return 0
