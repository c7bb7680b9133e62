"""What the node publishes, filled from a tracking result (no node state, no rclpy calls).

Conventions (vision_msgs 4.x; see shared/ros_notes.md):
- Detection2DArray.header = the reference image's header (stamp and frame_id).
- One Detection2D while TRACKING: bbox.center.position = box centre in the reference image's
  pixels (x right, y down), theta 0, size_x/size_y = box width/height;
  results[0].hypothesis.class_id = label, .score = tracker score in [0, 1]; results[0].pose
  zero with identity orientation; id = the track id of the current initialisation.
- An EMPTY Detection2DArray (same valid header) when LOST or IDLE, so silence is never
  ambiguous.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import cv2
import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

from ckd_core.imaging import to_three_channels
from ckd_tracker_ros.msg import TrackerStatus

HEALTH_CODES = {
    "ok": TrackerStatus.OK,
    "missing": TrackerStatus.MISSING,
    "frozen": TrackerStatus.FROZEN,
    "black": TrackerStatus.BLACK,
    "saturated": TrackerStatus.SATURATED,
}
STATE_NAMES = {TrackerStatus.IDLE: "IDLE", TrackerStatus.TRACKING: "TRACKING",
               TrackerStatus.LOST: "LOST", TrackerStatus.DISABLED: "DISABLED"}


def detection_from_box(header, box_xywh: Sequence[float], score: float, label: str,
                       track_id: str) -> Detection2D:
    """One Detection2D for an (x, y, w, h) box, (x, y) = top-left corner, in pixels."""
    x, y, w, h = (float(v) for v in box_xywh)
    det = Detection2D()
    det.header = header
    det.bbox.center.position.x = x + 0.5 * w
    det.bbox.center.position.y = y + 0.5 * h
    det.bbox.center.theta = 0.0
    det.bbox.size_x = w
    det.bbox.size_y = h
    hyp = ObjectHypothesisWithPose()
    hyp.hypothesis.class_id = label
    hyp.hypothesis.score = float(min(max(score, 0.0), 1.0))
    hyp.pose.pose.orientation.w = 1.0  # identity; position and covariance stay zero
    det.results = [hyp]
    det.id = track_id
    return det


def detections_message(header, box_xywh: Sequence[float] | None, score: float, label: str,
                       track_id: str) -> Detection2DArray:
    """The ~/detections message: one detection, or none when `box_xywh` is None (LOST/IDLE)."""
    msg = Detection2DArray()
    msg.header = header
    if box_xywh is not None:
        msg.detections = [detection_from_box(header, box_xywh, score, label, track_id)]
    return msg


def box_from_detection(det: Detection2D) -> tuple[float, float, float, float]:
    """Detection2D (centre + size) -> (x, y, w, h) top-left box."""
    w, h = float(det.bbox.size_x), float(det.bbox.size_y)
    return (det.bbox.center.position.x - 0.5 * w, det.bbox.center.position.y - 0.5 * h, w, h)


def health_code(value: str | None) -> int:
    """Tracker health string ('ok', 'missing', ...) -> TrackerStatus constant ('ok' if None)."""
    if value is None:
        return TrackerStatus.OK
    return HEALTH_CODES.get(value, TrackerStatus.MISSING)


def status_message(header, state: int, score: float, track_id: str,
                   health: Mapping[str, str], fps: float, latency_ms: float,
                   pairs_received: int, pairs_dropped: int,
                   frames_processed: int) -> TrackerStatus:
    msg = TrackerStatus()
    msg.header = header
    msg.state = state
    msg.score = float(score)
    msg.track_id = track_id
    msg.rgb_health = health_code(health.get("rgb"))
    msg.thermal_health = health_code(health.get("thermal"))
    msg.fps = float(fps)
    msg.latency_ms = float(latency_ms)
    msg.pairs_received = int(pairs_received)
    msg.pairs_dropped = int(pairs_dropped)
    msg.frames_processed = int(frames_processed)
    return msg


def diagnostics_message(stamp, node_name: str, status: TrackerStatus,
                        problems: Sequence[str], extra: Mapping[str, str]) -> DiagnosticArray:
    """/diagnostics: one DiagnosticStatus; WARN with the problems listed when there are any."""
    d = DiagnosticStatus()
    d.name = f"{node_name}: tracker"
    d.hardware_id = node_name
    if problems:
        d.level = DiagnosticStatus.WARN
        d.message = "; ".join(problems)
    else:
        d.level = DiagnosticStatus.OK
        d.message = STATE_NAMES.get(status.state, "?").lower()
    inv_health = {v: k for k, v in HEALTH_CODES.items()}
    values = {
        "state": STATE_NAMES.get(status.state, str(status.state)),
        "score": f"{status.score:.3f}",
        "track_id": status.track_id,
        "rgb_health": inv_health.get(status.rgb_health, "?"),
        "thermal_health": inv_health.get(status.thermal_health, "?"),
        "fps": f"{status.fps:.1f}",
        "latency_ms": f"{status.latency_ms:.1f}",
        "pairs_received": str(status.pairs_received),
        "pairs_dropped": str(status.pairs_dropped),
        "frames_processed": str(status.frames_processed),
    }
    values.update(extra)
    d.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
    msg = DiagnosticArray()
    msg.header.stamp = stamp
    msg.status = [d]
    return msg


def debug_image(rgb: np.ndarray | None, thermal: np.ndarray | None,
                box_xywh: Sequence[float] | None, reference: int, score: float,
                state: int) -> np.ndarray:
    """RGB | thermal side by side (uint8 RGB, thermal scaled to the RGB height), the box drawn
    on both (scaled by the image-size ratio: assumes registered cameras), score and state
    written on top. A missing image is a black panel of the other's size; a grey (H, W)
    image is shown in grey."""
    panels = [None if p is None else to_three_channels(p) for p in (rgb, thermal)]
    shape = next(p.shape for p in panels if p is not None)
    panels = [p if p is not None else np.zeros(shape, np.uint8) for p in panels]
    ref_h, ref_w = panels[reference].shape[:2]
    height = panels[0].shape[0]
    out = []
    colour = (0, 255, 0) if state == TrackerStatus.TRACKING else (255, 160, 0)
    for p in panels:
        scale = height / p.shape[0]
        if scale != 1.0:
            p = cv2.resize(p, (max(1, round(p.shape[1] * scale)), height))
        p = np.ascontiguousarray(p)
        if box_xywh is not None:
            sx = p.shape[1] / ref_w
            sy = p.shape[0] / ref_h
            x, y, w, h = box_xywh
            cv2.rectangle(p, (int(round(x * sx)), int(round(y * sy))),
                          (int(round((x + w) * sx)), int(round((y + h) * sy))), colour, 2)
        out.append(p)
    img = np.concatenate(out, axis=1)
    text = f"{STATE_NAMES.get(state, '?')} score {score:.2f}"
    cv2.putText(img, text, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2,
                cv2.LINE_AA)
    return img
