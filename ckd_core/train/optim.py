"""What a training stage trains, with which optimizer and learning-rate schedule.

- `set_trainable(model, train)`: requires_grad per parameter group. Stage 1 trains all four
  branches and all three heads (branches frozen only if `train.freeze_backbone`); stage 2
  trains the fused head only (the four branches and both teacher heads frozen).
- `build_optimizer(model, train)`: AdamW with one group per learning rate: the heads at
  `lr_head`, the backbones at `lr_backbone`; only trainable parameters are handed over.
- `lr_factor` / `build_scheduler`: constant or cosine (to 0 at the last step), each with an
  optional linear warm-up over the first `warmup_steps` steps.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ckd_core.config import TrainConfig
from ckd_core.model import CKDTraining


def set_trainable(model: CKDTraining, train: TrainConfig) -> None:
    """Set requires_grad on every parameter of `model` for `train.stage`."""
    stage2 = train.stage == 2
    freeze_branches = stage2 or train.freeze_backbone
    for p in model.student_parameters():
        p.requires_grad_(not freeze_branches)
    for p in model.teacher_parameters():
        p.requires_grad_(not freeze_branches)
    for p in model.box_head.parameters():
        p.requires_grad_(True)
    for head in (model.box_head_v, model.box_head_i):
        for p in head.parameters():
            p.requires_grad_(not stage2)  # teachers do not run in stage 2


def set_train_mode(model: CKDTraining, train: TrainConfig) -> None:
    """model.train(), except that frozen branches run in eval mode (no drop-path).

    A frozen branch is a fixed feature extractor: the fused head should learn on the features
    the tracker will give it, not on drop-path-perturbed ones."""
    model.train()
    if train.stage == 2 or train.freeze_backbone:
        for branch in (model.rgb_branch, model.tir_branch, model.teacher_rgb,
                       model.teacher_tir):
            branch.eval()


def parameter_groups(model: CKDTraining, train: TrainConfig) -> list[dict]:
    """AdamW groups of trainable parameters: [{"name": "head", ...}, {"name": "backbone"}]."""
    heads = [p for p in model.head_parameters() if p.requires_grad]
    backbones = [p for p in (*model.student_parameters(), *model.teacher_parameters())
                 if p.requires_grad]
    groups = [{"name": "head", "params": heads, "lr": train.lr_head}]
    if backbones:
        groups.append({"name": "backbone", "params": backbones, "lr": train.lr_backbone})
    return groups


def build_optimizer(model: CKDTraining, train: TrainConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters (call `set_trainable` first)."""
    groups = parameter_groups(model, train)
    if not any(g["params"] for g in groups):
        raise ValueError("nothing to train: every parameter is frozen")
    return torch.optim.AdamW(groups, weight_decay=train.weight_decay)


def lr_factor(step: int, total_steps: int, schedule: str, warmup_steps: int) -> float:
    """Multiplier of the base learning rate for optimizer step `step` (0-based).

    Warm-up: (step + 1) / warmup_steps for the first warmup_steps steps. Then "constant": 1;
    "cosine": 0.5 * (1 + cos(pi * t)), t going from 0 at the first step after the warm-up to 1
    at step total_steps (so the last step, total_steps - 1, has a small positive factor).
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        span = max(1, total_steps - warmup_steps)
        t = min(1.0, (step - warmup_steps) / span)
        return 0.5 * (1.0 + math.cos(math.pi * t))
    raise ValueError(f"schedule = {schedule!r}; expected constant or cosine")


def build_scheduler(optimizer: torch.optim.Optimizer, train: TrainConfig,
                    total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step scheduler: call `.step()` after every optimizer step."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total_steps, train.schedule, train.warmup_steps))


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]
