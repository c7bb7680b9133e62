"""Box conventions, in one place.

Formats (all float, pixels unless stated):
- xywh:   (x, y, w, h), (x, y) = top-left corner. What datasets, results files, the Tracker
          API and InitTarget use.
- xyxy:   (x1, y1, x2, y2) = (x, y, x + w, y + h), continuous coordinates (no -1); what the
          losses use.
- cxcywh: (cx, cy, w, h) with cx = x + w / 2. What the head predicts, normalised to [0, 1] of
          the search crop.

The benchmark toolkits' inclusive-pixel conventions (x2 = x + w - 1) are NOT here: they are a
scoring rule and live in `ckd_core.evaluation.metrics`.

Functions accept numpy arrays or torch tensors of shape (..., 4) and return the same kind.
"""

from __future__ import annotations

import math
from typing import Sequence


def _stack(parts, like):
    if hasattr(like, "new_tensor"):  # torch
        import torch
        return torch.stack(parts, dim=-1)
    import numpy as np
    return np.stack(parts, axis=-1)


def xywh_to_xyxy(b):
    x, y, w, h = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    return _stack([x, y, x + w, y + h], b)


def xyxy_to_xywh(b):
    x1, y1, x2, y2 = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    return _stack([x1, y1, x2 - x1, y2 - y1], b)


def xywh_to_cxcywh(b):
    x, y, w, h = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    return _stack([x + 0.5 * w, y + 0.5 * h, w, h], b)


def cxcywh_to_xywh(b):
    cx, cy, w, h = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    return _stack([cx - 0.5 * w, cy - 0.5 * h, w, h], b)


def cxcywh_to_xyxy(b):
    cx, cy, w, h = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    return _stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], b)


def xyxy_to_cxcywh(b):
    x1, y1, x2, y2 = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    return _stack([(x1 + x2) * 0.5, (y1 + y2) * 0.5, x2 - x1, y2 - y1], b)


def validate_xywh(box: Sequence[float], image_w: int, image_h: int, what: str = "box"
                  ) -> tuple[float, float, float, float]:
    """Return the box as 4 floats, or raise ValueError saying what is wrong with it.

    A box is valid when all four values are finite, w > 0 and h > 0, and it overlaps the
    image (at least part of it lies inside [0, image_w) x [0, image_h)).
    """
    try:
        vals = [float(v) for v in box]
    except (TypeError, ValueError):
        raise ValueError(f"{what} {box!r} is not four numbers (x, y, w, h)") from None
    if len(vals) != 4:
        raise ValueError(f"{what} has {len(vals)} values; expected four (x, y, w, h)")
    x, y, w, h = vals
    desc = f"{what} (x={x:g}, y={y:g}, w={w:g}, h={h:g})"
    if not all(math.isfinite(v) for v in vals):
        raise ValueError(f"{desc} contains NaN or infinity")
    if w <= 0 or h <= 0:
        raise ValueError(f"{desc} has zero or negative size")
    if x >= image_w or y >= image_h or x + w <= 0 or y + h <= 0:
        raise ValueError(f"{desc} is outside the {image_w}x{image_h} image")
    return x, y, w, h


def clip_xywh(box: Sequence[float], image_w: int, image_h: int, margin: float = 10.0
              ) -> tuple[float, float, float, float]:
    """OSTrack's clip_box: keep the box inside the image with `margin` pixels of slack.

    x1 = min(max(0, x1), W - margin), x2 = min(max(margin, x2), W), same for y; w, h from
    the clipped corners (they may become 0 when the box is pushed entirely outside).
    """
    x1, y1, w, h = (float(v) for v in box)
    x2, y2 = x1 + w, y1 + h
    x1 = min(max(0.0, x1), image_w - margin)
    x2 = min(max(margin, x2), float(image_w))
    y1 = min(max(0.0, y1), image_h - margin)
    y2 = min(max(margin, y2), float(image_h))
    return x1, y1, max(0.0, x2 - x1), max(0.0, y2 - y1)
