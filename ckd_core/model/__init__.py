"""The CKD model: ViT branches, candidate elimination, CENTER head, and their assembly.

    from ckd_core.model import build_inference_model, build_training_model
    model = build_inference_model(cfg.model, device="cpu", dtype=torch.float32)
"""

from __future__ import annotations

import torch

from ckd_core.config import ModelConfig
from ckd_core.model.ckd import CKDInference, CKDTraining

__all__ = ["CKDInference", "CKDTraining", "build_inference_model", "build_training_model"]


def build_inference_model(cfg: ModelConfig, device: torch.device | str = "cpu",
                          dtype: torch.dtype = torch.float32) -> CKDInference:
    """Two students + fused head, in eval mode, on `device` with parameters in `dtype`."""
    return CKDInference(cfg).to(device=device, dtype=dtype).eval()


def build_training_model(cfg: ModelConfig, device: torch.device | str = "cpu",
                         dtype: torch.dtype = torch.float32) -> CKDTraining:
    """Two teachers, two students, fused head and two teacher heads, in train mode."""
    return CKDTraining(cfg).to(device=device, dtype=dtype).train()
