"""The CKD networks: inference model (2 students + fused head) and training model (2 teachers,
2 students, fused head, 2 teacher heads).

All branches advance block by block in ONE loop (no greenlets, no global state). At an
elimination block, after every branch has done its attention step, the scoring branches'
attention probabilities decide which search tokens survive, and every branch in that group
drops the same positions before its MLP step:
- MCE (default): scorers = both students (element-wise max of their maps); appliers = both
  students and, in training, both teachers (teachers follow the students' indices);
- CE ("w/ CE" ablation): each student scores for itself; each teacher follows the student of
  its modality.
After the final LayerNorm the eliminated tokens are restored as exact zeros, so each head sees
a full G x G map. The fused head reads concat([rgb, tir], channels) of the search tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ckd_core.config import EliminationConfig, ModelConfig
from ckd_core.model import elimination as E
from ckd_core.model.backbone import ViTBranch, draw_search_mask
from ckd_core.model.head import CenterHead, decode_boxes, tokens_to_map


@dataclass
class BranchResult:
    """What one branch produced in a lock-step run."""

    template_tokens: torch.Tensor  # (B, Nz, C) after the final norm
    search_tokens: torch.Tensor  # (B, Nx, C) after the final norm, eliminated = exact 0
    keep_index: torch.Tensor  # (B, k) original positions of the surviving search tokens
    features: list[torch.Tensor] = field(default_factory=list)  # per block (B, N_i, C), pre-norm


# A selection group: (indices of branches whose attention scores the tokens,
#                     indices of branches that drop the selected positions)
SelectionGroup = tuple[tuple[int, ...], tuple[int, ...]]


def run_lockstep(branches: list[ViTBranch], templates: list[torch.Tensor | None],
                 searches: list[torch.Tensor], *, elimination: EliminationConfig,
                 eliminate: bool, keep_ratio: float, groups: list[SelectionGroup],
                 query_mask: torch.Tensor | None, search_masks: list[torch.Tensor | None],
                 collect_features: bool = False,
                 template_tokens: list[torch.Tensor] | None = None
                 ) -> tuple[list[BranchResult], list[int]]:
    """Run several branches block by block with shared candidate elimination.

    `template_tokens` (one (B, Nz, C) per branch, from `ViTBranch.embed_template`) replaces
    the template images (then ignored): the same operations in the same order, so the result
    is bit-identical to passing the images.
    Returns the per-branch results and the number of search tokens alive after each
    elimination stage (e.g. [256, 180, 126, 89] for the paper's MCE preset).
    """
    if template_tokens is None:
        tokens = [br.embed(z, x, m) for br, z, x, m in zip(branches, templates, searches,
                                                            search_masks)]
    else:
        tokens = [torch.cat([zt, br.embed_search(x, m)], dim=1)
                  for br, zt, x, m in zip(branches, template_tokens, searches, search_masks)]
    nz = branches[0].num_template
    nx = branches[0].num_search
    bsz = tokens[0].shape[0]
    device = tokens[0].device
    index = [torch.arange(nx, device=device).expand(bsz, nx) for _ in branches]
    feats: list[list[torch.Tensor]] = [[] for _ in branches]
    kept = [nx]
    depth = len(branches[0].blocks)
    locations = set(elimination.locations) if eliminate else set()
    for i in range(depth):
        active = i in locations and E.num_kept(tokens[0].shape[1] - nz, keep_ratio) < (
            tokens[0].shape[1] - nz)
        probs = []
        for b, br in enumerate(branches):
            tokens[b], p = br.attention_step(i, tokens[b], need_probs=active)
            probs.append(p)
        if active:
            for scorers, appliers in groups:
                attn = probs[scorers[0]]
                for s in scorers[1:]:
                    attn = E.multimodal_attention(attn, probs[s])
                scores = E.search_token_scores(attn, nz, query_mask)
                keep = E.select_tokens(scores, keep_ratio)
                for a in appliers:
                    tokens[a] = E.gather_search_tokens(tokens[a], nz, keep)
                    index[a] = E.gather_index(index[a], keep)
            kept.append(tokens[0].shape[1] - nz)
        for b, br in enumerate(branches):
            tokens[b] = br.mlp_step(i, tokens[b])
            if collect_features:
                feats[b].append(tokens[b])
    results = []
    for b, br in enumerate(branches):
        out = br.norm(tokens[b])
        search = E.restore_search_tokens(out[:, nz:], index[b], nx)
        results.append(BranchResult(out[:, :nz], search, index[b], feats[b]))
    return results, kept


def _selection_groups(mode: str, training: bool) -> list[SelectionGroup]:
    # branch order: 0 rgb student, 1 tir student, (training) 2 rgb teacher, 3 tir teacher
    if mode == "mce":
        return [((0, 1), (0, 1, 2, 3) if training else (0, 1))]
    return [((0,), (0, 2) if training else (0,)), ((1,), (1, 3) if training else (1,))]


def _head_forward(head: CenterHead, search_tokens: torch.Tensor, grid: int
                  ) -> dict[str, torch.Tensor]:
    out = head(tokens_to_map(search_tokens, grid))
    boxes, peak, idx = decode_boxes(out["score_map"], out["size_map"], out["offset_map"])
    out.update(pred_boxes=boxes, peak_score=peak, peak_index=idx)
    return out


class _CKDBase(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg.backbone.embed_dim
        self.rgb_branch = ViTBranch(cfg)
        self.tir_branch = ViTBranch(cfg)
        self.box_head = CenterHead(2 * c, cfg.head.channels, cfg.search_grid)

    def _elimination_args(self, elimination: bool | None, keep_ratio: float | None,
                          template_box: torch.Tensor | None, batch: int, device
                          ) -> tuple[bool, float, torch.Tensor | None]:
        e = self.cfg.elimination
        eliminate = e.enabled if elimination is None else elimination
        ratio = e.keep_ratio if keep_ratio is None else keep_ratio
        if not 0 < ratio <= 1:
            raise ValueError(f"keep_ratio must be in (0, 1], got {ratio}")
        qmask = None
        if eliminate:
            qmask = E.template_query_mask(e.template_range, self.cfg.template_grid, batch,
                                          template_box, device)
        return eliminate, ratio, qmask

    def _check(self, template_rgb, template_tir, search_rgb, search_tir) -> None:
        self.rgb_branch.check_inputs(template_rgb, search_rgb, "RGB")
        self.tir_branch.check_inputs(template_tir, search_tir, "thermal")
        self._check_batches(template_rgb, template_tir)

    def _check_templates(self, template_rgb, template_tir) -> None:
        self.rgb_branch.check_template(template_rgb, "RGB")
        self.tir_branch.check_template(template_tir, "thermal")
        self._check_batches(template_rgb, template_tir)

    @staticmethod
    def _check_batches(template_rgb, template_tir) -> None:
        if template_rgb.shape[0] != template_tir.shape[0]:
            raise ValueError(f"RGB batch {template_rgb.shape[0]} != thermal batch "
                             f"{template_tir.shape[0]}")


@dataclass(frozen=True)
class TemplateCache:
    """What a `CKDInference` forward computes from the template alone, kept per target.

    In a one-stream ViT every block mixes template and search tokens (template queries attend
    to search keys), so nothing after the embedding can be reused across frames. What can:
    the patch + position embedding of each student's template tokens and the MCE settings,
    including the template-range query mask (for GT_BOX it depends on the template box).
    The normalised template crops themselves are kept by the tracker.
    Not cached, on purpose: block 0's norm1 + qkv projection of the template rows also depend
    on the template alone, but a GEMM over 64 rows instead of 64 + 256 may round differently
    (shape-dependent blocking), which would break bit-equality for ~1/depth of one block.
    """

    tokens_rgb: torch.Tensor  # (B, Nz, C) RGB student's embedded template tokens
    tokens_tir: torch.Tensor  # (B, Nz, C) thermal student's
    eliminate: bool
    keep_ratio: float
    query_mask: torch.Tensor | None  # (B, Nz) bool template queries that score; None = all


class CKDInference(_CKDBase):
    """Two students in lock-step + the fused CENTER head (what a tracker runs).

    forward(template_rgb (B,3,T,T), template_tir, search_rgb (B,3,S,S), search_tir,
            template_box=None (B,4) normalised xywh in the template crop, for GT_BOX,
            elimination=None (config default) | bool, keep_ratio=None | float)
    -> dict: score_map (B,1,G,G), size_map (B,2,G,G), offset_map (B,2,G,G),
             pred_boxes (B,4) cxcywh normalised, peak_score (B,), peak_index (B,),
             kept_tokens list[int], keep_index_rgb / keep_index_tir (B,k).

    Tracking reuses the template: `cache = encode_template(template_rgb, template_tir,
    template_box, elimination, keep_ratio)` once, then `forward_cached(cache, search_rgb,
    search_tir)` per frame, which returns exactly (torch.equal) what `forward` returns.
    """

    def forward(self, template_rgb: torch.Tensor, template_tir: torch.Tensor,
                search_rgb: torch.Tensor, search_tir: torch.Tensor,
                template_box: torch.Tensor | None = None, elimination: bool | None = None,
                keep_ratio: float | None = None) -> dict:
        self._check(template_rgb, template_tir, search_rgb, search_tir)
        eliminate, ratio, qmask = self._elimination_args(
            elimination, keep_ratio, template_box, template_rgb.shape[0], template_rgb.device)
        (rgb, tir), kept = run_lockstep(
            [self.rgb_branch, self.tir_branch], [template_rgb, template_tir],
            [search_rgb, search_tir], elimination=self.cfg.elimination, eliminate=eliminate,
            keep_ratio=ratio, groups=_selection_groups(self.cfg.elimination.mode, False),
            query_mask=qmask, search_masks=[None, None])
        return self._fuse_and_decode(rgb, tir, kept)

    def encode_template(self, template_rgb: torch.Tensor, template_tir: torch.Tensor,
                        template_box: torch.Tensor | None = None,
                        elimination: bool | None = None, keep_ratio: float | None = None
                        ) -> TemplateCache:
        """The template-only part of `forward` (arguments as there)."""
        self._check_templates(template_rgb, template_tir)
        eliminate, ratio, qmask = self._elimination_args(
            elimination, keep_ratio, template_box, template_rgb.shape[0], template_rgb.device)
        return TemplateCache(self.rgb_branch.embed_template(template_rgb),
                             self.tir_branch.embed_template(template_tir),
                             eliminate, ratio, qmask)

    def forward_cached(self, cache: TemplateCache, search_rgb: torch.Tensor,
                       search_tir: torch.Tensor) -> dict:
        """`forward` with the template part taken from `cache`; same outputs."""
        batch = cache.tokens_rgb.shape[0]
        self.rgb_branch.check_search(search_rgb, "RGB", batch)
        self.tir_branch.check_search(search_tir, "thermal", batch)
        (rgb, tir), kept = run_lockstep(
            [self.rgb_branch, self.tir_branch], [None, None], [search_rgb, search_tir],
            elimination=self.cfg.elimination, eliminate=cache.eliminate,
            keep_ratio=cache.keep_ratio,
            groups=_selection_groups(self.cfg.elimination.mode, False),
            query_mask=cache.query_mask, search_masks=[None, None],
            template_tokens=[cache.tokens_rgb, cache.tokens_tir])
        return self._fuse_and_decode(rgb, tir, kept)

    def _fuse_and_decode(self, rgb: BranchResult, tir: BranchResult, kept: list[int]) -> dict:
        fused = torch.cat([rgb.search_tokens, tir.search_tokens], dim=2)
        out = _head_forward(self.box_head, fused, self.cfg.search_grid)
        out.update(kept_tokens=kept, keep_index_rgb=rgb.keep_index,
                   keep_index_tir=tir.keep_index)
        return out


class CKDTraining(_CKDBase):
    """Two teachers + two students + fused head + two teacher heads (training only).

    forward(... same images ..., search_mask=None (B, Nx) bool shared by both students or
            mask_ratio=None to draw one (masked modelling; teachers and templates never
            masked), generator for the draw, template_box, elimination, keep_ratio,
            run_teachers=True, collect_features=True)
    -> dict: student / teacher_rgb / teacher_tir head outputs (as CKDInference's),
             features {rgb_student, tir_student, rgb_teacher, tir_teacher}: lists of
             per-block (B, N, C) tokens before the final norm, search_mask, kept_tokens.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        c = cfg.backbone.embed_dim
        self.teacher_rgb = ViTBranch(cfg)
        self.teacher_tir = ViTBranch(cfg)
        self.box_head_v = CenterHead(c, cfg.head.channels, cfg.search_grid)
        self.box_head_i = CenterHead(c, cfg.head.channels, cfg.search_grid)

    def forward(self, template_rgb: torch.Tensor, template_tir: torch.Tensor,
                search_rgb: torch.Tensor, search_tir: torch.Tensor,
                search_mask: torch.Tensor | None = None, mask_ratio: float | None = None,
                generator: torch.Generator | None = None,
                template_box: torch.Tensor | None = None, elimination: bool | None = None,
                keep_ratio: float | None = None, run_teachers: bool = True,
                collect_features: bool = True) -> dict:
        self._check(template_rgb, template_tir, search_rgb, search_tir)
        bsz = template_rgb.shape[0]
        if search_mask is None and mask_ratio:
            search_mask = draw_search_mask(bsz, self.rgb_branch.num_search, mask_ratio,
                                           generator, template_rgb.device)
        eliminate, ratio, qmask = self._elimination_args(
            elimination, keep_ratio, template_box, bsz, template_rgb.device)
        branches = [self.rgb_branch, self.tir_branch]
        templates = [template_rgb, template_tir]
        searches = [search_rgb, search_tir]
        masks = [search_mask, search_mask]
        if run_teachers:
            branches += [self.teacher_rgb, self.teacher_tir]
            templates += [template_rgb, template_tir]
            searches += [search_rgb, search_tir]
            masks += [None, None]
        groups = _selection_groups(self.cfg.elimination.mode, training=run_teachers)
        results, kept = run_lockstep(
            branches, templates, searches, elimination=self.cfg.elimination,
            eliminate=eliminate, keep_ratio=ratio, groups=groups, query_mask=qmask,
            search_masks=masks, collect_features=collect_features)
        g = self.cfg.search_grid
        fused = torch.cat([results[0].search_tokens, results[1].search_tokens], dim=2)
        out = {"student": _head_forward(self.box_head, fused, g), "kept_tokens": kept,
               "search_mask": search_mask,
               "features": {"rgb_student": results[0].features,
                            "tir_student": results[1].features}}
        if run_teachers:
            out["teacher_rgb"] = _head_forward(self.box_head_v, results[2].search_tokens, g)
            out["teacher_tir"] = _head_forward(self.box_head_i, results[3].search_tokens, g)
            out["features"]["rgb_teacher"] = results[2].features
            out["features"]["tir_teacher"] = results[3].features
        return out

    def student_parameters(self):
        for m in (self.rgb_branch, self.tir_branch):
            yield from m.parameters()

    def teacher_parameters(self):
        for m in (self.teacher_rgb, self.teacher_tir):
            yield from m.parameters()

    def head_parameters(self):
        for m in (self.box_head, self.box_head_v, self.box_head_i):
            yield from m.parameters()

    def inference_state_dict(self) -> dict[str, torch.Tensor]:
        """The students and the fused head only: what `CKDInference` loads."""
        keep = ("rgb_branch.", "tir_branch.", "box_head.")
        return {k: v for k, v in self.state_dict().items() if k.startswith(keep)}
