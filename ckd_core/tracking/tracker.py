"""The RGB + thermal tracker: OpenCV-style `init` / `update` around the CKD inference model.

Per frame (method doc section 5, the authors' OSTrack-derived tracker, kept exact):
- init: template crops of both modalities around the box (factor `template_factor`, size
  `template_size`); the template is never updated;
- update: search crops around the previous box (side ceil(sqrt(w h) * search_factor), zero
  padding, resized to `search_size`), forward, score map x Hann window (outer product of
  0.5 * (1 - cos(2 pi k / (G + 1))), k = 1..G), decode at the windowed peak, scale by
  search_size / resize_factor, re-centre on the previous box's centre, clip to the image with a
  `clip_margin` px margin.

Additions (switch them all off with `TrackerConfig.state_machine = False` to reproduce the
authors' trajectories bit for bit):
- `score` = the RAW score map at the chosen cell, in [0, 1];
- TRACKING / LOST with hysteresis: `lost_frames` consecutive scores below `lost_threshold`
  -> LOST; while LOST the box is held (low-confidence peaks do not move it) and the search
  factor grows by `lost_search_growth` per frame up to `lost_search_max_factor` times; a score
  >= `recover_threshold` re-acquires (box taken, back to TRACKING);
- modality health: a modality that is missing (None), black, saturated or frozen (identical
  for `frozen_frames` frames) is reported, and its crop is replaced according to
  `missing_fill` (zeros = an all-zero normalised tensor, mean = the crop's per-channel mean,
  other = the healthy modality's crop), so tracking continues on the healthy one;
- RGB and thermal of different sizes: the non-reference camera's frame is resized to the
  reference camera's size (`reference_camera`); boxes are in reference pixels.

Speed options (none changes the method; how close each stays to fp32 is measured by
benchmarks/fidelity.py):
- `TrackerConfig.precision`: fp32 | bf16 (autocast) | fp16 (autocast, CUDA only) | int8
  (dynamic int8 Linear layers, CPU only, ckd_core.model.quantize);
- runtime: torch, or ONNX Runtime on an exported .onnx file (`Tracker.from_checkpoint(
  "model.onnx")`, ckd_core.tracking.onnx_runtime; fp32, or int8 quantised at export);
- template cache (torch runtime, on by default): the template-only part of the forward
  (`CKDInference.encode_template`) runs once per `init`; results are bit-identical.
"""

from __future__ import annotations

import contextlib
import enum
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch

from ckd_core.boxes import clip_xywh, validate_xywh
from ckd_core.config import (RUNTIMES, CKDConfig, ModelConfig, TrackerConfig,
                              check_precision)
from ckd_core.crops import box_in_crop, sample_target
from ckd_core.imaging import (WindowedFrame, normalization_table, normalize_crop,
                              normalize_crop_lookup, to_three_channels)
from ckd_core.model.ckd import CKDInference

if TYPE_CHECKING:
    from ckd_core.tracking.onnx_runtime import OnnxRuntimeModel

MODALITIES = ("rgb", "thermal")
_DTYPE_PRECISION = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


class TrackState(str, enum.Enum):
    TRACKING = "TRACKING"
    LOST = "LOST"


class Health(str, enum.Enum):
    OK = "ok"
    MISSING = "missing"
    FROZEN = "frozen"
    BLACK = "black"
    SATURATED = "saturated"


@dataclass(frozen=True)
class TrackResult:
    """One frame's answer. `box_xywh` in reference-camera pixels; `score` in [0, 1];
    `timings` in seconds (preprocess, model, postprocess, total); `health` per modality."""

    box_xywh: tuple[float, float, float, float]
    score: float
    state: TrackState
    timings: dict[str, float] = field(default_factory=dict)
    health: dict[str, str] = field(default_factory=dict)


