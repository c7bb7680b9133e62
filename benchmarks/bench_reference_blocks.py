"""The reference point for issue 6's speed targets: timm's own ViT-B/16 blocks alone.

    scripts/with_env.sh python benchmarks/bench_reference_blocks.py [--compile]

Times the 12 transformer blocks of timm's `vit_base_patch16_224` (random weights) on the
token batch CKD's two students run - 2 x 320 tokens (64 template + 256 search) of width 768,
no elimination - and, as a second shape, 1 x 197 tokens (a plain ViT-B image), under:
fp32 eager, bf16 autocast, int8 dynamic quantisation of the Linear layers (torch.ao), and with
--compile also torch.compile (inductor, weight freezing) in fp32 and under bf16 autocast.
All paths are timed INTERLEAVED (each iteration runs every path once, rotating the order), so
the ratios to fp32 eager hold even when the machine is shared. Writes
benchmarks/results/reference_blocks_<date>.md with the machine described.

Why: the issue's targets (bf16 >= 3x, int8 >= 4x faster than fp32 eager) were derived from
measurements of timm's blocks; this script measures those blocks on this machine with the
pinned torch, so the targets can be compared with what the library itself delivers here.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read when torch loads OpenMP

import argparse  # noqa: E402
import copy  # noqa: E402
import datetime  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from ckd_core.evaluation.speed import describe_machine  # noqa: E402

# the sibling benchmark module (a script's own folder is first on the import path)
from bench_inference import time_interleaved  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SHAPES = {"CKD two students, 2 x 320 tokens": (2, 320), "plain ViT-B image, 1 x 197": (1, 197)}


def build_paths(blocks: torch.nn.Module, compile_too: bool) -> dict:
    """name -> callable(x) for every path."""
    from torch.ao.quantization import quantize_dynamic

    int8 = quantize_dynamic(copy.deepcopy(blocks), {torch.nn.Linear}, dtype=torch.qint8)

    def autocast(fn):
        def run(x):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return fn(x)
        return run
    paths = {"fp32 eager": blocks, "bf16 autocast": autocast(blocks), "int8 torch.ao": int8}
    if compile_too:
        import torch._inductor.config as inductor_config
        inductor_config.freezing = True  # weights as constants: the inference setting
        paths["fp32 torch.compile"] = torch.compile(copy.deepcopy(blocks))
        paths["bf16 torch.compile"] = autocast(torch.compile(copy.deepcopy(blocks)))
    return paths


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", nargs="+", type=int, default=[2, 1])
    p.add_argument("--iters", type=int, default=7)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--compile", action="store_true", help="also torch.compile (slow to build)")
    p.add_argument("--note", default="", help="a line about the conditions")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    import timm

    machine = describe_machine()
    torch.manual_seed(0)
    blocks = timm.create_model("vit_base_patch16_224", pretrained=False).blocks.eval()
    paths = build_paths(blocks, args.compile)
    rows = []
    t_start = time.time()
    for threads in args.threads:
        torch.set_num_threads(threads)
        for shape_name, (b, n) in SHAPES.items():
            x = torch.randn(b, n, 768)
            print(f"threads {threads}, {shape_name} ...", flush=True)
            with torch.inference_mode():
                times = time_interleaved({n: (lambda f=f: f(x)) for n, f in paths.items()},
                                         args.iters, args.warmup)
            ref = statistics.median(times["fp32 eager"])
            for name, ts in times.items():
                med = statistics.median(ts)
                rows.append(f"| {threads} | {shape_name} | {name} | {med:.0f} | "
                            f"{ref / med:.2f}x |")
    lines = ["| threads | tokens | path | ms (median) | speed-up vs fp32 eager |",
             "|---:|---|---|---:|---:|"] + rows
    print("\n".join(lines))
    date = datetime.date.today().isoformat()
    out = args.out or RESULTS / f"reference_blocks_{date}.md"
    text = [f"# timm ViT-B/16 blocks alone: the reference for the speed targets, {date}", "",
            f"`scripts/with_env.sh python benchmarks/bench_reference_blocks.py"
            f"{' --compile' if args.compile else ''}` ({args.iters} interleaved iterations "
            f"after {args.warmup} warm-up; {time.time() - t_start:.0f} s). 12 blocks of "
            "`vit_base_patch16_224`, random weights, batch x tokens x 768.", "",
            "## Machine", ""] + [f"- {k}: {v}" for k, v in machine.items()]
    if args.note:
        text.append(f"- note: {args.note}")
    text += ["", "## Results", ""] + lines + [""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(text))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
