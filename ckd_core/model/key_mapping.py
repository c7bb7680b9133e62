"""Pure key-mapping functions: foreign state dicts -> CKD training-layout state dicts.

Every function here takes plain `{name: tensor}` dicts and returns a new `Mapped` (no file
access, no model). The target layout is the CKD training model's: `rgb_branch.*`,
`tir_branch.*`, `teacher_rgb.*`, `teacher_tir.*` (ViT branches: `patch_embed.proj.*`,
`pos_embed_z` (1, Gz*Gz, C), `pos_embed_x` (1, Gx*Gx, C), `blocks.{i}.*`, `norm.*`),
`box_head.*` (fused CENTER head, 2C input channels) and `box_head_v.*` / `box_head_i.*`
(teacher heads, C input channels). `ckd_core.model.checkpoint.fit_state_dict` then compares
the result with the model (missing / unexpected / mis-shaped keys).

What each source looks like and what we assume about it:

- official CKD (`Multi-Modality-Tracking/CKD`, `OSTrack_CKD`): `net` holds exactly our names
  (`rgb_branch.*`, ..., `box_head_i.*`); each branch also carries the ViT's unused
  `cls_token` (1, 1, C) and 197-token `pos_embed` -> ignored. If a branch carries DropTrack's
  `temporal_pos_embed_*` (the authors' ViT class may register them), they are ignored too:
  CKD's forward never adds them, because `build_ostrack_ckd` already added them into
  `pos_embed_z/x` when it initialised from DropTrack.
- OSTrack (`botaoye/OSTrack`): `net` = `backbone.*` (one ViT, same per-branch names, plus the
  unused `cls_token` / `pos_embed`) + `box_head.*` (CENTER head on C channels). The backbone
  goes into all four branches; the head into both teacher heads and into the fused head with
  `conv1_{ctr,offset,size}.0.weight` duplicated along the input channels, so the fused head
  starts as W*f_rgb + W*f_tir (+ the bias once). This is the authors' own initialisation
  (`build_ostrack_ckd`). If the checkpoint's position tables are for other crop sizes they are
  resized bilinearly (align_corners=False), like the authors' `resize_pos_embed`. If OSTrack's
  optional segment embeddings (`template_segment_pos_embed`, `search_segment_pos_embed`,
  (1, 1, C), present only when SEP_SEG was on) exist, they are added into the tables.
- DropTrack (`jimmy-dq/DropTrack`, OSTrack-style, usually 384/192 crops = 24x24 / 12x12 grids):
  as OSTrack, plus `backbone.temporal_pos_embed_x` / `backbone.temporal_pos_embed_z`
  (1, 1, C), the per-frame-type ("token type") embeddings DropTrack adds to the search /
  template tokens. The tables are resized bilinearly to our grids first, then the temporal
  embeddings added (the authors' `pos_embed_filter`, same order).
- timm ViT (ImageNet or MAE weights; keys `patch_embed.proj.*`, `cls_token`, `pos_embed`
  (1, n_prefix + G*G, C), `blocks.*`, `norm.*`, classifier `head.*` / `fc_norm.*`), possibly
  wrapped in `model` / `state_dict`: the prefix (cls/register) positions are dropped and the
  G x G grid is resized BICUBICALLY (align_corners=False) to the template and search grids,
  as OSTrack's `finetune_track` does when it starts from MAE weights. The blocks go into all
  four branches; the heads are not in such a file (missing: they keep their fresh init).
- DropMAE pre-training (`jimmy-dq/DropMAE`, `model` = encoder + `decoder_*` + `mask_token`):
  as timm (it has no cls token but keeps a 197-position sin-cos table), plus its
  `temporal_pos_embed_x` / `_z` added into the search / template tables; the decoder is
  ignored.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

BRANCHES = ("rgb_branch", "tir_branch", "teacher_rgb", "teacher_tir")
TRAINING_ONLY = ("teacher_rgb.", "teacher_tir.", "box_head_v.", "box_head_i.")
FUSED_CONV1 = ("conv1_ctr.0.weight", "conv1_offset.0.weight", "conv1_size.0.weight")

UNUSED_VIT = "unused by CKD: the ViT's cls token / 197-token position table"
UNUSED_CLASSIFIER = "unused by CKD: image-classification head"
UNUSED_DECODER = "unused by CKD: MAE pre-training decoder"
TRAINING_ONLY_REASON = "training-only: a teacher branch or head, unused by the inference model"

# branch keys that exist in the authors' ViTs but not in ours
_UNUSED_BRANCH_KEYS = ("cls_token", "pos_embed", "cls_pos_embed", "dist_token")
_CLASSIFIER = re.compile(r"^(head|head_dist|fc_norm|pre_logits)(\.|$)")
_DECODER = re.compile(r"^(decoder_|mask_token$)")


@dataclass
class Mapped:
    """A mapped state dict and what happened on the way.

    state: target-layout name -> tensor; ignored: (source name, reason) for keys deliberately
    dropped; notes: human-readable lines about transformations (resizes, folds, duplications).
    """

    state: dict[str, torch.Tensor] = field(default_factory=dict)
    ignored: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def strip_module_prefix(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove the `module.` prefix(es) DataParallel / DDP put in front of every key."""
    out = {}
    for k, v in sd.items():
        while k.startswith("module."):
            k = k[len("module."):]
        out[k] = v
    return out


