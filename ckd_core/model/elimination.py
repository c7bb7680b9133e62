"""Candidate elimination (CE) and multi-modal candidate elimination (MCE), as pure functions.

Conventions (OSTrack / CKD code, `../shared/ckd_method.md` section 2):
- tokens inside a branch are [template (Nz), search (Ls)]; attention probabilities are
  (B, H, N, N) after softmax, queries on dim 2, keys on dim 3;
- the score of a search token = attention probability from the selected template queries to it,
  averaged over those queries, then over heads;
- MCE scores from the element-wise MAX of the two students' probability maps (per head, query
  and key), then averages as above: h = max(softmax(q_r k_r), softmax(q_t k_t));
- ceil(keep_ratio * Ls) tokens are kept, in descending score order (as the authors' code
  orders them); if that equals Ls nothing is eliminated;
- `global_index` (B, Ls) int64 holds each current search token's original position (0..255),
  so eliminated tokens can be restored as exact zeros after the final norm.
"""

from __future__ import annotations

import math

import torch

from ckd_core.config import TEMPLATE_RANGES


def template_query_mask(template_range: str, grid: int, batch: int,
                        template_box: torch.Tensor | None = None,
                        device: torch.device | str = "cpu") -> torch.Tensor | None:
    """Which template tokens' attention rows score the search tokens.

    Args:
        template_range: ALL (None: every template token), CTR_POINT (the centre token:
            row = col = (grid - 1) // 2, i.e. flat index 27 on an 8x8 grid), CTR_REC (the 2x2
            centre block for an even grid, the centre token for an odd grid), GT_BOX (tokens
            covered by the target box in the template crop; needs `template_box`).
        grid: template grid side (template_size / patch_size).
        template_box: (B, 4) target box in the template crop, normalised xywh (GT_BOX only).
    Returns:
        (B, grid*grid) bool, or None for ALL.
    """
    if template_range not in TEMPLATE_RANGES:
        raise ValueError(f"template_range {template_range!r} is not one of {TEMPLATE_RANGES}")
    if template_range == "ALL":
        return None
    mask = torch.zeros(batch, grid, grid, dtype=torch.bool, device=device)
    c = (grid - 1) // 2
    if template_range == "CTR_POINT":
        mask[:, c, c] = True
    elif template_range == "CTR_REC":
        end = c + 2 if grid % 2 == 0 else c + 1
        mask[:, c:end, c:end] = True
    else:  # GT_BOX: the box's covered cells (at least the cell holding the box centre)
        if template_box is None:
            raise ValueError("template_range GT_BOX needs the target box in the template crop")
        box = template_box.to(device=device, dtype=torch.float32) * grid
        for b in range(batch):
            x, y, w, h = box[b].tolist()
            x0, y0 = max(0, int(math.floor(x))), max(0, int(math.floor(y)))
            x1, y1 = min(grid, int(math.ceil(x + w))), min(grid, int(math.ceil(y + h)))
            if x1 > x0 and y1 > y0:
                mask[b, y0:y1, x0:x1] = True
            else:
                cx = min(grid - 1, max(0, int(x + w / 2)))
                cy = min(grid - 1, max(0, int(y + h / 2)))
                mask[b, cy, cx] = True
    return mask.flatten(1)


def search_token_scores(attn: torch.Tensor, num_template: int,
                        query_mask: torch.Tensor | None) -> torch.Tensor:
    """Score each search token by the attention the template queries give it.

    Args:
        attn: (B, H, N, N) attention probabilities, N = num_template + Ls.
        query_mask: (B, num_template) bool or None (all template queries).
    Returns:
        (B, Ls): mean over the selected template queries, then mean over heads.
    """
    attn_t = attn[:, :, :num_template, num_template:]  # (B, H, Nz, Ls)
    if query_mask is None:
        return attn_t.mean(dim=2).mean(dim=1)
    m = query_mask.to(attn_t.dtype)[:, None, :, None]  # (B, 1, Nz, 1)
    per_head = (attn_t * m).sum(dim=2) / m.sum(dim=2).clamp_min(1)
    return per_head.mean(dim=1)


def multimodal_attention(attn_rgb: torch.Tensor, attn_tir: torch.Tensor) -> torch.Tensor:
    """MCE's joint map: element-wise max of the two students' attention probabilities."""
    return torch.maximum(attn_rgb, attn_tir)


def num_kept(num_search: int, keep_ratio: float) -> int:
    return math.ceil(keep_ratio * num_search)


def select_tokens(scores: torch.Tensor, keep_ratio: float) -> torch.Tensor | None:
    """Indices (into the CURRENT search tokens) of the ceil(keep * Ls) best, best first.

    Returns None when nothing would be eliminated. Sorting (not topk) follows the authors'
    code, so the kept tokens come in the same order.
    """
    ls = scores.shape[1]
    k = num_kept(ls, keep_ratio)
    if k >= ls:
        return None
    _, order = torch.sort(scores, dim=1, descending=True)
    return order[:, :k]


def gather_search_tokens(tokens: torch.Tensor, num_template: int, keep: torch.Tensor
                         ) -> torch.Tensor:
    """(B, Nz + Ls, C) -> (B, Nz + k, C): template tokens, then the kept search tokens."""
    b, _, c = tokens.shape
    search = tokens[:, num_template:]
    kept = search.gather(1, keep.unsqueeze(-1).expand(b, keep.shape[1], c))
    return torch.cat([tokens[:, :num_template], kept], dim=1)


def gather_index(global_index: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Original positions of the kept tokens: (B, Ls_current) -> (B, k)."""
    return global_index.gather(1, keep)


def restore_search_tokens(search: torch.Tensor, global_index: torch.Tensor, num_search: int
                          ) -> torch.Tensor:
    """Put kept search tokens back at their original positions; eliminated ones are exact 0.

    Args:
        search: (B, k, C) kept search tokens (after the final norm).
        global_index: (B, k) int64 original positions.
        num_search: Ls, the full number of search tokens (e.g. 256).
    Returns:
        (B, Ls, C).
    """
    b, k, c = search.shape
    if k == num_search:
        # Nothing eliminated, but the order may still be permuted.
        if torch.equal(global_index, torch.arange(num_search, device=search.device).expand(b, -1)):
            return search
    out = search.new_zeros(b, num_search, c)
    return out.scatter(1, global_index.unsqueeze(-1).expand(b, k, c), search)
