"""Typed, validated configuration for every part of ckd-tracker.

A configuration is a tree of frozen dataclasses (`CKDConfig` at the root, with sections
`model`, `data`, `train`, `tracker`). Presets are YAML files in the repository's
`config/presets/` folder (installed as the package `ckd_core.presets`); any YAML file with the
same structure can be loaded too.

Loading is strict: an unknown key, a value of the wrong type or a value out of range raises
`ConfigError` whose message names the full key path (e.g. `model.elimination.keep_ratio`) and
what is allowed. Sections and keys left out take the defaults below, which are the paper's
ViT-B/16 CKD model and the authors' training recipe (`../shared/ckd_method.md`).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import yaml


class ConfigError(ValueError):
    """A configuration value is unknown, of the wrong type or out of range."""


# ---------------------------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------------------------

TEMPLATE_RANGES = ("ALL", "CTR_POINT", "CTR_REC", "GT_BOX")
ELIMINATION_MODES = ("mce", "ce")
# Tracker arithmetic: fp32; bf16 / fp16 autocast (fp16 CUDA only); int8 = dynamic int8
# Linear layers (CPU only, ckd_core.model.quantize), or an int8 ONNX graph.
PRECISIONS = ("fp32", "bf16", "fp16", "int8")
# Who runs the network: torch, or ONNX Runtime on an exported graph (fp32 or int8 only).
RUNTIMES = ("torch", "onnxruntime")
ONNX_PRECISIONS = ("fp32", "int8")


def check_precision(precision: str, device_type: str, runtime: str = "torch") -> None:
    """ValueError naming the problem when `precision` cannot run on this device type
    ("cpu" / "cuda") with this runtime; the one rule the Tracker and the profiler share."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime {runtime!r} is not one of {', '.join(RUNTIMES)}")
    if precision == "fp16" and device_type != "cuda":
        raise ValueError("float16 inference is CUDA-only; use precision bf16 (or "
                         "torch.bfloat16) on the CPU")
    if precision == "int8" and device_type != "cpu":
        raise ValueError(f"precision int8 (dynamic int8 Linear layers) runs on the CPU only; "
                         f"on {device_type} use fp16 or bf16")
    if runtime == "onnxruntime" and precision not in ONNX_PRECISIONS:
        raise ValueError(f"precision {precision} is not available with the ONNX runtime "
                         f"(exported graphs are fp32 or int8); use the torch runtime")


@dataclass(frozen=True)
class BackboneConfig:
    """One ViT branch (all four branches share this shape, not their weights)."""

    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    patch_size: int = 16
    qkv_bias: bool = True
    ln_eps: float = 1e-6
    drop_path_rate: float = 0.1  # maximum, reached at the last block; 0 at the first

    def validate(self, path: str) -> None:
        _check(self.embed_dim > 0, path, "embed_dim", self.embed_dim, "a positive integer")
        _check(self.depth > 0, path, "depth", self.depth, "a positive integer")
        _check(self.num_heads > 0 and self.embed_dim % self.num_heads == 0, path, "num_heads",
               self.num_heads, f"a positive divisor of embed_dim={self.embed_dim}")
        _check(self.mlp_ratio > 0, path, "mlp_ratio", self.mlp_ratio, "> 0")
        _check(self.patch_size > 0, path, "patch_size", self.patch_size, "a positive integer")
        _check(0 < self.ln_eps < 1, path, "ln_eps", self.ln_eps, "in (0, 1)")
        _check(0 <= self.drop_path_rate < 1, path, "drop_path_rate", self.drop_path_rate,
               "in [0, 1)")


@dataclass(frozen=True)
class EliminationConfig:
    """Candidate elimination (CE / multi-modal MCE) at inference and in stage 2."""

    enabled: bool = False
    locations: tuple[int, ...] = (3, 6, 9)  # 0-based block indices
    keep_ratio: float = 0.7
    template_range: str = "CTR_POINT"
    mode: str = "mce"  # "mce": max of both students' attention; "ce": each branch on its own

    def validate(self, path: str) -> None:
        _check(0 < self.keep_ratio <= 1, path, "keep_ratio", self.keep_ratio, "in (0, 1]")
        _check(self.template_range in TEMPLATE_RANGES, path, "template_range",
               self.template_range, f"one of {', '.join(TEMPLATE_RANGES)}")
        _check(self.mode in ELIMINATION_MODES, path, "mode", self.mode,
               f"one of {', '.join(ELIMINATION_MODES)}")
        _check(list(self.locations) == sorted(set(self.locations))
               and all(i >= 0 for i in self.locations), path, "locations", self.locations,
               "strictly increasing non-negative block indices")


