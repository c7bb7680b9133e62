"""The restricted checkpoint loader: authors' objects become inert placeholders, calls to
non-allow-listed code are refused before anything runs, tensors come back exactly."""

from __future__ import annotations

import argparse
import io
import os
import pickle
import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from authors_checkpoints import authors_code, authors_objects
from ckd_core.model import safe_pickle
from ckd_core.model.safe_pickle import (CheckpointReadError, Unloaded, UnsafeCheckpointError,
                                        safe_load, unloaded_globals)

FORMATS = {"zip": True, "legacy": False}


def _save(obj, path, fmt):
    torch.save(obj, path, _use_new_zipfile_serialization=FORMATS[fmt])
    return path


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_plain_tensors_round_trip(tmp_path, fmt):
    obj = {"net": OrderedDict(w=torch.randn(3, 4), b=torch.arange(5)), "epoch": 3,
           "p": torch.nn.Parameter(torch.randn(2))}
    out = safe_load(_save(obj, tmp_path / "plain.pth", fmt))
    assert torch.equal(out["net"]["w"], obj["net"]["w"])
    assert torch.equal(out["net"]["b"], obj["net"]["b"])
    assert torch.equal(out["p"], obj["p"]) and out["epoch"] == 3


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_authors_objects_become_placeholders(tmp_path, monkeypatch, fmt):
    marker = tmp_path / "SETSTATE_RAN"
    with authors_code(tmp_path / "authors", monkeypatch) as (settings_mod, stats):
        obj = authors_objects(settings_mod, stats)
        obj["net"] = OrderedDict(w=torch.randn(2, 2))
        obj["noisy"] = settings_mod.Noisy(str(marker))
        obj["numpy"] = (np.float64(0.25), np.arange(6, dtype=np.float32).reshape(2, 3))
        obj["bytes"] = b"\x00\xffcheckpoint"
        path = _save(obj, tmp_path / "authors.pth.tar", fmt)
    # the authors' package is gone; keep it importable anyway to prove we never import it
    monkeypatch.syspath_prepend(str(tmp_path / "authors"))
    out = safe_load(path)
    assert not any(n == "lib" or n.startswith("lib.") for n in sys.modules)
    assert not marker.exists(), "the authors' __setstate__ ran"
    assert torch.equal(out["net"]["w"], obj["net"]["w"])
    settings_obj = out["settings"]
    assert isinstance(settings_obj, Unloaded)
    assert settings_obj.global_name == "lib.train.admin.settings.Settings"
    assert settings_obj.state["batchsize"] == 10
    assert settings_obj.state["device"] == torch.device("cpu")
    assert settings_obj.state["args"].global_name == "argparse.Namespace"
    assert settings_obj.state["args"].state == {"script": "ckd", "local_rank": 0}
    meter = out["stats"]["train"]["Loss/total"]
    assert meter.global_name == "lib.train.admin.stats.AverageMeter"
    assert meter.state["avg"] == 0.5
    assert out["noisy"].state == {"marker": str(marker)}
    assert out["numpy"][0] == 0.25 and out["numpy"][0].dtype == np.float64
    np.testing.assert_array_equal(out["numpy"][1], obj["numpy"][1])
    assert out["bytes"] == obj["bytes"]
    assert torch.equal(out["optimizer"]["state"][0]["exp_avg"],
                       obj["optimizer"]["state"][0]["exp_avg"])
    assert unloaded_globals(out) == ["argparse.Namespace", "lib.train.admin.settings.EnvSettings",
                                     "lib.train.admin.settings.NetConstructor",
                                     "lib.train.admin.settings.Noisy",
                                     "lib.train.admin.settings.Settings",
                                     "lib.train.admin.stats.AverageMeter"]


class _System:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Eval:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"open({str(self.marker)!r}, 'w')",))


class _Popen:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (subprocess.Popen, (["touch", str(self.marker)],))


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("attack,global_name", [(_System, "system"), (_Eval, "builtins.eval"),
                                                (_Popen, "subprocess.Popen")])
def test_code_execution_is_refused(tmp_path, fmt, attack, global_name):
    marker = tmp_path / "MARKER"
    path = _save({"net": {"w": torch.zeros(1)}, "x": attack(marker)}, tmp_path / "evil.pth",
                 fmt)
    with pytest.raises(UnsafeCheckpointError, match=global_name) as info:
        safe_load(path)
    assert str(path) in str(info.value)
    assert not marker.exists()


def test_unpickler_refuses_dangerous_builtins():
    # getattr is the usual first step of a gadget chain: it is not allow-listed
    payload = b"cbuiltins\ngetattr\n(cbuiltins\nobject\nS'__subclasses__'\ntR."
    with pytest.raises(UnsafeCheckpointError, match="builtins.getattr"):
        safe_pickle.load(io.BytesIO(payload))


def test_protocol0_plain_object_becomes_placeholder():
    # copyreg._reconstructor(cls, object, None) + BUILD: how protocol 0/1 pickle objects
    payload = pickle.dumps(argparse.Namespace(a=1), protocol=0)
    out = safe_pickle.load(io.BytesIO(payload))
    assert out.global_name == "argparse.Namespace" and out.state == {"a": 1}


def test_missing_and_truncated_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        safe_load(tmp_path / "nope.pth")
    path = tmp_path / "cut.pth"
    torch.save({"w": torch.randn(64, 64)}, path)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CheckpointReadError, match="cut.pth.*truncated or corrupt"):
        safe_load(path)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointReadError, match="garbage.pth"):
        safe_load(garbage)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")
def test_torchscript_archive_is_refused(tmp_path):
    path = tmp_path / "scripted.pt"
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(path))
    with pytest.raises(UnsafeCheckpointError, match="TorchScript"):
        safe_load(path)


_plain = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
    | st.binary(),
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=60, deadline=None)
@given(obj=_plain, protocol=st.integers(0, pickle.HIGHEST_PROTOCOL))
def test_plain_data_round_trips_every_protocol(obj, protocol):
    assert safe_pickle.load(io.BytesIO(pickle.dumps(obj, protocol=protocol))) == obj
