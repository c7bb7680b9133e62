"""Checkpoints: our own safe format, training state, and importers for foreign weights.

Our format: ONE `.safetensors` file (no pickle, so loading runs no code). Tensors are the
model's `state_dict()` under its own names; the string metadata header holds
- `format` = "ckd-tracker-checkpoint", `format_version` = "1",
- `kind` = "inference" | "training" (which model the tensors belong to),
- `config` = the full `CKDConfig` as JSON (`to_dict`), so a file rebuilds its own model,
- `content_sha256` = SHA-256 over the tensors (sorted names; for each: name, dtype, shape,
  byte count, raw little-endian bytes), checked on every load,
- `storage_dtype` ("float32" / "float16" / "bfloat16": floating tensors as stored),
  `created` (UTC ISO time), `ckd_version`, `torch_version`, `extra` (JSON, caller's).
Writes are atomic (temporary file in the same folder, fsync, `os.replace`).

Training state (optimizer, scheduler, RNG, step) is a separate `torch.save` file of plain
containers and tensors only, read back with `torch.load(weights_only=True)`.

Foreign weights (official CKD, OSTrack, DropTrack, timm ViT / MAE, DropMAE) are read with
`safe_pickle.safe_load` (never runs their code), mapped by the pure functions of
`key_mapping`, and compared with the model by `import_checkpoint`, which reports missing,
unexpected, mis-shaped and ignored keys.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

import ckd_core
from ckd_core.atomic import atomic_write
from ckd_core.config import (CKDConfig, ConfigError, ModelConfig, from_dict, load_config,
                             preset_names, to_dict)
from ckd_core.model import key_mapping as km
from ckd_core.model.safe_pickle import safe_load, unloaded_globals

FORMAT_NAME = "ckd-tracker-checkpoint"
FORMAT_VERSION = 1
KINDS = ("inference", "training")
# ModelConfig keys that do not change what the weights compute (training-only drop-path, the
# tracker's crop factors, candidate elimination): a checkpoint may be used with other values.
_FREE_KEYS = {"backbone.drop_path_rate", "template_factor", "search_factor"}
_FREE_SECTIONS = ("elimination.",)


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, modified, or does not fit the model."""


class ConfigMismatchError(CheckpointError):
    """The checkpoint's model configuration differs from the one asked for."""


# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------

def _model_cfg(cfg: CKDConfig | ModelConfig) -> ModelConfig:
    return cfg.model if isinstance(cfg, CKDConfig) else cfg


def _full_cfg(cfg: CKDConfig | ModelConfig) -> CKDConfig:
    return cfg if isinstance(cfg, CKDConfig) else CKDConfig(model=cfg)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind = {kind!r} is not allowed: expected inference or training")


