"""Single-modality OpenCV baselines behind the same `init` / `update` face as `Tracker`.

`MILBaseline("rgb")` runs OpenCV's TrackerMIL on the RGB frames only (`"thermal"`: on the
thermal frames only) and returns `TrackResult`s, so the benchmark runner and the demo treat it
exactly like the CKD tracker. It answers the question "what does a classic tracker get on one
camera?" next to the RGB + thermal model.

MIL reports success or failure per frame, no score: `score` is 1.0 when MIL found the target
and 0.0 when it did not, in which case the previous box is kept (a result file never has a
gap). OpenCV boxes are integer pixels; they are returned as floats.
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from ckd_core.tracking.tracker import TrackResult, TrackState, check_image

BASELINES = {"opencv-mil-rgb": "rgb", "opencv-mil-thermal": "thermal"}


class MILBaseline:
    """OpenCV TrackerMIL on one modality.

        tracker = MILBaseline("thermal")
        tracker.init(rgb, thermal, (x, y, w, h))
        result = tracker.update(rgb, thermal)    # the other modality is ignored (may be None)
    """

    def __init__(self, modality: str):
        if modality not in ("rgb", "thermal"):
            raise ValueError(f"MIL baseline modality must be 'rgb' or 'thermal', got "
                             f"{modality!r}")
        self.modality = modality
        self._mil = None
        self._box = (0.0, 0.0, 0.0, 0.0)

    @property
    def reference_modality(self) -> str:
        """Whose ground truth initialises it: the modality it sees."""
        return self.modality

    def _image(self, rgb, thermal) -> np.ndarray:
        image = rgb if self.modality == "rgb" else thermal
        if image is None:
            raise ValueError(f"the MIL {self.modality} baseline needs the {self.modality} "
                             "image, got None")
        # OpenCV trackers work on BGR; for a grey thermal frame the order does not matter.
        return cv2.cvtColor(check_image(image, self.modality), cv2.COLOR_RGB2BGR)

    def init(self, rgb, thermal, box_xywh) -> None:
        image = self._image(rgb, thermal)
        x, y, w, h = (float(v) for v in box_xywh)
        if w <= 0 or h <= 0:
            raise ValueError(f"init box (x={x}, y={y}, w={w}, h={h}) has zero size")
        self._mil = cv2.TrackerMIL_create()
        # MIL needs an integer box; round like the toolkits round results.
        self._mil.init(image, tuple(int(round(v)) for v in (x, y, w, h)))
        self._box = (x, y, w, h)

    def update(self, rgb, thermal) -> TrackResult:
        if self._mil is None:
            raise RuntimeError("MILBaseline.update called before init")
        t0 = time.perf_counter()
        image = self._image(rgb, thermal)
        t1 = time.perf_counter()
        ok, box = self._mil.update(image)
        t2 = time.perf_counter()
        if ok and box[2] > 0 and box[3] > 0:
            self._box = tuple(float(v) for v in box)
        state = TrackState.TRACKING if ok else TrackState.LOST
        return TrackResult(self._box, 1.0 if ok else 0.0, state,
                           {"preprocess": t1 - t0, "model": t2 - t1, "postprocess": 0.0,
                            "total": t2 - t0},
                           {self.modality: "ok"})


def make_baseline(name: str) -> MILBaseline:
    """A baseline by its CLI name (`opencv-mil-rgb`, `opencv-mil-thermal`)."""
    try:
        return MILBaseline(BASELINES[name])
    except KeyError:
        raise ValueError(f"unknown baseline '{name}'; expected one of "
                         f"{', '.join(BASELINES)}") from None
