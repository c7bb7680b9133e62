"""The CKD model: shapes, MCE/CE token bookkeeping, lock-step equivalence, masking, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ckd_core.config import load_config
from ckd_core.model import build_inference_model, build_training_model
from ckd_core.model import elimination as E
from ckd_core.model.ckd import run_lockstep
from ckd_core.model.head import decode_boxes, tokens_to_map


def small_cfg(name="ckd_tiny_mce", **changes):
    """ckd_tiny geometry (8x8 template, 16x16 search grids) with a narrower ViT for speed."""
    base = {"model.backbone.embed_dim": 64, "model.backbone.num_heads": 4,
            "model.head.channels": 32}
    base.update(changes)
    return load_config(name).replace(**base).model


def images(cfg, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    t, s = cfg.template_size, cfg.search_size
    return (torch.randn(batch, 3, t, t, generator=g), torch.randn(batch, 3, t, t, generator=g),
            torch.randn(batch, 3, s, s, generator=g), torch.randn(batch, 3, s, s, generator=g))


def test_inference_output_shapes():
    cfg = small_cfg()
    model = build_inference_model(cfg)
    with torch.no_grad():
        out = model(*images(cfg, batch=3))
    assert out["score_map"].shape == (3, 1, 16, 16)
    assert out["size_map"].shape == (3, 2, 16, 16)
    assert out["offset_map"].shape == (3, 2, 16, 16)
    assert out["pred_boxes"].shape == (3, 4)
    assert out["peak_score"].shape == (3,)
    assert out["keep_index_rgb"].shape == (3, 89)
    s = out["score_map"]
    assert float(s.min()) >= 1e-4 and float(s.max()) <= 1 - 1e-4
    z = out["size_map"]
    assert float(z.min()) >= 1e-4 and float(z.max()) <= 1 - 1e-4


def test_training_output_shapes_and_features():
    cfg = small_cfg("ckd_tiny")
    model = build_training_model(cfg)
    out = model(*images(cfg), mask_ratio=0.25)
    for key in ("student", "teacher_rgb", "teacher_tir"):
        assert out[key]["score_map"].shape == (2, 1, 16, 16)
        assert out[key]["pred_boxes"].shape == (2, 4)
    feats = out["features"]
    assert set(feats) == {"rgb_student", "tir_student", "rgb_teacher", "tir_teacher"}
    for f in feats.values():
        assert len(f) == cfg.backbone.depth
        assert all(t.shape == (2, 64 + 256, cfg.backbone.embed_dim) for t in f)
    assert model.box_head.conv1_ctr[0].in_channels == 2 * cfg.backbone.embed_dim
    assert model.box_head_v.conv1_ctr[0].in_channels == cfg.backbone.embed_dim


def test_vitb_preset_parameter_count_and_shapes():
    from ckd_core.model.ckd import CKDInference

    cfg = load_config("ckd_vitb256").model
    with torch.device("meta"):  # shapes only, no memory
        model = CKDInference(cfg)
    n = sum(p.numel() for p in model.parameters())
    assert n == 183_567_237  # 183.57 M (the authors' 183.87 M adds unused cls/pos_embed)
    sd = model.state_dict()
    assert sd["rgb_branch.pos_embed_z"].shape == (1, 64, 768)
    assert sd["rgb_branch.pos_embed_x"].shape == (1, 256, 768)
    assert sd["box_head.conv1_ctr.0.weight"].shape == (256, 1536, 3, 3)
    assert sd["box_head.conv5_size.weight"].shape == (2, 32, 1, 1)


def test_mce_keeps_256_180_126_89_with_identical_indices():
    cfg = small_cfg()
    model = build_inference_model(cfg)
    with torch.no_grad():
        out = model(*images(cfg, batch=2))
    assert out["kept_tokens"] == [256, 180, 126, 89]
    assert [math.ceil(0.7 * n) for n in (256, 180, 126)] == [180, 126, 89]
    assert torch.equal(out["keep_index_rgb"], out["keep_index_tir"])
    for b in range(2):  # distinct, valid positions
        idx = out["keep_index_rgb"][b]
        assert len(set(idx.tolist())) == 89 and int(idx.min()) >= 0 and int(idx.max()) < 256


def test_eliminated_positions_are_exact_zeros_and_kept_are_not():
    cfg = small_cfg()
    model = build_inference_model(cfg)
    t_r, t_t, s_r, s_t = images(cfg)
    qmask = E.template_query_mask("CTR_POINT", 8, 2)
    with torch.no_grad():
        (rgb, tir), kept = run_lockstep(
            [model.rgb_branch, model.tir_branch], [t_r, t_t], [s_r, s_t],
            elimination=cfg.elimination, eliminate=True, keep_ratio=0.7,
            groups=[((0, 1), (0, 1))], query_mask=qmask, search_masks=[None, None])
    for res in (rgb, tir):
        alive = torch.zeros(2, 256, dtype=torch.bool)
        alive.scatter_(1, res.keep_index, True)
        assert torch.all(res.search_tokens[~alive] == 0)
        assert torch.all(res.search_tokens[alive].abs().sum(-1) > 0)
        assert res.search_tokens.shape == (2, 256, cfg.backbone.embed_dim)


def test_keep_ratio_one_equals_dense():
    cfg = small_cfg()
    model = build_inference_model(cfg)
    imgs = images(cfg)
    with torch.no_grad():
        dense = model(*imgs, elimination=False)
        mce = model(*imgs, elimination=True, keep_ratio=1.0)
    assert mce["kept_tokens"] == [256]
    for k in ("score_map", "size_map", "offset_map", "pred_boxes"):
        torch.testing.assert_close(mce[k], dense[k], atol=1e-6, rtol=0)


def test_lockstep_equals_separate_branches_without_elimination():
    cfg = small_cfg()
    model = build_inference_model(cfg)
    t_r, t_t, s_r, s_t = images(cfg)
    kw = dict(elimination=cfg.elimination, eliminate=False, keep_ratio=1.0, query_mask=None)
    with torch.no_grad():
        (a, b), _ = run_lockstep([model.rgb_branch, model.tir_branch], [t_r, t_t], [s_r, s_t],
                                 groups=[((0, 1), (0, 1))], search_masks=[None, None], **kw)
        (a1,), _ = run_lockstep([model.rgb_branch], [t_r], [s_r], groups=[((0,), (0,))],
                                search_masks=[None], **kw)
        (b1,), _ = run_lockstep([model.tir_branch], [t_t], [s_t], groups=[((0,), (0,))],
                                search_masks=[None], **kw)
        # and a plain timm-block forward of one branch, independent of our step functions
        br = model.rgb_branch
        x = br.embed(t_r, s_r)
        for blk in br.blocks:
            x = blk(x)
        ref = br.norm(x)
    torch.testing.assert_close(a.search_tokens, a1.search_tokens, atol=0, rtol=0)
    torch.testing.assert_close(b.search_tokens, b1.search_tokens, atol=0, rtol=0)
    torch.testing.assert_close(a.search_tokens, ref[:, 64:], atol=1e-5, rtol=1e-5)


def test_mce_scores_are_max_of_the_two_maps_then_mean_over_heads():
    g = torch.Generator().manual_seed(3)
    B, H, nz, ls = 2, 3, 4, 6
    a = torch.rand(B, H, nz + ls, nz + ls, generator=g)
    b = torch.rand(B, H, nz + ls, nz + ls, generator=g)
    qmask = torch.tensor([[False, True, False, True], [True, False, False, False]])
    scores = E.search_token_scores(E.multimodal_attention(a, b), nz, qmask)
    an, bn, qm = a.numpy(), b.numpy(), qmask.numpy()
    ref = np.zeros((B, ls))
    for i in range(B):
        for s in range(ls):
            per_head = []
            for h in range(H):
                vals = [max(an[i, h, q, nz + s], bn[i, h, q, nz + s]) for q in range(nz) if qm[i, q]]
                per_head.append(sum(vals) / len(vals))
            ref[i, s] = sum(per_head) / H
    np.testing.assert_allclose(scores.numpy(), ref, rtol=1e-6)
    keep = E.select_tokens(scores, 0.5)
    assert keep.shape == (B, 3)
    for i in range(B):  # the three best, best first
        assert keep[i].tolist() == list(np.argsort(-ref[i], kind="stable")[:3])


def test_template_ranges():
    m = E.template_query_mask("CTR_POINT", 8, 1)
    assert m.shape == (1, 64) and m.sum() == 1 and bool(m[0, 27])
    r = E.template_query_mask("CTR_REC", 8, 1)
    assert sorted(torch.nonzero(r[0]).flatten().tolist()) == [27, 28, 35, 36]
    assert E.template_query_mask("ALL", 8, 1) is None
    gt = E.template_query_mask("GT_BOX", 8, 1, torch.tensor([[0.25, 0.25, 0.5, 0.5]]))
    rows = {i // 8 for i in torch.nonzero(gt[0]).flatten().tolist()}
    assert gt.sum() == 16 and rows == {2, 3, 4, 5}
    with pytest.raises(ValueError, match="GT_BOX"):
        E.template_query_mask("GT_BOX", 8, 1)
    with pytest.raises(ValueError, match="template_range"):
        E.template_query_mask("CENTER", 8, 1)


def test_independent_ce_mode_selects_per_branch():
    cfg = small_cfg(**{"model.elimination.mode": "ce"})
    model = build_inference_model(cfg)
    with torch.no_grad():
        out = model(*images(cfg))
    assert out["kept_tokens"] == [256, 180, 126, 89]
    # random weights: the two students almost surely disagree somewhere
    assert not torch.equal(out["keep_index_rgb"], out["keep_index_tir"])


def test_training_teachers_follow_student_indices():
    cfg = small_cfg("ckd_tiny_mce")
    model = build_training_model(cfg).eval()
    t_r, t_t, s_r, s_t = images(cfg)
    branches = [model.rgb_branch, model.tir_branch, model.teacher_rgb, model.teacher_tir]
    with torch.no_grad():
        res, kept = run_lockstep(branches, [t_r, t_t, t_r, t_t], [s_r, s_t, s_r, s_t],
                                 elimination=cfg.elimination, eliminate=True, keep_ratio=0.7,
                                 groups=[((0, 1), (0, 1, 2, 3))],
                                 query_mask=E.template_query_mask("CTR_POINT", 8, 2),
                                 search_masks=[None] * 4)
    assert kept == [256, 180, 126, 89]
    for r in res[1:]:
        assert torch.equal(r.keep_index, res[0].keep_index)
    with torch.no_grad():
        out = model(t_r, t_t, s_r, s_t)
    assert out["kept_tokens"] == [256, 180, 126, 89]


def test_masking_zeroes_exactly_the_drawn_tokens_and_students_share_the_draw():
    cfg = small_cfg("ckd_tiny")
    model = build_training_model(cfg).eval()
    t_r, t_t, s_r, s_t = images(cfg)
    br = model.rgb_branch
    mask = torch.zeros(2, 256, dtype=torch.bool)
    mask[0, [0, 5, 255]] = True
    mask[1, [17]] = True
    with torch.no_grad():
        tokens = br.embed(t_r, s_r, mask)
        plain = br.embed(t_r, s_r)
    search, ref = tokens[:, 64:], plain[:, 64:]
    pos = br.pos_embed_x.expand(2, -1, -1)
    torch.testing.assert_close(search[mask], pos[mask], atol=0, rtol=0)  # embedding zeroed
    torch.testing.assert_close(search[~mask], ref[~mask], atol=0, rtol=0)  # others untouched
    torch.testing.assert_close(tokens[:, :64], plain[:, :64], atol=0, rtol=0)  # template never

    # One draw for both students: a generator-seeded draw matches the returned mask, and the
    # RGB and TIR students' first-block features differ from the unmasked run at the same
    # (and only the same) search positions.
    gen = torch.Generator().manual_seed(11)
    with torch.no_grad():
        out = model(t_r, t_t, s_r, s_t, mask_ratio=0.25, generator=gen)
        ref_out = model(t_r, t_t, s_r, s_t)
    drawn = out["search_mask"]
    expected = torch.rand(2, 256, generator=torch.Generator().manual_seed(11)) < 0.25
    assert torch.equal(drawn, expected)
    assert 0.1 < drawn.float().mean() < 0.4
    # teachers are never masked: identical features with and without the draw
    for k in ("rgb_teacher", "tir_teacher"):
        torch.testing.assert_close(out["features"][k][0], ref_out["features"][k][0])
    for k in ("rgb_student", "tir_student"):
        assert not torch.allclose(out["features"][k][0], ref_out["features"][k][0])


def test_decode_boxes_hand_computed():
    g = 4
    score = torch.zeros(1, 1, g, g)
    score[0, 0, 2, 1] = 0.9  # row 2, col 1
    size = torch.zeros(1, 2, g, g)
    size[0, :, 2, 1] = torch.tensor([0.25, 0.5])
    offset = torch.zeros(1, 2, g, g)
    offset[0, :, 2, 1] = torch.tensor([0.5, -0.25])
    boxes, peak, idx = decode_boxes(score, size, offset)
    torch.testing.assert_close(boxes, torch.tensor([[(1 + 0.5) / 4, (2 - 0.25) / 4, 0.25, 0.5]]))
    assert float(peak) == pytest.approx(0.9) and int(idx) == 2 * 4 + 1


def test_tokens_to_map_is_row_major():
    tokens = torch.arange(16 * 2, dtype=torch.float32).view(1, 16, 2)
    fmap = tokens_to_map(tokens, 4)
    assert fmap.shape == (1, 2, 4, 4)
    assert float(fmap[0, 0, 1, 2]) == float(tokens[0, 1 * 4 + 2, 0])


def test_restore_search_tokens_places_tokens_back():
    kept = torch.tensor([[[1.0], [2.0]]])
    out = E.restore_search_tokens(kept, torch.tensor([[3, 0]]), 4)
    assert out.flatten().tolist() == [2.0, 0.0, 0.0, 1.0]


@pytest.mark.parametrize("bad, match", [
    ((1, 3, 32, 32), r"template must be \(B, 3, 64, 64\)"),
    ((1, 1, 64, 64), r"template must be \(B, 3, 64, 64\)"),
])
def test_wrong_template_shape_is_a_clear_error(bad, match):
    cfg = small_cfg()
    model = build_inference_model(cfg)
    t_r, t_t, s_r, s_t = images(cfg, batch=1)
    with pytest.raises(ValueError, match=match):
        model(torch.zeros(bad), t_t, s_r, s_t)


def test_wrong_search_shape_and_batch_mismatch_are_clear_errors():
    cfg = small_cfg()
    model = build_inference_model(cfg)
    t_r, t_t, s_r, s_t = images(cfg, batch=1)
    with pytest.raises(ValueError, match=r"thermal search must be \(B, 3, 128, 128\)"):
        model(t_r, t_t, s_r, torch.zeros(1, 3, 256, 256))
    with pytest.raises(ValueError, match="batch"):
        model(t_r, torch.zeros(2, 3, 64, 64), s_r, torch.zeros(2, 3, 128, 128))


def test_drop_path_schedule_rises_linearly():
    cfg = load_config("ckd_tiny").model
    model = build_training_model(cfg)
    rates = [getattr(b.drop_path1, "drop_prob", 0.0) for b in model.rgb_branch.blocks]
    np.testing.assert_allclose(rates, np.linspace(0, cfg.backbone.drop_path_rate, 6), rtol=1e-6)


def test_bf16_autocast_runs_on_cpu():
    cfg = small_cfg()
    model = build_inference_model(cfg)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(*images(cfg, batch=1))
    assert torch.isfinite(out["pred_boxes"].float()).all()
    assert out["kept_tokens"] == [256, 180, 126, 89]