def _flat(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_differences(a: CKDConfig | ModelConfig, b: CKDConfig | ModelConfig,
                       architecture_only: bool = True) -> list[str]:
    """Dotted `model.*` keys where two configs differ, as "model.key: a_value != b_value".

    architecture_only: skip the keys that do not change what the weights compute (drop-path
    rate, crop factors, elimination settings), so a stage-1 checkpoint can run with MCE on.
    """
    fa = _flat(to_dict(_model_cfg(a)))
    fb = _flat(to_dict(_model_cfg(b)))
    out = []
    for key in sorted(set(fa) | set(fb)):
        if architecture_only and (key in _FREE_KEYS or key.startswith(_FREE_SECTIONS)):
            continue
        if fa.get(key) != fb.get(key):
            out.append(f"model.{key}: {fa.get(key)!r} != {fb.get(key)!r}")
    return out


def _tensor_bytes(t: torch.Tensor) -> memoryview:
    flat = t.detach().to("cpu").contiguous().reshape(-1)
    return memoryview(flat.view(torch.uint8).numpy())


def content_sha256(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over sorted names and each tensor's name, dtype, shape, byte count and bytes."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name]
        raw = _tensor_bytes(t)
        h.update(f"{name}\0{str(t.dtype)}\0{tuple(t.shape)}\0{raw.nbytes}\0".encode())
        h.update(raw)
    return h.hexdigest()




def _kind_of(model: torch.nn.Module) -> str:
    from ckd_core.model.ckd import CKDInference, CKDTraining
    if isinstance(model, CKDTraining):
        return "training"
    if isinstance(model, CKDInference):
        return "inference"
    raise TypeError(f"save_checkpoint expects a CKDInference or CKDTraining model, got "
                    f"{type(model).__name__}")


# ---------------------------------------------------------------------------------------------
# Our format
# ---------------------------------------------------------------------------------------------

def save_checkpoint(model: torch.nn.Module, cfg: CKDConfig | ModelConfig,
                    path: str | os.PathLike, extra: Mapping[str, Any] | None = None,
                    dtype: torch.dtype | None = None) -> Path:
    """Write `model`'s weights and `cfg` to one `.safetensors` file, atomically.

    dtype: store floating tensors in this dtype (e.g. torch.float16 to halve the size);
    None keeps them as they are. extra: JSON-serialisable data kept in the header (step,
    metrics, notes). Returns the path written.
    """
    model = getattr(model, "module", model)  # DDP / DataParallel wrapper
    kind = _kind_of(model)
    full = _full_cfg(cfg)
    model_cfg = getattr(model, "cfg", None)
    if isinstance(model_cfg, ModelConfig):
        diffs = config_differences(model_cfg, full)
        if diffs:
            raise ConfigMismatchError(f"save_checkpoint({path}): the config does not describe "
                                      f"this model: {'; '.join(diffs)} (model != config)")
    state = {}
    for k, v in model.state_dict().items():
        v = v.detach().to("cpu")
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        state[k] = v.contiguous()
    floats = sorted({str(v.dtype).replace("torch.", "") for v in state.values()
                     if v.is_floating_point()})
    try:
        extra_json = json.dumps(dict(extra or {}), sort_keys=True)
    except TypeError as exc:
        raise TypeError(f"save_checkpoint: extra must be JSON-serialisable ({exc})") from None
    meta = {
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        "kind": kind,
        "config": json.dumps(to_dict(full), sort_keys=True),
        "content_sha256": content_sha256(state),
        "storage_dtype": ",".join(floats),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "ckd_version": ckd_core.__version__,
        "torch_version": torch.__version__,
        "extra": extra_json,
    }
    from safetensors.torch import save_file
    return atomic_write(Path(path), lambda tmp: save_file(state, str(tmp), metadata=meta))


def _unreadable(path: Path, exc: BaseException) -> CheckpointError:
    return CheckpointError(
        f"{path}: cannot read it as a safetensors checkpoint ({exc}). The file is truncated or "
        f"corrupt: copy or download it again, or re-save it from the training run")


def read_checkpoint_meta(path: str | os.PathLike) -> dict[str, str] | None:
    """The header metadata of a `.safetensors` file (no tensors read), or None when the file
    is a safetensors file that is not ours. Raises CheckpointError if it is not readable."""
    from safetensors import safe_open
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # noqa: BLE001 - SafetensorError and OSError variants
        raise _unreadable(path, exc) from exc
    return meta if meta.get("format") == FORMAT_NAME else None


def load_checkpoint(path: str | os.PathLike, device: torch.device | str = "cpu",
                    dtype: torch.dtype | None = None
                    ) -> tuple[dict[str, torch.Tensor], CKDConfig, dict[str, Any]]:
    """Read one of our checkpoints: (state_dict, config, meta), content hash verified.

    dtype: cast floating tensors to it (None: as stored). meta holds the header fields, with
    `extra` parsed from JSON. Raises CheckpointError for a foreign, corrupt or modified file.
    """
    from safetensors import safe_open
    path = Path(path)
    meta = read_checkpoint_meta(path)
    if meta is None:
        raise CheckpointError(f"{path} is a safetensors file but not a ckd-tracker checkpoint "
                              f"(no '{FORMAT_NAME}' header); import foreign weights with "
                              f"import_checkpoint or check them with `ckd inspect`")
    if int(meta.get("format_version", "0")) > FORMAT_VERSION:
        raise CheckpointError(f"{path} has format version {meta['format_version']}, newer than "
                              f"this ckd-tracker understands ({FORMAT_VERSION}); upgrade it")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # noqa: BLE001
        raise _unreadable(path, exc) from exc
    digest = content_sha256(state)
    if digest != meta.get("content_sha256"):
        raise CheckpointError(f"{path}: content hash mismatch (stored "
                              f"{meta.get('content_sha256')}, computed {digest}); the file is "
                              f"corrupt or was modified after saving. Do not use it: copy it "
                              f"again or re-save it from the training run")
    try:
        cfg = from_dict(json.loads(meta["config"]))
    except (KeyError, json.JSONDecodeError, ConfigError) as exc:
        raise CheckpointError(f"{path}: its embedded config is not valid for this version of "
                              f"ckd-tracker: {exc}") from None
    info: dict[str, Any] = dict(meta)
    info["extra"] = json.loads(meta.get("extra") or "{}")
    for k, v in state.items():
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        state[k] = v.to(device)
    return state, cfg, info


def model_state_shapes(cfg: CKDConfig | ModelConfig, kind: str) -> dict[str, tuple[int, ...]]:
    """`{name: shape}` of the model's state dict, built on the meta device (no memory used)."""
    from ckd_core.model.ckd import CKDInference, CKDTraining
    _check_kind(kind)
    cls = CKDTraining if kind == "training" else CKDInference
    with torch.device("meta"):
        model = cls(_model_cfg(cfg))
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _build_loaded(cls: type, mcfg: ModelConfig, state: dict[str, torch.Tensor]
                  ) -> torch.nn.Module:
    # Build without initialising (meta) and take the checkpoint's tensors; fall back to a
    # normal build if a tensor the state dict does not cover stayed on meta.
    with torch.device("meta"):
        model = cls(mcfg)
    model.load_state_dict(state, strict=True, assign=True)
    if any(t.is_meta for t in list(model.parameters()) + list(model.buffers())):
        model = cls(mcfg)
        model.load_state_dict(state, strict=True)
    return model


def load_model(path: str | os.PathLike, device: torch.device | str = "cpu",
               dtype: torch.dtype = torch.float32, kind: str = "inference",
               cfg: CKDConfig | ModelConfig | None = None) -> torch.nn.Module:
    """Build the model a checkpoint describes and load it strictly.

    kind: "inference" (students + fused head; a training checkpoint also works, its teachers
    are dropped) or "training" (needs a training checkpoint). cfg: build with this model
    config instead of the embedded one (e.g. to turn elimination on); its shape-relevant keys
    must equal the checkpoint's, else ConfigMismatchError lists the differences.
    Returns the model on `device` in `dtype`, in eval mode (inference) or train mode.
    """
    from ckd_core.model.ckd import CKDInference, CKDTraining
    _check_kind(kind)
    path = Path(path)
    state, ckpt_cfg, meta = load_checkpoint(path)
    mcfg = ckpt_cfg.model
    if cfg is not None:
        diffs = config_differences(ckpt_cfg, cfg)
        if diffs:
            raise ConfigMismatchError(f"{path} was saved for a different model: "
                                      f"{'; '.join(diffs)} (checkpoint != requested)")
        mcfg = _model_cfg(cfg)
    if kind == "training" and meta["kind"] != "training":
        raise CheckpointError(f"{path} is an inference checkpoint (students and fused head "
                              f"only); a training model also needs the teachers. Load it with "
                              f"kind='inference', or start training from import_checkpoint")
    if kind == "inference":
        state = {k: v for k, v in state.items() if not k.startswith(km.TRAINING_ONLY)}
    cls = CKDTraining if kind == "training" else CKDInference
    try:
        model = _build_loaded(cls, mcfg, state)
    except RuntimeError as exc:
        raise CheckpointError(f"{path} does not fit the {kind} model: {exc}") from None
    model = model.to(device=device, dtype=dtype)
    return model.train() if kind == "training" else model.eval()


def export_inference_checkpoint(src: str | os.PathLike, out: str | os.PathLike,
                                dtype: torch.dtype | None = None) -> Path:
    """Write the inference model (students + fused head) of checkpoint `src` to `out`.

    For a training checkpoint (e.g. `runs/<name>/checkpoints/step_N.safetensors`, chosen on
    a validation set) this is what the trainer exports at the end of a run: the same
    tensors, so the same content hash as the run's `inference.safetensors` for the last
    step. The header's `extra` keeps the source's step / stage and names the source file.
    dtype: storage dtype (None: float32 as loaded; torch.float16 halves the size).
    """
    src = Path(src)
    _, cfg, meta = load_checkpoint(src)
    model = load_model(src, device="cpu", kind="inference")
    extra = {k: v for k, v in meta["extra"].items() if k in ("step", "stage")}
    if meta["kind"] == "training":
        extra.setdefault("stage", cfg.train.stage)
    extra["exported_from"] = {"file": src.name, "kind": meta["kind"],
                              "content_sha256": meta["content_sha256"]}
    return save_checkpoint(model, cfg, out, extra=extra, dtype=dtype)


# ---------------------------------------------------------------------------------------------
# Training state
# ---------------------------------------------------------------------------------------------

_PLAIN = (torch.Tensor, int, float, bool, str, bytes, type(None))


def _check_plain(obj: Any, where: str) -> None:
    if isinstance(obj, _PLAIN):
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"training state {where}: key {k!r} is a {type(k).__name__}; "
                                f"only str and int keys are allowed")
            _check_plain(v, f"{where}[{k!r}]")
        return
    if type(obj) in (list, tuple):
        for i, v in enumerate(obj):
            _check_plain(v, f"{where}[{i}]")
        return
    hint = " (convert numpy arrays with torch.from_numpy)" if type(obj).__module__.startswith(
        "numpy") else ""
    raise TypeError(f"training state {where} is a {type(obj).__module__}."
                    f"{type(obj).__qualname__}; only tensors, numbers, strings, None and "
                    f"dicts/lists/tuples of them are allowed{hint}")


def set_tracker_settings(path: str | os.PathLike, out: str | os.PathLike | None = None,
                         **fields: Any) -> Path:
    """Rewrite a checkpoint with fields of its config's tracker section changed (e.g. measured
    LOST thresholds: `set_tracker_settings(p, lost_threshold=0.3, recover_threshold=0.5)`);
    the weights, their storage dtype and content hash, and `extra` stay as they are. Writes
    `out` (default: in place, atomically) and returns its path. Unknown or invalid fields
    are errors naming them."""
    import dataclasses

    from ckd_core.config import from_dict

    meta = read_checkpoint_meta(path)
    if meta is None:
        raise CheckpointError(f"{path} is not a ckd-tracker checkpoint")
    cfg = from_dict(json.loads(meta["config"]))
    cfg = dataclasses.replace(cfg, tracker=cfg.tracker.with_changes(**fields))
    model = load_model(path, device="cpu")
    stored = {getattr(torch, d) for d in meta.get("storage_dtype", "").split(",") if d}
    dtype = stored.pop() if len(stored) == 1 else None
    extra = json.loads(meta.get("extra") or "{}")
    written = save_checkpoint(model, cfg, out or path, extra=extra, dtype=dtype)
    new = read_checkpoint_meta(written)
    if new["content_sha256"] != meta["content_sha256"]:  # the weights must not change
        raise CheckpointError(f"{written}: weights changed while rewriting the config")
    return written


def save_training_state(path: str | os.PathLike, state: Mapping[str, Any]) -> Path:
    """Atomically `torch.save` optimizer / scheduler / RNG / step state (plain data only)."""
    state = dict(state)
    _check_plain(state, "")
    return atomic_write(Path(path), lambda tmp: torch.save(state, tmp))


def load_training_state(path: str | os.PathLike) -> dict[str, Any]:
    """Read a `save_training_state` file on the CPU with `torch.load(weights_only=True)`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training state {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises several types here
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable training-state file ({first}); it is "
                              f"truncated or corrupt, or was not written by "
                              f"save_training_state") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: a training-state file holds a dict, found "
                              f"{type(state).__name__}")
    return state


# ---------------------------------------------------------------------------------------------
# Importing foreign weights
# ---------------------------------------------------------------------------------------------

FORMATS = ("ckd", "ckd_official", "ostrack", "droptrack", "timm_vit", "dropmae", "unknown")
_WRAPPERS = ("net", "model", "state_dict", "model_state_dict", "module")


def _tensor_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def _state_dict_of(obj: Any) -> dict[str, torch.Tensor] | None:
    if _tensor_dict(obj):
        return obj
    if isinstance(obj, dict):
        for key in _WRAPPERS:
            if _tensor_dict(obj.get(key)):
                return obj[key]
    return None


def detect_format(obj: Any) -> str:
    """Which layout a loaded checkpoint has: one of FORMATS (see `key_mapping`)."""
    sd = _state_dict_of(obj)
    if sd is None:
        return "unknown"
    keys = set(km.strip_module_prefix(sd))
    if any(k.startswith(("rgb_branch.", "tir_branch.")) for k in keys):
        return "ckd_official"
    if any(k.startswith("backbone.") for k in keys):
        return "droptrack" if "backbone.temporal_pos_embed_x" in keys else "ostrack"
    if "patch_embed.proj.weight" in keys and "pos_embed" in keys:
        return "dropmae" if "temporal_pos_embed_x" in keys else "timm_vit"
    return "unknown"


def _map(fmt: str, sd: dict[str, torch.Tensor], grids: tuple[int, int] | None) -> km.Mapped:
    if fmt in ("ckd", "ckd_official"):
        return km.map_ckd_official(sd)
    if fmt in ("ostrack", "droptrack"):
        return km.map_ostrack(sd, grids)
    return km.map_vit(sd, grids)


def _signature(state: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """What the shapes say about the architecture (from the mapped, target-named tensors)."""
    sig: dict[str, int] = {}
    w = state.get("rgb_branch.patch_embed.proj.weight")
    if w is not None and w.dim() == 4:
        sig["embed_dim"], sig["patch_size"] = int(w.shape[0]), int(w.shape[-1])
    blocks = {k.split(".")[2] for k in state if k.startswith("rgb_branch.blocks.")}
    if blocks:
        sig["depth"] = len(blocks)
    fc1 = state.get("rgb_branch.blocks.0.mlp.fc1.weight")
    if fc1 is not None:
        sig["mlp_hidden"] = int(fc1.shape[0])
    for key, name in (("rgb_branch.pos_embed_z", "template_grid"),
                      ("rgb_branch.pos_embed_x", "search_grid")):
        t = state.get(key)
        if t is not None and t.dim() == 3:
            sig[name] = km.grid_side(t.shape[1], key)
    h = state.get("box_head.conv1_ctr.0.weight")
    if h is not None:
        sig["head_channels"], sig["head_in"] = int(h.shape[0]), int(h.shape[1])
    return sig


def _preset_signature(mcfg: ModelConfig) -> dict[str, int]:
    b = mcfg.backbone
    return {"embed_dim": b.embed_dim, "patch_size": b.patch_size, "depth": b.depth,
            "mlp_hidden": int(b.embed_dim * b.mlp_ratio), "template_grid": mcfg.template_grid,
            "search_grid": mcfg.search_grid, "head_channels": mcfg.head.channels,
            "head_in": 2 * b.embed_dim}


def infer_presets(state: Mapping[str, torch.Tensor], fixed_grids: bool = True) -> list[str]:
    """Shipped presets whose tensor shapes agree with a mapped state dict, sorted.

    fixed_grids=False ignores the position-table sizes (formats whose tables get resized).
    Presets that differ only in elimination settings have identical shapes: all are listed.
    """
    sig = _signature(state)
    if "embed_dim" not in sig:
        return []
    if not fixed_grids:
        sig = {k: v for k, v in sig.items() if k not in ("template_grid", "search_grid")}
    names = []
    for name in preset_names():
        want = _preset_signature(load_config(name).model)
        if all(want[k] == v for k, v in sig.items()):
            names.append(name)
    return names


@dataclass
class ImportReport:
    """What `import_checkpoint` found. `state_dict` holds only tensors that fit the model
    (load it with `model.load_state_dict(report.state_dict, strict=False)`)."""

    state_dict: dict[str, torch.Tensor]
    format: str
    missing: list[str]
    unexpected: list[str]
    mismatched_shapes: list[tuple[str, tuple[int, ...], tuple[int, ...]]]
    ignored: list[tuple[str, str]]
    inferred_preset: str | None
    kind: str = "training"
    path: str = ""
    model_config: ModelConfig | None = None  # the target the report was made against
    compatible_presets: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unloaded_classes: list[str] = field(default_factory=list)
    source_numel: int = 0

    @property
    def clean(self) -> bool:
        """True when the model would load strictly: nothing missing, unexpected or mis-shaped."""
        return not (self.missing or self.unexpected or self.mismatched_shapes)


def _read_any(path: Path) -> tuple[str | None, Any, dict[str, Any]]:
    """(our kind or None, loaded object, our meta) for any supported file."""
    if path.suffix == ".safetensors":
        meta = read_checkpoint_meta(path)
        if meta is not None:
            state, _, info = load_checkpoint(path)
            return info["kind"], state, info
        from safetensors.torch import load_file
        try:
            return None, load_file(str(path), device="cpu"), {}
        except Exception as exc:  # noqa: BLE001
            raise _unreadable(path, exc) from exc
    return None, safe_load(path), {}


def _auto_kind(fmt: str, our_kind: str | None, mapped: Mapping[str, torch.Tensor]) -> str:
    if our_kind is not None:
        return our_kind
    if fmt == "ckd_official" and not any(k.startswith(km.TRAINING_ONLY) for k in mapped):
        return "inference"
    return "training"


def import_checkpoint(path: str | os.PathLike, cfg: CKDConfig | ModelConfig | str | None = None,
                      kind: str | None = None) -> ImportReport:
    """Read any supported checkpoint safely and map it onto a CKD model.

    cfg: the target (a config, a preset name or YAML path); None = the preset inferred from
    the tensor shapes. kind: "training" or "inference"; None = the file's own kind (ours,
    official CKD without teachers -> inference), else training (initialisation weights).
    Raises CheckpointError for an unrecognised layout or when no preset can be inferred.
    """
    path = Path(path)
    our_kind, obj, _meta = _read_any(path)
    fmt = "ckd" if our_kind is not None else detect_format(obj)
    sd = _state_dict_of(obj)
    if fmt == "unknown" or sd is None:
        top = sorted(map(str, obj))[:12] if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(
            f"{path}: unrecognised checkpoint layout (top-level: {top}). Supported: our "
            f".safetensors, official CKD / OSTrack / DropTrack ('net' dict), timm / MAE / "
            f"DropMAE ViT weights")
    resizable = fmt not in ("ckd", "ckd_official")
    source = _map(fmt, sd, None)
    compatible = infer_presets(source.state, fixed_grids=not resizable)
    inferred = compatible[0] if compatible else None
    if cfg is None:
        if inferred is None:
            raise CheckpointError(f"{path}: no shipped preset matches its tensor shapes "
                                  f"{_signature(source.state)}; pass a config (--preset)")
        cfg = inferred
    target = _model_cfg(load_config(cfg) if isinstance(cfg, (str, os.PathLike)) else cfg)
    mapped = _map(fmt, sd, (target.template_grid, target.search_grid)) if resizable else source
    kind = kind or _auto_kind(fmt, our_kind, mapped.state)
    _check_kind(kind)
    expected = model_state_shapes(target, kind)
    state, missing, unexpected, mismatched, ignored = km.fit_state_dict(
        mapped.state, expected, kind)
    return ImportReport(
        state_dict=state, format=fmt, missing=missing, unexpected=unexpected,
        mismatched_shapes=mismatched, ignored=mapped.ignored + ignored,
        inferred_preset=inferred, kind=kind, path=str(path), model_config=target,
        compatible_presets=compatible,
        notes=mapped.notes, unloaded_classes=unloaded_globals(obj),
        source_numel=sum(int(v.numel()) for v in sd.values()))
