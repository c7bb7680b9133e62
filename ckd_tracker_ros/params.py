"""The ckd_tracker node's parameters: declarations, parsing and validation (no rclpy here).

`PARAMS` lists every parameter with its default, kind, description and whether it may change
while the node runs. `parse()` turns a {name: value} dict into validated `Settings` or raises
`ParamError` naming the parameter and what is allowed. `check_change()` decides whether a
runtime change is accepted, with the reason when it is not. The node turns `PARAMS` into
ParameterDescriptors; the YAML files in config/ set the same names under
`ckd_tracker: ros__parameters:`.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any, Mapping

from ckd_core.config import PRECISIONS, TrackerConfig


class ParamError(ValueError):
    """A parameter value is not allowed (the message names it and what is allowed)."""


@dataclass(frozen=True)
class ParamSpec:
    default: Any
    kind: str  # "str" | "bool" | "int" | "float" | "float_list"
    description: str
    runtime: bool = False  # may change while the node runs
    allowed: str = ""  # human-readable constraint, shown in descriptors and errors


PARAMS: dict[str, ParamSpec] = {
    "checkpoint": ParamSpec("", "str", "model checkpoint file; empty = the shipped default model"),
    "device": ParamSpec("cpu", "str", "where the model runs", allowed="cpu, cuda, cuda:N or auto"),
    "fp16": ParamSpec(False, "bool", "half-precision inference (CUDA only); the older "
                      "spelling of precision fp16"),
    "precision": ParamSpec("auto", "str", "inference arithmetic (benchmarks/results/"
                           "fidelity_*.md says how close each stays to fp32)",
                           allowed="auto (the checkpoint's own; an .onnx file carries its "
                                   "own), fp32, bf16 (autocast), fp16 (autocast, CUDA), int8 "
                                   "(CPU: dynamic int8 Linear layers, or an int8 .onnx file)"),
    "elimination": ParamSpec("auto", "str", "candidate elimination at inference",
                             allowed="auto (as the checkpoint's config says), on or off"),
    "qos_reliability": ParamSpec("best_effort", "str",
                                 "image subscriptions' reliability; camera drivers usually "
                                 "publish best effort, and a reliable subscriber then gets "
                                 "nothing", allowed="best_effort or reliable"),
    "qos_depth": ParamSpec(5, "int", "image subscriptions' queue depth (keep last)",
                           allowed=">= 1"),
    "rgb_compressed": ParamSpec(False, "bool",
                                "subscribe to rgb/image/compressed (CompressedImage) instead "
                                "of rgb/image"),
    "thermal_compressed": ParamSpec(False, "bool",
                                    "subscribe to thermal/image/compressed instead of "
                                    "thermal/image"),
    "slop": ParamSpec(0.05, "float", "seconds: RGB and thermal stamps pair when they differ "
                      "by strictly less than this", runtime=True, allowed="> 0"),
    "queue_size": ParamSpec(10, "int", "per-camera queue of the approximate-time synchroniser",
                            allowed=">= 1"),
    "silent_after": ParamSpec(1.0, "float", "seconds without images after which a camera "
                              "counts as silent and the tracker runs on the other one alone",
                              runtime=True, allowed="> 0"),
    "init_buffer": ParamSpec(10, "int", "recent pairs kept for init_target's stamp lookup",
                             allowed=">= 1"),
    "thermal_normalization": ParamSpec("percentile", "str",
                                       "how 16-bit / float thermal images become 8-bit",
                                       runtime=True, allowed="percentile or fixed"),
    "thermal_window": ParamSpec([0.0, 65535.0], "float_list",
                                "[low, high] raw values mapped to 0..255 (mode fixed)",
                                runtime=True, allowed="two numbers, low < high"),
    "thermal_percentiles": ParamSpec([1.0, 99.0], "float_list",
                                     "[low, high] percentiles of each frame (mode percentile)",
                                     runtime=True, allowed="0 <= low < high <= 100"),
    "thermal_smoothing": ParamSpec(0.9, "float", "weight of the past in the percentile "
                                   "window's moving average", runtime=True, allowed="(0, 1)"),
    # The shipped model's measured thresholds: one source, ckd_core's TrackerConfig defaults.
    "lost_threshold": ParamSpec(TrackerConfig.lost_threshold, "float",
                                "score below which the target counts as lost",
                                runtime=True, allowed="[0, 1], <= recover_threshold"),
    "recover_threshold": ParamSpec(TrackerConfig.recover_threshold, "float",
                                   "score at or above which a lost target counts as found "
                                   "again", runtime=True, allowed="[lost_threshold, 1]"),
    "reference_camera": ParamSpec("rgb", "str", "whose pixels boxes and detection headers "
                                  "refer to", allowed="rgb or thermal"),
    "publish_debug_image": ParamSpec(True, "bool", "publish ~/debug_image (only while it has "
                                     "subscribers)", runtime=True),
    "label": ParamSpec("target", "str", "class_id of the detections when init_target gives "
                       "none (a change applies from the next initialisation)", runtime=True),
}

_DEVICE_RE = re.compile(r"^(cpu|auto|cuda|cuda:\d+)$")


@dataclass(frozen=True)
class Settings:
    """Validated parameter values (same names as `PARAMS`)."""

    checkpoint: str
    device: str
    fp16: bool
    precision: str
    elimination: str
    qos_reliability: str
    qos_depth: int
    rgb_compressed: bool
    thermal_compressed: bool
    slop: float
    queue_size: int
    silent_after: float
    init_buffer: int
    thermal_normalization: str
    thermal_window: tuple[float, float]
    thermal_percentiles: tuple[float, float]
    thermal_smoothing: float
    lost_threshold: float
    recover_threshold: float
    reference_camera: str
    publish_debug_image: bool
    label: str

    @property
    def precision_override(self) -> str | None:
        """The tracker precision to force (None: the checkpoint's own)."""
        if self.precision != "auto":
            return self.precision
        return "fp16" if self.fp16 else None

    @property
    def elimination_flag(self) -> bool | None:
        """What Tracker.from_checkpoint takes: None = the checkpoint's choice."""
        return {"auto": None, "on": True, "off": False}[self.elimination]

    @property
    def reference_index(self) -> int:
        return 0 if self.reference_camera == "rgb" else 1

    def thermal_normalizer_kwargs(self) -> dict[str, Any]:
        return {"mode": self.thermal_normalization, "window": self.thermal_window,
                "percentiles": self.thermal_percentiles, "smoothing": self.thermal_smoothing}


def defaults() -> dict[str, Any]:
    return {name: spec.default for name, spec in PARAMS.items()}


def _fail(name: str, value: Any, expected: str) -> None:
    raise ParamError(f"parameter '{name}' = {value!r} is not allowed: expected {expected}")


def _convert(name: str, value: Any) -> Any:
    spec = PARAMS[name]
    if spec.kind == "str":
        if not isinstance(value, str):
            _fail(name, value, "a string")
        return value
    if spec.kind == "bool":
        if not isinstance(value, bool):
            _fail(name, value, "true or false")
        return value
    if spec.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(name, value, "an integer")
        return int(value)
    if spec.kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            _fail(name, value, "a finite number")
        return float(value)
    if spec.kind == "float_list":
        try:
            vals = [v for v in value]
        except TypeError:
            vals = None
        if vals is None or len(vals) != 2 or any(
                isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
                for v in vals):
            _fail(name, value, "a list of two finite numbers")
        return (float(vals[0]), float(vals[1]))
    raise AssertionError(spec.kind)


def _check_values(s: Settings) -> None:
    """Value and cross-parameter checks; the first problem raises ParamError."""
    if not _DEVICE_RE.match(s.device):
        _fail("device", s.device, PARAMS["device"].allowed)
    if s.fp16 and s.device == "cpu":
        _fail("fp16", True, "false with device 'cpu' (half precision needs CUDA)")
    if s.precision == "fp16" and s.device == "cpu":
        _fail("precision", s.precision, "not fp16 with device 'cpu' (half precision needs "
              "CUDA; bf16 runs on the CPU)")
    if s.precision == "int8" and s.device.startswith("cuda"):
        _fail("precision", s.precision, f"not int8 with device '{s.device}' (int8 runs on "
              f"the CPU; use fp16 or bf16 on CUDA)")
    if s.fp16 and s.precision not in ("auto", "fp16"):
        _fail("fp16", True, f"false when precision is {s.precision!r} (give one of them)")
    choices = {"elimination": ("auto", "on", "off"),
               "precision": ("auto", *PRECISIONS),
               "qos_reliability": ("best_effort", "reliable"),
               "thermal_normalization": ("percentile", "fixed"),
               "reference_camera": ("rgb", "thermal")}
    for name, allowed in choices.items():
        if getattr(s, name) not in allowed:
            _fail(name, getattr(s, name), " or ".join(allowed))
    for name in ("qos_depth", "queue_size", "init_buffer"):
        if getattr(s, name) < 1:
            _fail(name, getattr(s, name), ">= 1")
    for name in ("slop", "silent_after"):
        if not getattr(s, name) > 0:
            _fail(name, getattr(s, name), "> 0 (seconds)")
    lo, hi = s.thermal_window
    if not lo < hi:
        _fail("thermal_window", list(s.thermal_window), "[low, high] with low < high")
    plo, phi = s.thermal_percentiles
    if not 0 <= plo < phi <= 100:
        _fail("thermal_percentiles", list(s.thermal_percentiles), "0 <= low < high <= 100")
    if not 0 < s.thermal_smoothing < 1:
        _fail("thermal_smoothing", s.thermal_smoothing,
              "a value in (0, 1) (0 would be per-frame auto-gain, which flickers)")
    if not 0 <= s.lost_threshold <= 1:
        _fail("lost_threshold", s.lost_threshold, "a value in [0, 1]")
    if not s.lost_threshold <= s.recover_threshold <= 1:
        _fail("recover_threshold", s.recover_threshold,
              f"a value in [lost_threshold={s.lost_threshold}, 1]")


def parse(values: Mapping[str, Any]) -> Settings:
    """{name: value} (missing names take defaults) -> Settings, or ParamError."""
    unknown = sorted(set(values) - set(PARAMS))
    if unknown:
        raise ParamError(f"unknown parameter(s) {', '.join(unknown)}; known: "
                         f"{', '.join(PARAMS)}")
    merged = defaults()
    merged.update(values)
    settings = Settings(**{name: _convert(name, merged[name]) for name in PARAMS})
    _check_values(settings)
    return settings


def check_change(current: Settings, changes: Mapping[str, Any]) -> tuple[Settings | None, str]:
    """Validate runtime changes: (new Settings, "") when accepted, (None, reason) when not.

    Start-up-only parameters are refused (with the reason) unless the value is unchanged.
    """
    for name, value in changes.items():
        spec = PARAMS.get(name)
        if spec is None:
            return None, f"unknown parameter '{name}'"
        if not spec.runtime:
            try:
                same = _convert(name, value) == getattr(current, name)
            except ParamError:
                same = False
            if not same:
                return None, (f"parameter '{name}' can only be set at start-up (in the "
                              "parameters file or on the command line); restart the node")
    try:
        merged = {f.name: getattr(current, f.name) for f in dataclasses.fields(current)}
        merged.update(changes)
        return parse(merged), ""
    except ParamError as e:
        return None, str(e)


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when torch sees a GPU, else 'cpu'; other values unchanged."""
    if device != "auto":
        return device
    import torch
    return "cuda" if torch.cuda.is_available() else "cpu"
