"""Size, compute and speed of the inference model of any preset.

- parameters: every parameter of the inference model (two students + fused head);
- MACs counted like the paper (the `thop` package: multiply-adds of Linear and Conv layers plus
  LayerNorm/BatchNorm, NOT the two attention matmuls, nor softmax/GELU);
- FLOPs with attention included (torch.utils.flop_counter: 2 x multiply-adds of every matmul,
  convolution and SDPA call; norms and activations are not counted there);
- search tokens alive after each elimination stage;
- forward latency: median of `runs` timed forwards after `warmup` untimed ones.
"""

from __future__ import annotations

import copy
import statistics
import time
import warnings
from dataclasses import asdict, dataclass

import torch

from ckd_core.config import ModelConfig, check_precision
from ckd_core.model import build_inference_model


@dataclass(frozen=True)
class ProfileReport:
    preset: str
    elimination: bool
    parameters: int
    macs_thop: float  # multiply-adds, paper convention
    flops_total: float  # with attention matmuls
    kept_tokens: tuple[int, ...]
    latency_ms_median: float | None
    latency_ms_p90: float | None
    device: str
    dtype: str  # the arithmetic: float32 | bfloat16 | float16 | int8
    threads: int
    precision: str = "fp32"  # fp32 | bf16 (autocast) | fp16 (autocast, CUDA) | int8
    runtime: str = "torch"  # torch | onnxruntime

    def to_dict(self) -> dict:
        return asdict(self)

    def format(self) -> str:
        lines = [
            f"preset        {self.preset}  (elimination {'on' if self.elimination else 'off'})",
            f"parameters    {self.parameters / 1e6:.2f} M",
            f"MACs (thop)   {self.macs_thop / 1e9:.2f} G   "
            "(Linear/Conv/Norm, attention matmuls excluded)",
            f"FLOPs (total) {self.flops_total / 1e9:.2f} G   "
            "(torch flop counter, attention included)",
            f"search tokens {' -> '.join(str(k) for k in self.kept_tokens)}",
        ]
        if self.latency_ms_median is not None:
            lines.append(f"latency       {self.latency_ms_median:.1f} ms median, "
                         f"{self.latency_ms_p90:.1f} ms p90  ({self.device}, "
                         f"{_PRECISION_WORDS[self.precision]}, {self.runtime}, "
                         f"{self.threads} threads, batch 1, forward only)")
        return "\n".join(lines)