def grid_side(num_tokens: int, what: str) -> int:
    """Side of a square token grid, or ValueError naming `what`."""
    side = math.isqrt(num_tokens)
    if side * side != num_tokens:
        raise ValueError(f"{what} has {num_tokens} positions, not a square grid")
    return side


def resize_pos_table(table: torch.Tensor, grid: int, mode: str) -> torch.Tensor:
    """(1, g*g, C) position table -> (1, grid*grid, C), interpolated over the 2-D grid.

    mode: "bilinear" or "bicubic" (align_corners=False). Computed in float32, returned in the
    input dtype. A table already of the right size is returned unchanged.
    """
    side = grid_side(table.shape[1], "position table")
    if side == grid:
        return table
    c = table.shape[2]
    img = table.detach().float().reshape(1, side, side, c).permute(0, 3, 1, 2)
    img = F.interpolate(img, size=(grid, grid), mode=mode, align_corners=False)
    return img.permute(0, 2, 3, 1).reshape(1, grid * grid, c).to(table.dtype)


def split_prefix_tokens(pos_embed: torch.Tensor) -> tuple[int, torch.Tensor]:
    """A timm `pos_embed` (1, n_prefix + G*G, C) -> (n_prefix, (1, G*G, C)).

    n_prefix is the smallest count that leaves a square grid (197 -> 1, 196 -> 0, 201 -> 5).
    """
    n = pos_embed.shape[1]
    for prefix in range(0, 9):
        side = math.isqrt(n - prefix)
        if side * side == n - prefix:
            return prefix, pos_embed[:, prefix:]
    raise ValueError(f"pos_embed has {n} positions: no square grid after up to 8 prefix tokens")


_TOKEN_TYPE = (("temporal_pos_embed_z", "pos_embed_z"), ("temporal_pos_embed_x", "pos_embed_x"),
               ("template_segment_pos_embed", "pos_embed_z"),
               ("search_segment_pos_embed", "pos_embed_x"))
UNUSED_TOKEN_TYPE = ("unused by CKD's forward: the authors added it into pos_embed_z/x when "
                     "initialising from DropTrack")


def _finish_branch(branch: dict[str, torch.Tensor], src: str, grids: tuple[int, int] | None,
                   mode: str, out: Mapped, fold: bool = True) -> dict[str, torch.Tensor]:
    """Drop the unused ViT keys, resize the tables to `grids`, and add the token-type
    embeddings (1, 1, C) into the tables (fold=True) or ignore them (fold=False)."""
    branch = dict(branch)
    for key in _UNUSED_BRANCH_KEYS:
        if key in branch:
            del branch[key]
            out.ignored.append((f"{src}{key}", UNUSED_VIT))
    if grids is not None:
        for key, grid in (("pos_embed_z", grids[0]), ("pos_embed_x", grids[1])):
            if key in branch:
                old = branch[key].shape[1]
                branch[key] = resize_pos_table(branch[key], grid, mode)
                if branch[key].shape[1] != old:
                    g = grid_side(old, f"{src}{key}")
                    out.notes.append(f"{src}{key}: resized {g}x{g} -> {grid}x{grid} ({mode})")
    for extra, table in _TOKEN_TYPE:
        if extra in branch:
            value = branch.pop(extra)
            if not fold:
                out.ignored.append((f"{src}{extra}", UNUSED_TOKEN_TYPE))
            elif table in branch:
                branch[table] = branch[table] + value.to(branch[table].dtype)
                out.notes.append(f"{src}{extra}: added into {table}")
            else:
                out.ignored.append((f"{src}{extra}", f"no {table} to add it to"))
    return branch


