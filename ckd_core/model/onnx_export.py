"""ONNX export of the inference model (two students + fused head) and its numerical check.

The graph (opset 17, fixed shapes, batch 1, fp32) takes the four normalised crops and returns
the head's maps and the kept search positions:

    inputs:  template_rgb, template_tir (1, 3, T, T); search_rgb, search_tir (1, 3, S, S)
    outputs: score_map (1, 1, G, G), size_map (1, 2, G, G), offset_map (1, 2, G, G),
             keep_index_rgb, keep_index_tir (1, k) int64 original search positions
             (k = G*G without elimination; MCE: both the same)

Candidate elimination is part of the graph: the scores are ordinary ops and the selection is a
TopK (sorted, largest first: the same order as torch.sort in `elimination.select_tokens`), so
the kept token count is fixed at export and `elimination` is decided then (the ONNX file
records it). The template range must not depend on the template box (GT_BOX is refused).
The legacy TorchScript exporter is used: torch's dynamo exporter needs onnxscript, which is
not among the pinned packages.

Precision: fp32, or int8 = ONNX Runtime's dynamic quantisation of the exported fp32 graph
(`onnxruntime.quantization.quantize_dynamic`): every MatMul whose second input is a weight
(the Linear layers: qkv, proj, fc1, fc2) gets int8 weights (per tensor, signed) and
activations quantised per call to uint8 (`MatMulInteger`); attention matmuls (q k^T, attn v:
MCE's scores come from them), the patch-embedding and head convolutions, norms and softmax
stay fp32. This is the same split as the torch int8 path (ckd_core.model.quantize), run by
ONNX Runtime's VNNI kernels.

Metadata (ONNX `metadata_props`): `ckd_config` (the CKDConfig as JSON, tracker section
included, its `precision` = the graph's), `ckd_elimination` (`on` / `off`), `ckd_precision`
(`fp32` / `int8`), `ckd_source` (where the weights came from).
`ckd_core.tracking.onnx_runtime.OnnxRuntimeModel` runs such a file inside the Tracker.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ckd_core.config import ONNX_PRECISIONS, CKDConfig, to_dict
from ckd_core.model.ckd import CKDInference

ONNX_OPSET = 17
INPUT_NAMES = ("template_rgb", "template_tir", "search_rgb", "search_tir")
OUTPUT_NAMES = ("score_map", "size_map", "offset_map", "keep_index_rgb", "keep_index_tir")
MAP_NAMES = OUTPUT_NAMES[:3]
META_CONFIG, META_ELIMINATION, META_SOURCE = "ckd_config", "ckd_elimination", "ckd_source"
META_PRECISION = "ckd_precision"


class _ExportWrapper(nn.Module):
    """CKDInference with a fixed elimination setting and tensor-tuple outputs."""

    def __init__(self, model: CKDInference, eliminate: bool):
        super().__init__()
        self.model = model
        self.eliminate = eliminate

    def forward(self, template_rgb, template_tir, search_rgb, search_tir):
        out = self.model(template_rgb, template_tir, search_rgb, search_tir,
                         elimination=self.eliminate)
        return (out["score_map"], out["size_map"], out["offset_map"], out["keep_index_rgb"],
                out["keep_index_tir"])


def resolve_elimination(model: CKDInference, elimination: bool | None) -> bool:
    return model.cfg.elimination.enabled if elimination is None else bool(elimination)


def export_onnx(model: CKDInference, config: CKDConfig, out: str | Path,
                elimination: bool | None = None, source: str = "",
                precision: str = "fp32") -> Path:
    """Write `model` (its fp32 copy on the CPU) as ONNX to `out`; returns the path.

    `config` is stored in the file so a Tracker can be built from it alone; `config.model`
    must be the model's own. elimination: None = the config's setting, else forced on/off.
    precision: fp32, or int8 (the fp32 graph quantised by ONNX Runtime; see the module doc).
    """
    if precision not in ONNX_PRECISIONS:
        raise ValueError(f"ONNX precision {precision!r} is not one of "
                         f"{', '.join(ONNX_PRECISIONS)} (bf16 / fp16 run in torch)")
    if config.model != model.cfg:
        raise ValueError("config.model is not the configuration this model was built with")
    eliminate = resolve_elimination(model, elimination)
    if eliminate and model.cfg.elimination.template_range == "GT_BOX":
        raise ValueError("template_range GT_BOX depends on the target box at run time and "
                         "cannot be baked into an ONNX graph; export with --no-elimination "
                         "or use a preset with CTR_POINT / CTR_REC / ALL")
    if any(not p.is_floating_point() or p.dtype != torch.float32 for p in model.parameters()):
        raise ValueError("export needs an fp32 model (int8-quantised models cannot be "
                         "exported; quantise the ONNX graph instead)")
    cpu_model = model.to("cpu").float().eval()
    wrapper = _ExportWrapper(cpu_model, eliminate).eval()  # eval: export restores this mode
    t, s = model.cfg.template_size, model.cfg.search_size
    args = (torch.zeros(1, 3, t, t), torch.zeros(1, 3, t, t), torch.zeros(1, 3, s, s),
            torch.zeros(1, 3, s, s))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    graph = out if precision == "fp32" else out.with_name(out.name + ".fp32.tmp")
    with warnings.catch_warnings(), torch.no_grad():
        # Tracer warnings name the Python branches on shapes (kept-token counts, shape
        # checks): with fixed input shapes these are the intended constants.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(wrapper, args, str(graph), dynamo=False, opset_version=ONNX_OPSET,
                          input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES),
                          do_constant_folding=True)
    if precision == "int8":
        try:
            quantize_onnx_int8(graph, out)
        finally:
            graph.unlink(missing_ok=True)
    config = config.replace(**{"tracker.precision": precision})
    _write_metadata(out, {META_CONFIG: json.dumps(to_dict(config)),
                          META_ELIMINATION: "on" if eliminate else "off",
                          META_PRECISION: precision, META_SOURCE: source})
    return out


def quantize_onnx_int8(src: str | Path, dst: str | Path) -> Path:
    """ONNX Runtime dynamic int8 quantisation of the weight MatMuls of `src` into `dst`
    (int8 per-tensor weights, uint8 activations quantised per call; MatMuls between two
    activations - attention - stay fp32)."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    # quantize_dynamic logs a hint about its optional pre-processing step on the root
    # logger; shape inference is not needed for dynamic MatMul quantisation.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=False,
                         op_types_to_quantize=["MatMul"],
                         extra_options={"MatMulConstBOnly": True})
    finally:
        root.setLevel(level)
    return Path(dst)