def example_inputs(cfg: ModelConfig, batch: int = 1, device="cpu", dtype=torch.float32,
                   seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    t, s = cfg.template_size, cfg.search_size
    shapes = [(batch, 3, t, t), (batch, 3, t, t), (batch, 3, s, s), (batch, 3, s, s)]
    return tuple(torch.randn(*sh, generator=g).to(device=device, dtype=dtype) for sh in shapes)


def count_macs_thop(model: torch.nn.Module, inputs: tuple, **kwargs) -> float:
    """thop's multiply-add count. thop attaches buffers to the modules it visits, so it runs
    on a deep copy and the caller's model is left untouched."""
    import thop

    clone = _WithKwargs(copy.deepcopy(model).float().cpu(), kwargs)
    inputs = tuple(x.float().cpu() for x in inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        macs, _ = thop.profile(clone, inputs=inputs, verbose=False)
    return float(macs)


class _WithKwargs(torch.nn.Module):
    """thop passes positional inputs only; this fixes the keyword arguments."""

    def __init__(self, model: torch.nn.Module, kwargs: dict):
        super().__init__()
        self.model = model
        self.kwargs = kwargs

    def forward(self, *inputs):
        return self.model(*inputs, **self.kwargs)


def count_flops_total(model: torch.nn.Module, inputs: tuple, **kwargs) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    from ckd_core.model.backbone import ViTBranch

    branches = [m for m in model.modules() if isinstance(m, ViTBranch)]
    saved = [b.use_sdpa for b in branches]
    try:
        for b in branches:  # the counter does not see CPU SDPA kernels: use explicit matmuls
            b.use_sdpa = False
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(*inputs, **kwargs)
    finally:
        for b, s in zip(branches, saved):
            b.use_sdpa = s
    return float(counter.get_total_flops())


def measure_latency(model: torch.nn.Module, inputs: tuple, runs: int = 20, warmup: int = 3,
                    **kwargs) -> list[float]:
    """Seconds per forward for `runs` timed calls after `warmup` untimed ones."""
    device = inputs[0].device
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = []
    with torch.inference_mode():
        for i in range(warmup + runs):
            sync()
            t0 = time.perf_counter()
            model(*inputs, **kwargs)
            sync()
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    return times


_PRECISION_WORDS = {"fp32": "float32", "bf16": "bfloat16 autocast",
                    "fp16": "float16 autocast", "int8": "int8 Linear layers"}


def latency_runner(model: torch.nn.Module, cfg: ModelConfig, precision: str = "fp32",
                   runtime: str = "torch", device: str = "cpu",
                   workdir: str | None = None, elimination: bool | None = None):
    """(callable, inputs): one forward of `model` the way the Tracker runs it.

    precision: fp32; bf16 / fp16 = torch.autocast around the fp32 model (fp16 on CUDA
    only); int8 = dynamic int8 Linear layers (CPU; ckd_core.model.quantize).
    runtime onnxruntime: the model exported to ONNX in `workdir` (fp32, or int8 quantised
    by ONNX Runtime) and run by ckd_core.tracking.onnx_runtime (fp32 / int8 only), with
    `elimination` fixed in the graph (None: the config's).
    """
    dev = torch.device(device)
    check_precision(precision, dev.type, runtime)
    inputs = example_inputs(cfg, device=dev)
    model = model.float().eval()
    if runtime == "onnxruntime":
        if workdir is None:
            raise ValueError("the ONNX runtime needs a workdir for the exported graph")
        from pathlib import Path

        from ckd_core.config import CKDConfig
        from ckd_core.model.onnx_export import export_onnx
        from ckd_core.tracking.onnx_runtime import OnnxRuntimeModel

        graph = export_onnx(model.cpu(), CKDConfig(model=cfg), Path(workdir) / "model.onnx",
                            elimination=elimination, source="ckd profile",
                            precision=precision)
        return OnnxRuntimeModel(graph, dev), inputs  # checks `elimination` against the graph
    model = model.to(dev)
    if precision == "int8":
        from ckd_core.model.quantize import quantize_linear_int8
        return quantize_linear_int8(model), inputs
    if precision == "fp32":
        return model, inputs
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16

    def run(*args, **kwargs):
        with torch.autocast(dev.type, dtype=dtype):
            return model(*args, **kwargs)
    return run, inputs


def profile_model(cfg: ModelConfig, preset: str = "custom", elimination: bool | None = None,
                  device: str = "cpu", dtype: torch.dtype | None = None, runs: int = 20,
                  warmup: int = 3, model: torch.nn.Module | None = None,
                  precision: str = "fp32", runtime: str = "torch") -> ProfileReport:
    """Profile the inference model of `cfg` (random weights unless `model` is given).

    Latency is timed with `precision` / `runtime` (see `latency_runner`); `dtype` is the older
    spelling (bfloat16 / float16 = precision bf16 / fp16, now as autocast like the Tracker)."""
    if dtype is not None and dtype != torch.float32:
        precision = {torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
    model = model if model is not None else build_inference_model(cfg)
    model = model.eval()
    elim = cfg.elimination.enabled if elimination is None else elimination
    kwargs = {"elimination": elim}
    cpu_inputs = example_inputs(cfg)
    macs = count_macs_thop(model, cpu_inputs, **kwargs)
    model_f32 = model.float().cpu()
    flops = count_flops_total(model_f32, cpu_inputs, **kwargs)
    with torch.no_grad():
        kept = tuple(model_f32(*cpu_inputs, **kwargs)["kept_tokens"])
    params = sum(p.numel() for p in model.parameters())
    median = p90 = None
    if runs > 0:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="ckd_profile_") as tmp:
            run_model, inputs = latency_runner(model, cfg, precision, runtime, device, tmp,
                                               elim)
            times = sorted(measure_latency(run_model, inputs, runs=runs, warmup=warmup,
                                           **kwargs))
        median = statistics.median(times) * 1e3
        p90 = times[min(len(times) - 1, int(round(0.9 * (len(times) - 1))))] * 1e3
    arithmetic = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "int8": "int8"}
    return ProfileReport(preset=preset, elimination=elim, parameters=params, macs_thop=macs,
                         flops_total=flops, kept_tokens=kept, latency_ms_median=median,
                         latency_ms_p90=p90, device=str(device), dtype=arithmetic[precision],
                         threads=torch.get_num_threads(), precision=precision,
                         runtime=runtime)
