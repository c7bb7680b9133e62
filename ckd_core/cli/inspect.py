"""`ckd inspect CHECKPOINT`: what a checkpoint is and how it maps onto a CKD model.

Prints the detected format, the preset inferred from the tensor shapes, parameter counts,
classes the pickle referenced (never imported or run), and every missing, unexpected,
mis-shaped and ignored key. Exit status 0 if the checkpoint would load cleanly (strictly),
1 if not, 2 if it cannot be read at all or is refused as unsafe.
"""

from __future__ import annotations

import argparse

from ckd_core.cli import CLIError

FORMAT_NAMES = {
    "ckd": "ckd-tracker checkpoint (.safetensors, hash verified)",
    "ckd_official": "official CKD ('net': rgb_branch / tir_branch / teachers / box heads)",
    "ostrack": "OSTrack ('net': backbone + box_head)",
    "droptrack": "DropTrack ('net': backbone with temporal embeddings + box_head)",
    "timm_vit": "timm / MAE ViT (backbone only)",
    "dropmae": "DropMAE pre-training (ViT encoder with temporal embeddings, decoder)",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="file to inspect (.safetensors, .pth, .pth.tar, ...)")
    p.add_argument("--preset", help="target preset name or YAML path (default: inferred from "
                                    "the tensor shapes)")
    p.add_argument("--kind", choices=["training", "inference"],
                   help="target model (default: the file's own kind; initialisation weights "
                        "-> training)")


def _section(title: str, lines: list[str]) -> None:
    print(f"{title} ({len(lines)}):" if lines else f"{title}: none")
    for line in lines:
        print(f"  {line}")


def run(args: argparse.Namespace) -> int:
    from ckd_core.config import ConfigError
    from ckd_core.model.checkpoint import CheckpointError, import_checkpoint, model_state_shapes
    from ckd_core.model.safe_pickle import CheckpointReadError, UnsafeCheckpointError

    try:
        r = import_checkpoint(args.checkpoint, cfg=args.preset, kind=args.kind)
    except (CheckpointError, CheckpointReadError, UnsafeCheckpointError, ConfigError) as exc:
        raise CLIError(str(exc)) from None
    target = args.preset or r.inferred_preset
    others = [p for p in r.compatible_presets if p != target]
    print(f"checkpoint: {r.path}")
    print(f"format: {r.format} - {FORMAT_NAMES.get(r.format, r.format)}")
    print(f"inferred preset: {r.inferred_preset or 'none matches'}"
          + (f" (same shapes: {', '.join(others)})" if others else ""))
    print(f"target: {target} ({'given' if args.preset else 'inferred'}), {r.kind} model")
    model_numel = 0
    for shape in model_state_shapes(r.model_config, r.kind).values():
        n = 1
        for d in shape:
            n *= d
        model_numel += n
    loaded = sum(int(v.numel()) for v in r.state_dict.values())
    print(f"parameters: {r.source_numel:,} values in the file; the {r.kind} model has "
          f"{model_numel:,}, of which {loaded:,} come from the file")
    if r.unloaded_classes:
        print(f"pickled objects kept as inert placeholders (not imported, not run): "
              f"{', '.join(r.unloaded_classes)}")
    _section("notes", r.notes)
    _section("ignored", [f"{k}  ({why})" for k, why in r.ignored])
    _section("missing", r.missing)
    _section("mis-shaped", [f"{k}: checkpoint {tuple(a)} != model {tuple(b)}"
                            for k, a, b in r.mismatched_shapes])
    _section("unexpected", r.unexpected)
    if r.clean:
        print("result: loads cleanly")
        return 0
    print(f"result: does NOT load cleanly ({len(r.missing)} missing, {len(r.unexpected)} "
          f"unexpected, {len(r.mismatched_shapes)} mis-shaped)")
    return 1
