"""Inference fast paths side by side: fp32 / bf16 / int8 / ONNX Runtime, dense vs MCE, 1 and 2
torch threads, model only and the full tracker step. One command:

    .venv/bin/python benchmarks/bench_inference.py                 # ViT-B (paper) + tiny shipped
    .venv/bin/python benchmarks/bench_inference.py --models tiny --iters-tiny 50

Models: `vitb` = preset ckd_vitb256_mce with random weights (speed does not depend on the
weights), `tiny` = the shipped model (models/ckd_tiny_synth.safetensors, preset ckd_tiny_mce).
For each model and torch thread count, every path of both elimination modes (dense / MCE)
is built once and then timed INTERLEAVED: each iteration runs every path once, in a
rotating order, so all paths see the same machine load; the medians over the iterations
after warm-up are reported with their RATIO to fp32 eager of the same mode (and to fp32
dense), and the interquartile range shows the noise. On a shared CPU the absolute times
move with the load; the ratios are what to read.

Paths (model only: the network forward on fixed crops of a synthetic frame pair):
- fp32: eager PyTorch, the reference;
- bf16: torch.autocast(bfloat16) on the CPU (needs avx512_bf16 / AMX to be fast);
- int8 torch.ao / int8 torchao: dynamic int8 Linear layers (ckd_core.model.quantize; the
  tracker uses torch.ao, the module docstring says why);
- ORT: the exported ONNX graph in ONNX Runtime (CPU execution provider), fp32;
- ORT int8: the same graph with its weight MatMuls quantised by ONNX Runtime (int8 weights,
  uint8 activations, VNNI kernels; `ckd export --precision int8`).
Track step = `Tracker.update` on 640x512 synthetic frames (crops, normalisation, forward,
decoding): fp32 (template cache on, the default), fp32 without template cache, bf16, int8,
ORT, ORT int8. TensorRT is not measured: it is not installed here.

OpenMP threads are set to sleep while waiting (OMP_WAIT_POLICY=PASSIVE, unless already set)
and ONNX Runtime's do not spin either: on a shared 2-core machine spinning threads make
2-thread runs several times slower than 1-thread runs.
Writes benchmarks/results/inference_<date>.md (the table and the machine).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read when torch loads OpenMP

import argparse  # noqa: E402
import contextlib  # noqa: E402
import datetime  # noqa: E402
import gc  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from ckd_core.config import CKDConfig, load_config  # noqa: E402
from ckd_core.evaluation.speed import describe_machine  # noqa: E402
from ckd_core.model import build_inference_model  # noqa: E402
from ckd_core.model.onnx_export import check_inputs, export_onnx  # noqa: E402
from ckd_core.model.quantize import quantize_linear_int8  # noqa: E402
from ckd_core.tracking import Tracker  # noqa: E402
from ckd_core.tracking.onnx_runtime import OnnxRuntimeModel  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
MODELS = {"vitb": "ckd_vitb256_mce", "tiny": "shipped"}


def load_model(which: str) -> tuple[torch.nn.Module, CKDConfig, str]:
    """(fp32 CKDInference on the CPU, its config, a label) for `vitb` or `tiny`."""
    if which == "tiny":
        import json

        from ckd_core.config import from_dict
        from ckd_core.model.checkpoint import load_model as load_weights
        from ckd_core.model.checkpoint import read_checkpoint_meta
        from ckd_core.tracking.default_model import default_checkpoint_path

        path = default_checkpoint_path()
        cfg = from_dict(json.loads(read_checkpoint_meta(path)["config"]))
        return load_weights(path, device="cpu"), cfg, f"shipped {path.name} (ckd_tiny_mce)"
    cfg = load_config(MODELS[which])
    torch.manual_seed(0)
    return build_inference_model(cfg.model), cfg, f"{MODELS[which]} (random weights)"


def make_tracker(model, cfg: CKDConfig, path: str, elimination: bool,
                 onnx_file: Path | None = None, threads: int = 1) -> Tracker:
    """The tracker for one path name (fp32, fp32 no cache, bf16, int8, ORT), authors' tracker
    (no LOST state machine, so every path follows its own peaks)."""
    cfg = cfg.replace(**{"tracker.state_machine": False})
    if path.startswith("ORT"):
        ort_model = OnnxRuntimeModel(onnx_file, "cpu", threads=threads)
        return Tracker(ort_model, cfg.replace(**{"tracker.precision": ort_model.precision}))
    precision = {"bf16": "bf16", "int8": "int8"}.get(path, "fp32")
    cfg = cfg.replace(**{"tracker.precision": precision})
    return Tracker(model, cfg, elimination=elimination,
                   cache_template=path != "fp32 no cache")


def synthetic_frames(n: int, width: int = 640, height: int = 512, seed: int = 1):
    from ckd_core.data.synth import make_sequence_spec, render_sequence

    spec = make_sequence_spec(seed, 0, num_frames=n, width=width, height=height,
                              profile="robot", attributes=())
    return render_sequence(spec)


@dataclass
class Row:
    model: str
    threads: int
    mode: str  # dense | MCE
    path: str
    model_ms: list[float] | None  # per timed iteration
    track_ms: list[float] | None


def time_interleaved(fns: dict, iters: int, warmup: int,
                     after_iteration: callable = lambda: None) -> dict[object, list[float]]:
    """Milliseconds of each callable per timed iteration; every iteration runs each callable
    once, in a rotating order (`after_iteration` runs between iterations, untimed)."""
    names = list(fns)
    times = {n: [] for n in names}
    for it in range(warmup + iters):
        order = names[it % len(names):] + names[:it % len(names)]
        for n in order:
            t0 = time.perf_counter()
            fns[n]()
            if it >= warmup:
                times[n].append(1000 * (time.perf_counter() - t0))
        after_iteration()
    return times


ORT_PATHS = {"ORT": "fp32", "ORT int8": "int8"}  # path -> precision of the exported graph
MODEL_PATHS = ("fp32", "bf16", "int8 torch.ao", "int8 torchao", *ORT_PATHS)
TRACK_PATHS = ("fp32", "fp32 no cache", "bf16", "int8", *ORT_PATHS)
ROW_PATHS = ("fp32", "fp32 no cache", "bf16", "int8 torch.ao", "int8 torchao", *ORT_PATHS)
MODES = {"dense": False, "MCE": True}


def bench_model(which: str, threads_list: list[int], iters: int, warmup: int,
                frames: int, workdir: Path) -> tuple[list[Row], str]:
    """Rows for one model: per thread count, dense and MCE paths all interleaved."""
    model, cfg, label = load_model(which)
    z_rgb, z_tir, x_rgb, x_tir = check_inputs(cfg.model)["synthetic"]
    seq = synthetic_frames(frames)
    box0 = tuple(float(v) for v in seq.gt_rgb[0])
    onnx = {(mode, p): export_onnx(model, cfg, workdir / f"{which}_{mode}_{prec}.onnx",
                                   elimination=e, source=label, precision=prec)
            for mode, e in MODES.items() for p, prec in ORT_PATHS.items()}
    int8 = {"int8 torch.ao": quantize_linear_int8(model, "torch_ao"),
            "int8 torchao": quantize_linear_int8(model, "torchao")}
    rows = []
    for threads in threads_list:
        torch.set_num_threads(threads)
        ort = {key: OnnxRuntimeModel(f, "cpu", threads=threads) for key, f in onnx.items()}

        def forward(path, mode):
            m, e = int8.get(path, model), MODES[mode]
            if path in ORT_PATHS:
                return lambda: ort[(mode, path)](z_rgb, z_tir, x_rgb, x_tir)
            autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if path == "bf16"
                        else contextlib.nullcontext())

            def run():
                with torch.inference_mode(), autocast:
                    return m(z_rgb, z_tir, x_rgb, x_tir, elimination=e)
            return run

        print(f"  {which} threads={threads}: model only ...", flush=True)
        model_ms = time_interleaved({(mode, p): forward(p, mode) for mode in MODES
                                     for p in MODEL_PATHS}, iters, warmup)
        del ort
        trackers = {(mode, p): make_tracker(model, cfg, p, e, onnx.get((mode, p)), threads)
                    for mode, e in MODES.items() for p in TRACK_PATHS}
        for t in trackers.values():
            t.init(seq.rgb[0], seq.thermal[0], box0)
        frame = {"k": 0}

        def step(t):
            def run():
                k = 1 + frame["k"] % (len(seq.rgb) - 1)
                t.update(seq.rgb[k], seq.thermal[k])
            return run

        print(f"  {which} threads={threads}: track step ...", flush=True)
        # every tracker gets the same frame in an iteration, the next one in the next
        track_ms = time_interleaved({k: step(t) for k, t in trackers.items()}, iters, warmup,
                                    lambda: frame.update(k=frame["k"] + 1))
        del trackers
        gc.collect()
        for mode in MODES:
            for p in ROW_PATHS:
                track_key = "int8" if p == "int8 torch.ao" else p
                rows.append(Row(which, threads, mode, p, model_ms.get((mode, p)),
                                track_ms.get((mode, track_key))))
    for f in onnx.values():
        f.unlink()
    return rows, label


def ratio(v: list[float] | None, ref: list[float] | None) -> str:
    return "" if not v or not ref else f"{statistics.median(v) / statistics.median(ref):.2f}x"


def ms(v: list[float] | None) -> str:
    """'median (IQR x%)': the interquartile range relative to the median shows the noise."""
    if not v:
        return ""
    med = statistics.median(v)
    if len(v) < 4:
        return f"{med:.1f}"
    q = statistics.quantiles(v, n=4)
    return f"{med:.1f} ({100 * (q[2] - q[0]) / med:.0f}%)"


def table(rows: list[Row]) -> list[str]:
    ref = {(r.model, r.threads, r.mode): r for r in rows if r.path == "fp32"}
    lines = ["| model | threads | mode | path | model ms (IQR) | model vs fp32 same mode | "
             "model vs fp32 dense | track step ms (IQR) | track vs fp32 same mode | "
             "track vs fp32 dense |",
             "|---|---:|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        same = ref[(r.model, r.threads, r.mode)]
        dense = ref[(r.model, r.threads, "dense")]
        lines.append(f"| {r.model} | {r.threads} | {r.mode} | {r.path} | {ms(r.model_ms)} | "
                     f"{ratio(r.model_ms, same.model_ms)} | {ratio(r.model_ms, dense.model_ms)}"
                     f" | {ms(r.track_ms)} | {ratio(r.track_ms, same.track_ms)} | "
                     f"{ratio(r.track_ms, dense.track_ms)} |")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["vitb", "tiny"])
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--iters-tiny", type=int, default=40)
    p.add_argument("--iters-vitb", type=int, default=5, help="each fp32 forward is ~1 s")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--frames", type=int, default=30, help="synthetic frames cycled through")
    p.add_argument("--out", type=Path, help="markdown file (default: results/inference_"
                                            "<date>.md)")
    p.add_argument("--note", default="", help="a line about the conditions (other load...)")
    args = p.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)
    before = describe_machine()
    print("\n".join(f"{k}: {v}" for k, v in before.items()), flush=True)
    rows: list[Row] = []
    labels: list[str] = []
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="ckd_bench_") as tmp:
        for which in args.models:
            iters = args.iters_vitb if which == "vitb" else args.iters_tiny
            print(f"{which}: {iters} iterations after {args.warmup} warm-up", flush=True)
            new, label = bench_model(which, args.threads, iters, args.warmup, args.frames,
                                     Path(tmp))
            rows += new
            labels.append(f"`{which}` = {label}")
    after = describe_machine()
    lines = table(rows)
    print("\n".join(lines))
    date = datetime.date.today().isoformat()
    out = args.out or RESULTS / f"inference_{date}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    iters = {m: (args.iters_vitb if m == "vitb" else args.iters_tiny) for m in args.models}
    text = [f"# Inference fast paths, {date}", "",
            "`.venv/bin/python benchmarks/bench_inference.py` "
            f"(models {', '.join(args.models)}; threads {args.threads}; iterations "
            f"{iters} after {args.warmup} warm-up; {time.time() - t0:.0f} s in all).", "",
            "Median milliseconds (IQR = interquartile range / median: the noise); for each "
            "(model, threads) all paths, dense and MCE, were timed interleaved (each "
            "iteration runs every path once), so the RATIOS are comparable even though the "
            "machine was shared (see the load average): the absolute times are not a "
            "property of the code. Model = network forward on fixed 1-pair crops; track "
            "step = `Tracker.update` on a 640x512 RGB + thermal frame pair. Template cache "
            "is on in every track-step path except `fp32 no cache`; `int8 torchao` is model "
            "only (the tracker's int8 is torch.ao); `ORT int8` = the exported graph with its "
            "weight MatMuls quantised by ONNX Runtime (`ckd export --precision int8`). "
            "TensorRT: not installed, not measured.",
            "", "Models: " + "; ".join(labels) + ".", "", "## Machine", ""]
    for k in before:
        v = before[k] if k != "load average" else (f"{before[k]} at start; {after[k]} at "
                                                    "end")
        text.append(f"- {k}: {v}")
    if args.note:
        text.append(f"- note: {args.note}")
    text += ["", "## Results", ""] + lines + [""]
    out.write_text("\n".join(text))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
