"""A stand-in for ckd_core.tracking.Tracker with the same interface, for the adapter's unit
tests: it "tracks" by moving the init box by a fixed step each update and reports the score
it is told to, so tests can drive TRACKING / LOST deterministically."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

from ckd_core.boxes import validate_xywh


class FakeState(enum.Enum):
    TRACKING = 1
    LOST = 2


@dataclass
class FakeResult:
    box_xywh: tuple[float, float, float, float]
    score: float
    state: FakeState
    timings: dict = field(default_factory=dict)
    health: dict = field(default_factory=dict)


class FakeTracker:
    def __init__(self, step=(1.0, 0.0)):
        self.step = step
        self.box = None
        self.score = 0.9  # tests set this to drive the state
        self.lost = 0.25
        self.recover = 0.45
        self.updates = []  # (rgb shape or None, thermal shape or None)
        self.inits = []
        self.warmed_up = False

    @property
    def is_initialized(self):
        return self.box is not None

    def warmup(self):
        self.warmed_up = True

    def init(self, rgb, thermal, box_xywh):
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"rgb image has shape {rgb.shape} {rgb.dtype}")
        if thermal.shape[:2] != rgb.shape[:2]:
            raise ValueError(f"thermal image {thermal.shape[1]}x{thermal.shape[0]} does not "
                             f"match the rgb image {rgb.shape[1]}x{rgb.shape[0]}")
        h, w = rgb.shape[:2]
        self.box = validate_xywh(box_xywh, w, h, "init box")
        self.inits.append((rgb.copy(), np.array(thermal), self.box))  # a WindowedFrame too

    def update(self, rgb, thermal):
        if self.box is None:
            raise RuntimeError("update before init")
        if rgb is not None and thermal is not None and rgb.shape[:2] != thermal.shape[:2]:
            raise ValueError(f"thermal image {thermal.shape[1]}x{thermal.shape[0]} does not "
                             f"match the rgb image {rgb.shape[1]}x{rgb.shape[0]}")
        self.updates.append((None if rgb is None else rgb.shape,
                             None if thermal is None else thermal.shape))
        x, y, w, h = self.box
        self.box = (x + self.step[0], y + self.step[1], w, h)
        state = FakeState.TRACKING if self.score >= self.lost else FakeState.LOST
        health = {"rgb": "ok" if rgb is not None else "missing",
                  "thermal": "ok" if thermal is not None else "missing"}
        return FakeResult(self.box, self.score, state, {"total": 0.001}, health)

    def reset(self):
        self.box = None

    def set_thresholds(self, lost=None, recover=None):
        if lost is not None:
            self.lost = lost
        if recover is not None:
            self.recover = recover
