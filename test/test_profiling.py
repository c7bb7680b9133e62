"""`ckd profile`: the paper's MAC figures and the report fields."""

from __future__ import annotations

import json

import pytest

from ckd_core.cli import main
from ckd_core.config import load_config
from ckd_core.profiling import profile_model


@pytest.mark.slow
@pytest.mark.parametrize("preset, gmacs, kept", [
    ("ckd_vitb256", "57.80", (256,)),
    ("ckd_vitb256_mce", "42.74", (256, 180, 126, 89)),
])
def test_vitb_macs_match_the_paper(preset, gmacs, kept):
    report = profile_model(load_config(preset).model, preset=preset, runs=0)
    # paper: 57.802 G without elimination, 42.735 G with MCE (thop convention)
    assert f"{report.macs_thop / 1e9:.2f}" == gmacs
    assert abs(report.macs_thop / 1e9 - float({"57.80": 57.802, "42.74": 42.735}[gmacs])) < 5e-4
    assert report.parameters == 183_567_237
    assert report.kept_tokens == kept
    assert report.flops_total > 2 * report.macs_thop  # attention matmuls are on top


def test_profile_cli_prints_report(tmp_path, capsys):
    out = tmp_path / "p.json"
    rc = main(["profile", "--preset", "ckd_tiny_mce", "--elimination", "both", "--runs", "2",
               "--warmup", "1", "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "MACs (thop)" in text and "256 -> 180 -> 126 -> 89" in text
    assert "elimination speed-up" in text
    data = json.loads(out.read_text())
    assert [d["elimination"] for d in data] == [False, True]
    assert data[1]["macs_thop"] < data[0]["macs_thop"]
    assert data[0]["latency_ms_median"] > 0


def test_profile_cli_rejects_fp16_on_cpu(capsys):
    assert main(["profile", "--preset", "ckd_tiny", "--dtype", "fp16", "--runs", "0"]) == 2
    assert "CUDA-only" in capsys.readouterr().err


@pytest.mark.parametrize("precision,runtime", [("bf16", "torch"), ("int8", "torch"),
                                               ("fp32", "onnxruntime"),
                                               ("int8", "onnxruntime")])
def test_profile_times_every_precision_and_runtime(precision, runtime, tmp_path, capsys):
    out = tmp_path / "p.json"
    rc = main(["profile", "--preset", "ckd_tiny_mce", "--elimination", "both", "--runs", "2",
               "--warmup", "1", "--threads", "1", "--precision", precision, "--runtime",
               runtime, "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert runtime in text and "latency" in text
    data = json.loads(out.read_text())
    assert [(d["precision"], d["runtime"]) for d in data] == [(precision, runtime)] * 2
    assert all(d["latency_ms_median"] > 0 for d in data)


def test_profile_cli_rejects_bf16_in_onnxruntime(capsys):
    assert main(["profile", "--preset", "ckd_tiny", "--precision", "bf16", "--runtime",
                 "onnxruntime", "--runs", "1"]) == 2
    assert "fp32 or int8" in capsys.readouterr().err