@dataclass(frozen=True)
class HeadConfig:
    """OSTrack CENTER head: three towers C_in -> c -> c/2 -> c/4 -> c/8 -> {1, 2, 2}."""

    channels: int = 256

    def validate(self, path: str) -> None:
        _check(self.channels >= 8 and self.channels % 8 == 0, path, "channels", self.channels,
               "a multiple of 8, at least 8")


@dataclass(frozen=True)
class ModelConfig:
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    elimination: EliminationConfig = field(default_factory=EliminationConfig)
    template_size: int = 128  # pixels, square crop
    search_size: int = 256
    template_factor: float = 2.0  # crop side = factor * sqrt(w h) of the box
    search_factor: float = 4.0

    @property
    def template_grid(self) -> int:
        return self.template_size // self.backbone.patch_size

    @property
    def search_grid(self) -> int:
        return self.search_size // self.backbone.patch_size

    def validate(self, path: str) -> None:
        p = self.backbone.patch_size
        for name in ("template_size", "search_size"):
            v = getattr(self, name)
            _check(v > 0 and v % p == 0, path, name, v,
                   f"a positive multiple of backbone.patch_size={p}")
        _check(self.template_grid >= 1, path, "template_size", self.template_size,
               "at least one patch")
        for name in ("template_factor", "search_factor"):
            v = getattr(self, name)
            _check(v > 0, path, name, v, "> 0")
        depth = self.backbone.depth
        _check(all(i < depth for i in self.elimination.locations), path + ".elimination",
               "locations", self.elimination.locations, f"block indices < backbone.depth={depth}")


@dataclass(frozen=True)
class DataConfig:
    """Training data and the training-pair sampler (method doc section 4)."""

    dataset: str = "lasher"  # lasher | vtuav | rgbt234 | rgbt210 | gtot | generic | synthetic
    root: str = ""  # dataset folder; empty = must be given on the command line
    split_file: str = ""  # text file, one sequence name a line; empty = every sequence in root
    max_gap: int = 200  # search frame within this many frames after the template frame
    search_scale_jitter: float = 0.25  # scale *= exp(N(0, 1) * this)
    search_center_jitter: float = 3.0  # centre += this * sqrt(w h) * U(-0.5, 0.5)
    template_scale_jitter: float = 0.0
    template_center_jitter: float = 0.0
    grayscale_prob: float = 0.05
    flip_prob: float = 0.5
    brightness_jitter: float = 0.2  # brightness *= U(1 - j, 1 + j)
    num_workers: int = 2
    synthetic_sequences: int = 0  # for dataset=synthetic: how many sequences to generate
    synthetic_seed: int = 0

    def validate(self, path: str) -> None:
        allowed = ("lasher", "vtuav", "rgbt234", "rgbt210", "gtot", "generic", "synthetic")
        _check(self.dataset in allowed, path, "dataset", self.dataset,
               f"one of {', '.join(allowed)}")
        _check(self.max_gap >= 0, path, "max_gap", self.max_gap, ">= 0")
        for name in ("search_scale_jitter", "search_center_jitter", "template_scale_jitter",
                     "template_center_jitter", "brightness_jitter"):
            _check(getattr(self, name) >= 0, path, name, getattr(self, name), ">= 0")
        for name in ("grayscale_prob", "flip_prob"):
            v = getattr(self, name)
            _check(0 <= v <= 1, path, name, v, "in [0, 1]")
        _check(self.brightness_jitter < 1, path, "brightness_jitter", self.brightness_jitter,
               "< 1")
        _check(self.num_workers >= 0, path, "num_workers", self.num_workers, ">= 0")
        _check(self.synthetic_sequences >= 0, path, "synthetic_sequences",
               self.synthetic_sequences, ">= 0")


@dataclass(frozen=True)
class LossConfig:
    """Loss weights and the code-vs-paper variant switches (method doc section 3)."""

    focal_weight: float = 1.0
    giou_weight: float = 2.0
    l1_weight: float = 5.0
    sd_weight: float = 0.01  # style distillation (students RGB vs TIR)
    cd_weight: float = 0.1  # content distillation (teacher -> student, same modality)
    layer_reduction: str = "sum"  # "sum" (code) or "mean" (paper, 1/L)
    style_std: str = "unbiased"  # "unbiased" (code) or "population" (paper)
    teacher_task_loss: bool = True

    def validate(self, path: str) -> None:
        for name in ("focal_weight", "giou_weight", "l1_weight", "sd_weight", "cd_weight"):
            v = getattr(self, name)
            _check(v >= 0 and math.isfinite(v), path, name, v, "a finite number >= 0")
        _check(self.layer_reduction in ("sum", "mean"), path, "layer_reduction",
               self.layer_reduction, "sum or mean")
        _check(self.style_std in ("unbiased", "population"), path, "style_std", self.style_std,
               "unbiased or population")


