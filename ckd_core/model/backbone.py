"""One ViT branch of CKD: a one-stream (joint template + search) ViT built from timm blocks.

A branch owns a patch embedding shared by template and search, separate learnable position
embeddings for the two grids (no cls token), `depth` timm `Block`s and a final LayerNorm.
Tokens are ordered [template (Nz), search (Nx)] with full joint attention.

The blocks are run one step at a time (`attention_step`, `mlp_step`) so that several branches
can advance in lock-step and candidate elimination can act between attention and MLP of a block
(`ckd_core.model.ckd`). Attention uses `scaled_dot_product_attention` except where the
probabilities are needed (elimination blocks), where they are computed explicitly as in the
authors' code: softmax((q @ k^T) * scale).
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from timm.layers import trunc_normal_
from timm.models.vision_transformer import Block
from torch import nn

from ckd_core.config import ModelConfig


class PatchEmbed(nn.Module):
    """(B, 3, H, W) image -> (B, (H/p)*(W/p), C) tokens, row-major over the patch grid."""

    def __init__(self, patch_size: int, embed_dim: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


def draw_search_mask(batch: int, num_search: int, ratio: float,
                     generator: torch.Generator | None = None,
                     device: torch.device | str = "cpu") -> torch.Tensor:
    """Masked-modelling draw: (B, Nx) bool, True = token masked, each with P = ratio."""
    u = torch.rand(batch, num_search, generator=generator)
    return (u < ratio).to(device)


class ViTBranch(nn.Module):
    """One branch (RGB/TIR, teacher/student). Shapes for the paper's preset in brackets.

    Parameters: `patch_embed.proj` Conv2d(3, C, p, p), `pos_embed_z` (1, Nz [64], C [768]),
    `pos_embed_x` (1, Nx [256], C), `blocks.{i}` timm Blocks, `norm` LayerNorm(C, eps).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        b = cfg.backbone
        self.embed_dim = b.embed_dim
        self.num_heads = b.num_heads
        self.template_grid = cfg.template_grid
        self.search_grid = cfg.search_grid
        self.template_size = cfg.template_size
        self.search_size = cfg.search_size
        self.patch_embed = PatchEmbed(b.patch_size, b.embed_dim)
        self.pos_embed_z = nn.Parameter(torch.zeros(1, self.template_grid ** 2, b.embed_dim))
        self.pos_embed_x = nn.Parameter(torch.zeros(1, self.search_grid ** 2, b.embed_dim))
        # drop-path rises linearly from 0 at the first block to drop_path_rate at the last
        dpr = torch.linspace(0, b.drop_path_rate, b.depth, device="cpu").tolist()
        norm = partial(nn.LayerNorm, eps=b.ln_eps)  # plain torch LayerNorm (thop counts it)
        self.blocks = nn.ModuleList([
            Block(b.embed_dim, b.num_heads, mlp_ratio=b.mlp_ratio, qkv_bias=b.qkv_bias,
                  drop_path=dpr[i], norm_layer=norm, act_layer=nn.GELU)
            for i in range(b.depth)])
        self.norm = norm(b.embed_dim)
        # Fused SDPA kernel where attention probabilities are not needed; False computes them
        # explicitly everywhere (same maths; used by the FLOP counter, which cannot see SDPA).
        self.use_sdpa = True
        trunc_normal_(self.pos_embed_z, std=0.02)
        trunc_normal_(self.pos_embed_x, std=0.02)
        self.apply(_init_vit_weights)

    @property
    def num_template(self) -> int:
        return self.template_grid ** 2

    @property
    def num_search(self) -> int:
        return self.search_grid ** 2

    def check_inputs(self, template: torch.Tensor, search: torch.Tensor, what: str) -> None:
        self.check_template(template, what)
        self.check_search(search, what, template.shape[0])

    def check_template(self, template: torch.Tensor, what: str) -> None:
        t = self.template_size
        if template.dim() != 4 or tuple(template.shape[1:]) != (3, t, t):
            raise ValueError(f"{what} template must be (B, 3, {t}, {t}), got "
                             f"{tuple(template.shape)}")

    def check_search(self, search: torch.Tensor, what: str, batch: int) -> None:
        """`batch`: the template batch the search must match."""
        s = self.search_size
        if search.dim() != 4 or tuple(search.shape[1:]) != (3, s, s):
            raise ValueError(f"{what} search must be (B, 3, {s}, {s}), got {tuple(search.shape)}")
        if search.shape[0] != batch:
            raise ValueError(f"{what} search must be a batch of {batch} like its template, "
                             f"got {search.shape[0]}")

    def embed(self, template: torch.Tensor, search: torch.Tensor,
              search_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Images -> (B, Nz + Nx, C) tokens. `search_mask` (B, Nx) bool, True = zero that
        token's patch embedding before the position embedding is added (masked modelling)."""
        return torch.cat([self.embed_template(template),
                          self.embed_search(search, search_mask)], dim=1)

    def embed_template(self, template: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, T) template -> (B, Nz, C): patch embedding + template position embedding.
        The only part of a branch that depends on the template alone (every block after it
        mixes template and search tokens), so a tracker may compute it once per target."""
        return self.patch_embed(template) + self.pos_embed_z

    def embed_search(self, search: torch.Tensor,
                     search_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 3, S, S) search -> (B, Nx, C); `search_mask` as in `embed`."""
        x = self.patch_embed(search)
        if search_mask is not None:
            x = x * (~search_mask).unsqueeze(-1).to(x.dtype)
        return x + self.pos_embed_x

    def attention_step(self, i: int, x: torch.Tensor, need_probs: bool
                       ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x + DropPath(Attn(norm1(x))) of block i; also the (B, H, N, N) probabilities when
        `need_probs` (computed explicitly), otherwise None (fused SDPA kernel)."""
        blk = self.blocks[i]
        attn = blk.attn
        h = blk.norm1(x)
        bsz, n, c = h.shape
        qkv = attn.qkv(h).reshape(bsz, n, 3, attn.num_heads, c // attn.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        probs = None
        if need_probs or not self.use_sdpa:
            p = ((q @ k.transpose(-2, -1)) * attn.scale).softmax(dim=-1)
            o = attn.attn_drop(p) @ v
            probs = p if need_probs else None
        else:
            o = F.scaled_dot_product_attention(
                q, k, v, dropout_p=attn.attn_drop.p if self.training else 0.0)
        o = o.transpose(1, 2).reshape(bsz, n, c)
        o = attn.proj_drop(attn.proj(o))
        return x + blk.drop_path1(blk.ls1(o)), probs

    def mlp_step(self, i: int, x: torch.Tensor) -> torch.Tensor:
        blk = self.blocks[i]
        return x + blk.drop_path2(blk.ls2(blk.mlp(blk.norm2(x))))


def _init_vit_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
