"""Training a CKD model: stage 1 (coupled knowledge distillation) and stage 2 (MCE head).

`train(cfg, options)` runs one stage from top to bottom:

1. join the torchrun process group (or run alone); seed; open the run folder;
2. data: the sequences (`train.data`), a `PairDataset` whose item i of epoch e depends only
   on (seed, e, i), batches through `make_loader` (DistributedSampler in a process group);
3. model: the training model (2 teachers, 2 students, 3 heads), initial weights from
   `train.init_checkpoint` (`import_checkpoint`), what is trainable for the stage, AdamW with
   a head group and a backbone group, the lr schedule, the fp16 GradScaler;
4. --resume: weights, optimizer, scheduler, scaler, step and every RNG from the newest
   complete checkpoint;
5. the loop: forward (autocast when `train.amp`), loss, backward, clip, step; log every
   `log_every` steps; checkpoint every `checkpoint_every` steps, at each epoch end and at the
   last step;
6. export the inference model (students + fused head) for the tracker.

What the stage decides (method doc section 4):
- stage 1: all four branches and all three heads train (branches frozen only with
  `train.freeze_backbone`); loss `ckd_total_loss` (fused head + both teacher heads + style
  and content distillation), which needs the teachers and every block's features;
- stage 2: only the fused head trains (the four branches frozen and in eval mode, the teacher
  heads frozen); teachers do not run; loss = the fused head's task loss.
Masked modelling follows `train.masking` / `train.mask_ratio` (on in the stage-1 presets),
candidate elimination follows `model.elimination` (on in the stage-2 presets).

Exact resume: the data order is a function of (seed, epoch, index) and the loader starts at
the checkpoint's position in the epoch; the masking draw of step s comes from its own
generator seeded with (seed, s, rank); drop-path uses the global torch RNG, whose state (with
Python's and NumPy's) is saved per rank in every checkpoint. A run stopped after step k and
resumed reproduces the uninterrupted run bit for bit (CPU; on CUDA as far as its kernels are
deterministic).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Subset

from ckd_core.config import CKDConfig, ConfigError, dump_config, from_dict, to_dict
from ckd_core.data.sampling import PairDataset, make_loader
from ckd_core.losses import ckd_total_loss, task_loss
from ckd_core.model import CKDInference, CKDTraining, build_training_model
from ckd_core.model.checkpoint import (import_checkpoint, load_checkpoint, load_training_state,
                                       save_checkpoint, save_training_state)
from ckd_core.train.data import training_sequences
from ckd_core.train.distributed import (DistInfo, broadcast_object, check_replicas_in_sync,
                                        gather_objects, init_distributed, shutdown_distributed,
                                        wrap_model)
from ckd_core.train.logs import RunLogger
from ckd_core.train.optim import (build_optimizer, build_scheduler, set_train_mode,
                                  set_trainable, trainable_parameters)
from ckd_core.train.state import (STATE_FORMAT, CheckpointWriteError, RunPaths, capture_rng,
                                  derive_seed, latest_checkpoint, restore_rng, seed_everything,
                                  write_checkpoint)

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
EXPORT_DTYPES = {"fp32": None, "fp16": torch.float16}
# Config keys that may differ between a run and its resumption: they do not change what is
# computed (where the data lie, how often to save or log, the already-used init weights).
RESUME_FREE_KEYS = ("data.root", "data.num_workers", "train.checkpoint_every",
                    "train.log_every", "train.init_checkpoint")


class TrainError(RuntimeError):
    """The run cannot start or continue; the message says why and what to do."""


@dataclass(frozen=True)
class TrainOptions:
    """How to run (not what to train, which is the config).

    run_dir: the run folder. device: "cpu", "cuda" or "cuda:N" (under torchrun "cuda" means
    this process's LOCAL_RANK device). resume: continue from the newest checkpoint in run_dir.
    max_steps: stop after this global step (the schedule still spans the configured epochs,
    so a shortened run is a prefix of the full one). keep_checkpoints: step checkpoints kept.
    export_dtype: "fp32" or "fp16" storage for the exported inference model. progress: show
    the tqdm bar. threads: torch CPU threads (0 = cores / processes on this machine).
    """

    run_dir: Path
    device: str = "cpu"
    resume: bool = False
    max_steps: int | None = None
    keep_checkpoints: int = 2
    export_dtype: str = "fp32"
    progress: bool = True
    threads: int = 0


@dataclass
class TrainResult:
    step: int
    epoch: int
    run_dir: Path
    export_path: Path | None
    last_log: dict[str, float]
    samples_per_second: float
    model: CKDTraining  # the trained model (unwrapped), on its device


def train(cfg: CKDConfig, options: TrainOptions) -> TrainResult:
    """Run (or resume) the training stage `cfg.train.stage`; see the module docstring."""
    check_stage_config(cfg)
    if options.export_dtype not in EXPORT_DTYPES:
        raise ValueError(f"export_dtype = {options.export_dtype!r}; expected fp32 or fp16")
    if options.max_steps is not None and options.max_steps <= 0:
        raise ValueError(f"max_steps = {options.max_steps}; expected a positive number")
    info = init_distributed(options.device)
    try:
        return _train(cfg, options, info)
    finally:
        shutdown_distributed(info)


def check_stage_config(cfg: CKDConfig) -> None:
    """Reject configs whose stage and flags contradict each other (ConfigError)."""
    t = cfg.train
    if t.stage == 2 and not t.freeze_backbone:
        raise ConfigError("train.stage = 2 trains only the fused head on frozen backbones: set "
                          "train.freeze_backbone true (or use train.stage 1)")


def _train(cfg: CKDConfig, options: TrainOptions, info: DistInfo) -> TrainResult:
    t = cfg.train
    device = info.device
    if t.amp == "fp16" and device.type != "cuda":
        raise ConfigError("train.amp = fp16 needs CUDA (fp16 autocast with a GradScaler); on "
                          "the CPU use train.amp bf16 or none")
    _set_threads(options.threads, info)
    paths = RunPaths(Path(options.run_dir))

    # ---- 1. the run folder: fresh or resumed ------------------------------------------------
    resume_from = _find_resume_point(paths, options.resume)

    # ---- 2. data ------------------------------------------------------------------------------
    per_step = t.batch_size * info.world_size
    steps_per_epoch = t.samples_per_epoch // per_step
    if steps_per_epoch == 0:
        raise ConfigError(f"train.samples_per_epoch = {t.samples_per_epoch} is less than one "
                          f"step ({t.batch_size} samples x {info.world_size} processes)")
    total_steps = t.epochs * steps_per_epoch
    end_step = min(total_steps, options.max_steps) if options.max_steps else total_steps
    sequences = training_sequences(cfg.data, info, progress=options.progress)
    dataset = PairDataset(sequences, cfg.data, cfg.model, t.samples_per_epoch, seed=t.seed)
    if info.is_main:  # the folder is made once the data are known to be there
        paths.root.mkdir(parents=True, exist_ok=True)
        if resume_from is None:
            paths.config.write_text(dump_config(cfg))

    # ---- 3. model, optimizer, schedule ------------------------------------------------------
    seed_everything(t.seed)  # the same initial weights in every process
    model = build_training_model(cfg.model, device=device)
    if resume_from is None and t.init_checkpoint:
        _load_initial_weights(model, cfg, t.init_checkpoint, info)
    elif resume_from is None and t.stage == 2:
        raise ConfigError("train.stage = 2 fine-tunes the head on a trained stage-1 model: set "
                          "train.init_checkpoint to a stage-1 checkpoint (e.g. "
                          "runs/<stage1>/inference.safetensors)")
    set_trainable(model, t)
    optimizer = build_optimizer(model, t)
    scheduler = build_scheduler(optimizer, t, total_steps)
    scaler = torch.amp.GradScaler(device.type) if t.amp == "fp16" else None

    # ---- 4. resume -----------------------------------------------------------------------------
    step = 0
    if resume_from is not None:
        step = _resume(resume_from, cfg, model, optimizer, scheduler, scaler, info)
    else:
        seed_everything(derive_seed(t.seed, info.rank))  # per-process drop-path streams
    if step >= end_step:
        raise TrainError(f"{paths.root} is already at step {step}, the end of this run "
                         f"({end_step} steps); raise --max-steps or train.epochs to go on")
    set_train_mode(model, t)
    ddp_model = wrap_model(model, info)
    params = trainable_parameters(model)

    logger = RunLogger(info.is_main, paths.tensorboard, paths.metrics, step, end_step,
                       progress=options.progress, description=f"{cfg.name} stage {t.stage}")
    logger.message(f"{cfg.name}: stage {t.stage}, {len(sequences)} sequences, "
                   f"{steps_per_epoch} steps/epoch x {t.epochs} epochs "
                   f"(batch {t.batch_size} x {info.world_size} process(es)), "
                   f"{'resuming at' if step else 'starting at'} step {step}, "
                   f"running to step {end_step}; {sum(p.numel() for p in params):,} trainable "
                   f"parameters on {device}")

    # ---- 5. the loop ----------------------------------------------------------------------------
    autocast_dtype = AMP_DTYPES.get(t.amp)
    last_log: dict[str, float] = {}
    try:
        while step < end_step:
            epoch, in_epoch = divmod(step, steps_per_epoch)
            loader = _epoch_loader(dataset, epoch, in_epoch * per_step, cfg, info)
            for batch in loader:
                log = train_step(ddp_model, batch, cfg, step, info, optimizer, scheduler,
                                 scaler, params, autocast_dtype)
                step += 1
                logger.step(per_step)
                if step % t.log_every == 0 or step == end_step:
                    log = _mean_over_processes(log, info)
                    last_log = logger.log(step, step // steps_per_epoch, log)
                if step % t.checkpoint_every == 0 or step % steps_per_epoch == 0 \
                        or step == end_step:
                    _save(paths, model, cfg, optimizer, scheduler, scaler, step,
                          steps_per_epoch, info, options.keep_checkpoints)
                if step >= end_step:
                    break
    finally:
        logger.close()

    # ---- 6. end: replicas agree, export for the tracker --------------------------------------
    check_replicas_in_sync(model, info)
    export_path = None
    if info.is_main:
        export_path = export_inference(model, cfg, paths.export,
                                       EXPORT_DTYPES[options.export_dtype],
                                       extra={"step": step, "stage": t.stage})
        logger.message(f"exported the inference model (students + fused head) to {export_path}")
    return TrainResult(step=step, epoch=step // steps_per_epoch, run_dir=paths.root,
                       export_path=export_path, last_log=last_log,
                       samples_per_second=logger.samples_per_second, model=model)


# ---------------------------------------------------------------------------------------------
# One step
# ---------------------------------------------------------------------------------------------

def train_step(model: torch.nn.Module, batch: dict[str, Any], cfg: CKDConfig, step: int,
               info: DistInfo, optimizer: torch.optim.Optimizer,
               scheduler: torch.optim.lr_scheduler.LRScheduler,
               scaler: torch.amp.GradScaler | None, params: list[torch.nn.Parameter],
               autocast_dtype: torch.dtype | None) -> dict[str, float]:
    """Forward, loss, backward, clip, optimizer and scheduler step; returns the loss terms."""
    t = cfg.train
    device = info.device
    x = {k: batch[k].to(device, non_blocking=True) for k in (
        "template_rgb", "template_tir", "search_rgb", "search_tir", "template_box",
        "search_box")}
    stage1 = t.stage == 1
    # The masking draw of this step: its own stream, so it is the same after a resume.
    generator = torch.Generator().manual_seed(derive_seed(t.seed, step, info.rank))
    with torch.autocast(device.type, dtype=autocast_dtype or torch.float32,
                        enabled=autocast_dtype is not None):
        out = model(x["template_rgb"], x["template_tir"], x["search_rgb"], x["search_tir"],
                    mask_ratio=t.mask_ratio if t.masking else None, generator=generator,
                    template_box=x["template_box"], run_teachers=stage1,
                    collect_features=stage1)
    if autocast_dtype is not None:
        out = _to_float(out)  # losses in fp32 (log, focal and GIoU lose too much in 16 bits)
    gt = x["search_box"]
    if stage1:
        f = out["features"]
        loss, log = ckd_total_loss(out["student"], gt, f["rgb_student"], f["tir_student"],
                                   f["rgb_teacher"], f["tir_teacher"], out["teacher_rgb"],
                                   out["teacher_tir"], cfg=t.loss)
    else:
        loss, terms = task_loss(out["student"], gt, t.loss, name="student")
        log = {"total": float(loss.detach()), "student/task": float(loss.detach()),
               **{f"student/{k}": float(v.detach()) for k, v in terms.items()}}
    if not torch.isfinite(loss):
        raise TrainError(f"step {step}: the loss is {float(loss)} ({log}); training diverged. "
                         "Lower the learning rates (or train.grad_clip) and resume from the last "
                         "checkpoint")
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    else:
        loss.backward()
    if t.grad_clip > 0:
        log["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, t.grad_clip))
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
        log["amp_scale"] = float(scaler.get_scale())
    else:
        optimizer.step()
    log.update({f"lr/{g['name']}": g["lr"] for g in optimizer.param_groups})  # this step's
    scheduler.step()
    if out.get("kept_tokens"):
        log["kept_tokens"] = float(out["kept_tokens"][-1])
    return log


def _to_float(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.float() if obj.is_floating_point() else obj
    if isinstance(obj, dict):
        return {k: _to_float(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_float(v) for v in obj]
    return obj


def _mean_over_processes(log: dict[str, float], info: DistInfo) -> dict[str, float]:
    """The loss terms averaged over the processes (every process logs the same keys)."""
    if not info.distributed:
        return dict(log)
    keys = sorted(log)
    values = torch.tensor([log[k] for k in keys], dtype=torch.float64, device=info.device)
    torch.distributed.all_reduce(values)
    return {k: float(v) / info.world_size for k, v in zip(keys, values.tolist())}


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------

def _epoch_loader(dataset: PairDataset, epoch: int, start: int, cfg: CKDConfig,
                  info: DistInfo):
    """Batches of epoch `epoch` from dataset position `start` (a multiple of one step).

    The items are in index order, process r reading positions r, r + W, ... of the epoch
    (DistributedSampler), so skipping the first `start` positions of the epoch resumes every
    process exactly where it stopped."""
    ds = dataset.for_epoch(epoch)
    if start:
        ds = Subset(ds, range(start, len(ds)))
    return make_loader(ds, cfg.train.batch_size, cfg.data.num_workers,
                       seed=derive_seed(cfg.train.seed, epoch), distributed=info.distributed,
                       pin_memory=info.device.type == "cuda")


# ---------------------------------------------------------------------------------------------
# Weights, checkpoints, resume, export
# ---------------------------------------------------------------------------------------------

def _load_initial_weights(model: CKDTraining, cfg: CKDConfig, path: str,
                          info: DistInfo) -> None:
    """Initial weights through `import_checkpoint` (ours, official CKD, OSTrack, timm, ...).

    Stage 1 needs all four branches (a file without the teachers, e.g. an inference
    checkpoint, would leave them random); heads may be missing (timm / MAE weights have
    none). Stage 2 needs the two students and uses the fused head when present."""
    if not Path(path).is_file():
        raise TrainError(f"train.init_checkpoint = {path!r} does not exist (a stage-2 run "
                         "starts from a finished stage-1 run: train that first, or set the "
                         "path with --set train.init_checkpoint=FILE)")
    report = import_checkpoint(path, cfg.model, kind="training")
    if report.mismatched_shapes:
        shown = "; ".join(f"{k}: file {a} vs model {b}"
                          for k, a, b in report.mismatched_shapes[:5])
        raise TrainError(f"{path} does not fit the {cfg.name} model ({shown}); "
                         "check the preset (`ckd inspect` shows what the file holds)")
    needed = ("rgb_branch.", "tir_branch.") + (
        ("teacher_rgb.", "teacher_tir.") if cfg.train.stage == 1 else ())
    missing = [k for k in report.missing if k.startswith(needed)]
    if missing:
        raise TrainError(f"{path} ({report.format}, {report.kind}) lacks {len(missing)} weights "
                         f"stage {cfg.train.stage} needs, e.g. {', '.join(missing[:4])}"
                         + ("; a stage-1 run needs the teachers too: start it from a training "
                            "checkpoint or from single-modality weights (OSTrack / timm)"
                            if cfg.train.stage == 1 else ""))
    model.load_state_dict(report.state_dict, strict=False)
    if info.is_main:
        unused = ("teacher_rgb", "teacher_tir", "box_head_v", "box_head_i") \
            if cfg.train.stage == 2 else ()
        fresh = sorted({k.split(".")[0] for k in report.missing} - set(unused))
        print(f"initial weights: {path} ({report.format}, {len(report.state_dict)} tensors)"
              + (f"; not in the file, left at their random init: {', '.join(fresh)}"
                 if fresh else ""), flush=True)


def _find_resume_point(paths: RunPaths, resume: bool) -> tuple[int, Path, Path] | None:
    latest = latest_checkpoint(paths)
    if resume and latest is None:
        raise TrainError(f"--resume: {paths.root} has no checkpoint to resume from "
                         f"({paths.latest} is missing); start without --resume")
    if not resume and latest is not None:
        raise TrainError(f"{paths.root} already holds a run (checkpoint at step {latest[0]}); "
                         "pass --resume to continue it or choose another --out")
    return latest


def _save(paths: RunPaths, model: CKDTraining, cfg: CKDConfig,
          optimizer: torch.optim.Optimizer, scheduler, scaler, step: int,
          steps_per_epoch: int, info: DistInfo, keep: int) -> None:
    rng = gather_objects(capture_rng(), info)  # every process's RNG, for an exact resume
    failed: CheckpointWriteError | None = None
    if info.is_main:
        state = {"format": STATE_FORMAT, "step": step, "epoch": step // steps_per_epoch,
                 "world_size": info.world_size, "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(),
                 "scaler": scaler.state_dict() if scaler is not None else None,
                 "rng": rng, "config": to_dict(cfg)}
        try:
            write_checkpoint(paths, step,
                             lambda p: save_checkpoint(model, cfg, p, extra={"step": step}),
                             lambda p: save_training_state(p, state), keep=keep)
        except CheckpointWriteError as exc:
            failed = exc
    # every process learns whether rank 0's write failed, so none trains on alone
    message = broadcast_object(str(failed) if failed else None, info)
    if failed is not None:
        raise failed
    if message:
        raise CheckpointWriteError(message)


def _resume(point: tuple[int, Path, Path], cfg: CKDConfig, model: CKDTraining,
            optimizer: torch.optim.Optimizer, scheduler, scaler, info: DistInfo) -> int:
    step, model_file, state_file = point
    state = load_training_state(state_file)
    if state.get("format") != STATE_FORMAT:
        raise TrainError(f"{state_file} is not a training state of this version "
                         f"(format {state.get('format')!r}, expected {STATE_FORMAT})")
    diffs = config_changes(from_dict(state["config"]), cfg)
    if diffs:
        raise TrainError(f"--resume with a different config than the run was started with: "
                         f"{'; '.join(diffs)}. Resume with the run's own config.yaml, or start "
                         "a new run")
    weights, _, _ = load_checkpoint(model_file, device=info.device)
    model.load_state_dict(weights, strict=True)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state["scaler"] is not None:
        scaler.load_state_dict(state["scaler"])
    rngs = state["rng"]
    if state["world_size"] == info.world_size:
        restore_rng(rngs[info.rank])
    else:  # another process count: data and masks still resume exactly, drop-path re-seeds
        seed_everything(derive_seed(cfg.train.seed, info.rank, step))
        if info.is_main:
            print(f"resuming a {state['world_size']}-process run with {info.world_size}: "
                  "drop-path randomness is re-seeded, so the run is no longer bit-exact",
                  flush=True)
    return step


def config_changes(old: CKDConfig, new: CKDConfig) -> list[str]:
    """'key: old -> new' for every config value that differs, except RESUME_FREE_KEYS."""
    def flat(d: dict, prefix: str = "") -> dict[str, Any]:
        out = {}
        for k, v in d.items():
            key = f"{prefix}{k}"
            out.update(flat(v, key + ".") if isinstance(v, dict) else {key: v})
        return out
    a, b = flat(to_dict(old)), flat(to_dict(new))
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b))
            if k not in RESUME_FREE_KEYS and a.get(k) != b.get(k)]


def export_inference(model: CKDTraining, cfg: CKDConfig, path: Path,
                     dtype: torch.dtype | None = None,
                     extra: dict[str, Any] | None = None) -> Path:
    """Write the students + fused head (what the tracker runs) as an inference checkpoint."""
    inference = CKDInference(cfg.model)
    inference.load_state_dict({k: v.detach().cpu() for k, v in
                               model.inference_state_dict().items()}, strict=True)
    return save_checkpoint(inference.eval(), cfg, path, extra=extra, dtype=dtype)


def _set_threads(threads: int, info: DistInfo) -> None:
    if info.device.type != "cpu":
        return
    if not threads:
        local = int(os.environ.get("LOCAL_WORLD_SIZE", info.world_size))
        threads = max(1, (os.cpu_count() or 1) // max(1, local))
    torch.set_num_threads(threads)
