"""`Tracker.init(rgb, thermal, box)` / `Tracker.update(rgb, thermal) -> TrackResult`."""

from ckd_core.tracking.tracker import Health, Tracker, TrackResult, TrackState, hann_window

__all__ = ["Health", "Tracker", "TrackResult", "TrackState", "hann_window"]