def hann_window(grid: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """(1, 1, G, G) outer product of 0.5 * (1 - cos(2 pi k / (G + 1))), k = 1..G."""
    k = torch.arange(1, grid + 1, dtype=torch.float64)
    w = 0.5 * (1 - torch.cos(2 * math.pi * k / (grid + 1)))
    return torch.outer(w, w).to(device=device, dtype=dtype)[None, None]


def _resolve_precision(precision: str, dtype: torch.dtype | None) -> str:
    """The tracker's precision from the config's and the older `dtype` argument."""
    if dtype is None or dtype == torch.float32:
        return precision
    if dtype not in _DTYPE_PRECISION:
        raise ValueError(f"unsupported dtype {dtype}; use float32, bfloat16 or float16 (or "
                         f"tracker precision fp32 | bf16 | fp16 | int8)")
    wanted = _DTYPE_PRECISION[dtype]
    if precision not in ("fp32", wanted):
        raise ValueError(f"dtype {dtype} asks for {wanted} but tracker precision is "
                         f"{precision!r}; give only one of them")
    return wanted


def map_box_back(pred_cxcywh_px, prev_xywh, crop_side_px: float) -> tuple[float, ...]:
    """OSTrack's map_box_back: a box (cx, cy, w, h) in search-crop pixels (at the crop's
    original scale) -> image xywh, re-centred on the previous box's centre."""
    cx, cy, w, h = pred_cxcywh_px
    px, py, pw, ph = prev_xywh
    half = 0.5 * crop_side_px
    cx_real = cx + (px + 0.5 * pw - half)
    cy_real = cy + (py + 0.5 * ph - half)
    return cx_real - 0.5 * w, cy_real - 0.5 * h, w, h


def check_image(image, what: str) -> np.ndarray:
    """A uint8 (H, W), (H, W, 1) or (H, W, 3) RGB image -> (H, W, 3) uint8, or a ValueError."""
    return to_three_channels(check_frame(image, what), what)


def check_frame(image, what: str) -> np.ndarray:
    """A uint8 (H, W), (H, W, 1) or (H, W, 3) RGB image -> (H, W) grey or (H, W, 3) uint8
    (not copied), or a ValueError. The tracker keeps grey frames single-channel until the
    crops are cut: cropping and resizing act on each channel alike, so a crop of the grey
    frame repeated to three channels equals the crop of the repeated frame, for a third of
    the work (~1 ms per 1920x1080 frame). A `WindowedFrame` (a raw thermal frame mapped to
    8 bits only where it is read) stands for its uint8 (H, W) image and is passed through."""
    if isinstance(image, WindowedFrame):
        return image
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{what} image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"{what} image has dtype {image.dtype}; expected uint8 (normalise "
                         f"16-bit or float thermal frames to 0-255 first)")
    if image.ndim not in (2, 3) or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{what} image has shape {image.shape}; expected a non-empty (H, W), "
                         f"(H, W, 1) or (H, W, 3) array")
    if image.ndim == 3 and image.shape[2] not in (1, 3):
        raise ValueError(f"{what} image has {image.shape[2]} channels; expected 1 or 3")
    return image[:, :, 0] if image.ndim == 3 and image.shape[2] == 1 else image


