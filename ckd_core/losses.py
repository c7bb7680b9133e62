"""Training losses of CKD, as pure functions (method doc `../shared/ckd_method.md`, section 3).

Task loss (per head, OSTrack's): focal loss on the score map against a Gaussian heat-map, GIoU
and L1 on the box decoded at the predicted peak. Distillation losses (CKD's): style
distillation between the RGB and TIR students, content distillation from each teacher to the
student of its modality. `ckd_total_loss` puts them together.

Conventions shared by every function here:
- Boxes are normalised to [0, 1] of the search crop; formats as in `ckd_core.boxes`
  (xywh = top-left + size, xyxy = corners, cxcywh = centre + size).
- Heat-maps and score maps are (B, 1, G, G) or (B, G, G), row-major: [b, (0,) y, x], with cell
  (y, x) covering [x, x + 1) x [y, y + 1) of the crop scaled by G (cell centre NOT at +0.5:
  OSTrack rounds the scaled box centre to a cell index).
- Features are lists with one (B, N, C) tensor per ViT block (tokens N = template + search).
- Losses are 0-dim tensors in the dtype of their inputs; nothing is detached unless stated.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ckd_core.boxes import cxcywh_to_xyxy, xywh_to_xyxy
from ckd_core.config import LossConfig

LAYER_REDUCTIONS = ("sum", "mean")
STYLE_STDS = ("unbiased", "population")


# ---------------------------------------------------------------------------------------------
# Target heat-map
# ---------------------------------------------------------------------------------------------

def gaussian_radius(h, w, min_overlap: float = 0.7):
    """CornerNet's Gaussian radius, in the variant CenterNet and OSTrack use.

    `h`, `w`: box height and width in heat-map cells (floats or tensors of any, equal shape).
    Returns min(r1, r2, r3) (same kind as the input), where for k = 1, 2, 3

        r_k = (b_k + sqrt(b_k^2 - 4 a_k c_k)) / 2
        a1 = 1,        b1 = h + w,          c1 = w h (1 - m) / (1 + m)
        a2 = 4,        b2 = 2 (h + w),      c2 = (1 - m) w h
        a3 = 4 m,      b3 = -2 m (h + w),   c3 = (m - 1) w h          (m = min_overlap)

    This is the "bug version" (divided by 2, not 2 a_k, and + instead of - for r1, r2) that
    CenterNet copied and OSTrack (hence CKD) trains with; we keep it because it defines the
    targets the published models were trained on. In it r3 is always the smallest.
    Not clamped or truncated here: `gaussian_heatmap` uses max(0, int(r)).
    """
    m = min_overlap
    sqrt = torch.sqrt if isinstance(h, Tensor) or isinstance(w, Tensor) else math.sqrt
    b1 = h + w
    c1 = w * h * (1 - m) / (1 + m)
    r1 = (b1 + sqrt(b1 ** 2 - 4 * c1)) / 2
    b2 = 2 * (h + w)
    c2 = (1 - m) * w * h
    r2 = (b2 + sqrt(b2 ** 2 - 16 * c2)) / 2
    a3 = 4 * m
    b3 = -2 * m * (h + w)
    c3 = (m - 1) * w * h
    r3 = (b3 + sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    if sqrt is math.sqrt:
        return min(r1, r2, r3)
    return torch.minimum(r1, torch.minimum(r2, r3))


def gaussian_heatmap(boxes_xywh: Tensor, grid: int, min_overlap: float = 0.7,
                     dtype: torch.dtype = torch.float32) -> Tensor:
    """OSTrack's target heat-map (`generate_heatmap`): one Gaussian per sample.

    boxes_xywh: (B, 4) GT boxes (x, y, w, h) normalised to the search crop (not clamped: a box
    partly outside the crop gives a clipped Gaussian, a centre outside gives no peak).
    grid: heat-map side G (search size // stride, 16 for CKD).
    Returns (B, G, G) in `dtype` on the boxes' device, with, per sample:
    - box scaled by G (in the boxes' dtype), centre (cx, cy) = round(xy + wh / 2), rounding
      half to even (torch.round), so 4.5 -> 4 and 5.5 -> 6;
    - radius r = max(0, int(gaussian_radius(h, w))), diameter 2r + 1, sigma = (2r + 1) / 6;
    - value exp(-(dx^2 + dy^2) / (2 sigma^2)) for cells with |dx| <= r and |dy| <= r
      (dx = x - cx, dy = y - cy), computed in float64, values < float64 eps (times the
      kernel's maximum, 1) set to 0, 0 elsewhere; cells outside the map are simply not drawn.
    The peak is exactly 1 at (cy, cx) when that cell is inside the map: the focal loss counts
    those cells as positives.
    """
    if boxes_xywh.ndim != 2 or boxes_xywh.shape[-1] != 4:
        raise ValueError(f"gaussian_heatmap: boxes must be (B, 4) xywh, got "
                         f"{tuple(boxes_xywh.shape)}")
    if not torch.isfinite(boxes_xywh).all():
        raise ValueError("gaussian_heatmap: GT boxes contain NaN or infinity")
    if (boxes_xywh[:, 2:] < 0).any():
        raise ValueError("gaussian_heatmap: GT boxes have a negative width or height")
    boxes = boxes_xywh.detach()
    if not boxes.is_floating_point():
        boxes = boxes.float()
    scaled = boxes * grid
    wh = scaled[:, 2:]
    centre = torch.round(scaled[:, :2] + wh / 2).to(torch.float64)  # (B, 2) as (cx, cy)
    radius = gaussian_radius(wh[:, 1], wh[:, 0], min_overlap).clamp_min(0)
    radius = radius.to(torch.int64).to(torch.float64)  # int(): truncation
    sigma = (2 * radius + 1) / 6

    cells = torch.arange(grid, dtype=torch.float64, device=boxes.device)
    dx = cells[None, :] - centre[:, :1]  # (B, G) along x
    dy = cells[None, :] - centre[:, 1:]  # (B, G) along y
    inside = ((dy.abs() <= radius[:, None])[:, :, None]
              & (dx.abs() <= radius[:, None])[:, None, :])  # (B, G, G)
    d2 = dy[:, :, None] ** 2 + dx[:, None, :] ** 2
    g = torch.exp(-d2 / (2 * sigma[:, None, None] ** 2))
    g = torch.where(g < torch.finfo(torch.float64).eps, torch.zeros_like(g), g)
    # OSTrack draws with an element-wise max into a zero map; with one box per map (and
    # values >= 0) that is the Gaussian itself.
    return torch.where(inside, g, torch.zeros_like(g)).to(dtype)


# ---------------------------------------------------------------------------------------------
# Task loss terms
# ---------------------------------------------------------------------------------------------

def focal_loss(pred: Tensor, target: Tensor, alpha: float = 2.0, beta: float = 4.0) -> Tensor:
    """OSTrack's (CornerNet-style) focal loss on a score map.

    pred: (B, 1, G, G) or (B, G, G) probabilities (the head's clamped sigmoid).
    target: same shape, Gaussian heat-map in [0, 1]; cells equal to exactly 1 are positives,
    cells < 1 are negatives weighted by (1 - target)^beta.
    With p = max(pred, 1e-12):
        pos = sum over positives of log(p) (1 - p)^alpha
        neg = sum over negatives of log(1 - p) p^alpha (1 - target)^beta
    Returns -(pos + neg) / n_pos over the whole batch, or -neg when there is no positive.
    (A prediction of exactly 1 gives -inf/NaN, as in OSTrack; the head clamps to 1 - 1e-4.)
    """
    if pred.shape != target.shape:
        raise ValueError(f"focal_loss: pred {tuple(pred.shape)} and target "
                         f"{tuple(target.shape)} must have the same shape")
    target = target.to(pred.dtype)
    pos = target.eq(1).to(pred.dtype)
    neg = target.lt(1).to(pred.dtype)
    neg_weights = torch.pow(1 - target, beta)
    p = torch.clamp(pred, min=1e-12)
    pos_loss = (torch.log(p) * torch.pow(1 - p, alpha) * pos).sum()
    neg_loss = (torch.log(1 - p) * torch.pow(p, alpha) * neg_weights * neg).sum()
    n_pos = pos.sum()
    if n_pos == 0:
        return -neg_loss
    return -(pos_loss + neg_loss) / n_pos


def _safe_div(num: Tensor, den: Tensor) -> Tensor:
    """num / den where den > 0, else 0, with finite gradients in both branches."""
    ok = den > 0
    return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)),
                       torch.zeros_like(num))


def giou_loss(pred_xyxy: Tensor, gt_xyxy: Tensor) -> tuple[Tensor, Tensor]:
    """Generalised IoU loss (DETR/OSTrack `giou_loss`), element-wise pairs.

    pred_xyxy, gt_xyxy: (N, 4) corners (x1, y1, x2, y2) with x2 >= x1, y2 >= y1 (ValueError
    otherwise; OSTrack asserts the same).
    Returns (mean over N of 1 - giou, iou (N,)), with
        iou = inter / union,  giou = iou - (enclosing - union) / enclosing.
    Degenerate boxes (zero area) give no NaN: a ratio whose denominator is 0 is taken as 0,
    so two identical points give iou 0, giou 0 (loss 1); two distinct points or segments
    give iou 0 and giou -1 when their enclosing box has an area, else 0.
    """
    if pred_xyxy.shape != gt_xyxy.shape or pred_xyxy.ndim != 2 or pred_xyxy.shape[-1] != 4:
        raise ValueError(f"giou_loss: expected two (N, 4) xyxy tensors, got "
                         f"{tuple(pred_xyxy.shape)} and {tuple(gt_xyxy.shape)}")
    for name, b in (("predicted", pred_xyxy), ("GT", gt_xyxy)):
        if (b[:, 2:] < b[:, :2]).any():
            raise ValueError(f"giou_loss: {name} boxes have x2 < x1 or y2 < y1 (not xyxy, or "
                             "negative width/height)")
    area_p = (pred_xyxy[:, 2] - pred_xyxy[:, 0]) * (pred_xyxy[:, 3] - pred_xyxy[:, 1])
    area_g = (gt_xyxy[:, 2] - gt_xyxy[:, 0]) * (gt_xyxy[:, 3] - gt_xyxy[:, 1])
    inter_wh = (torch.min(pred_xyxy[:, 2:], gt_xyxy[:, 2:])
                - torch.max(pred_xyxy[:, :2], gt_xyxy[:, :2])).clamp(min=0)
    inter = inter_wh[:, 0] * inter_wh[:, 1]
    union = area_p + area_g - inter
    iou = _safe_div(inter, union)
    encl_wh = (torch.max(pred_xyxy[:, 2:], gt_xyxy[:, 2:])
               - torch.min(pred_xyxy[:, :2], gt_xyxy[:, :2])).clamp(min=0)
    enclosing = encl_wh[:, 0] * encl_wh[:, 1]
    giou = iou - _safe_div(enclosing - union, enclosing)
    return (1 - giou).mean(), iou


def l1_loss(pred_xyxy: Tensor, gt_xyxy: Tensor) -> Tensor:
    """Mean absolute error over all elements (torch.nn.L1Loss, reduction 'mean').

    pred_xyxy, gt_xyxy: (N, 4), the same vectors as `giou_loss` gets.
    """
    if pred_xyxy.shape != gt_xyxy.shape:
        raise ValueError(f"l1_loss: shapes {tuple(pred_xyxy.shape)} and "
                         f"{tuple(gt_xyxy.shape)} differ")
    return (pred_xyxy - gt_xyxy).abs().mean()


def task_loss(head_out: Mapping[str, Tensor], gt_boxes_xywh: Tensor,
              weights: LossConfig = LossConfig(), *, gt_heatmap: Tensor | None = None,
              clamp_pred: bool = False, name: str = "head") -> tuple[Tensor, dict[str, Tensor]]:
    """OSTrack's tracking loss for one CENTER head.

    head_out: 'score_map' (B, 1, G, G) probabilities; 'pred_boxes' (B, 4) or (B, 1, 4), the box
    (cx, cy, w, h) decoded at the predicted peak, normalised to the search crop.
    gt_boxes_xywh: (B, 4) GT (x, y, w, h) normalised to the search crop.
    weights: focal_weight, giou_weight, l1_weight of a LossConfig (1, 2, 5 by default).
    gt_heatmap: the (B, 1, G, G) target if already computed (one for all heads of a batch);
    else `gaussian_heatmap(gt, G)`.
    clamp_pred: clamp the predicted xyxy corners to [-1, 1]. Default False = the authors'
    OSTrack/CKD actor, which clamps only the GT; True is an option for stability.
    The GT xyxy corners are always clamped to [0, 1] (OSTrack).

    Returns (focal_weight * focal + giou_weight * giou + l1_weight * l1, terms) where terms
    holds 'focal', 'giou', 'l1' (attached 0-dim tensors) and 'iou' (detached mean IoU).
    Raises ValueError naming `name` when the predicted boxes contain NaN or infinity.
    """
    score_map = head_out["score_map"]
    pred = head_out["pred_boxes"]
    if not torch.isfinite(pred).all():
        raise ValueError(f"task_loss ({name}): predicted boxes contain NaN or infinity; the "
                         "network has diverged (lower the learning rate or check the inputs)")
    if score_map.ndim != 4 or score_map.shape[1] != 1 or score_map.shape[2] != score_map.shape[3]:
        raise ValueError(f"task_loss ({name}): score_map must be (B, 1, G, G), got "
                         f"{tuple(score_map.shape)}")
    batch = score_map.shape[0]
    if gt_boxes_xywh.shape != (batch, 4):
        raise ValueError(f"task_loss ({name}): gt_boxes_xywh must be ({batch}, 4), got "
                         f"{tuple(gt_boxes_xywh.shape)}")
    if pred.shape not in ((batch, 4), (batch, 1, 4)):
        raise ValueError(f"task_loss ({name}): pred_boxes must be ({batch}, 4) or "
                         f"({batch}, 1, 4), got {tuple(pred.shape)}")
    if gt_heatmap is None:
        gt_heatmap = gaussian_heatmap(gt_boxes_xywh, score_map.shape[-1],
                                      dtype=score_map.dtype).unsqueeze(1)

    pred_xyxy = cxcywh_to_xyxy(pred.reshape(batch, 4))
    if clamp_pred:
        pred_xyxy = pred_xyxy.clamp(min=-1.0, max=1.0)
    gt_xyxy = xywh_to_xyxy(gt_boxes_xywh.to(pred_xyxy.dtype)).clamp(min=0.0, max=1.0)
    giou, iou = giou_loss(pred_xyxy, gt_xyxy)
    l1 = l1_loss(pred_xyxy, gt_xyxy)
    focal = focal_loss(score_map, gt_heatmap)
    total = weights.focal_weight * focal + weights.giou_weight * giou + weights.l1_weight * l1
    return total, {"focal": focal, "giou": giou, "l1": l1, "iou": iou.detach().mean()}


# ---------------------------------------------------------------------------------------------
# Distillation
# ---------------------------------------------------------------------------------------------

def _check_layers(fn: str, a: Sequence[Tensor], b: Sequence[Tensor], reduction: str) -> None:
    if reduction not in LAYER_REDUCTIONS:
        raise ValueError(f"{fn}: reduction = {reduction!r}; expected one of "
                         f"{', '.join(LAYER_REDUCTIONS)}")
    if len(a) == 0 or len(a) != len(b):
        raise ValueError(f"{fn}: need the same non-zero number of layers on both sides, got "
                         f"{len(a)} and {len(b)}")
    for i, (x, y) in enumerate(zip(a, b)):
        if x.ndim != 3 or x.shape != y.shape:
            raise ValueError(f"{fn}: layer {i} features must be two (B, N, C) tensors of the "
                             f"same shape, got {tuple(x.shape)} and {tuple(y.shape)}")


def _reduce_layers(per_layer: list[Tensor], reduction: str) -> Tensor:
    total = torch.stack(per_layer).sum()
    return total / len(per_layer) if reduction == "mean" else total


def style_distillation(feats_rgb: Sequence[Tensor], feats_tir: Sequence[Tensor],
                       reduction: str = "sum", std: str = "unbiased") -> Tensor:
    """CKD's style distillation L_SD between the RGB and TIR students.

    feats_rgb, feats_tir: one (B, N, C) tensor per layer, equal shapes.
    Per layer, per sample and channel: mu = mean over tokens N, sigma = std over tokens
    (std "unbiased": divide by N - 1, the authors' code; "population": by N, the paper);
    layer loss = mean over B and C of (mu_r - mu_t)^2 + (sigma_r - sigma_t)^2.
    reduction "sum" (code) or "mean" (paper, 1/L) over layers. Nothing is detached: the
    gradient reaches both students. (A channel constant over tokens has sigma 0 and a NaN
    gradient through sigma, as in the authors' code.)
    """
    _check_layers("style_distillation", feats_rgb, feats_tir, reduction)
    if std not in STYLE_STDS:
        raise ValueError(f"style_distillation: std = {std!r}; expected one of "
                         f"{', '.join(STYLE_STDS)}")
    correction = 1 if std == "unbiased" else 0
    per_layer = []
    for r, t in zip(feats_rgb, feats_tir):
        mu_r, mu_t = r.mean(dim=1), t.mean(dim=1)
        sd_r, sd_t = r.std(dim=1, correction=correction), t.std(dim=1, correction=correction)
        per_layer.append(((mu_r - mu_t) ** 2 + (sd_r - sd_t) ** 2).mean())
    return _reduce_layers(per_layer, reduction)


def content_distillation(student_feats: Sequence[Tensor], teacher_feats: Sequence[Tensor],
                         reduction: str = "sum") -> Tensor:
    """CKD's content distillation L_CD from a teacher to the student of the same modality.

    student_feats, teacher_feats: one (B, N, C) tensor per layer, equal shapes.
    Per layer: instance-normalise each (sample, channel) over the N tokens (no affine, biased
    variance, eps 1e-5: `F.instance_norm` on (B, C, N), as nn.InstanceNorm1d in the authors'
    code), then MSE (mean over all B*N*C elements) between student and teacher.
    The teacher is detached (no gradient reaches it). reduction "sum" (code) or "mean"
    (paper, 1/L) over layers.
    """
    _check_layers("content_distillation", student_feats, teacher_feats, reduction)
    per_layer = []
    for s, t in zip(student_feats, teacher_feats):
        s_n = F.instance_norm(s.transpose(1, 2), eps=1e-5)
        t_n = F.instance_norm(t.detach().transpose(1, 2), eps=1e-5)
        per_layer.append(F.mse_loss(s_n, t_n))
    return _reduce_layers(per_layer, reduction)


def content_distillation_both(student_rgb: Sequence[Tensor], teacher_rgb: Sequence[Tensor],
                              student_tir: Sequence[Tensor], teacher_tir: Sequence[Tensor],
                              reduction: str = "sum") -> Tensor:
    """L_CD of both modalities: content_distillation(RGB) + content_distillation(TIR)."""
    return (content_distillation(student_rgb, teacher_rgb, reduction)
            + content_distillation(student_tir, teacher_tir, reduction))


# ---------------------------------------------------------------------------------------------
# Total
# ---------------------------------------------------------------------------------------------

def paper_loss_config(base: LossConfig | None = None) -> LossConfig:
    """The paper's variant of the loss: 1/L layer mean, population std, lambda_sd:lambda_cd = 2:1.

    The paper gives only the ratio; we keep the code's cd_weight 0.1 and set sd_weight 0.2.
    Other fields are taken from `base` (default LossConfig()).
    """
    return dataclasses.replace(base or LossConfig(), sd_weight=0.2, cd_weight=0.1,
                               layer_reduction="mean", style_std="population")


def ckd_total_loss(student_out: Mapping[str, Tensor], gt_boxes_xywh: Tensor,
                   student_feats_rgb: Sequence[Tensor] | None = None,
                   student_feats_tir: Sequence[Tensor] | None = None,
                   teacher_feats_rgb: Sequence[Tensor] | None = None,
                   teacher_feats_tir: Sequence[Tensor] | None = None,
                   teacher_out_rgb: Mapping[str, Tensor] | None = None,
                   teacher_out_tir: Mapping[str, Tensor] | None = None,
                   cfg: LossConfig = LossConfig(), *, clamp_pred: bool = False
                   ) -> tuple[Tensor, dict[str, float]]:
    """The CKD stage-1 objective (authors' code):

        L = task(fused student head) + sd_weight * L_SD(student RGB, student TIR)
            + cd_weight * (L_CD(teacher RGB -> student RGB) + L_CD(teacher TIR -> student TIR))
            + task(teacher RGB head) + task(teacher TIR head)

    student_out, teacher_out_*: head outputs as `task_loss` takes them; the teacher terms are
    added (with weight 1, like the code) when cfg.teacher_task_loss is true.
    gt_boxes_xywh: (B, 4) normalised GT; one heat-map is built and shared by all heads.
    *_feats_*: per-block (B, N, C) features (every block's output before the final norm).
    Student features are needed when sd_weight > 0, all four when cd_weight > 0, the teacher
    head outputs when teacher_task_loss; what is not needed may be None, and given features
    are still measured for the log. Layer reduction and std come from cfg.

    Returns (L, log) where log maps names to detached Python floats: 'total', 'student/task',
    'student/focal', 'student/giou', 'student/l1', 'student/iou', the same for 'teacher_rgb/'
    and 'teacher_tir/' when computed, 'sd', 'cd_rgb', 'cd_tir', 'cd' when computed.
    """
    heat = gaussian_heatmap(gt_boxes_xywh, student_out["score_map"].shape[-1],
                            dtype=student_out["score_map"].dtype).unsqueeze(1)
    log: dict[str, float] = {}

    def head_term(prefix: str, out: Mapping[str, Tensor]) -> Tensor:
        value, terms = task_loss(out, gt_boxes_xywh, cfg, gt_heatmap=heat,
                                 clamp_pred=clamp_pred, name=prefix)
        log[f"{prefix}/task"] = float(value.detach())
        log.update({f"{prefix}/{k}": float(v.detach()) for k, v in terms.items()})
        return value

    total = head_term("student", student_out)

    if cfg.teacher_task_loss:
        for prefix, out in (("teacher_rgb", teacher_out_rgb), ("teacher_tir", teacher_out_tir)):
            if out is None:
                raise ValueError(f"ckd_total_loss: cfg.teacher_task_loss is on but {prefix} "
                                 "head output is None; pass it or set teacher_task_loss false")
            total = total + head_term(prefix, out)

    have_students = student_feats_rgb is not None and student_feats_tir is not None
    if cfg.sd_weight > 0 and not have_students:
        raise ValueError("ckd_total_loss: sd_weight > 0 needs student_feats_rgb and "
                         "student_feats_tir")
    if have_students:
        sd = style_distillation(student_feats_rgb, student_feats_tir, cfg.layer_reduction,
                                cfg.style_std)
        log["sd"] = float(sd.detach())
        if cfg.sd_weight > 0:
            total = total + cfg.sd_weight * sd

    have_all = have_students and teacher_feats_rgb is not None and teacher_feats_tir is not None
    if cfg.cd_weight > 0 and not have_all:
        raise ValueError("ckd_total_loss: cd_weight > 0 needs the student and teacher "
                         "features of both modalities")
    if have_all:
        cd_rgb = content_distillation(student_feats_rgb, teacher_feats_rgb, cfg.layer_reduction)
        cd_tir = content_distillation(student_feats_tir, teacher_feats_tir, cfg.layer_reduction)
        log["cd_rgb"] = float(cd_rgb.detach())
        log["cd_tir"] = float(cd_tir.detach())
        log["cd"] = log["cd_rgb"] + log["cd_tir"]
        if cfg.cd_weight > 0:
            total = total + cfg.cd_weight * (cd_rgb + cd_tir)

    log["total"] = float(total.detach())
    return total, log