@dataclass(frozen=True)
class TrainConfig:
    """One training stage. Stage 1 = CKD distillation, stage 2 = MCE head fine-tune."""

    stage: int = 1
    epochs: int = 30
    samples_per_epoch: int = 60000
    batch_size: int = 10  # per process
    lr_head: float = 5e-5
    lr_backbone: float = 5e-6
    weight_decay: float = 1e-4
    grad_clip: float = 0.1
    schedule: str = "constant"  # constant | cosine
    warmup_steps: int = 0
    amp: str = "none"  # none | bf16 | fp16 (fp16 only on CUDA)
    masking: bool = True
    mask_ratio: float = 0.25
    freeze_backbone: bool = False
    init_checkpoint: str = ""  # weights to start from (ours / official CKD / OSTrack / timm)
    checkpoint_every: int = 1000  # steps
    log_every: int = 20
    seed: int = 0
    loss: LossConfig = field(default_factory=LossConfig)

    def validate(self, path: str) -> None:
        _check(self.stage in (1, 2), path, "stage", self.stage, "1 (CKD) or 2 (MCE head)")
        for name in ("epochs", "samples_per_epoch", "batch_size", "checkpoint_every",
                     "log_every"):
            v = getattr(self, name)
            _check(v > 0, path, name, v, "a positive integer")
        for name in ("lr_head", "lr_backbone", "weight_decay", "grad_clip"):
            v = getattr(self, name)
            _check(v >= 0 and math.isfinite(v), path, name, v, "a finite number >= 0")
        _check(self.schedule in ("constant", "cosine"), path, "schedule", self.schedule,
               "constant or cosine")
        _check(self.warmup_steps >= 0, path, "warmup_steps", self.warmup_steps, ">= 0")
        _check(self.amp in ("none", "bf16", "fp16"), path, "amp", self.amp,
               "none, bf16 or fp16")
        _check(0 <= self.mask_ratio < 1, path, "mask_ratio", self.mask_ratio, "in [0, 1)")


