"""int8 dynamic quantisation of the Linear layers of an inference model (CPU only).

Every `nn.Linear` (qkv, attention projection, MLP fc1/fc2 of both students: ~97% of the
ViT-B inference MACs) gets int8 weights (per-tensor, symmetric, computed once) and int8
activations quantised on the fly per call; accumulation is int32 and the output fp32.
Everything else stays fp32: patch embedding (Conv2d), LayerNorm, softmax, the attention
matmuls, the candidate elimination and the CENTER head (Conv2d + BatchNorm).

Two implementations exist for torch 2.14 on the CPU; both were measured here, side by side
on the same model and inputs, interleaved, 1 thread, 2 busy shared cores of an AMD EPYC
with avx512_vnni (median model-only forward, random weights, MCE on; absolute times are
inflated by the load, the ratios are the point; `benchmarks/bench_inference.py` repeats it):

    preset            fp32       torch.ao quantize_dynamic   torchao Int8DynActInt8Weight
    ckd_tiny_mce        76 ms      66 ms (0.86x)              102 ms (1.34x, slower than fp32)
    ckd_vitb256_mce   2232 ms     875 ms (0.39x)             1202 ms (0.54x)

- `torch.ao.quantization.quantize_dynamic` (backend "torch_ao", the DEFAULT) swaps each
  Linear for `DynamicQuantizedLinear`, which calls FBGEMM's fused dynamic-quant GEMM (VNNI
  on this CPU). It is the faster one, and the only one that speeds up the tiny shipped
  model at all. It is deprecated in favour of torchao (torch warns it "will be removed";
  it is still present and working in 2.14.1, and we silence that warning here), so the
  pinned torch version is what keeps it: re-measure when upgrading torch.
- torchao's `quantize_(model, Int8DynamicActivationInt8WeightConfig())` (backend "torchao")
  is the maintained API. Without `torch.compile` it runs the activation quantisation as
  separate eager ops around an int8 matmul, which costs more than it saves on the small
  (320-token, 128-wide) layers of the tiny model and still trails FBGEMM on ViT-B. It is
  kept selectable so the switch is one argument once it catches up (or with torch.compile,
  which we do not use: minutes of compile time per shape on these CPUs).
Accuracy: torchao scales activations per token, torch.ao per tensor, so torchao is about 2x
closer to fp32 (shipped model, dense, synthetic crops: max score-map error 0.0014 vs 0.003,
offsets 0.006 vs 0.013 cells); both stay within the tolerances of test/test_fast_paths.py.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

INT8_BACKENDS = ("torch_ao", "torchao")
DEFAULT_INT8_BACKEND = "torch_ao"


def quantize_linear_int8(model: nn.Module, backend: str = DEFAULT_INT8_BACKEND,
                         inplace: bool = False) -> nn.Module:
    """`model` (fp32, on the CPU, eval) with every nn.Linear int8-dynamic-quantised.

    Returns a copy unless `inplace`. The result runs only on the CPU and only in fp32
    (no autocast). ValueError for an unknown backend or a model not on the CPU in fp32.
    """
    if backend not in INT8_BACKENDS:
        raise ValueError(f"int8 backend {backend!r} is not one of {', '.join(INT8_BACKENDS)}")
    params = list(model.parameters())
    if any(p.device.type != "cpu" for p in params):
        raise ValueError("int8 dynamic quantisation runs on the CPU only; move the model to "
                         "the CPU (use precision fp16/bf16 on a GPU)")
    if any(p.is_floating_point() and p.dtype != torch.float32 for p in params):
        raise ValueError("int8 quantisation needs an fp32 model; call .float() first")
    target = model if inplace else copy.deepcopy(model)
    target.eval()
    if backend == "torch_ao":
        with warnings.catch_warnings():
            # "torch.ao.quantization is deprecated": known, see the module docstring
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", UserWarning)
            return torch.ao.quantization.quantize_dynamic(
                target, {nn.Linear}, dtype=torch.qint8, inplace=True)
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

    quantize_(target, Int8DynamicActivationInt8WeightConfig())
    return target


def count_quantized_linears(model: nn.Module) -> int:
    """How many Linear layers of `model` run in int8 (either backend)."""
    dynamic_linear = torch.ao.nn.quantized.dynamic.Linear  # torch.ao's DynamicQuantizedLinear
    return sum(isinstance(m, dynamic_linear) or isinstance(m, nn.Linear) and type(
        m.weight).__module__.startswith("torchao") for m in model.modules())
