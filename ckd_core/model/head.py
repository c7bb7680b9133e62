"""OSTrack's CENTER head and its box decoding.

Three independent conv towers (score/centre, offset, size):
conv3x3 C_in -> c -> c/2 -> c/4 -> c/8 (each Conv + BatchNorm + ReLU), then conv1x1 to 1, 2, 2.
- score = clamp(sigmoid, 1e-4, 1 - 1e-4)
- size  = clamp(sigmoid, 1e-4, 1 - 1e-4): (w, h) as fractions of the search crop. (The method
  doc says "sigmoid"; the authors' code clamps it like the score, and the code is our default.)
- offset raw: (dx, dy) in cells.
Parameter names (`conv1_ctr.0.weight`, `conv1_ctr.1.running_mean`, `conv5_size.bias`, ...)
match the authors' checkpoints.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel_size=3, stride=1, padding=1, bias=True),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _clamped_sigmoid(x: torch.Tensor) -> torch.Tensor:
    return torch.clamp(x.sigmoid(), min=1e-4, max=1 - 1e-4)


class CenterHead(nn.Module):
    """(B, C_in, G, G) feature map -> score (B,1,G,G), size (B,2,G,G), offset (B,2,G,G)."""

    def __init__(self, in_channels: int, channels: int = 256, grid: int = 16):
        super().__init__()
        self.in_channels = in_channels
        self.grid = grid
        c = channels
        widths = [in_channels, c, c // 2, c // 4, c // 8]
        for name, out in (("ctr", 1), ("offset", 2), ("size", 2)):
            for i in range(4):
                setattr(self, f"conv{i + 1}_{name}", _conv_bn_relu(widths[i], widths[i + 1]))
            setattr(self, f"conv5_{name}", nn.Conv2d(widths[4], out, kernel_size=1))
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def _tower(self, name: str, x: torch.Tensor) -> torch.Tensor:
        for i in range(1, 6):
            x = getattr(self, f"conv{i}_{name}")(x)
        return x

    def forward(self, feat: torch.Tensor) -> dict[str, torch.Tensor]:
        if feat.dim() != 4 or feat.shape[1] != self.in_channels or feat.shape[2:] != (
                self.grid, self.grid):
            raise ValueError(f"CenterHead expects (B, {self.in_channels}, {self.grid}, "
                             f"{self.grid}) features, got {tuple(feat.shape)}")
        score = _clamped_sigmoid(self._tower("ctr", feat))
        size = _clamped_sigmoid(self._tower("size", feat))
        offset = self._tower("offset", feat)
        return {"score_map": score, "size_map": size, "offset_map": offset}


def decode_boxes(score_map: torch.Tensor, size_map: torch.Tensor, offset_map: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Box at the peak cell of `score_map` (OSTrack's cal_bbox).

    Args:
        score_map: (B, 1, G, G) (the raw map, or the Hann-windowed map at inference).
        size_map, offset_map: (B, 2, G, G).
    Returns:
        boxes (B, 4) normalised (cx, cy, w, h) in the search crop:
            ((ix + dx) / G, (iy + dy) / G, w, h) with (iy, ix) the argmax cell (row-major,
            first maximum on ties);
        peak (B,) the value of `score_map` at that cell;
        index (B,) the flat cell index iy * G + ix.
    """
    b, _, g, _ = score_map.shape
    peak, idx = torch.max(score_map.flatten(1), dim=1)
    iy = torch.div(idx, g, rounding_mode="floor")
    ix = idx % g
    gather = idx.view(b, 1, 1).expand(b, 2, 1)
    size = size_map.flatten(2).gather(2, gather).squeeze(-1)
    offset = offset_map.flatten(2).gather(2, gather).squeeze(-1)
    cx = (ix.to(offset.dtype) + offset[:, 0]) / g
    cy = (iy.to(offset.dtype) + offset[:, 1]) / g
    boxes = torch.stack([cx, cy, size[:, 0], size[:, 1]], dim=1)
    return boxes, peak, idx


def tokens_to_map(search_tokens: torch.Tensor, grid: int) -> torch.Tensor:
    """(B, G*G, C) search tokens -> (B, C, G, G), row-major (token k = row k // G, col k % G)."""
    b, n, c = search_tokens.shape
    if n != grid * grid:
        raise ValueError(f"expected {grid * grid} search tokens for a {grid}x{grid} map, got {n}")
    return search_tokens.transpose(1, 2).reshape(b, c, grid, grid)
