"""Tests of ckd_core.losses against values worked out by hand or recomputed here with numpy
loops (independent of the vectorised torch code)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ckd_core.config import LossConfig
from ckd_core.losses import (ckd_total_loss, content_distillation, content_distillation_both,
                             focal_loss, gaussian_heatmap, gaussian_radius, giou_loss, l1_loss,
                             paper_loss_config, style_distillation, task_loss)

EPS64 = np.finfo(np.float64).eps


# ---------------------------------------------------------------------------------------------
# Independent references (numpy / plain Python)
# ---------------------------------------------------------------------------------------------

def ref_radius(h: float, w: float, m: float = 0.7) -> float:
    """The CenterNet/OSTrack radius re-derived: for each of CornerNet's three quadratics
    a r^2 - b r + c = 0, that code returns a * (its larger root); take the smallest."""
    quads = [(1.0, h + w, w * h * (1 - m) / (1 + m)),
             (4.0, 2 * (h + w), (1 - m) * w * h),
             (4 * m, -2 * m * (h + w), (m - 1) * w * h)]
    return min(a * max(np.roots([a, -b, c]).real) for a, b, c in quads)


def ref_heatmap(box_xywh, grid: int) -> np.ndarray:
    x, y, w, h = (float(v) * grid for v in box_xywh)
    cx, cy = round(x + w / 2), round(y + h / 2)  # Python's round: half to even
    r = max(0, int(ref_radius(h, w)))
    sigma = (2 * r + 1) / 6
    out = np.zeros((grid, grid))
    for i in range(grid):
        for j in range(grid):
            dy, dx = i - cy, j - cx
            if abs(dx) <= r and abs(dy) <= r:
                v = math.exp(-(dx * dx + dy * dy) / (2 * sigma * sigma))
                out[i, j] = v if v >= EPS64 else 0.0
    return out


def ref_focal(pred: np.ndarray, target: np.ndarray) -> float:
    pos_sum = neg_sum = 0.0
    n_pos = 0
    for p, t in zip(pred.ravel(), target.ravel()):
        p = max(p, 1e-12)
        if t == 1:
            n_pos += 1
            pos_sum += math.log(p) * (1 - p) ** 2
        else:
            neg_sum += math.log(1 - p) * p ** 2 * (1 - t) ** 4
    return -neg_sum if n_pos == 0 else -(pos_sum + neg_sum) / n_pos


def ref_giou(a, b) -> tuple[float, float]:
    """(iou, giou) of two xyxy boxes, non-degenerate."""
    area = lambda q: (q[2] - q[0]) * (q[3] - q[1])
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = area(a) + area(b) - inter
    enc = (max(a[2], b[2]) - min(a[0], b[0])) * (max(a[3], b[3]) - min(a[1], b[1]))
    iou = inter / union
    return iou, iou - (enc - union) / enc


def ref_style_layer(r: np.ndarray, t: np.ndarray, ddof: int) -> float:
    B, N, C = r.shape
    acc = 0.0
    for b in range(B):
        for c in range(C):
            acc += (r[b, :, c].mean() - t[b, :, c].mean()) ** 2
            acc += (r[b, :, c].std(ddof=ddof) - t[b, :, c].std(ddof=ddof)) ** 2
    return acc / (B * C)


def ref_instance_norm(x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    for b in range(x.shape[0]):
        for c in range(x.shape[2]):
            col = x[b, :, c]
            out[b, :, c] = (col - col.mean()) / math.sqrt(col.var() + 1e-5)
    return out


def ref_content_layer(s: np.ndarray, t: np.ndarray) -> float:
    return float(((ref_instance_norm(s) - ref_instance_norm(t)) ** 2).mean())


def feats(L=3, B=2, N=5, C=4, scale=1.0, requires_grad=False):
    out = [torch.randn(B, N, C, dtype=torch.float64) * scale + 0.3 * i for i in range(L)]
    return [f.requires_grad_(requires_grad) for f in out]


# ---------------------------------------------------------------------------------------------
# Gaussian radius and heat-map
# ---------------------------------------------------------------------------------------------

def test_radius_worked_by_hand():
    # m = 0.7, w = h = 4: r3 = (-1.4 * 8 + sqrt(1.96 * 64 + 3.36 * 16)) / 2
    #                         = (-11.2 + sqrt(179.2)) / 2 = 1.09328...; r1 = 7.44, r2 = 14.33
    assert gaussian_radius(4.0, 4.0) == pytest.approx((-11.2 + math.sqrt(179.2)) / 2, abs=1e-12)
    assert gaussian_radius(4.0, 4.0) == pytest.approx(1.093280, abs=1e-6)
    # w = h = 2: (-5.6 + sqrt(44.8)) / 2 = (-5.6 + 6.693280) / 2 = 0.546640 -> int radius 0
    assert gaussian_radius(2.0, 2.0) == pytest.approx(0.546640, abs=1e-6)


@pytest.mark.parametrize("h,w", [(1.0, 1.0), (3.7, 1.2), (0.4, 9.5), (12.0, 15.0), (6.0, 0.0)])
def test_radius_matches_rederivation(h, w):
    assert gaussian_radius(h, w) == pytest.approx(ref_radius(h, w), rel=1e-9, abs=1e-12)
    t = gaussian_radius(torch.tensor([h], dtype=torch.float64),
                        torch.tensor([w], dtype=torch.float64))
    assert float(t) == pytest.approx(ref_radius(h, w), rel=1e-9, abs=1e-12)


def test_heatmap_hand_case_3x3():
    # 4x4-cell box at (4, 4): centre (6, 6), r = 1, sigma = 0.5: edge exp(-2), corner exp(-4)
    heat = gaussian_heatmap(torch.tensor([[0.25, 0.25, 0.25, 0.25]]), 16)[0]
    assert heat.dtype == torch.float32
    expected = np.zeros((16, 16))
    expected[5:8, 5:8] = [[math.exp(-4), math.exp(-2), math.exp(-4)],
                          [math.exp(-2), 1.0, math.exp(-2)],
                          [math.exp(-4), math.exp(-2), math.exp(-4)]]
    np.testing.assert_allclose(heat.numpy(), expected, rtol=1e-6, atol=0)
    assert heat[6, 6].item() == 1.0


def test_heatmap_half_to_even_peak():
    # 1x1-cell box: x*16 = 4, w*16 = 1 -> cx = 4.5 -> 4 (even); y*16 = 5 -> cy = 5.5 -> 6.
    # r = int(0.273) = 0, so the map is the single peak.
    heat = gaussian_heatmap(torch.tensor([[0.25, 0.3125, 0.0625, 0.0625]]), 16)[0]
    assert heat.nonzero().tolist() == [[6, 4]]
    assert heat[6, 4].item() == 1.0


BOXES = [
    (0.30, 0.40, 0.20, 0.10),     # ordinary
    (0.00, 0.00, 0.50, 0.60),     # large, near the corner: clipped Gaussian
    (0.85, 0.70, 0.40, 0.45),     # sticks out of the crop on the right and bottom
    (-0.20, 0.50, 0.10, 0.10),    # centre left of the map: nothing drawn
    (0.10, 0.90, 0.05, 0.30),     # thin, tall
    (0.25, 0.3125, 0.0625, 0.0625),  # half-to-even case
]


@pytest.mark.parametrize("grid", [16, 8])
def test_heatmap_matches_loop(grid):
    boxes = torch.tensor(BOXES, dtype=torch.float64)
    heat = gaussian_heatmap(boxes, grid, dtype=torch.float64)
    assert heat.shape == (len(BOXES), grid, grid)
    for b, box in enumerate(BOXES):
        np.testing.assert_allclose(heat[b].numpy(), ref_heatmap(box, grid), rtol=1e-12,
                                   atol=1e-15)
    assert heat[3].abs().sum() == 0  # centre outside: no Gaussian, no positive


def test_heatmap_rejects_bad_boxes():
    with pytest.raises(ValueError, match="NaN"):
        gaussian_heatmap(torch.tensor([[0.1, float("nan"), 0.2, 0.2]]), 16)
    with pytest.raises(ValueError, match="negative"):
        gaussian_heatmap(torch.tensor([[0.1, 0.1, -0.2, 0.2]]), 16)


# ---------------------------------------------------------------------------------------------
# Focal, GIoU, L1
# ---------------------------------------------------------------------------------------------

def test_focal_matches_loop():
    target = gaussian_heatmap(torch.tensor(BOXES[:3], dtype=torch.float64), 8,
                              dtype=torch.float64).unsqueeze(1)
    pred = torch.rand(3, 1, 8, 8, dtype=torch.float64).clamp(1e-4, 1 - 1e-4)
    got = focal_loss(pred, target)
    assert got.item() == pytest.approx(ref_focal(pred.numpy(), target.numpy()), rel=1e-10)
    # (B, G, G) is accepted and gives the same value
    assert focal_loss(pred[:, 0], target[:, 0]).item() == pytest.approx(got.item(), rel=1e-12)


def test_focal_zero_positives():
    target = torch.full((2, 1, 4, 4), 0.5, dtype=torch.float64)
    target[0, 0, 0, 0] = 0.0
    pred = torch.rand(2, 1, 4, 4, dtype=torch.float64).clamp(1e-4, 1 - 1e-4)
    neg = sum(math.log(1 - p) * p ** 2 * (1 - t) ** 4
              for p, t in zip(pred.numpy().ravel(), target.numpy().ravel()))
    assert focal_loss(pred, target).item() == pytest.approx(-neg, rel=1e-10)


def test_focal_hand_case():
    # one positive predicted 0.5, one negative (target 0) predicted 0.5:
    # -(log(.5) * .25 + log(.5) * .25 * 1) / 1 = -0.5 log 0.5
    pred = torch.tensor([[[[0.5, 0.5]]]])
    target = torch.tensor([[[[1.0, 0.0]]]])
    assert focal_loss(pred, target).item() == pytest.approx(-0.5 * math.log(0.5), rel=1e-6)


def test_giou_identical_disjoint_overlapping():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[0.0, 0.0, 2.0, 2.0], [2.0, 0.0, 3.0, 1.0], [1.0, 1.0, 3.0, 3.0]])
    # identical: iou 1, giou 1; disjoint: union 2, hull 3 -> giou = -1/3;
    # overlapping: inter 1, union 7, hull 9 -> giou = 1/7 - 2/9 = -5/63
    loss, iou = giou_loss(a[:1], b[:1])
    assert loss.item() == 0.0 and iou.item() == 1.0
    loss, iou = giou_loss(a[1:2], b[1:2])
    assert iou.item() == 0.0 and 1 - loss.item() == pytest.approx(-1 / 3) and 1 - loss.item() < 0
    loss, iou = giou_loss(a[2:], b[2:])
    assert iou.item() == pytest.approx(1 / 7) and loss.item() == pytest.approx(1 + 5 / 63)
    loss, _ = giou_loss(a, b)
    assert loss.item() == pytest.approx((0 + 4 / 3 + 1 + 5 / 63) / 3)


def test_giou_matches_reference_random():
    g = np.random.default_rng(0)
    xy = g.uniform(0, 1, (20, 2))
    a = np.concatenate([xy, xy + g.uniform(0.05, 0.5, (20, 2))], 1)
    xy = g.uniform(0, 1, (20, 2))
    b = np.concatenate([xy, xy + g.uniform(0.05, 0.5, (20, 2))], 1)
    loss, iou = giou_loss(torch.tensor(a), torch.tensor(b))
    ref = [ref_giou(p, q) for p, q in zip(a, b)]
    np.testing.assert_allclose(iou.numpy(), [r[0] for r in ref], rtol=1e-12)
    assert loss.item() == pytest.approx(np.mean([1 - r[1] for r in ref]), rel=1e-12)


def test_giou_degenerate_boxes_no_nan():
    pred = torch.tensor([[0.5, 0.5, 0.5, 0.5],   # point == point
                         [0.1, 0.1, 0.1, 0.1],   # point vs distant point
                         [0.2, 0.2, 0.2, 0.6],   # segment vs box
                         [0.2, 0.3, 0.5, 0.3]], requires_grad=True)
    gt = torch.tensor([[0.5, 0.5, 0.5, 0.5],
                       [0.9, 0.9, 0.9, 0.9],
                       [0.0, 0.0, 0.4, 0.4],
                       [0.2, 0.3, 0.5, 0.3]])
    loss, iou = giou_loss(pred, gt)
    assert torch.isfinite(loss) and torch.isfinite(iou).all()
    # iou 0 everywhere (no union or no intersection); giou: 0 (no hull area), -1 (hull 0.64,
    # union 0), segment vs box: 0 - (0.24 - 0.16) / 0.24 = -1/3 (hull 0.4 x 0.6, union 0.16),
    # 0 (a segment compared with itself: no hull area)
    expected_giou = [0.0, -1.0, -1 / 3, 0.0]
    np.testing.assert_allclose(iou.detach().numpy(), 0.0)
    assert loss.item() == pytest.approx(np.mean([1 - v for v in expected_giou]), rel=1e-6)
    loss.backward()
    assert torch.isfinite(pred.grad).all()


def test_giou_rejects_inverted_boxes():
    with pytest.raises(ValueError, match="x2 < x1"):
        giou_loss(torch.tensor([[0.5, 0.0, 0.2, 1.0]]), torch.tensor([[0.0, 0.0, 1.0, 1.0]]))


def test_l1_hand_case():
    a = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.5, 0.5, 0.5, 0.5]])
    b = torch.tensor([[0.1, 0.0, 0.7, 1.0], [0.5, 0.0, 0.5, 0.9]])
    # |.1| + |.3| + |.5| + |.4| = 1.3 over 8 elements
    assert l1_loss(a, b).item() == pytest.approx(1.3 / 8, rel=1e-6)


# ---------------------------------------------------------------------------------------------
# Task loss
# ---------------------------------------------------------------------------------------------

def make_head(batch=3, grid=8, pred_boxes=None):
    score = torch.rand(batch, 1, grid, grid, dtype=torch.float64).clamp(1e-4, 1 - 1e-4)
    if pred_boxes is None:
        pred_boxes = torch.tensor([[0.4, 0.45, 0.2, 0.1], [0.3, 0.3, 0.5, 0.6],
                                   [0.9, 0.85, 0.3, 0.4]], dtype=torch.float64)[:batch]
    return {"score_map": score.requires_grad_(), "pred_boxes": pred_boxes.requires_grad_()}


def ref_task(head, gt, w=(1.0, 2.0, 5.0), clamp=False) -> tuple[float, dict]:
    grid = head["score_map"].shape[-1]
    score = head["score_map"].detach().numpy()
    target = np.stack([ref_heatmap(b, grid) for b in gt])[:, None]
    focal = ref_focal(score, target)
    p = head["pred_boxes"].detach().numpy().reshape(-1, 4)
    pxyxy = np.stack([p[:, 0] - p[:, 2] / 2, p[:, 1] - p[:, 3] / 2,
                      p[:, 0] + p[:, 2] / 2, p[:, 1] + p[:, 3] / 2], 1)
    if clamp:
        pxyxy = np.clip(pxyxy, -1, 1)
    g = np.asarray(gt, dtype=np.float64)
    gxyxy = np.clip(np.stack([g[:, 0], g[:, 1], g[:, 0] + g[:, 2], g[:, 1] + g[:, 3]], 1), 0, 1)
    gious = [ref_giou(a, b) for a, b in zip(pxyxy, gxyxy)]
    giou = float(np.mean([1 - x[1] for x in gious]))
    l1 = float(np.abs(pxyxy - gxyxy).mean())
    terms = {"focal": focal, "giou": giou, "l1": l1, "iou": float(np.mean([x[0] for x in gious]))}
    return w[0] * focal + w[1] * giou + w[2] * l1, terms


GT3 = [(0.30, 0.40, 0.20, 0.10), (0.05, 0.0, 0.5, 0.6), (0.80, 0.70, 0.35, 0.45)]


def test_task_loss_matches_reference():
    head = make_head()
    gt = torch.tensor(GT3, dtype=torch.float64)
    total, terms = task_loss(head, gt, LossConfig())
    ref_total, ref_terms = ref_task(head, GT3)
    assert total.item() == pytest.approx(ref_total, rel=1e-10)
    for k, v in ref_terms.items():
        assert terms[k].item() == pytest.approx(v, rel=1e-10), k
    total.backward()
    assert head["score_map"].grad is not None and head["pred_boxes"].grad is not None
    # (B, 1, 4) boxes (OSTrack's num_queries = 1) are accepted too
    head2 = {"score_map": head["score_map"].detach(),
             "pred_boxes": head["pred_boxes"].detach()[:, None]}
    assert task_loss(head2, gt)[0].item() == pytest.approx(ref_total, rel=1e-10)


def test_task_loss_weights_and_clamp():
    # third box: x2 = 0.9 + 0.6 = 1.5 -> clamped to 1 unless clamp_pred=False
    boxes = torch.tensor([[0.4, 0.45, 0.2, 0.1], [0.5, 0.5, 0.4, 0.4], [0.9, 0.5, 1.2, 0.2]],
                         dtype=torch.float64)
    head = make_head(pred_boxes=boxes)
    gt = torch.tensor(GT3, dtype=torch.float64)
    cfg = LossConfig(focal_weight=0.5, giou_weight=3.0, l1_weight=1.0)
    for clamp in (True, False):
        total, _ = task_loss(head, gt, cfg, clamp_pred=clamp)
        ref_total, _ = ref_task(head, GT3, w=(0.5, 3.0, 1.0), clamp=clamp)
        assert total.item() == pytest.approx(ref_total, rel=1e-10)
    assert task_loss(head, gt, cfg, clamp_pred=True)[1]["l1"] != task_loss(head, gt, cfg)[1]["l1"]


def test_task_loss_nan_guard():
    head = make_head()
    head["pred_boxes"] = head["pred_boxes"].detach().clone()
    head["pred_boxes"][1, 2] = float("nan")
    with pytest.raises(ValueError, match=r"teacher_rgb.*NaN"):
        task_loss(head, torch.tensor(GT3, dtype=torch.float64), name="teacher_rgb")


def test_task_loss_degenerate_boxes_no_nan():
    # zero-size prediction, GT entirely outside the crop (zero area after clamping to [0, 1])
    head = make_head(pred_boxes=torch.tensor([[0.5, 0.5, 0.0, 0.0], [0.2, 0.2, 0.1, 0.0],
                                              [0.5, 0.5, 0.3, 0.3]], dtype=torch.float64))
    gt = torch.tensor([[0.4, 0.4, 0.0, 0.0], [-0.5, 0.2, 0.3, 0.3], [1.2, 1.2, 0.1, 0.1]],
                      dtype=torch.float64)
    total, terms = task_loss(head, gt)
    assert torch.isfinite(total) and all(torch.isfinite(v) for v in terms.values())
    total.backward()
    assert torch.isfinite(head["pred_boxes"].grad).all()
    assert torch.isfinite(head["score_map"].grad).all()


# ---------------------------------------------------------------------------------------------
# Distillation
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("std,ddof", [("unbiased", 1), ("population", 0)])
def test_style_matches_loop(std, ddof):
    r, t = feats(), feats(scale=2.0)
    per_layer = [ref_style_layer(a.numpy(), b.numpy(), ddof) for a, b in zip(r, t)]
    got_sum = style_distillation(r, t, "sum", std).item()
    got_mean = style_distillation(r, t, "mean", std).item()
    assert got_sum == pytest.approx(sum(per_layer), rel=1e-10)
    assert got_mean == pytest.approx(sum(per_layer) / len(r), rel=1e-10)
    assert got_sum == pytest.approx(3 * got_mean, rel=1e-12)  # L = 3


def test_style_unbiased_differs_from_population():
    r, t = feats(N=4), feats(N=4, scale=3.0)
    assert style_distillation(r, t, std="unbiased").item() != pytest.approx(
        style_distillation(r, t, std="population").item(), rel=1e-3)
    # identical inputs -> 0 with either std
    assert style_distillation(r, r).item() == 0.0


def test_style_gradients_reach_both_students():
    r, t = feats(requires_grad=True), feats(scale=2.0, requires_grad=True)
    style_distillation(r, t).backward()
    for f in r + t:
        assert f.grad is not None and f.grad.abs().sum() > 0


def test_content_matches_loop_and_reductions():
    s, t = feats(L=2, N=6), feats(L=2, N=6, scale=0.5)
    per_layer = [ref_content_layer(a.numpy(), b.numpy()) for a, b in zip(s, t)]
    got_sum = content_distillation(s, t, "sum").item()
    got_mean = content_distillation(s, t, "mean").item()
    assert got_sum == pytest.approx(sum(per_layer), rel=1e-9)
    assert got_mean == pytest.approx(sum(per_layer) / 2, rel=1e-9)
    assert got_sum == pytest.approx(2 * got_mean, rel=1e-12)


def test_content_gradients_student_only():
    s, t = feats(requires_grad=True), feats(scale=2.0, requires_grad=True)
    content_distillation(s, t).backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in s)
    assert all(f.grad is None for f in t)


def test_content_both_is_sum_of_modalities():
    sr, tr, st, tt = feats(), feats(scale=2.0), feats(scale=0.5), feats(scale=1.5)
    both = content_distillation_both(sr, tr, st, tt, "mean").item()
    expected = sum(ref_content_layer(a.numpy(), b.numpy()) for a, b in zip(sr, tr)) / 3 \
        + sum(ref_content_layer(a.numpy(), b.numpy()) for a, b in zip(st, tt)) / 3
    assert both == pytest.approx(expected, rel=1e-9)


def test_distillation_input_checks():
    r = feats()
    with pytest.raises(ValueError, match="reduction"):
        style_distillation(r, r, reduction="avg")
    with pytest.raises(ValueError, match="std"):
        style_distillation(r, r, std="biased")
    with pytest.raises(ValueError, match="layers"):
        content_distillation(r, r[:2])
    with pytest.raises(ValueError, match="same shape"):
        content_distillation(r, feats(C=5))


# ---------------------------------------------------------------------------------------------
# Total
# ---------------------------------------------------------------------------------------------

def test_paper_loss_config():
    cfg = paper_loss_config()
    assert (cfg.layer_reduction, cfg.style_std) == ("mean", "population")
    assert cfg.sd_weight / cfg.cd_weight == pytest.approx(2.0) and cfg.cd_weight == 0.1
    assert (cfg.focal_weight, cfg.giou_weight, cfg.l1_weight) == (1.0, 2.0, 5.0)
    cfg.validate("train.loss")
    assert paper_loss_config(LossConfig(teacher_task_loss=False)).teacher_task_loss is False


@pytest.mark.parametrize("cfg", [LossConfig(), paper_loss_config(),
                                 LossConfig(teacher_task_loss=False)])
def test_ckd_total_loss_composition(cfg):
    gt = torch.tensor(GT3, dtype=torch.float64)
    student, t_rgb, t_tir = make_head(), make_head(), make_head()
    s_rgb, s_tir = feats(B=3, requires_grad=True), feats(B=3, scale=2.0, requires_grad=True)
    tf_rgb, tf_tir = feats(B=3, scale=0.7, requires_grad=True), feats(B=3, requires_grad=True)
    total, log = ckd_total_loss(student, gt, s_rgb, s_tir, tf_rgb, tf_tir, t_rgb, t_tir, cfg)

    L = 3
    red = L if cfg.layer_reduction == "mean" else 1
    ddof = 1 if cfg.style_std == "unbiased" else 0
    sd = sum(ref_style_layer(a.detach().numpy(), b.detach().numpy(), ddof)
             for a, b in zip(s_rgb, s_tir)) / red
    cd_rgb = sum(ref_content_layer(a.detach().numpy(), b.detach().numpy())
                 for a, b in zip(s_rgb, tf_rgb)) / red
    cd_tir = sum(ref_content_layer(a.detach().numpy(), b.detach().numpy())
                 for a, b in zip(s_tir, tf_tir)) / red
    expected = ref_task(student, GT3)[0] + cfg.sd_weight * sd + cfg.cd_weight * (cd_rgb + cd_tir)
    if cfg.teacher_task_loss:
        expected += ref_task(t_rgb, GT3)[0] + ref_task(t_tir, GT3)[0]
    assert total.item() == pytest.approx(expected, rel=1e-9)
    assert log["total"] == pytest.approx(expected, rel=1e-9)
    assert log["sd"] == pytest.approx(sd, rel=1e-9)
    assert log["cd_rgb"] == pytest.approx(cd_rgb, rel=1e-9)
    assert log["cd"] == pytest.approx(cd_rgb + cd_tir, rel=1e-9)
    assert log["student/focal"] == pytest.approx(ref_task(student, GT3)[1]["focal"], rel=1e-9)
    assert all(isinstance(v, float) for v in log.values())
    assert ("teacher_rgb/task" in log) == cfg.teacher_task_loss

    total.backward()
    assert all(f.grad is not None for f in s_rgb + s_tir)
    assert all(f.grad is None for f in tf_rgb + tf_tir)  # teacher features: no distillation grad
    assert (t_rgb["score_map"].grad is not None) == cfg.teacher_task_loss


def test_ckd_total_loss_missing_inputs():
    gt = torch.tensor(GT3, dtype=torch.float64)
    student = make_head()
    with pytest.raises(ValueError, match="teacher_rgb"):
        ckd_total_loss(student, gt, cfg=LossConfig(sd_weight=0, cd_weight=0))
    with pytest.raises(ValueError, match="sd_weight"):
        ckd_total_loss(student, gt, cfg=LossConfig(cd_weight=0, teacher_task_loss=False))
    with pytest.raises(ValueError, match="cd_weight"):
        ckd_total_loss(student, gt, feats(B=3), feats(B=3),
                       cfg=LossConfig(teacher_task_loss=False))
    # task only
    total, log = ckd_total_loss(student, gt, cfg=LossConfig(sd_weight=0, cd_weight=0,
                                                            teacher_task_loss=False))
    assert total.item() == pytest.approx(ref_task(student, GT3)[0], rel=1e-10)
    assert set(log) == {"total", "student/task", "student/focal", "student/giou",
                        "student/l1", "student/iou"}
