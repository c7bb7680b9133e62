"""`ckd profile`: parameters, paper-comparable MACs, total FLOPs, kept tokens, latency."""

from __future__ import annotations

import argparse
import json

from ckd_core.cli import CLIError
from ckd_core.config import PRECISIONS, RUNTIMES, check_precision


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="ckd_vitb256_mce",
                   help="preset name or YAML path (default: ckd_vitb256_mce)")
    p.add_argument("--checkpoint", help="profile these weights (our format) instead of random")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--precision", "--dtype", dest="precision", default="fp32",
                   choices=PRECISIONS,
                   help="latency arithmetic, as the Tracker runs it: fp32, bf16 / fp16 "
                        "autocast (fp16: CUDA), int8 dynamic Linear layers (CPU); --dtype is "
                        "the older name")
    p.add_argument("--runtime", choices=RUNTIMES, default="torch",
                   help="time the torch model or its ONNX export in ONNX Runtime (fp32 / "
                        "int8)")
    p.add_argument("--elimination", choices=["config", "on", "off", "both"], default="config",
                   help="candidate elimination: as the preset says, forced on/off, or both")
    p.add_argument("--runs", type=int, default=20, help="timed forwards (0 = no timing)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    p.add_argument("--json", help="also write the report(s) as JSON to this file")


def run(args: argparse.Namespace) -> int:
    import torch

    from ckd_core.config import load_config
    from ckd_core.profiling import profile_model

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise CLIError(f"--device {args.device} requested but CUDA is not available here")
    try:
        check_precision(args.precision, args.device.split(":")[0], args.runtime)
    except ValueError as e:
        raise CLIError(f"--precision {args.precision} / --runtime {args.runtime}: {e}") from None
    model = None
    if args.checkpoint:
        from ckd_core.model.checkpoint import load_model
        model = load_model(args.checkpoint, device="cpu")
        cfg = model.cfg
        preset = args.checkpoint
    else:
        cfg = load_config(args.preset).model
        preset = args.preset
    modes = {"config": [None], "on": [True], "off": [False], "both": [False, True]}
    reports = []
    for elim in modes[args.elimination]:
        r = profile_model(cfg, preset=preset, elimination=elim, device=args.device,
                          runs=args.runs, warmup=args.warmup, model=model,
                          precision=args.precision, runtime=args.runtime)
        reports.append(r)
        print(r.format())
        print()
    if len(reports) == 2 and reports[0].latency_ms_median and reports[1].latency_ms_median:
        print(f"elimination speed-up (same run): "
              f"{reports[0].latency_ms_median / reports[1].latency_ms_median:.2f}x, MACs "
              f"{reports[0].macs_thop / reports[1].macs_thop:.3f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([r.to_dict() for r in reports], f, indent=2)
    return 0