class _HealthMonitor:
    """Per-modality health from cheap statistics of each frame."""

    def __init__(self, cfg: TrackerConfig):
        self.cfg = cfg
        self.reset()

    def reset(self) -> None:
        self.prev, self._full_prev, self.same = None, None, 0

    def check(self, image: np.ndarray | None) -> Health:
        if image is None:
            self.reset()
            return Health.MISSING
        # One pixel in 16 (every 4th row and column when the sides divide by 4), as a
        # contiguous array: OpenCV's nearest-neighbour resize makes it 4x faster than a
        # strided numpy copy, and it compares ~10x faster than a strided view.
        h, w = image.shape[:2]
        size = ((w + 3) // 4, (h + 3) // 4)
        small = image.thumbnail(size) if isinstance(image, WindowedFrame) else \
            cv2.resize(image, size, interpolation=cv2.INTER_NEAREST)
        if self.prev is not None and self.prev.shape == small.shape and np.array_equal(
                self.prev, small) and np.array_equal(np.asarray(self._full_prev),
                                                     np.asarray(image)):
            self.same += 1
        else:
            self.same = 0
        self.prev, self._full_prev = small, image
        if self.same >= self.cfg.frozen_frames:
            return Health.FROZEN
        channels = 1 if small.ndim == 2 else small.shape[2]
        mean = float(np.mean(cv2.mean(small)[:channels]))  # equal pixel counts per channel
        if mean < self.cfg.black_level:
            return Health.BLACK
        if mean > self.cfg.saturated_level:
            return Health.SATURATED
        return Health.OK


class Tracker:
    """CKD RGB + thermal single-object tracker.

        tracker = Tracker.from_checkpoint(None)          # the shipped default model
        tracker.init(rgb, thermal, (x, y, w, h))
        result = tracker.update(rgb, thermal)            # TrackResult
    """

    def __init__(self, model: CKDInference | OnnxRuntimeModel, config: CKDConfig, device="cpu",
                 dtype: torch.dtype | None = None, elimination: bool | None = None,
                 cache_template: bool = True):
        """model: a `CKDInference` (runtime "torch") or an `OnnxRuntimeModel` (runtime
        "onnxruntime", elimination fixed in the file). Arithmetic = `config.tracker.precision`;
        `dtype` is the older spelling of it: bfloat16 / float16 ask for bf16 / fp16 (an error
        if the config asks for something else), float32 or None leave it to the config.
        cache_template: compute the template-only part of the forward once per `init`
        (exactly equal results; see `CKDInference.encode_template`)."""
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {device} requested but CUDA is not available")
        self.precision = _resolve_precision(config.tracker.precision, dtype)
        self.runtime = getattr(model, "runtime", "torch")
        check_precision(self.precision, self.device.type, self.runtime)
        if self.runtime == "onnxruntime":
            if self.precision != model.precision:
                raise ValueError(f"precision {self.precision} asked for, but {model.path} "
                                 f"holds a {model.precision} graph; export one with `ckd "
                                 f"export --format onnx --precision {self.precision}`")
            if elimination is not None and bool(elimination) != model.elimination:
                raise ValueError(f"{model.path} was exported with elimination "
                                 f"{'on' if model.elimination else 'off'}; re-export it "
                                 f"(`ckd export --format onnx`) to change that")
            if model.device != self.device:
                raise ValueError(f"the ONNX model runs on {model.device}, the tracker on "
                                 f"{self.device}; build both for the same device")
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision,
                                                                         torch.float32)
        self.config = config
        self.model_cfg: ModelConfig = config.model
        self.cfg: TrackerConfig = config.tracker
        self.elimination = elimination
        if self.runtime == "torch":
            model = model.to(self.device).float().eval()
            if self.precision == "int8":
                from ckd_core.model.quantize import quantize_linear_int8
                model = quantize_linear_int8(model)
        self.model = model
        self.cache_template = cache_template and hasattr(model, "encode_template")
        self.window = hann_window(self.model_cfg.search_grid, self.device)
        # On the CPU, crops are normalised by table lookup (the same floats, less work).
        self._norm_table = normalization_table() if self.device.type == "cpu" else None
        self._health = {m: _HealthMonitor(self.cfg) for m in MODALITIES}
        self._initialized = False
        self.reset()

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_checkpoint(cls, path=None, device="cpu", dtype: torch.dtype | None = None,
                        tracker_config: TrackerConfig | None = None,
                        elimination: bool | None = None,
                        tracker_overrides: dict | None = None,
                        runtime: str | None = None) -> "Tracker":
        """Load weights (our format; None = the shipped default model) and build a tracker.

        tracker_config replaces the checkpoint's tracker section; tracker_overrides changes
        single fields of it (e.g. {"lost_threshold": 0.3, "precision": "int8"}), validated
        like a config file. runtime: "torch" (our .safetensors weights) or "onnxruntime" (an
        exported .onnx file, config read from the file); None = chosen by the file suffix.
        """
        import json
        from pathlib import Path

        from ckd_core.config import from_dict
        from ckd_core.model.checkpoint import CheckpointError, load_model, read_checkpoint_meta
        from ckd_core.tracking.default_model import default_checkpoint_path

        path = default_checkpoint_path() if path is None else path
        is_onnx = Path(path).suffix.lower() == ".onnx"
        runtime = runtime or ("onnxruntime" if is_onnx else "torch")
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime {runtime!r} is not one of {', '.join(RUNTIMES)}")
        if runtime == "onnxruntime":
            if not is_onnx:
                raise ValueError(f"runtime onnxruntime runs an exported .onnx file, not {path}; "
                                 f"export one with `ckd export --format onnx --checkpoint "
                                 f"{path} --out MODEL.onnx` and pass that")
            from ckd_core.tracking.onnx_runtime import OnnxRuntimeModel
            model = OnnxRuntimeModel(path, device)  # FileNotFoundError saying how to export
            cfg = model.config
        else:
            if is_onnx:
                raise ValueError(f"{path} is an ONNX file: use runtime 'onnxruntime' (or the "
                                 f".safetensors checkpoint it was exported from)")
            meta = read_checkpoint_meta(path)
            if meta is None:
                raise CheckpointError(f"{path} is not a ckd-tracker checkpoint; convert "
                                      f"foreign weights first (see `ckd inspect`)")
            cfg = from_dict(json.loads(meta["config"]))
            model = load_model(path, device="cpu")  # verifies the content hash
        tcfg = tracker_config if tracker_config is not None else cfg.tracker
        if tracker_overrides:
            tcfg = tcfg.with_changes(**tracker_overrides)
        cfg = CKDConfig(name=cfg.name, model=cfg.model, data=cfg.data, train=cfg.train,
                        tracker=tcfg)
        return cls(model, cfg, device=device, dtype=dtype, elimination=elimination)

    # -- public API ---------------------------------------------------------------------------

    @property
    def is_initialized(self) -> bool:
        return self._initialized

    @property
    def state(self) -> TrackState:
        return self._state

    @property
    def box(self) -> tuple[float, float, float, float] | None:
        return self._box if self._initialized else None

    def reset(self) -> None:
        """Forget the target; `update` refuses to run until the next `init`."""
        self._initialized = False
        self._box = (0.0, 0.0, 0.0, 0.0)
        self._state = TrackState.TRACKING
        self._low = 0
        self._lost_frames = 0
        self._template_cache = None
        for h in self._health.values():
            h.reset()

    def set_thresholds(self, lost: float | None = None, recover: float | None = None) -> None:
        """Change the LOST/recover thresholds at run time (validated like the config)."""
        import dataclasses

        new = dataclasses.replace(self.cfg, lost_threshold=self.cfg.lost_threshold
                                  if lost is None else float(lost),
                                  recover_threshold=self.cfg.recover_threshold
                                  if recover is None else float(recover))
        new.validate("tracker")
        self.cfg = new
        for h in self._health.values():
            h.cfg = new

    def warmup(self, runs: int = 1) -> None:
        """Run dummy forwards so the first real frame is not slow (allocator, kernels)."""
        t, s = self.model_cfg.template_size, self.model_cfg.search_size
        z = torch.zeros(1, 3, t, t, device=self.device)
        x = torch.zeros(1, 3, s, s, device=self.device)
        for _ in range(runs):
            self._forward(z, z, x, x, None, self._encode(z, z, None))

    def init(self, rgb: np.ndarray | None, thermal: np.ndarray | WindowedFrame | None,
             box_xywh) -> None:
        """Start tracking the object in `box_xywh` (reference-camera pixels, top-left x, y)."""
        frames = self._prepare(rgb, thermal)
        ref = frames["rgb"] if frames["rgb"] is not None else frames["thermal"]
        if ref is None:
            raise ValueError("init needs at least one of the RGB and thermal images")
        h, w = ref.shape[:2]
        box = validate_xywh(box_xywh, w, h, "init box")
        if box[2] > w or box[3] > h:
            # The crops are box-sized squares (times the search factor, more when LOST): a box
            # far larger than the image would need gigabytes of zero padding.
            raise ValueError(f"init box (w={box[2]:g}, h={box[3]:g}) is larger than the "
                             f"{w}x{h} image; give the box of the target's visible part")
        mc = self.model_cfg
        self.reset()
        crops = {}
        for m in MODALITIES:
            img = frames[m]
            crops[m] = None if img is None else sample_target(
                img, box, mc.template_factor, mc.template_size, with_mask=False)
        # Template health: a missing modality at init is filled like a missing search crop.
        t_rgb, t_tir = self._fill_pair(crops["rgb"], crops["thermal"],
                                       {"rgb": Health.OK if crops["rgb"] else Health.MISSING,
                                        "thermal": Health.OK if crops["thermal"] else
                                        Health.MISSING})
        self._template = (t_rgb, t_tir)
        any_crop = crops["rgb"] or crops["thermal"]
        self._template_box = torch.as_tensor(
            box_in_crop(box, box, any_crop.resize_factor, mc.template_size),
            dtype=torch.float32, device=self.device)[None]
        self._template_cache = self._encode(t_rgb, t_tir, self._template_box)
        self._box = box
        self._image_size = (w, h)
        self._initialized = True

    def update(self, rgb: np.ndarray | None,
               thermal: np.ndarray | WindowedFrame | None) -> TrackResult:
        """Track one frame pair. A modality may be None (missing); both None -> LOST. Either
        may be a `WindowedFrame` (a raw thermal frame mapped only where it is read)."""
        if not self._initialized:
            raise RuntimeError("Tracker.update called before init (or after reset)")
        t0 = time.perf_counter()
        frames = self._prepare(rgb, thermal)
        ref = frames["rgb"] if frames["rgb"] is not None else frames["thermal"]
        # Checked before health, so a wrong-size frame is an error even when it is black.
        if ref is not None and (ref.shape[1], ref.shape[0]) != self._image_size:
            raise ValueError(f"frame size changed from {self._image_size[0]}x"
                             f"{self._image_size[1]} to {ref.shape[1]}x{ref.shape[0]}; call "
                             "init again")
        health = {m: self._health[m].check(frames[m]) for m in MODALITIES}
        if all(h != Health.OK for h in health.values()) or ref is None:
            self._state = TrackState.LOST if self.cfg.state_machine else self._state
            return TrackResult(self._box, 0.0, self._state, {"total": time.perf_counter() - t0},
                               {m: h.value for m, h in health.items()})
        mc = self.model_cfg
        factor = mc.search_factor * self._search_growth()
        crops = {m: (sample_target(frames[m], self._box, factor, mc.search_size,
                                   with_mask=False)
                     if frames[m] is not None else None) for m in MODALITIES}
        x_rgb, x_tir = self._fill_pair(crops["rgb"], crops["thermal"], health)
        crop = crops["rgb"] if crops["rgb"] is not None else crops["thermal"]
        t1 = time.perf_counter()
        out = self._forward(self._template[0], self._template[1], x_rgb, x_tir,
                            self._template_box, self._template_cache)
        t2 = time.perf_counter()
        box, score = self._decode(out, crop.resize_factor)
        self._advance_state(box, score)
        t3 = time.perf_counter()
        return TrackResult(self._box, score, self._state,
                           {"preprocess": t1 - t0, "model": t2 - t1, "postprocess": t3 - t2,
                            "total": t3 - t0},
                           {m: h.value for m, h in health.items()})

    # -- internals ----------------------------------------------------------------------------

    def _prepare(self, rgb, thermal) -> dict[str, np.ndarray | None]:
        frames = {"rgb": None if rgb is None else check_frame(rgb, "RGB"),
                  "thermal": None if thermal is None else check_frame(thermal, "thermal")}
        if frames["rgb"] is not None and frames["thermal"] is not None:
            ref_m = self.cfg.reference_camera
            other = "thermal" if ref_m == "rgb" else "rgb"
            rh, rw = frames[ref_m].shape[:2]
            if frames[other].shape[:2] != (rh, rw):
                frames[other] = cv2.resize(np.asarray(frames[other]), (rw, rh),
                                           interpolation=cv2.INTER_LINEAR)
        return frames

    def _search_growth(self) -> float:
        if not self.cfg.state_machine or self._state != TrackState.LOST:
            return 1.0
        growth, cap = self.cfg.lost_search_growth, self.cfg.lost_search_max_factor
        frames = self._lost_frames
        if growth > 1:  # growth ** frames overflows (OverflowError) after ~1750 frames at 1.5
            frames = min(frames, math.ceil(math.log(cap) / math.log(growth)))
        return min(growth ** frames, cap)

    def _fill_pair(self, crop_rgb, crop_tir, health) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised (1, 3, S, S) tensors; an unhealthy modality's crop is replaced."""
        t = {m: (None if c is None else self._normalize(c.image))
             for m, c in (("rgb", crop_rgb), ("thermal", crop_tir))}
        for m, other in (("rgb", "thermal"), ("thermal", "rgb")):
            if health[m] == Health.OK and t[m] is not None:
                continue
            ref = t[m] if t[m] is not None else t[other]
            fill = self.cfg.missing_fill
            if fill == "other" and t[other] is not None:
                t[m] = t[other].clone()
            elif fill == "mean" and t[m] is not None:
                t[m] = t[m].mean(dim=(2, 3), keepdim=True).expand_as(t[m]).clone()
            else:
                t[m] = torch.zeros_like(ref)
        return t["rgb"], t["thermal"]

    def _normalize(self, crop: np.ndarray) -> torch.Tensor:
        """A uint8 (S, S) or (S, S, 3) crop -> normalised (1, 3, S, S) on the device."""
        if self._norm_table is not None:
            return normalize_crop_lookup(crop, self._norm_table)
        return normalize_crop(to_three_channels(crop), self.device)

    def _forward(self, z_rgb, z_tir, x_rgb, x_tir, template_box, cache=None) -> dict:
        """The network on normalised crops. With `cache` (from `_encode`) the template
        arguments are not used: the cached forward returns exactly the same."""
        with torch.inference_mode(), self._autocast():
            if cache is not None:
                return self.model.forward_cached(cache, x_rgb, x_tir)
            return self.model(z_rgb, z_tir, x_rgb, x_tir, template_box=template_box,
                              elimination=self.elimination)

    def _encode(self, z_rgb, z_tir, template_box):
        """The template-only part of the forward (a `TemplateCache`), or None without one."""
        if not self.cache_template:
            return None
        with torch.inference_mode(), self._autocast():
            return self.model.encode_template(z_rgb, z_tir, template_box, self.elimination)

    def _autocast(self):
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def _decode(self, out: dict, resize_factor: float) -> tuple[tuple[float, ...], float]:
        from ckd_core.model.head import decode_boxes

        raw = out["score_map"].float()
        response = raw * self.window if self.cfg.hann_window else raw
        boxes, _, idx = decode_boxes(response, out["size_map"].float(),
                                     out["offset_map"].float())
        score = float(raw.flatten()[int(idx[0])])
        if not math.isfinite(score) or not torch.isfinite(boxes).all():
            raise FloatingPointError("the model produced NaN/inf (check the checkpoint and "
                                     "the input images)")
        side = self.model_cfg.search_size / resize_factor
        pred = (boxes[0] * self.model_cfg.search_size / resize_factor).tolist()
        box = map_box_back(pred, self._box, side)
        w, h = self._image_size
        return clip_xywh(box, w, h, self.cfg.clip_margin), min(1.0, max(0.0, score))

    def _advance_state(self, box, score: float) -> None:
        cfg = self.cfg
        if not cfg.state_machine:
            self._box = box
            self._state = TrackState.LOST if score < cfg.lost_threshold else TrackState.TRACKING
            return
        if self._state == TrackState.LOST:
            if score >= cfg.recover_threshold and box[2] > 0 and box[3] > 0:
                self._state, self._box, self._low, self._lost_frames = (
                    TrackState.TRACKING, box, 0, 0)
            else:
                self._lost_frames += 1
            return
        if box[2] > 0 and box[3] > 0:
            self._box = box
        self._low = self._low + 1 if score < cfg.lost_threshold else 0
        if self._low >= cfg.lost_frames:
            self._state, self._lost_frames = TrackState.LOST, 1
