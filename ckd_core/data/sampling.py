"""Training pairs (template crop + search crop, RGB and thermal) as CKD / OSTrack sample them.

One item (method doc section 4, OSTrack's TrackingSampler "causal" mode + STARKProcessing):
1. Sequence: uniform over the sequences that have at least one usable pair.
2. Template frame: uniform over the frames with a valid box (finite, w > 0, h > 0) that have
   a valid frame within `max_gap` frames after them. Search frame: uniform over the valid
   frames t+1 .. t+max_gap (t itself when max_gap is 0). Frames are those with dense GT; a
   sequence with only sparse GT (VTUAV without a dense file) uses its annotated frames
   0, 10, 20, ... and max_gap still counts frames.
3. The box of a frame is its VISIBLE (RGB) GT row; the thermal GT is not used: both crops
   are cut with the same box so that RGB and thermal stay registered (the datasets are).
4. Joint augmentation, drawn once per pair and applied to all four full frames before
   cropping (OSTrack's joint transform, whose search call re-uses the template's draw):
   grayscale with probability `grayscale_prob` (RGB -> gray -> 3 channels); horizontal flip
   with probability `flip_prob`, boxes flipped to x' = W - x - w (the exact mirror of the
   pixels; pytracking's coordinate flip gives W - 1 - x - w, one pixel off).
5. Jitter (OSTrack `_get_jittered_box`): w, h each *= exp(N(0, 1) * scale_jitter), then the
   centre += sqrt(w' h') * center_jitter * (U(0, 1) - 0.5), x and y drawn independently.
   Search: 0.25 / 3.0; template: 0 / 0 (no jitter) by default.
6. Crop each modality with `sample_target(frame, jittered_box, factor, size)` (template
   2.0 / 128, search 4.0 / 256 from ModelConfig); the GT box in the crop is OSTrack's
   transform_image_to_crop (`box_in_crop`) normalised by the crop size and NOT clipped, as
   OSTrack keeps it: it may extend past [0, 1] when the target is cut by the crop edge.
7. Brightness: crop values * U(1 - j, 1 + j), clipped to [0, 255], drawn separately for the
   template and the search crop (OSTrack's ToTensorAndJitter, one draw per set) and shared by
   both modalities. Then ImageNet normalisation (`imaging.normalize_crop`).
8. A pair is degenerate, and another one is drawn, when a crop would be smaller than one
   pixel or when every patch-grid cell of a crop is padding (OSTrack's check: the pad mask
   sampled nearest to the backbone stride is all padding). After `max_attempts` degenerate
   draws the item raises an error instead of looping forever.

Determinism: item i of epoch e is a pure function of (seed, e, i) through its own
np.random.Generator, so it does not depend on the number of workers, their order or the
process that reads it. The epoch is part of the dataset: `dataset.for_epoch(e)` is a cheap
copy for epoch e; build each epoch's loader from it.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Sequence as SequenceT

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ckd_core.config import DataConfig, ModelConfig
from ckd_core.crops import Crop, box_in_crop, sample_target
from ckd_core.data.sequences import Sequence
from ckd_core.imaging import normalize_crop, to_three_channels

DEFAULT_MAX_ATTEMPTS = 100


@dataclass(frozen=True)
class _PairSource:
    """A sequence's usable frames: valid frame ids (sorted), their RGB boxes, and the indices
    into `frame_ids` that can be a template (a valid frame follows within max_gap)."""

    sequence: Sequence
    frame_ids: np.ndarray  # (K,)
    boxes: np.ndarray  # (K, 4) xywh
    template_idx: np.ndarray  # (M,) indices into frame_ids


@dataclass(frozen=True)
class _CropSpec:
    """How one crop of a pair (template or search) is cut."""

    name: str
    factor: float  # crop side = factor * sqrt(w h) of the jittered box
    size: int  # output side in pixels
    scale_jitter: float
    center_jitter: float


def valid_boxes(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) xywh -> (N,) bool: finite and w > 0 and h > 0 (out-of-view rows are False)."""
    boxes = np.asarray(boxes, dtype=np.float64)
    return np.isfinite(boxes).all(axis=1) & (boxes[:, 2] > 0) & (boxes[:, 3] > 0)


def jitter_box(box, scale_jitter: float, center_jitter: float,
               rng: np.random.Generator) -> np.ndarray:
    """OSTrack's _get_jittered_box: xywh -> xywh with jittered size and centre (pixels)."""
    x, y, w, h = (float(v) for v in box)
    size = np.array([w, h]) * np.exp(rng.standard_normal(2) * scale_jitter)
    max_offset = math.sqrt(size[0] * size[1]) * center_jitter
    center = np.array([x + 0.5 * w, y + 0.5 * h]) + max_offset * (rng.random(2) - 0.5)
    return np.concatenate([center - 0.5 * size, size])