@dataclass(frozen=True)
class TrackerConfig:
    """Inference-time behaviour of `ckd_core.tracking.Tracker` (method doc section 5)."""

    hann_window: bool = True
    # False = the authors' tracker exactly (every frame's peak is taken, the search area never
    # grows); the state/score are still reported. Benchmark runs default to False.
    state_machine: bool = True
    clip_margin: float = 10.0  # pixels kept inside the image when clipping the box
    # Measured for the shipped model (benchmarks/calibrate_lost.py, mixed target sizes:
    # benchmarks/results/lost_thresholds.md); other weights need their own calibration.
    lost_threshold: float = 0.450  # score below this (for lost_frames frames) -> LOST
    recover_threshold: float = 0.736  # score at or above this while LOST -> TRACKING
    lost_frames: int = 3
    lost_search_growth: float = 1.5  # search factor multiplied by this each LOST frame ...
    lost_search_max_factor: float = 3.0  # ... up to this many times the normal factor
    missing_fill: str = "zeros"  # crop used for an unhealthy modality: zeros | mean | other
    reference_camera: str = "rgb"  # whose pixels boxes are in: rgb | thermal
    black_level: float = 2.0  # mean intensity (0-255) below which a frame counts as black
    saturated_level: float = 253.0  # mean intensity above which a frame counts as saturated
    frozen_frames: int = 3  # identical consecutive frames before a modality counts as frozen
    # Arithmetic of the forward (PRECISIONS). Which ones a device supports is checked when
    # the Tracker is built (`check_precision`: int8 CPU only, fp16 CUDA only, ONNX Runtime
    # fp32 or int8).
    precision: str = "fp32"

    def with_changes(self, **changes: Any) -> "TrackerConfig":
        """A copy with single fields changed, validated like a config file; an unknown
        field name is a ValueError naming it."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown tracker setting(s): {', '.join(sorted(unknown))}")
        changed = dataclasses.replace(self, **changes)
        changed.validate("tracker")
        return changed

    def validate(self, path: str) -> None:
        _check(self.clip_margin >= 0, path, "clip_margin", self.clip_margin, ">= 0")
        _check(0 <= self.lost_threshold <= 1, path, "lost_threshold", self.lost_threshold,
               "in [0, 1]")
        _check(self.lost_threshold <= self.recover_threshold <= 1, path, "recover_threshold",
               self.recover_threshold, f"in [lost_threshold={self.lost_threshold}, 1]")
        _check(self.lost_frames >= 1, path, "lost_frames", self.lost_frames, ">= 1")
        _check(self.lost_search_growth >= 1, path, "lost_search_growth",
               self.lost_search_growth, ">= 1")
        _check(self.lost_search_max_factor >= 1, path, "lost_search_max_factor",
               self.lost_search_max_factor, ">= 1")
        _check(self.missing_fill in ("zeros", "mean", "other"), path, "missing_fill",
               self.missing_fill, "zeros, mean or other")
        _check(self.reference_camera in ("rgb", "thermal"), path, "reference_camera",
               self.reference_camera, "rgb or thermal")
        _check(0 <= self.black_level < self.saturated_level <= 255, path, "black_level",
               (self.black_level, self.saturated_level),
               "0 <= black_level < saturated_level <= 255")
        _check(self.frozen_frames >= 1, path, "frozen_frames", self.frozen_frames, ">= 1")
        _check(self.precision in PRECISIONS, path, "precision", self.precision,
               f"one of {', '.join(PRECISIONS)}")


@dataclass(frozen=True)
class CKDConfig:
    """The root: everything a model, a training run and a tracker need."""

    name: str = "custom"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)

    def validate(self, path: str = "") -> None:
        _check(bool(self.name), path, "name", self.name, "a non-empty string")

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    def replace(self, **changes: Any) -> "CKDConfig":
        """Return a copy with dotted keys changed: `cfg.replace(**{"model.search_size": 192})`."""
        data = to_dict(self)
        for dotted, value in changes.items():
            node = data
            parts = dotted.split(".")
            for part in parts[:-1]:
                if part not in node or not isinstance(node[part], dict):
                    raise ConfigError(f"{dotted}: no such section '{part}'")
                node = node[part]
            if parts[-1] not in node:
                raise ConfigError(f"{dotted}: unknown key")
            node[parts[-1]] = value
        return from_dict(data)


# ---------------------------------------------------------------------------------------------
# Loading, validation, serialisation
# ---------------------------------------------------------------------------------------------

def _check(ok: bool, path: str, key: str, value: Any, allowed: str) -> None:
    if not ok:
        full = f"{path}.{key}" if path else key
        raise ConfigError(f"{full} = {value!r} is not allowed: expected {allowed}")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, path: str) -> Any:
    """Convert a YAML value to the annotated type, or raise ConfigError naming `path`."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected a mapping (section), got {value!r}")
        return _build(tp, value, path)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path} = {value!r}: expected a list")
        elem = args[0]
        return tuple(_convert(v, elem, f"{path}[{i}]") for i, v in enumerate(value))
    if origin in (typing.Union, types.UnionType):
        raise ConfigError(f"{path}: union types are not supported in configs")
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path} = {value!r}: expected true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path} = {value!r}: expected an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path} = {value!r}: expected a number")
        value = float(value)
        if math.isnan(value):
            raise ConfigError(f"{path} = nan: expected a number")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path} = {value!r}: expected a string")
        return value
    raise ConfigError(f"{path}: unsupported type {_type_name(tp)}")


def _build(cls: type, data: Mapping[str, Any], path: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        where = path or "top level"
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; "
                          f"allowed: {', '.join(sorted(names))}")
    kwargs = {}
    for key, value in data.items():
        sub = f"{path}.{key}" if path else key
        kwargs[key] = _convert(value, hints[key], sub)
    obj = cls(**kwargs)
    obj.validate(path)
    return obj


def from_dict(data: Mapping[str, Any]) -> CKDConfig:
    """Build and validate a `CKDConfig` from nested plain data (as read from YAML/JSON)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"a config must be a mapping at the top level, got {type(data).__name__}")
    cfg = _build(CKDConfig, data, "")
    cfg.model.validate("model")  # cross-section checks need the finished subtree
    return cfg


def to_dict(obj: Any) -> Any:
    """Plain nested dicts/lists (tuples become lists) suitable for YAML and JSON."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple):
        return [to_dict(v) for v in obj]
    return obj


def preset_names() -> list[str]:
    """Names of the presets shipped in `config/presets/`."""
    folder = resources.files("ckd_core.presets")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_config(name_or_path: str | Path) -> CKDConfig:
    """Load a preset by name (`ckd_vitb256_mce`) or any YAML file by path, validated."""
    text: str
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        text = p.read_text()
        source = str(p)
    else:
        res = resources.files("ckd_core.presets") / f"{name_or_path}.yaml"
        if not res.is_file():
            raise ConfigError(f"unknown preset '{name_or_path}'; available: "
                              f"{', '.join(preset_names())} (or give a path to a YAML file)")
        text = res.read_text()
        source = f"preset {name_or_path}"
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    try:
        return from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def dump_config(cfg: CKDConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
