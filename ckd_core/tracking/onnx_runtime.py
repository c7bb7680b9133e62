"""ONNX Runtime as the Tracker's runtime: an exported .onnx file (`ckd export --format onnx`)
behind the same call as `CKDInference`, so `Tracker` runs it unchanged.

    model = OnnxRuntimeModel("ckd_tiny.onnx", device="cpu", threads=1)
    out = model(z_rgb, z_tir, x_rgb, x_tir)      # dict of torch tensors, like CKDInference
    tracker = Tracker.from_checkpoint("ckd_tiny.onnx")   # the same, from the file's metadata

Execution providers: CPU; on a CUDA device the CUDA provider when this onnxruntime build has
it (the pinned `onnxruntime` wheel is CPU-only: a CUDA device is then an error naming the
`onnxruntime-gpu` package). TensorRT is not offered: it is not installed here.
The graph is fp32 or int8 (`ckd export --precision int8`: ONNX Runtime dynamic quantisation of
the weight MatMuls), with elimination fixed at export (see ckd_core.model.onnx_export); the
template is re-embedded every frame (one graph, images in), so there is no template cache.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ckd_core.config import ONNX_PRECISIONS, CKDConfig, from_dict
from ckd_core.model.onnx_export import (INPUT_NAMES, META_CONFIG, META_ELIMINATION,
                                        META_PRECISION, OUTPUT_NAMES)


def make_session(path: str | Path, device: str | torch.device = "cpu",
                 threads: int | None = None):
    """An onnxruntime InferenceSession for `path` on `device` with `threads` intra-op threads
    (None: torch's current thread count, so both runtimes use the same CPU budget)."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model {path} does not exist; create it with `ckd export "
                                f"--format onnx --checkpoint WEIGHTS --out {path}`")
    dev = torch.device(device)
    available = ort.get_available_providers()
    if dev.type == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise ValueError(f"device {device}: this onnxruntime has no CUDA execution "
                             f"provider (has {', '.join(available)}); install onnxruntime-gpu "
                             f"or run on the CPU")
        providers = [("CUDAExecutionProvider", {"device_id": dev.index or 0}),
                     "CPUExecutionProvider"]
    elif dev.type == "cpu":
        providers = ["CPUExecutionProvider"]
    else:
        raise ValueError(f"device {device}: the ONNX runtime supports cpu and cuda")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads or torch.get_num_threads())
    opts.inter_op_num_threads = 1
    # Idle worker threads sleep instead of spin-waiting (as OMP_WAIT_POLICY=PASSIVE does for
    # torch): on a robot the CPU is shared with other nodes, and spinning threads that wait
    # for a descheduled peer make a 2-thread run slower than 1 thread.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=providers)


class OnnxRuntimeModel:
    """An exported CKD inference graph, callable like `CKDInference` (batch 1, fp32).

    Attributes: `config` (the CKDConfig stored in the file), `cfg` (its model section),
    `elimination` (bool, fixed at export), `precision` (fp32 | int8, fixed at export; files
    written before int8 existed carry no entry and are fp32), `path`, `device`, `session`.
    """

    runtime = "onnxruntime"

    def __init__(self, path: str | Path, device: str | torch.device = "cpu",
                 threads: int | None = None):
        self.path = Path(path)
        self.device = torch.device(device)
        self.session = make_session(self.path, self.device, threads)
        meta = self.session.get_modelmeta().custom_metadata_map
        if META_CONFIG not in meta or META_ELIMINATION not in meta:
            raise ValueError(f"{self.path} has no ckd-tracker metadata; export it with "
                             f"`ckd export --format onnx`")
        self.config: CKDConfig = from_dict(json.loads(meta[META_CONFIG]))
        self.cfg = self.config.model
        self.elimination = meta[META_ELIMINATION] == "on"
        self.precision = meta.get(META_PRECISION, "fp32")
        if self.precision not in ONNX_PRECISIONS:
            raise ValueError(f"{self.path}: precision {self.precision!r} in its metadata is "
                             f"not one of {', '.join(ONNX_PRECISIONS)}")
        if self.config.tracker.precision != self.precision:
            self.config = self.config.replace(**{"tracker.precision": self.precision})
        names = [i.name for i in self.session.get_inputs()]
        if names != list(INPUT_NAMES):
            raise ValueError(f"{self.path}: inputs {names}, expected {list(INPUT_NAMES)}")

    def __call__(self, template_rgb: torch.Tensor, template_tir: torch.Tensor,
                 search_rgb: torch.Tensor, search_tir: torch.Tensor,
                 template_box: torch.Tensor | None = None,
                 elimination: bool | None = None) -> dict:
        if elimination is not None and bool(elimination) != self.elimination:
            raise ValueError(f"{self.path} was exported with elimination "
                             f"{'on' if self.elimination else 'off'}; re-export it to change "
                             f"that")
        feeds = {n: t.detach().to("cpu", torch.float32).contiguous().numpy()
                 for n, t in zip(INPUT_NAMES, (template_rgb, template_tir, search_rgb,
                                               search_tir))}
        outs = self.session.run(list(OUTPUT_NAMES), feeds)
        out = {k: torch.from_numpy(v).to(self.device) for k, v in zip(OUTPUT_NAMES, outs)}
        return out
