"""`ckd export`: write the inference model (two students + fused head) as ONNX and check it,
or as a ckd-tracker checkpoint taken out of a training checkpoint.

    ckd export --format onnx --checkpoint models/ckd_tiny_synth.safetensors --out tiny.onnx
    ckd export --format onnx --preset ckd_vitb256_mce --out vitb.onnx   # random weights
    ckd export --format onnx --out dense.onnx --no-elimination          # shipped model, dense
    ckd export --format onnx --precision int8 --out tiny_int8.onnx      # ONNX Runtime int8

After writing, the file is run with ONNX Runtime (CPU) on random crops and on crops of a
synthetic RGB + thermal frame pair and compared with PyTorch: the largest absolute
difference of the score / size / offset maps and whether both kept the same search tokens
(MCE). Exit status 1 when the kept tokens differ or a map differs by more than --tolerance.
An int8 file (`--precision int8`: the weight MatMuls quantised by ONNX Runtime) is compared
with the fp32 PyTorch model the same way, but quantisation moves the maps by far more than
1e-3: its differences are reported, and it fails only on non-finite maps or when more than
10% of the kept search tokens differ (tracking fidelity is `benchmarks/fidelity.py`'s job).
The file runs in the tracker with `Tracker.from_checkpoint("tiny.onnx")`.
TensorRT is not offered: it is not installed in this environment.

    ckd export --format safetensors --checkpoint runs/RUN/checkpoints/step_00000780.safetensors \
        --out chosen.safetensors [--precision fp16]

writes the students + fused head of any checkpoint (a training one: the teachers and the
per-modality heads are dropped) exactly as the trainer exports `inference.safetensors` at the
end of a run, so a checkpoint chosen on a validation set can be shipped. fp16 halves the
storage.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from ckd_core.cli import CLIError
from ckd_core.config import ONNX_PRECISIONS

FORMATS = ("onnx", "safetensors")
PRECISIONS = {"onnx": ONNX_PRECISIONS, "safetensors": ("fp32", "fp16")}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=FORMATS, default="onnx",
                   help="output format: onnx (default) or safetensors (a ckd-tracker "
                        "inference checkpoint)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", type=Path, metavar="FILE",
                     help="ckd-tracker weights (.safetensors; training or inference); "
                          "default: the shipped model")
    src.add_argument("--preset", metavar="NAME",
                     help="a preset's architecture with RANDOM weights (speed checks, tests)")
    p.add_argument("--out", type=Path, required=True, metavar="FILE",
                   help="the .onnx (or .safetensors) file")
    p.add_argument("--no-elimination", action="store_true",
                   help="export the dense model (default: elimination as the config says)")
    p.add_argument("--precision", choices=sorted({x for xs in PRECISIONS.values() for x in xs}),
                   default="fp32",
                   help="onnx: fp32 (default) or int8 (ONNX Runtime dynamic quantisation of "
                        "the weight MatMuls); safetensors: fp32 (default) or fp16 storage")
    p.add_argument("--seed", type=int, default=0, help="random weights / check inputs seed")
    p.add_argument("--tolerance", type=float, default=1e-3,
                   help="largest allowed |ORT - torch| on any map (default 1e-3)")
    p.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime check")


def run(args: argparse.Namespace) -> int:
    import torch

    if args.precision not in PRECISIONS[args.format]:
        raise CLIError(f"--precision {args.precision} is not offered for --format {args.format} "
                       f"(choose from {', '.join(PRECISIONS[args.format])})")
    if args.format == "safetensors":
        return _export_safetensors(args)

    from ckd_core.config import from_dict, load_config
    from ckd_core.model import build_inference_model
    from ckd_core.model.onnx_export import check_inputs, compare_onnx, export_onnx

    if args.out.suffix.lower() != ".onnx":
        raise CLIError(f"--out {args.out}: expected a .onnx file name")
    if args.preset:
        cfg = load_config(args.preset)
        torch.manual_seed(args.seed)
        model = build_inference_model(cfg.model)
        source = f"preset {args.preset} (random weights, seed {args.seed})"
    else:
        import json

        from ckd_core.model.checkpoint import (CheckpointError, load_model,
                                               read_checkpoint_meta)
        from ckd_core.tracking.default_model import default_checkpoint_path

        path = args.checkpoint or default_checkpoint_path()
        if not Path(path).is_file():
            raise CLIError(f"--checkpoint {path} does not exist")
        meta = read_checkpoint_meta(path)
        if meta is None:
            raise CLIError(f"{path} is not a ckd-tracker checkpoint; convert foreign weights "
                           f"first (see `ckd inspect`)")
        try:
            model = load_model(path, device="cpu")
        except CheckpointError as exc:
            raise CLIError(str(exc)) from None
        cfg = from_dict(json.loads(meta["config"]))
        source = f"{path} (sha256 {meta.get('content_sha256', 'unknown')})"
    elimination = False if args.no_elimination else None
    out = export_onnx(model, cfg, args.out, elimination=elimination, source=source,
                      precision=args.precision)
    eliminate = cfg.model.elimination.enabled and not args.no_elimination
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB; {args.precision}; {source}; "
          f"elimination {'on (' + cfg.model.elimination.mode + ')' if eliminate else 'off'})")
    if args.no_check:
        return 0
    checks = compare_onnx(out, model, check_inputs(cfg.model, args.seed), elimination)
    ok = True
    for c in checks:
        print(c.format())
        finite = all(math.isfinite(v) for v in c.max_abs.values())
        if args.precision == "fp32":
            ok &= c.kept_equal and max(c.max_abs.values()) <= args.tolerance
        else:
            ok &= finite and c.kept_diff <= 0.1 * c.kept_count
    rule = (f"tolerance {args.tolerance:g}, kept tokens must match" if args.precision == "fp32"
            else "int8: maps must be finite, at most 10% of the kept tokens may differ")
    print("check: " + ("OK" if ok else "FAILED") + f" ({rule})")
    return 0 if ok else 1


def _export_safetensors(args: argparse.Namespace) -> int:
    import torch

    from ckd_core.model.checkpoint import (CheckpointError, export_inference_checkpoint,
                                           read_checkpoint_meta)
    from ckd_core.tracking.default_model import default_checkpoint_path

    if args.preset:
        raise CLIError("--format safetensors exports trained weights: give --checkpoint (a "
                       "preset would give random weights)")
    if args.no_elimination:
        raise CLIError("--no-elimination is an ONNX graph option; a checkpoint keeps its "
                       "config (switch elimination in the tracker config instead)")
    if args.out.suffix.lower() != ".safetensors":
        raise CLIError(f"--out {args.out}: expected a .safetensors file name")
    path = Path(args.checkpoint or default_checkpoint_path())
    if not path.is_file():
        raise CLIError(f"--checkpoint {path} does not exist")
    if path.resolve() == args.out.resolve():
        raise CLIError(f"--out {args.out} is the --checkpoint itself; write to another file")
    try:
        if read_checkpoint_meta(path) is None:
            raise CLIError(f"{path} is not a ckd-tracker checkpoint; convert foreign weights "
                           f"first (see `ckd inspect`)")
        out = export_inference_checkpoint(
            path, args.out, torch.float16 if args.precision == "fp16" else None)
        meta = read_checkpoint_meta(out)
    except CheckpointError as exc:
        raise CLIError(str(exc)) from None
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB; inference checkpoint, "
          f"{meta['storage_dtype']}; from {path}; content sha256 {meta['content_sha256']})")
    return 0
