"""The documented rules the fuzz tests (test_fuzz_*.py) check outcomes against, written once."""

from __future__ import annotations

import math


def init_box_problem(box, image_w: int, image_h: int, name: str) -> str | None:
    """A regex the ValueError refusing `box` (4 floats: x, y, w, h) must match, or None when
    the box is valid: four finite numbers, w, h > 0, overlapping the image, not larger than
    the image, and not so small that its crop has no pixel. `name` is what validate_xywh
    calls the box ("init box" in the Tracker, "InitTarget box" in the node)."""
    x, y, w, h = box
    if not all(math.isfinite(v) for v in box):
        return f"{name} .*NaN or infinity"
    if w <= 0 or h <= 0:
        return f"{name} .*zero or negative size"
    if x >= image_w or y >= image_h or x + w <= 0 or y + h <= 0:
        return f"{name} .*outside the {image_w}x{image_h} image"
    if w > image_w or h > image_h:
        return f"larger than the {image_w}x{image_h} image"
    if math.sqrt(w * h) == 0:  # w * h underflows: the crop side rounds up to 0 pixels
        return "too small to crop"
    return None