def flip_box(box, image_width: int) -> np.ndarray:
    """Mirror an xywh box in an image `image_width` pixels wide: x' = W - x - w."""
    x, y, w, h = (float(v) for v in box)
    return np.array([image_width - x - w, y, w, h])


def grayscale(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> the same image in gray, repeated to 3 channels."""
    return to_three_channels(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))


def is_degenerate(crop: Crop, stride: int) -> bool:
    """True when every backbone patch cell of the crop is padding.

    OSTrack samples the pad mask nearest to the patch grid (F.interpolate(size=out // stride),
    i.e. pixel (stride * i, stride * j)) and rejects the crop when all of it is padding; that
    also covers a crop that is padding everywhere."""
    return bool(crop.pad_mask[::stride, ::stride].all())


class PairDataset(Dataset):
    """Map-style dataset of `samples_per_epoch` random training pairs (module docstring).

    Item dict (T = template_size, S = search_size):
      template_rgb, template_tir: (3, T, T) float32, normalised;
      search_rgb, search_tir: (3, S, S) float32, normalised;
      template_box, search_box: (4,) float32, GT (x, y, w, h) in the crop / crop size, unclipped;
      template_pad_mask: (T, T) bool, search_pad_mask: (S, S) bool, True = zero padding;
      sequence: str; template_frame, search_frame: int frame ids; flipped: bool.
    """

    def __init__(self, sequences: SequenceT[Sequence], data: DataConfig, model: ModelConfig,
                 samples_per_epoch: int, seed: int, epoch: int = 0,
                 max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> None:
        if samples_per_epoch <= 0:
            raise ValueError(f"samples_per_epoch = {samples_per_epoch}; expected > 0")
        if seed < 0 or epoch < 0:
            raise ValueError(f"seed = {seed}, epoch = {epoch}; both must be >= 0")
        if max_attempts <= 0:
            raise ValueError(f"max_attempts = {max_attempts}; expected > 0")
        self.data = data
        self.model = model
        self.samples_per_epoch = samples_per_epoch
        self.seed = seed
        self.epoch = epoch
        self.max_attempts = max_attempts
        self.sources = _pair_sources(sequences, data.max_gap)
        self.crop_specs = (
            _CropSpec("template", model.template_factor, model.template_size,
                      data.template_scale_jitter, data.template_center_jitter),
            _CropSpec("search", model.search_factor, model.search_size,
                      data.search_scale_jitter, data.search_center_jitter))

    def for_epoch(self, epoch: int) -> "PairDataset":
        """The same dataset drawing epoch `epoch`'s pairs (shares the sequences)."""
        if epoch < 0:
            raise ValueError(f"epoch = {epoch}; expected >= 0")
        other = copy.copy(self)
        other.epoch = epoch
        return other

    def __len__(self) -> int:
        return self.samples_per_epoch

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.samples_per_epoch:
            raise IndexError(f"item {index} out of range (0..{self.samples_per_epoch - 1})")
        rng = np.random.default_rng([self.seed, self.epoch, index])
        rejected: list[str] = []
        for _ in range(self.max_attempts):
            item = self._draw(rng, rejected)
            if item is not None:
                return item
        shown = "; ".join(rejected[-3:])
        raise RuntimeError(f"item {index} of epoch {self.epoch}: {self.max_attempts} drawn pairs "
                           f"in a row were degenerate (last: {shown}); check the ground truth "
                           "(tiny or off-image boxes) or raise max_attempts")

    def _draw(self, rng: np.random.Generator, rejected: list[str]) -> dict[str, Any] | None:
        d = self.data
        src = self.sources[rng.integers(len(self.sources))]
        seq = src.sequence
        t_pos = int(src.template_idx[rng.integers(len(src.template_idx))])
        t_frame = int(src.frame_ids[t_pos])
        if d.max_gap == 0:
            s_pos = t_pos
        else:
            last = int(np.searchsorted(src.frame_ids, t_frame + d.max_gap, side="right"))
            s_pos = int(rng.integers(t_pos + 1, last))
        s_frame = int(src.frame_ids[s_pos])
        gray = rng.random() < d.grayscale_prob
        flip = rng.random() < d.flip_prob

        sets = {}
        for spec, frame_id, pos in zip(self.crop_specs, (t_frame, s_frame), (t_pos, s_pos)):
            name, factor, size = spec.name, spec.factor, spec.size
            rgb, tir = seq.frame(frame_id)
            if rgb.shape != tir.shape:
                raise ValueError(f"sequence {seq.name} frame {frame_id}: RGB is "
                                 f"{rgb.shape[1]}x{rgb.shape[0]} but thermal is "
                                 f"{tir.shape[1]}x{tir.shape[0]}; the sampler cuts both with one "
                                 "box, so they must be registered at the same size")
            box = src.boxes[pos]
            if gray:
                rgb, tir = grayscale(rgb), grayscale(tir)
            if flip:
                rgb, tir = cv2.flip(rgb, 1), cv2.flip(tir, 1)
                box = flip_box(box, rgb.shape[1])
            jittered = jitter_box(box, spec.scale_jitter, spec.center_jitter, rng)
            where = f"{seq.name} frame {frame_id} ({name})"
            try:
                crop_rgb = sample_target(rgb, jittered, factor, size)
            except ValueError as exc:  # the crop would be smaller than one pixel
                rejected.append(f"{where}: {exc}")
                return None
            if is_degenerate(crop_rgb, self.model.backbone.patch_size):
                rejected.append(f"{where}: crop is all padding")
                return None
            crop_tir = sample_target(tir, jittered, factor, size)
            brightness = rng.uniform(max(0.0, 1.0 - d.brightness_jitter), 1.0 + d.brightness_jitter)
            sets[name] = {
                f"{name}_rgb": _to_tensor(crop_rgb.image, brightness),
                f"{name}_tir": _to_tensor(crop_tir.image, brightness),
                f"{name}_box": torch.as_tensor(
                    box_in_crop(box, jittered, crop_rgb.resize_factor, size), dtype=torch.float32),
                f"{name}_pad_mask": torch.from_numpy(crop_rgb.pad_mask.copy()),
            }
        return {**sets["template"], **sets["search"], "sequence": seq.name,
                "template_frame": t_frame, "search_frame": s_frame, "flipped": flip}


def _to_tensor(crop: np.ndarray, brightness: float) -> torch.Tensor:
    """uint8 (H, W, 3) crop -> (3, H, W) float32: brightness (clipped to 0..255), normalised."""
    scaled = np.clip(crop.astype(np.float32) * np.float32(brightness), 0.0, 255.0)
    return normalize_crop(scaled)[0]


def _pair_sources(sequences: SequenceT[Sequence], max_gap: int) -> list[_PairSource]:
    if not sequences:
        raise ValueError("no sequences to sample training pairs from")
    sources = []
    for seq in sequences:
        ann = seq.annotated_frames()
        ok = valid_boxes(ann.rgb)
        frame_ids = np.asarray(ann.frame_ids)[ok]
        boxes = np.asarray(ann.rgb, dtype=np.float64)[ok]
        if max_gap == 0:
            template_idx = np.arange(len(frame_ids))
        else:
            # A template needs the next valid frame to be within max_gap frames.
            template_idx = np.flatnonzero(np.diff(frame_ids) <= max_gap)
        if len(template_idx):
            sources.append(_PairSource(seq, frame_ids, boxes, template_idx))
    if not sources:
        raise ValueError(f"none of the {len(sequences)} sequences has two frames with valid "
                         f"boxes within max_gap={max_gap} frames of each other")
    return sources


def _init_worker(worker_id: int) -> None:
    # Each worker is one process already; OpenCV's own thread pool per worker would
    # oversubscribe the cores.
    cv2.setNumThreads(1)


def make_loader(dataset: PairDataset, batch_size: int, num_workers: int, seed: int,
                distributed: bool = False, pin_memory: bool = False) -> DataLoader:
    """Batches of `dataset` in index order, incomplete last batch dropped.

    Items are already random and depend only on the dataset's (seed, epoch, index), so the
    order is not shuffled and the batches are the same for any `num_workers`. distributed:
    each process of the initialised torch.distributed group reads every world_size-th item
    (DistributedSampler without shuffling). seed: seeds the loader's own generator (the
    workers' base seeds), for completeness; nothing in the pairs depends on it.
    """
    if batch_size <= 0 or num_workers < 0:
        raise ValueError(f"batch_size = {batch_size}, num_workers = {num_workers}; expected "
                         "batch_size > 0 and num_workers >= 0")
    sampler = DistributedSampler(dataset, shuffle=False, seed=seed, drop_last=True) \
        if distributed else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, sampler=sampler,
                      num_workers=num_workers, drop_last=True, pin_memory=pin_memory,
                      generator=torch.Generator().manual_seed(seed),
                      worker_init_fn=_init_worker if num_workers > 0 else None,
                      # spawn, not fork: the trainer and tests already run threads (torch,
                      # tqdm, executors) and a forked worker can deadlock on an inherited lock
                      multiprocessing_context="spawn" if num_workers > 0 else None,
                      persistent_workers=False)
