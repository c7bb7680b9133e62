"""Inference fast paths on the CPU: template cache, bf16, int8, ONNX export + ONNX Runtime.

Tolerances (measured on the shipped model, synthetic crops; the assertions leave ~5x room):
- template cache: EXACT (torch.equal) - the same operations on the same tensors;
- ONNX Runtime vs torch fp32: maps within 1e-4 (measured ~2e-6), MCE kept positions equal;
- ONNX Runtime int8 (weight MatMuls quantised at export) vs torch fp32, dense: within the
  int8 tolerances below (measured 0.002 / 0.004 / 0.02); with MCE >= 90% of the kept
  positions shared (measured 94-100%);
- bf16 autocast / int8 dynamic quantisation, dense model: score and size maps within 0.02,
  offsets within 0.2 cells (measured 0.003 / 0.005 / 0.045);
- with MCE the top-k boundary amplifies those differences: int8 keeps >= 90% of the fp32
  kept positions (measured 97-99%); bf16 can swap a quarter of them (measured 76-90%), so
  for bf16 + MCE only "runs and is finite" is asserted here - benchmarks/fidelity.py is what
  judges whether a path may be a default.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ckd_core.config import ConfigError, load_config
from ckd_core.model import build_inference_model
from ckd_core.model.checkpoint import load_model
from ckd_core.model.onnx_export import check_inputs, compare_onnx, export_onnx
from ckd_core.model.quantize import count_quantized_linears, quantize_linear_int8
from ckd_core.tracking import Tracker
from ckd_core.tracking.default_model import default_checkpoint_path

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MAPS = ("score_map", "size_map", "offset_map")
MAP_TOL = {"score_map": 0.02, "size_map": 0.02, "offset_map": 0.2}


@pytest.fixture(scope="module")
def shipped():
    path = default_checkpoint_path()
    return path, load_model(path)


@pytest.fixture(scope="module")
def shipped_cfg(shipped):
    import json

    from ckd_core.config import from_dict
    from ckd_core.model.checkpoint import read_checkpoint_meta

    cfg = from_dict(json.loads(read_checkpoint_meta(shipped[0])["config"]))
    return cfg.replace(**{"tracker.state_machine": False})


def _tracker(shipped, cfg, precision="fp32", **kwargs):
    """A Tracker on the already loaded shipped model (no checkpoint re-read)."""
    return Tracker(shipped[1], cfg.replace(**{"tracker.precision": precision}), **kwargs)


@pytest.fixture(scope="module")
def crops(shipped):
    return check_inputs(shipped[1].cfg)


@pytest.fixture(scope="module")
def onnx_files(shipped, shipped_cfg, tmp_path_factory):
    """The shipped model exported with MCE (its default) and dense."""
    model, cfg = shipped[1], shipped_cfg
    d = tmp_path_factory.mktemp("onnx")
    return {"mce": export_onnx(model, cfg, d / "mce.onnx"),
            "dense": export_onnx(model, cfg, d / "dense.onnx", elimination=False),
            "int8 mce": export_onnx(model, cfg, d / "mce_int8.onnx", precision="int8"),
            "int8 dense": export_onnx(model, cfg, d / "dense_int8.onnx", elimination=False,
                                      precision="int8")}


@pytest.fixture(scope="module")
def sequence():
    from ckd_core.data.synth import make_sequence_spec, render_sequence

    return render_sequence(make_sequence_spec(3, 0, num_frames=10, width=320, height=256,
                                              attributes=()))


def _frames(seq, n=6):
    return seq.rgb[:n], seq.thermal[:n], tuple(float(v) for v in seq.gt_rgb[0])


def _track(tracker, frames):
    rgb, thermal, box = frames
    tracker.init(rgb[0], thermal[0], box)
    return np.array([tracker.update(r, t).box_xywh for r, t in zip(rgb[1:], thermal[1:])])


def _iou(a, b):
    from ckd_core.evaluation.metrics import iou
    return iou(np.asarray(a, np.float64), np.asarray(b, np.float64))


# -- template cache ---------------------------------------------------------------------------

@pytest.mark.parametrize("elimination", [False, True])
def test_cached_forward_is_exactly_the_uncached_one(elimination):
    torch.manual_seed(0)
    model = build_inference_model(load_config("ckd_tiny_mce").model)
    z_rgb, z_tir = torch.randn(1, 3, 64, 64), torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        cache = model.encode_template(z_rgb, z_tir, elimination=elimination)
        for _ in range(2):  # the cache is reused, frame after frame
            x_rgb, x_tir = torch.randn(1, 3, 128, 128), torch.randn(1, 3, 128, 128)
            full = model(z_rgb, z_tir, x_rgb, x_tir, elimination=elimination)
            cached = model.forward_cached(cache, x_rgb, x_tir)
            for k in MAPS + ("keep_index_rgb", "keep_index_tir", "pred_boxes"):
                assert torch.equal(full[k], cached[k]), k
            assert full["kept_tokens"] == cached["kept_tokens"]


def test_cached_forward_rejects_mismatched_search():
    torch.manual_seed(0)
    model = build_inference_model(load_config("ckd_tiny_mce").model)
    with torch.inference_mode():
        cache = model.encode_template(torch.zeros(1, 3, 64, 64), torch.zeros(1, 3, 64, 64))
        with pytest.raises(ValueError, match="search must be"):
            model.forward_cached(cache, torch.zeros(2, 3, 128, 128),
                                 torch.zeros(2, 3, 128, 128))


def test_tracker_with_template_cache_tracks_identically(shipped, shipped_cfg, sequence):
    frames = _frames(sequence, 4)
    on = _tracker(shipped, shipped_cfg)
    off = _tracker(shipped, shipped_cfg, cache_template=False)
    assert on.cache_template and not off.cache_template
    np.testing.assert_array_equal(_track(on, frames), _track(off, frames))


# -- bf16 / int8 ------------------------------------------------------------------------------

def test_int8_quantises_every_linear_and_stays_close_dense(shipped, crops):
    _, model = shipped
    n_linear = sum(isinstance(m, torch.nn.Linear) for m in model.modules())
    for backend in ("torch_ao", "torchao"):
        q = quantize_linear_int8(model, backend)
        assert count_quantized_linears(q) == n_linear
        assert count_quantized_linears(model) == 0  # a copy: the fp32 model is untouched
        for args in (crops["synthetic"],):
            with torch.inference_mode():
                ref, got = model(*args, elimination=False), q(*args, elimination=False)
            for k in MAPS:
                assert (ref[k] - got[k]).abs().max() <= MAP_TOL[k], (backend, k)


def test_int8_with_mce_keeps_most_of_the_same_tokens(shipped, crops):
    _, model = shipped
    q = quantize_linear_int8(model)
    for args in crops.values():
        with torch.inference_mode():
            ref, got = model(*args), q(*args)
        a, b = set(ref["keep_index_rgb"][0].tolist()), set(got["keep_index_rgb"][0].tolist())
        assert len(a & b) >= 0.9 * len(a)


def test_bf16_autocast_stays_close_dense(shipped, crops):
    _, model = shipped
    for args in crops.values():
        with torch.inference_mode():
            ref = model(*args, elimination=False)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                got = model(*args, elimination=False)
        for k in MAPS:
            assert (ref[k] - got[k].float()).abs().max() <= MAP_TOL[k], k


def test_quantize_rejects_bad_input():
    lin = torch.nn.Sequential(torch.nn.Linear(4, 4))
    with pytest.raises(ValueError, match="backend"):
        quantize_linear_int8(lin, "fbgemm")
    with pytest.raises(ValueError, match="fp32"):
        quantize_linear_int8(lin.to(torch.bfloat16))


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_tracker_precisions_run_and_agree_with_fp32_dense(shipped, shipped_cfg, sequence,
                                                         precision):
    frames = _frames(sequence, 2)
    ref = _tracker(shipped, shipped_cfg, elimination=False)
    fast = _tracker(shipped, shipped_cfg, precision, elimination=False)
    assert fast.precision == precision
    # one update from the same box: the numerics of one frame, nothing compounded
    assert _iou(_track(ref, frames), _track(fast, frames))[0] >= 0.8
    assert np.isfinite(_track(_tracker(shipped, shipped_cfg, precision), frames)).all()


def test_from_checkpoint_dtype_argument_still_works(shipped):
    path, _ = shipped
    t = Tracker.from_checkpoint(path, "cpu", torch.bfloat16)
    assert (t.precision, t.dtype) == ("bf16", torch.bfloat16)
    # the ROS node's positional call; float32 leaves the choice to tracker precision
    t = Tracker.from_checkpoint(path, "cpu", torch.float32, None, None,
                                {"precision": "int8"})
    assert (t.precision, t.dtype, t.runtime) == ("int8", torch.float32, "torch")


# -- ONNX -------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["mce", "dense"])
def test_onnx_round_trip_matches_torch(shipped, crops, onnx_files, mode):
    _, model = shipped
    checks = compare_onnx(onnx_files[mode], model, crops,
                          elimination=None if mode == "mce" else False)
    assert {c.name for c in checks} == {"random", "synthetic"}
    for c in checks:
        assert c.kept_equal, c.format()
        assert max(c.max_abs.values()) <= 1e-4, c.format()


def test_tracker_runs_the_onnx_file(shipped, shipped_cfg, onnx_files, sequence):
    frames = _frames(sequence, 4)
    ref = _tracker(shipped, shipped_cfg)
    ort = Tracker.from_checkpoint(onnx_files["mce"], tracker_overrides={"state_machine": False})
    assert ort.runtime == "onnxruntime" and not ort.cache_template
    assert ort.config.model == ref.config.model
    np.testing.assert_allclose(_track(ort, frames), _track(ref, frames), atol=1e-2)


def _op_counts(path):
    import collections

    import onnx

    return collections.Counter(n.op_type for n in onnx.load(str(path)).graph.node)


def test_onnx_int8_quantises_exactly_the_weight_matmuls(shipped, onnx_files):
    _, model = shipped
    n_linear = sum(isinstance(m, torch.nn.Linear) for m in model.modules())
    fp32, int8 = _op_counts(onnx_files["dense"]), _op_counts(onnx_files["int8 dense"])
    assert fp32["MatMulInteger"] == 0
    assert int8["MatMulInteger"] == n_linear
    # the attention matmuls (q k^T and attn v, two per block per student) stay fp32
    n_blocks = 2 * model.cfg.backbone.depth
    assert int8["MatMul"] == 2 * n_blocks
    assert int8["Conv"] == fp32["Conv"]


def test_onnx_int8_stays_close_to_torch_fp32(shipped, crops, onnx_files):
    _, model = shipped
    dense = compare_onnx(onnx_files["int8 dense"], model, crops, elimination=False)
    for c in dense:
        for k, v in c.max_abs.items():
            assert v <= MAP_TOL[k], c.format()
    for c in compare_onnx(onnx_files["int8 mce"], model, crops):
        assert c.kept_diff <= 0.1 * c.kept_count, c.format()
        assert all(np.isfinite(v) for v in c.max_abs.values())


def test_tracker_runs_the_int8_onnx_file(shipped, shipped_cfg, onnx_files, sequence):
    frames = _frames(sequence, 2)
    t = Tracker.from_checkpoint(onnx_files["int8 dense"],
                                tracker_overrides={"state_machine": False})
    assert (t.runtime, t.precision, t.config.tracker.precision) == ("onnxruntime", "int8",
                                                                    "int8")
    ref = _tracker(shipped, shipped_cfg, elimination=False)
    assert _iou(_track(ref, frames), _track(t, frames))[0] >= 0.8
    mce = Tracker.from_checkpoint(onnx_files["int8 mce"],
                                  tracker_overrides={"state_machine": False})
    assert np.isfinite(_track(mce, _frames(sequence, 4))).all()


def test_export_cli_writes_and_checks(tmp_path, capsys):
    from ckd_core.cli import main

    out = tmp_path / "tiny.onnx"
    assert main(["export", "--format", "onnx", "--preset", "ckd_tiny_mce", "--out",
                 str(out)]) == 0
    text = capsys.readouterr().out
    assert out.is_file() and "check: OK" in text and "kept indices equal" in text
    out8 = tmp_path / "tiny_int8.onnx"
    assert main(["export", "--preset", "ckd_tiny_mce", "--precision", "int8", "--out",
                 str(out8)]) == 0
    text = capsys.readouterr().out
    assert "int8" in text and "check: OK" in text and out8.stat().st_size < out.stat().st_size
    assert main(["export", "--preset", "ckd_tiny_mce", "--out", str(tmp_path / "x.pt")]) == 2
    assert "expected a .onnx" in capsys.readouterr().err
    assert main(["export", "--preset", "ckd_tiny_mce", "--precision", "fp16", "--out",
                 str(tmp_path / "x.onnx")]) == 2
    assert "not offered for --format onnx" in capsys.readouterr().err


def test_export_refuses_gt_box_elimination(tmp_path):
    cfg = load_config("ckd_tiny_mce")
    cfg = cfg.replace(**{"model.elimination.template_range": "GT_BOX"})
    model = build_inference_model(cfg.model)
    with pytest.raises(ValueError, match="GT_BOX"):
        export_onnx(model, cfg, tmp_path / "m.onnx")
    assert export_onnx(model, cfg, tmp_path / "m.onnx", elimination=False).is_file()


# -- validation -------------------------------------------------------------------------------

def test_runtime_and_precision_errors_are_clear(shipped, onnx_files, tmp_path, monkeypatch):
    path, model = shipped
    with pytest.raises(FileNotFoundError, match="ckd export"):
        Tracker.from_checkpoint(tmp_path / "missing.onnx")
    with pytest.raises(ValueError, match="exported .onnx file"):
        Tracker.from_checkpoint(path, runtime="onnxruntime")
    with pytest.raises(ValueError, match="runtime 'onnxruntime'"):
        Tracker.from_checkpoint(onnx_files["mce"], runtime="torch")
    with pytest.raises(ValueError, match="not one of"):
        Tracker.from_checkpoint(path, runtime="tensorrt")
    with pytest.raises(ValueError, match="holds a fp32 graph.*--precision int8"):
        Tracker.from_checkpoint(onnx_files["mce"], tracker_overrides={"precision": "int8"})
    with pytest.raises(ValueError, match="holds a int8 graph"):
        Tracker.from_checkpoint(onnx_files["int8 mce"], tracker_overrides={"precision": "fp32"})
    with pytest.raises(ValueError, match="not available with the ONNX runtime"):
        Tracker.from_checkpoint(onnx_files["mce"], tracker_overrides={"precision": "bf16"})
    with pytest.raises(ValueError, match="ONNX precision 'bf16'"):
        export_onnx(model, None, tmp_path / "x.onnx", precision="bf16")
    with pytest.raises(ValueError, match="exported with elimination on"):
        Tracker.from_checkpoint(onnx_files["mce"], elimination=False)
    with pytest.raises(ValueError, match="CUDA-only"):
        Tracker.from_checkpoint(path, tracker_overrides={"precision": "fp16"})
    with pytest.raises(ConfigError, match="tracker.precision"):
        Tracker.from_checkpoint(path, tracker_overrides={"precision": "int4"})
    with pytest.raises(ValueError, match="give only one"):
        Tracker.from_checkpoint(path, dtype=torch.bfloat16,
                                tracker_overrides={"precision": "int8"})
    # int8 on a GPU: refused before anything touches the device
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    cfg = load_config("ckd_tiny_mce").replace(**{"tracker.precision": "int8"})
    with pytest.raises(ValueError, match="CPU only"):
        Tracker(model, cfg, device="cuda")