def _write_metadata(path: Path, values: dict[str, str]) -> None:
    import onnx

    proto = onnx.load(str(path))
    keep = [p for p in proto.metadata_props if p.key not in values]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    for k, v in values.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


@dataclass(frozen=True)
class OnnxCheck:
    """One input's comparison of ONNX Runtime against PyTorch (fp32, same weights).

    max_abs: largest |ort - torch| per output map; kept_equal: the final kept search
    positions are the same set for both students; kept_diff: how many positions one side
    kept that the other did not (0 when equal), of kept_count; order_equal: also in the same
    order.
    """

    name: str
    max_abs: dict[str, float]
    kept_equal: bool
    kept_diff: int
    order_equal: bool
    kept_count: int = 0

    def format(self) -> str:
        maps = ", ".join(f"{k} {v:.2e}" for k, v in self.max_abs.items())
        kept = "kept indices equal" if self.kept_equal else (
            f"kept indices DIFFER in {self.kept_diff} of {self.kept_count} positions")
        order = "" if self.order_equal or not self.kept_equal else " (order differs: ties)"
        return f"{self.name}: max |ORT - torch| {maps}; {kept}{order}"


def compare_onnx(session_or_path, model: CKDInference, inputs: dict[str, tuple],
                 elimination: bool | None = None) -> list[OnnxCheck]:
    """Run ONNX Runtime and `model` (fp32, CPU) on each named (z_rgb, z_tir, x_rgb, x_tir)
    tensor tuple; one OnnxCheck each."""
    from ckd_core.tracking.onnx_runtime import make_session

    sess = (make_session(session_or_path) if isinstance(session_or_path, (str, Path))
            else session_or_path)
    eliminate = resolve_elimination(model, elimination)
    checks = []
    for name, args in inputs.items():
        args = tuple(a.detach().to("cpu", torch.float32) for a in args)
        feeds = {n: a.numpy() for n, a in zip(INPUT_NAMES, args)}
        got = dict(zip(OUTPUT_NAMES, sess.run(list(OUTPUT_NAMES), feeds)))
        with torch.inference_mode():
            ref = _ExportWrapper(model.to("cpu").float().eval(), eliminate)(*args)
        ref = dict(zip(OUTPUT_NAMES, (r.numpy() for r in ref)))
        max_abs = {k: float(np.abs(got[k] - ref[k]).max()) for k in MAP_NAMES}
        kept_equal, order_equal, diff = True, True, 0
        count = int(ref["keep_index_rgb"].size)
        for k in ("keep_index_rgb", "keep_index_tir"):
            a, b = set(got[k].ravel().tolist()), set(ref[k].ravel().tolist())
            diff = max(diff, len(a ^ b) // 2)
            kept_equal &= a == b
            order_equal &= bool(np.array_equal(got[k], ref[k]))
        checks.append(OnnxCheck(name, max_abs, kept_equal, diff, order_equal, count))
    return checks


def check_inputs(cfg, seed: int = 0, synthetic: bool = True) -> dict[str, tuple]:
    """Inputs for `compare_onnx`: 'random' (normal noise) and, with `synthetic`, 'synthetic'
    (crops of a rendered synthetic RGB + thermal frame pair around its target: what a tracker
    feeds the model)."""
    from ckd_core.crops import sample_target
    from ckd_core.imaging import normalize_crop

    g = torch.Generator().manual_seed(seed)
    t, s = cfg.template_size, cfg.search_size
    inputs = {"random": tuple(torch.randn(1, 3, n, n, generator=g) for n in (t, t, s, s))}
    if synthetic:
        from ckd_core.data.synth import make_sequence_spec, render_sequence
        from ckd_core.imaging import to_three_channels

        seq = render_sequence(make_sequence_spec(seed, 0, num_frames=8, width=320, height=256,
                                                 attributes=()))
        box = tuple(float(v) for v in seq.gt_rgb[0])
        nxt = tuple(float(v) for v in seq.gt_rgb[5])
        crops = []
        for k, b, factor, size in ((0, box, cfg.template_factor, t),
                                   (5, nxt, cfg.search_factor, s)):
            for img in (seq.rgb[k], to_three_channels(seq.thermal[k], "thermal")):
                crops.append(normalize_crop(sample_target(img, b, factor, size).image))
        inputs["synthetic"] = (crops[0], crops[1], crops[2], crops[3])
    return inputs
