"""Synthetic stand-ins for the checkpoints other projects publish (test helper, no tests).

- `authors_code(root, monkeypatch)`: a throw-away `lib.train.admin.{settings,stats}` package
  (like OSTrack's / CKD's training code) importable ONLY inside the `with` block, so pickles
  written there reference classes that do not exist when the tests load them.
- `*_shapes(...)`: key -> shape tables written from the authors' naming (OSTrack_CKD,
  VisionTransformerCE, CenterPredictor, timm ViT), independent of `ckd_core.model`.
- `random_state(shapes)`: random tensors for a table (BatchNorm counters as int64).
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import textwrap
from collections import OrderedDict
from pathlib import Path

import torch

SETTINGS_PY = textwrap.dedent('''
    import argparse

    import torch


    class EnvSettings:
        def __init__(self):
            self.workspace_dir = "/home/author/CKD"
            self.lasher_dir = "/data/LasHeR/trainingset"


    class Settings:
        def __init__(self):
            self.env = EnvSettings()
            self.script_name = "ckd"
            self.config_name = "ckd_4b_dropmae"
            self.batchsize = 10
            self.device = torch.device("cpu")
            self.args = argparse.Namespace(script="ckd", local_rank=0)


    class NetConstructor:
        def __init__(self, fun_name, fun_module, args, kwds):
            self.fun_name = fun_name
            self.fun_module = fun_module
            self.args = args
            self.kwds = kwds


    class Noisy:
        """Its __setstate__ writes a file: a loader that ran the authors' code would show."""

        def __init__(self, marker):
            self.marker = marker

        def __getstate__(self):
            return {"marker": self.marker}

        def __setstate__(self, state):
            open(state["marker"], "w").close()
''')

STATS_PY = textwrap.dedent('''
    class AverageMeter:
        def __init__(self):
            self.val = 0.0
            self.avg = 0.0
            self.sum = 0.0
            self.count = 0

        def update(self, val, n=1):
            self.val = val
            self.sum += val * n
            self.count += n
            self.avg = self.sum / self.count
