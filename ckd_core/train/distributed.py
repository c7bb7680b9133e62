"""Data-parallel training through `torchrun` (torch.distributed), and the single-process case.

`torchrun --nproc_per_node N -m ckd_core.cli train ...` starts N processes and sets RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; `init_distributed` reads them and joins
the process group (nccl on CUDA, gloo on the CPU). Without those variables it is a plain
single process (world size 1) and nothing is initialised. Gradients are averaged by
`torch.nn.parallel.DistributedDataParallel`; the data are split by `DistributedSampler`.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: rank in [0, world_size), its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Only the main process writes checkpoints, logs and the progress bar."""
        return self.rank == 0


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """"cpu", "cuda" or "cuda:N" -> torch.device; "cuda" picks cuda:<local_rank>."""
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {device} requested but CUDA is not available here; "
                             "use --device cpu")
        if dev.index is None:
            dev = torch.device("cuda", local_rank)
    elif dev.type != "cpu":
        raise ValueError(f"device {device!r} is not supported; use cpu, cuda or cuda:N")
    return dev


def init_distributed(device: str) -> DistInfo:
    """Join the torchrun process group when WORLD_SIZE > 1, else a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world <= 1:
        return DistInfo(0, 1, 0, dev)
    missing = [v for v in ("MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
    if missing:
        raise ValueError(f"WORLD_SIZE={world} but {', '.join(missing)} not set; start "
                         "distributed training with torchrun")
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo",
                                rank=rank, world_size=world)
    return DistInfo(rank, world, local_rank, dev)


def shutdown_distributed(info: DistInfo) -> None:
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(model: nn.Module, info: DistInfo) -> nn.Module:
    """DDP wrapper in a process group, the model itself otherwise."""
    if not info.distributed:
        return model
    ids = [info.device.index] if info.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """[obj of rank 0, obj of rank 1, ...] on every rank (picklable objects)."""
    if not info.distributed:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's `obj` on every rank."""
    if not info.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def parameter_digest(model: nn.Module) -> str:
    """SHA-256 over every parameter's bytes, in name order (a replica fingerprint)."""
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters()):
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def check_replicas_in_sync(model: nn.Module, info: DistInfo) -> None:
    """Raise RuntimeError when the replicas' parameters differ (a DDP bug, not a user error)."""
    digests = gather_objects(parameter_digest(model), info)
    if len(set(digests)) > 1:
        raise RuntimeError("data-parallel replicas hold different weights after training: "
                           + ", ".join(f"rank {r}: {d[:12]}" for r, d in enumerate(digests)))
