"""Image normalisation, in one place: both modalities use ImageNet mean/std on [0, 1] RGB.

Thermal frames are 3-channel (a single-channel frame is repeated to 3 channels), exactly as
the datasets distribute them and as the authors' code reads them.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_three_channels(image: np.ndarray, what: str = "image") -> np.ndarray:
    """(H, W) or (H, W, 1) -> (H, W, 3) by repetition; (H, W, 3) unchanged; else an error."""
    # cv2.cvtColor gives the same array as np.repeat, ~8x faster on large frames (OpenCV
    # takes uint8 / uint16 / float32 only; anything else falls back to np.repeat).
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        if image.dtype in (np.uint8, np.uint16, np.float32) and image.size:
            return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_GRAY2RGB)
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise ValueError(f"{what} has shape {image.shape}; expected (H, W), (H, W, 1) or (H, W, 3)")


def normalize_crop(crop: np.ndarray | torch.Tensor, device: torch.device | str = "cpu",
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 (H, W, 3) or (B, H, W, 3) crop(s), RGB order, 0-255 -> (B, 3, H, W) normalised."""
    t = torch.as_tensor(crop, device=device)
    if t.ndim == 3:
        t = t.unsqueeze(0)
    t = t.permute(0, 3, 1, 2).to(dtype=torch.float32) / 255.0
    mean = torch.tensor(IMAGENET_MEAN, device=t.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=t.device).view(1, 3, 1, 1)
    return ((t - mean) / std).to(dtype)
