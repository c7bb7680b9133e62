"""Node parameters: defaults, validation messages, runtime changes, the shipped YAML files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ckd_tracker_ros import params as P

CONFIG = Path(__file__).resolve().parents[2] / "config"


def test_defaults_parse():
    s = P.parse({})
    assert s.device == "cpu" and s.qos_reliability == "best_effort" and s.qos_depth == 5
    assert s.elimination_flag is None and s.reference_index == 0


def test_integers_are_accepted_for_numbers():
    s = P.parse({"slop": 1, "thermal_window": [0, 4000]})
    assert s.slop == 1.0 and s.thermal_window == (0.0, 4000.0)


@pytest.mark.parametrize("values,match", [
    ({"device": "gpu"}, "'device' = 'gpu' is not allowed: expected cpu, cuda, cuda:N or auto"),
    ({"fp16": True}, "'fp16'.*half precision needs CUDA"),
    ({"elimination": "yes"}, "'elimination'.*auto or on or off"),
    ({"precision": "int4"}, "'precision' = 'int4'.*auto or fp32 or bf16 or fp16 or int8"),
    ({"precision": "fp16"}, "'precision'.*half precision needs CUDA"),
    ({"precision": "int8", "device": "cuda"}, "'precision'.*int8 runs on the CPU"),
    ({"precision": "bf16", "fp16": True, "device": "cuda"}, "'fp16'.*give one of them"),
    ({"qos_reliability": "RELIABLE"}, "best_effort or reliable"),
    ({"qos_depth": 0}, "'qos_depth' = 0"),
    ({"slop": 0.0}, "'slop' = 0.0"),
    ({"slop": "fast"}, "'slop' = 'fast'.*a finite number"),
    ({"queue_size": 2.5}, "'queue_size'.*an integer"),
    ({"thermal_window": [10, 5]}, "'thermal_window'.*low < high"),
    ({"thermal_window": [1, 2, 3]}, "two finite numbers"),
    ({"thermal_percentiles": [1, 101]}, "'thermal_percentiles'"),
    ({"lost_threshold": 0.8}, "'recover_threshold' = 0.736.*lost_threshold=0.8"),
    ({"reference_camera": "ir"}, "rgb or thermal"),
    ({"publish_debug_image": "yes"}, "true or false"),
    ({"frobnicate": 1}, "unknown parameter\\(s\\) frobnicate"),
])
def test_invalid_values_name_the_parameter(values, match):
    with pytest.raises(P.ParamError, match=match):
        P.parse(values)


def test_precision_override():
    assert P.parse({}).precision_override is None
    assert P.parse({"precision": "int8"}).precision_override == "int8"
    assert P.parse({"fp16": True, "device": "cuda"}).precision_override == "fp16"
    assert P.parse({"fp16": True, "precision": "fp16",
                    "device": "cuda"}).precision_override == "fp16"


def test_build_tracker_applies_precision_and_runs_int8_onnx(tmp_path):
    from ckd_core.model.checkpoint import load_model
    from ckd_core.model.onnx_export import export_onnx
    from ckd_core.tracking import Tracker
    from ckd_core.tracking.default_model import default_checkpoint_path
    from ckd_tracker_ros.node import build_tracker

    t = build_tracker(P.parse({"precision": "int8", "lost_threshold": 0.2}))
    assert (t.runtime, t.precision, t.cfg.lost_threshold) == ("torch", "int8", 0.2)
    assert build_tracker(P.parse({})).precision == "fp32"
    shipped = Tracker.from_checkpoint(None)
    onnx = export_onnx(load_model(default_checkpoint_path()), shipped.config,
                       tmp_path / "m_int8.onnx", precision="int8")
    t = build_tracker(P.parse({"checkpoint": str(onnx)}))  # auto: the file's own int8
    assert (t.runtime, t.precision) == ("onnxruntime", "int8")
    with pytest.raises(ValueError, match="holds a int8 graph"):
        build_tracker(P.parse({"checkpoint": str(onnx), "precision": "fp32"}))


def test_cuda_devices_accepted():
    for d in ("cuda", "cuda:1", "auto"):
        assert P.parse({"device": d, "fp16": d != "auto"}).device == d


def test_runtime_change_accepted():
    s = P.parse({})
    new, reason = P.check_change(s, {"slop": 0.1, "lost_threshold": 0.1})
    assert reason == "" and new.slop == 0.1 and new.lost_threshold == 0.1


def test_startup_only_change_refused_with_reason():
    s = P.parse({})
    new, reason = P.check_change(s, {"device": "cuda"})
    assert new is None and "'device' can only be set at start-up" in reason
    new, reason = P.check_change(s, {"device": "cpu"})  # unchanged value: harmless
    assert new is not None


def test_invalid_runtime_value_refused():
    new, reason = P.check_change(P.parse({}), {"recover_threshold": 0.1})
    assert new is None and "recover_threshold" in reason


def test_every_parameter_is_described():
    for name, spec in P.PARAMS.items():
        assert spec.description, name
        assert P.parse({name: spec.default})


@pytest.mark.parametrize("name", ["tracker", "uav", "robot"])
def test_shipped_parameter_files_are_valid(name):
    doc = yaml.safe_load((CONFIG / f"{name}.yaml").read_text())
    assert list(doc) == ["/**/ckd_tracker"]  # any namespace
    P.parse(doc["/**/ckd_tracker"]["ros__parameters"])


def test_tracker_yaml_lists_every_parameter_with_its_default():
    doc = yaml.safe_load((CONFIG / "tracker.yaml").read_text())
    values = doc["/**/ckd_tracker"]["ros__parameters"]
    assert set(values) == set(P.PARAMS)
    assert P.parse(values) == P.parse({})