def _split(sd: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def map_ckd_official(sd: dict[str, torch.Tensor]) -> Mapped:
    """The authors' CKD `net` (or our own layout): names kept, unused ViT keys dropped."""
    sd = strip_module_prefix(sd)
    out = Mapped()
    branch_prefixes = tuple(f"{b}." for b in BRANCHES)
    for b in BRANCHES:
        sub = _split(sd, f"{b}.")
        if sub:
            for k, v in _finish_branch(sub, f"{b}.", None, "bilinear", out, fold=False).items():
                out.state[f"{b}.{k}"] = v
    for k, v in sd.items():
        if not k.startswith(branch_prefixes):
            out.state[k] = v
    return out


def duplicate_for_fused_head(head: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A C-channel CENTER head -> the fused 2C-channel head: each tower's first conv weight
    (out, C, 3, 3) becomes cat([W, W], dim=1) so that conv(cat(f_rgb, f_tir)) = W*f_rgb +
    W*f_tir + b. Every other tensor is copied."""
    return {k: (torch.cat([v, v], dim=1) if k in FUSED_CONV1 else v) for k, v in head.items()}


def _spread(backbone: dict[str, torch.Tensor], head: dict[str, torch.Tensor], out: Mapped
            ) -> None:
    for b in BRANCHES:
        for k, v in backbone.items():
            out.state[f"{b}.{k}"] = v
    if head:
        for k, v in duplicate_for_fused_head(head).items():
            out.state[f"box_head.{k}"] = v
        for name in ("box_head_v", "box_head_i"):
            for k, v in head.items():
                out.state[f"{name}.{k}"] = v
        out.notes.append("box_head: copied into box_head_v and box_head_i; fused box_head gets "
                         "conv1_{ctr,offset,size}.0.weight duplicated along input channels")
    out.notes.append(f"backbone: copied into {', '.join(BRANCHES)}")


def map_ostrack(sd: dict[str, torch.Tensor], grids: tuple[int, int] | None) -> Mapped:
    """OSTrack / DropTrack `net` -> CKD layout (see the module docstring).

    grids: (template grid, search grid) to resize the position tables to; None keeps them.
    """
    sd = strip_module_prefix(sd)
    out = Mapped()
    backbone = _finish_branch(_split(sd, "backbone."), "backbone.", grids, "bilinear", out)
    head = _split(sd, "box_head.")
    _spread(backbone, head, out)
    for k, v in sd.items():
        if not k.startswith(("backbone.", "box_head.")):
            out.state[k] = v  # unknown: reported as unexpected by the fit
    return out


def map_vit(sd: dict[str, torch.Tensor], grids: tuple[int, int] | None) -> Mapped:
    """timm / MAE / DropMAE ViT -> the four CKD branches (see the module docstring).

    grids: (template grid, search grid); None keeps the source grid for both tables (used to
    infer a preset before the target is known).
    """
    sd = strip_module_prefix(sd)
    out = Mapped()
    backbone: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if _CLASSIFIER.match(k):
            out.ignored.append((k, UNUSED_CLASSIFIER))
        elif _DECODER.match(k):
            out.ignored.append((k, UNUSED_DECODER))
        elif k in ("cls_token", "dist_token", "reg_token"):
            out.ignored.append((k, UNUSED_VIT))
        elif k == "pos_embed":
            prefix, table = split_prefix_tokens(v)
            side = grid_side(table.shape[1], "pos_embed")
            tz, tx = grids if grids is not None else (side, side)
            backbone["pos_embed_z"] = resize_pos_table(table, tz, "bicubic")
            backbone["pos_embed_x"] = resize_pos_table(table, tx, "bicubic")
            out.notes.append(f"pos_embed: {prefix} prefix position(s) dropped, {side}x{side} grid "
                             f"resized to {tz}x{tz} (pos_embed_z) and {tx}x{tx} (pos_embed_x), "
                             f"bicubic")
        else:
            backbone[k] = v
    backbone = _finish_branch(backbone, "", None, "bicubic", out)
    _spread(backbone, {}, out)
    return out


def fit_state_dict(mapped: dict[str, torch.Tensor], expected: dict[str, tuple[int, ...]],
                   kind: str) -> tuple[dict[str, torch.Tensor], list[str], list[str],
                                       list[tuple[str, tuple[int, ...], tuple[int, ...]]],
                                       list[tuple[str, str]]]:
    """Compare a mapped state dict with the model's `{name: shape}`.

    Returns (state_dict, missing, unexpected, mismatched, ignored): state_dict holds only keys
    the model has with matching shapes (ready for `load_state_dict(strict=False)`); mismatched
    entries are (name, checkpoint shape, model shape); with kind="inference" the training-only
    keys are listed in ignored instead of unexpected.
    """
    state: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    mismatched = []
    ignored: list[tuple[str, str]] = []
    for k, v in mapped.items():
        if k not in expected:
            if kind == "inference" and k.startswith(TRAINING_ONLY):
                ignored.append((k, TRAINING_ONLY_REASON))
            else:
                unexpected.append(k)
        elif tuple(v.shape) != tuple(expected[k]):
            mismatched.append((k, tuple(v.shape), tuple(expected[k])))
        else:
            state[k] = v
    missing = [k for k in expected if k not in mapped]
    return state, missing, unexpected, mismatched, ignored