''')


@contextlib.contextmanager
def authors_code(root: Path, monkeypatch):
    """Yield (settings module, stats module) of a `lib.train.admin` package under `root`;
    afterwards the package is neither on sys.path nor in sys.modules."""
    admin = root / "lib" / "train" / "admin"
    admin.mkdir(parents=True, exist_ok=True)
    for pkg in (root / "lib", root / "lib" / "train", admin):
        (pkg / "__init__.py").write_text("")
    (admin / "settings.py").write_text(SETTINGS_PY)
    (admin / "stats.py").write_text(STATS_PY)
    try:
        with monkeypatch.context() as m:
            m.syspath_prepend(str(root))
            yield (importlib.import_module("lib.train.admin.settings"),
                   importlib.import_module("lib.train.admin.stats"))
    finally:
        for name in [n for n in sys.modules if n == "lib" or n.startswith("lib.")]:
            del sys.modules[name]
        importlib.invalidate_caches()


def authors_objects(settings, stats) -> dict:
    """What OSTrack's / CKD's trainer pickles next to `net` (see base_trainer.save_checkpoint)."""
    meter = stats.AverageMeter()
    meter.update(0.5)
    params = [torch.nn.Parameter(torch.randn(4, 3)), torch.nn.Parameter(torch.randn(4))]
    opt = torch.optim.AdamW(params, lr=5e-5)
    params[0].grad = torch.randn(4, 3)
    params[1].grad = torch.randn(4)
    opt.step()
    return {
        "epoch": 15,
        "actor_type": "CKDActor",
        "net_type": "OSTrack_CKD",
        "net_info": {"name": "ostrack_ckd"},
        "constructor": settings.NetConstructor("build_ostrack_ckd", "lib.models.ckd",
                                               (settings.Settings(),), {}),
        "optimizer": opt.state_dict(),
        "stats": OrderedDict(train=OrderedDict({"Loss/total": meter})),
        "settings": settings.Settings(),
    }


def vit_shapes(c: int, depth: int, hidden: int, patch: int, nz: int, nx: int,
               n_vit: int = 197) -> dict[str, tuple[int, ...]]:
    """One VisionTransformerCE as the authors save it (incl. unused cls_token / pos_embed)."""
    s: dict[str, tuple[int, ...]] = {
        "cls_token": (1, 1, c), "pos_embed": (1, n_vit, c),
        "patch_embed.proj.weight": (c, 3, patch, patch), "patch_embed.proj.bias": (c,),
        "pos_embed_z": (1, nz, c), "pos_embed_x": (1, nx, c),
        "norm.weight": (c,), "norm.bias": (c,)}
    for i in range(depth):
        p = f"blocks.{i}."
        s.update({p + "norm1.weight": (c,), p + "norm1.bias": (c,),
                  p + "attn.qkv.weight": (3 * c, c), p + "attn.qkv.bias": (3 * c,),
                  p + "attn.proj.weight": (c, c), p + "attn.proj.bias": (c,),
                  p + "norm2.weight": (c,), p + "norm2.bias": (c,),
                  p + "mlp.fc1.weight": (hidden, c), p + "mlp.fc1.bias": (hidden,),
                  p + "mlp.fc2.weight": (c, hidden), p + "mlp.fc2.bias": (c,)})
    return s


def head_shapes(cin: int, ch: int) -> dict[str, tuple[int, ...]]:
    """OSTrack's CenterPredictor: conv(3x3)+BN+ReLU x4 per tower, then a 1x1 conv."""
    widths = [cin, ch, ch // 2, ch // 4, ch // 8]
    s: dict[str, tuple[int, ...]] = {}
    for tower, out in (("ctr", 1), ("offset", 2), ("size", 2)):
        for i in range(4):
            p = f"conv{i + 1}_{tower}."
            s[p + "0.weight"] = (widths[i + 1], widths[i], 3, 3)
            s[p + "0.bias"] = (widths[i + 1],)
            for bn in ("weight", "bias", "running_mean", "running_var"):
                s[p + f"1.{bn}"] = (widths[i + 1],)
            s[p + "1.num_batches_tracked"] = ()
        s[f"conv5_{tower}.weight"] = (out, widths[4], 1, 1)
        s[f"conv5_{tower}.bias"] = (out,)
    return s


def prefixed(prefix: str, table: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}{k}": v for k, v in table.items()}


def ckd_official_shapes(c: int, depth: int, hidden: int, patch: int, nz: int, nx: int,
                        head: int, training: bool = True) -> dict[str, tuple[int, ...]]:
    """OSTrack_CKD.state_dict(): students, fused head and (training) teachers + their heads."""
    branch = vit_shapes(c, depth, hidden, patch, nz, nx)
    s = {**prefixed("rgb_branch.", branch), **prefixed("tir_branch.", branch),
         **prefixed("box_head.", head_shapes(2 * c, head))}
    if training:
        s.update({**prefixed("teacher_rgb.", branch), **prefixed("teacher_tir.", branch),
                  **prefixed("box_head_v.", head_shapes(c, head)),
                  **prefixed("box_head_i.", head_shapes(c, head))})
    return s


def ostrack_shapes(c: int, depth: int, hidden: int, patch: int, nz: int, nx: int,
                   head: int, temporal: bool = False) -> dict[str, tuple[int, ...]]:
    """OSTrack's (or, with temporal=True, DropTrack's) `net`: backbone + box_head."""
    backbone = vit_shapes(c, depth, hidden, patch, nz, nx)
    if temporal:
        backbone.update({"temporal_pos_embed_x": (1, 1, c), "temporal_pos_embed_z": (1, 1, c)})
    return {**prefixed("backbone.", backbone), **prefixed("box_head.", head_shapes(c, head))}


def timm_vit_shapes(c: int, depth: int, hidden: int, patch: int, grid: int = 14,
                    classes: int = 1000) -> dict[str, tuple[int, ...]]:
    """timm VisionTransformer.state_dict() (cls token, 1 + grid^2 positions, classifier)."""
    s = vit_shapes(c, depth, hidden, patch, 0, 0, n_vit=1 + grid * grid)
    del s["pos_embed_z"], s["pos_embed_x"]
    s.update({"head.weight": (classes, c), "head.bias": (classes,)})
    return s


def random_state(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> OrderedDict:
    g = torch.Generator().manual_seed(seed)
    out = OrderedDict()
    for k, shape in shapes.items():
        if k.endswith("num_batches_tracked"):
            out[k] = torch.tensor(7, dtype=torch.int64)
        else:
            out[k] = torch.randn(shape, generator=g)
    return out


def meta_state(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """Same keys as random_state, on the meta device (shapes only, no memory)."""
    return {k: torch.empty(shape, device="meta",
                           dtype=torch.int64 if k.endswith("num_batches_tracked") else None)
            for k, shape in shapes.items()}
