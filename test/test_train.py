"""The trainer on the CPU: stage 1 and stage 2 smoke runs, exact resume (after an in-process
crash and after SIGKILL), two-process DDP, full disk, wrong dataset paths, CLI, schedules.

Everything runs a micro CKD (2 blocks of width 32, 32/64-pixel crops = 4x4 / 8x8 grids) on a
few tiny hand-made sequences, with one torch thread per process (small ops on a shared
2-core machine are fastest that way).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ckd_core.cli import main as ckd_main
from ckd_core.config import ConfigError, dump_config, load_config
from ckd_core.model import build_training_model
from ckd_core.model.checkpoint import load_checkpoint, load_model, load_training_state
from ckd_core.train import TrainError, TrainOptions, train
from ckd_core.train import data as train_data
from ckd_core.train import trainer as trainer_mod
from ckd_core.train.data import DatasetError
from ckd_core.train.optim import lr_factor, parameter_groups, set_trainable
from ckd_core.train.state import (CheckpointWriteError, RunPaths, capture_rng, restore_rng,
                                  seed_everything)

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------
# Fixtures: a tiny generic dataset and a micro config
# ---------------------------------------------------------------------------------------------

def make_dataset(root: Path, sequences: int = 2, frames: int = 12, width: int = 96,
                 height: int = 80) -> Path:
    """`generic` layout: rgb/, thermal/, groundtruth.txt; a box moving over noise."""
    for s in range(sequences):
        d = root / f"seq{s}"
        (d / "rgb").mkdir(parents=True, exist_ok=True)
        (d / "thermal").mkdir(exist_ok=True)
        rng = np.random.default_rng(s)
        rows = []
        for f in range(frames):
            x, y, w, h = 20 + 2 * f + 5 * s, 20 + f, 16, 14
            rgb = (rng.random((height, width, 3)) * 60).astype(np.uint8)
            rgb[y:y + h, x:x + w] = (200, 60, 40)
            tir = np.full((height, width), 40, np.uint8)
            tir[y:y + h, x:x + w] = 220
            cv2.imwrite(str(d / "rgb" / f"{f:04d}.png"), rgb[:, :, ::-1])
            cv2.imwrite(str(d / "thermal" / f"{f:04d}.png"), tir)
            rows.append(f"{x},{y},{w},{h}")
        (d / "groundtruth.txt").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data"))


def micro_cfg(data_root: Path, preset: str = "ckd_tiny", **changes):
    """4 steps per epoch of batch 2; checkpoints every 3 steps; a log line every step."""
    base = {
        "model.backbone.embed_dim": 32, "model.backbone.depth": 2,
        "model.backbone.num_heads": 2, "model.head.channels": 16,
        "model.template_size": 32, "model.search_size": 64,
        "model.elimination.locations": [0, 1],
        "data.dataset": "generic", "data.root": str(data_root), "data.num_workers": 0,
        "data.max_gap": 5,
        "train.batch_size": 2, "train.samples_per_epoch": 8, "train.epochs": 2,
        "train.checkpoint_every": 3, "train.log_every": 1,
    }
    base.update(changes)
    return load_config(preset).replace(**base)


def opts(run_dir: Path, **kw) -> TrainOptions:
    kw.setdefault("progress", False)
    kw.setdefault("threads", 1)
    return TrainOptions(run_dir=run_dir, **kw)


def initial_model(cfg):
    seed_everything(cfg.train.seed)  # what the trainer does before building the model
    return build_training_model(cfg.model)


def changed(before: dict, after: dict, prefix: str) -> bool:
    keys = [k for k in before if k.startswith(prefix)]
    assert keys, prefix
    return any(not torch.equal(before[k], after[k]) for k in keys)


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def stage1_run(data_root, tmp_path_factory):
    """One finished stage-1 run (8 steps = 2 epochs), shared by several tests."""
    cfg = micro_cfg(data_root)
    run_dir = tmp_path_factory.mktemp("s1") / "run"
    result = train(cfg, opts(run_dir))
    return cfg, result


# ---------------------------------------------------------------------------------------------
# Stage 1 and stage 2
# ---------------------------------------------------------------------------------------------

def test_stage1_trains_every_branch_and_writes_checkpoints(stage1_run):
    cfg, result = stage1_run
    before = initial_model(cfg).state_dict()
    after = {k: v.detach().cpu() for k, v in result.model.state_dict().items()}
    assert result.step == 8 and result.epoch == 2
    assert np.isfinite(result.last_log["total"])
    for prefix in ("rgb_branch.", "tir_branch.", "teacher_rgb.", "teacher_tir.", "box_head.",
                   "box_head_v.", "box_head_i."):
        assert changed(before, after, prefix), f"{prefix} did not train"
    assert {"sd", "cd_rgb", "cd_tir", "teacher_rgb/task", "teacher_tir/task",
            "lr/head", "lr/backbone", "samples_per_s"} <= set(result.last_log)
    assert result.last_log["kept_tokens"] == 64  # stage 1: no elimination

    paths = RunPaths(result.run_dir)
    latest = json.loads(paths.latest.read_text())
    assert latest["step"] == 8
    # checkpoints at 3, 4 (epoch end), 6, 8 (epoch end); the last two are kept
    assert sorted(p.name for p in paths.checkpoints.glob("step_*")) == [
        "step_00000006.safetensors", "step_00000006.state.pt",
        "step_00000008.safetensors", "step_00000008.state.pt"]
    weights, ckpt_cfg, meta = load_checkpoint(paths.model_file(8))
    assert meta["kind"] == "training" and ckpt_cfg == cfg
    assert same_state(weights, after)
    state = load_training_state(paths.state_file(8))
    assert state["step"] == 8 and state["epoch"] == 2 and len(state["rng"]) == 1
    assert {g["name"] for g in state["optimizer"]["param_groups"]} == {"head", "backbone"}

    exported = load_model(paths.export)  # students + fused head only, loads strictly
    assert not any(k.startswith(("teacher_", "box_head_v", "box_head_i"))
                   for k in exported.state_dict())
    assert same_state(exported.state_dict(), {k: after[k] for k in exported.state_dict()})
    assert load_config(paths.config) == cfg
    lines = [json.loads(x) for x in paths.metrics.read_text().splitlines()]
    assert [x["step"] for x in lines] == list(range(1, 9))
    assert any(paths.tensorboard.glob("events.out.tfevents.*"))


def test_export_a_training_checkpoint_as_the_trainer_exports_it(stage1_run, tmp_path, capsys):
    """`ckd export --format safetensors` on the last training checkpoint gives the tensors of
    the run's own inference.safetensors (same content hash); an earlier step gives that
    step's students + head; fp16 halves the storage; wrong uses are CLI errors."""
    _, result = stage1_run
    paths = RunPaths(result.run_dir)
    out = tmp_path / "last.safetensors"
    assert ckd_main(["export", "--format", "safetensors", "--checkpoint",
                     str(paths.model_file(8)), "--out", str(out)]) == 0
    assert "content sha256" in capsys.readouterr().out
    _, _, meta = load_checkpoint(out)
    _, _, run_meta = load_checkpoint(paths.export)
    assert meta["kind"] == "inference" and meta["content_sha256"] == run_meta["content_sha256"]
    assert meta["extra"]["step"] == 8 and meta["extra"]["stage"] == 1
    assert meta["extra"]["exported_from"]["file"] == "step_00000008.safetensors"

    early = tmp_path / "step6.safetensors"
    assert ckd_main(["export", "--format", "safetensors", "--checkpoint",
                     str(paths.model_file(6)), "--out", str(early), "--precision", "fp16"]) == 0
    weights6, _, _ = load_checkpoint(paths.model_file(6))
    exported, _, meta6 = load_checkpoint(early)
    assert meta6["storage_dtype"] == "float16" and meta6["extra"]["step"] == 6
    assert set(exported) < set(weights6)  # no teachers, no per-modality heads
    for k, v in exported.items():
        want = weights6[k].to(torch.float16) if weights6[k].is_floating_point() else weights6[k]
        assert v.dtype == want.dtype and torch.equal(v, want), k
    assert out.stat().st_size > 1.9 * early.stat().st_size

    for bad in (["--preset", "ckd_tiny"], ["--checkpoint", str(out), "--precision", "int8"],
                ["--checkpoint", str(tmp_path / "missing.safetensors")],
                ["--checkpoint", str(out), "--no-elimination"]):
        assert ckd_main(["export", "--format", "safetensors", "--out",
                         str(tmp_path / "x.safetensors"), *bad]) == 2
    assert ckd_main(["export", "--format", "safetensors", "--checkpoint", str(out),
                     "--out", str(tmp_path / "x.onnx")]) == 2
    assert ckd_main(["export", "--format", "safetensors", "--checkpoint", str(out),
                     "--out", str(out)]) == 2
    assert not (tmp_path / "x.safetensors").exists()


def test_stage2_trains_only_the_fused_head_with_elimination(stage1_run, tmp_path):
    s1_cfg, s1 = stage1_run
    cfg = micro_cfg(Path(s1_cfg.data.root), preset="ckd_tiny_mce", **{
        "train.init_checkpoint": str(s1.export_path), "train.epochs": 1})
    result = train(cfg, opts(tmp_path / "s2"))
    start = load_checkpoint(s1.export_path)[0]
    after = {k: v.detach().cpu() for k, v in result.model.state_dict().items()}
    fresh = initial_model(cfg).state_dict()
    for prefix in ("rgb_branch.", "tir_branch."):  # from stage 1, frozen: bit-exact
        assert all(torch.equal(start[k], after[k]) for k in start if k.startswith(prefix))
    for prefix in ("teacher_rgb.", "teacher_tir.", "box_head_v.", "box_head_i."):
        assert all(torch.equal(fresh[k], after[k]) for k in fresh if k.startswith(prefix))
    assert changed(start, after, "box_head.")
    # the fused head's BatchNorm statistics train too
    assert not torch.equal(start["box_head.conv1_ctr.1.running_mean"],
                           after["box_head.conv1_ctr.1.running_mean"])
    # 8x8 search grid, keep 0.7 at blocks 0 and 1: 64 -> 45 -> 32
    assert result.last_log["kept_tokens"] == 32
    assert "sd" not in result.last_log and "teacher_rgb/task" not in result.last_log
    state = load_training_state(RunPaths(result.run_dir).state_file(4))
    assert [g["name"] for g in state["optimizer"]["param_groups"]] == ["head"]


def test_stage_parameter_groups(data_root):
    cfg = micro_cfg(data_root)
    model = build_training_model(cfg.model)
    set_trainable(model, cfg.train)
    groups = {g["name"]: g for g in parameter_groups(model, cfg.train)}
    assert groups["head"]["lr"] == cfg.train.lr_head
    assert groups["backbone"]["lr"] == cfg.train.lr_backbone
    assert len(groups["head"]["params"]) == len(list(model.head_parameters()))
    s2 = micro_cfg(data_root, preset="ckd_tiny_mce").train
    set_trainable(model, s2)
    groups = parameter_groups(model, s2)
    assert [g["name"] for g in groups] == ["head"]
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in model.box_head.parameters()}


def test_stage2_needs_an_init_checkpoint_and_frozen_backbones(data_root, tmp_path):
    cfg = micro_cfg(data_root, preset="ckd_tiny_mce")
    with pytest.raises(ConfigError, match="init_checkpoint"):
        train(cfg, opts(tmp_path / "a"))
    with pytest.raises(ConfigError, match="freeze_backbone"):
        train(cfg.replace(**{"train.freeze_backbone": False}), opts(tmp_path / "b"))


def test_stage1_refuses_an_inference_checkpoint_without_teachers(stage1_run, tmp_path):
    cfg, s1 = stage1_run
    cfg = cfg.replace(**{"train.init_checkpoint": str(s1.export_path)})
    with pytest.raises(TrainError, match="teacher"):
        train(cfg, opts(tmp_path / "run"))


def test_stage1_starts_from_a_training_checkpoint(stage1_run, tmp_path):
    cfg, s1 = stage1_run
    ckpt = RunPaths(s1.run_dir).model_file(8)
    cfg = cfg.replace(**{"train.init_checkpoint": str(ckpt), "train.epochs": 1,
                         "train.lr_head": 0.0, "train.lr_backbone": 0.0,
                         "train.weight_decay": 0.0})
    result = train(cfg, opts(tmp_path / "run", max_steps=1))
    start = load_checkpoint(ckpt)[0]
    after = result.model.state_dict()
    # lr 0: every parameter is exactly the imported one (BN running stats move on)
    for name, _ in result.model.named_parameters():
        assert torch.equal(start[name], after[name]), name


# ---------------------------------------------------------------------------------------------
# Exact resume
# ---------------------------------------------------------------------------------------------

class Killed(Exception):
    """Stands in for the process dying in the middle of a step."""


def test_resume_after_a_crash_is_bit_exact(data_root, tmp_path, monkeypatch):
    """16 steps in one go == 11 steps, crash in step 11 (last checkpoint: step 9, mid-epoch),
    resume (with 1 loader worker instead of 0) to 16: same weights, optimizer, losses."""
    cfg = micro_cfg(data_root, **{"train.epochs": 4})  # 16 steps, 4 per epoch
    full = train(cfg, opts(tmp_path / "full"))

    real_loss = trainer_mod.ckd_total_loss
    calls = {"n": 0}

    def dying_loss(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 11:
            raise Killed
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(trainer_mod, "ckd_total_loss", dying_loss)
    with pytest.raises(Killed):
        train(cfg, opts(tmp_path / "split"))
    monkeypatch.setattr(trainer_mod, "ckd_total_loss", real_loss)
    paths = RunPaths(tmp_path / "split")
    assert json.loads(paths.latest.read_text())["step"] == 9
    resumed = train(cfg.replace(**{"data.num_workers": 1}),
                    opts(tmp_path / "split", resume=True))

    assert resumed.step == full.step == 16
    assert same_state(full.model.state_dict(), resumed.model.state_dict())
    a = load_training_state(RunPaths(tmp_path / "full").state_file(16))
    b = load_training_state(paths.state_file(16))
    for key in ("exp_avg", "exp_avg_sq"):
        for i, s in a["optimizer"]["state"].items():
            assert torch.equal(s[key], b["optimizer"]["state"][i][key])
    strip = lambda path: [{k: v for k, v in json.loads(x).items() if k != "samples_per_s"}
                          for x in path.read_text().splitlines()]
    assert strip(paths.metrics) == strip(RunPaths(tmp_path / "full").metrics)


@pytest.mark.slow
def test_resume_after_sigkill_is_bit_exact(data_root, tmp_path):
    """`ckd train` in a subprocess, SIGKILLed once a checkpoint exists, then `--resume`d:
    the final weights equal an uninterrupted in-process run's. 32 steps (8 epochs of 4),
    a checkpoint every 3 steps."""
    cfg = micro_cfg(data_root, **{"train.epochs": 8})
    full = train(cfg, opts(tmp_path / "full"))
    yaml_path = tmp_path / "micro.yaml"
    yaml_path.write_text(dump_config(cfg))
    run_dir = tmp_path / "killed"
    cmd = [sys.executable, "-m", "ckd_core.cli", "train", "--config", str(yaml_path), "--out",
           str(run_dir), "--threads", "1", "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    latest = RunPaths(run_dir).latest
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if latest.is_file() and json.loads(latest.read_text())["step"] >= 6:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = json.loads(latest.read_text())["step"]
    assert 6 <= killed_at < 32
    done = subprocess.run(cmd + ["--resume"], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    final = load_checkpoint(RunPaths(run_dir).model_file(32))[0]
    assert same_state(final, full.model.state_dict())


def test_resume_refuses_a_changed_config_and_a_finished_run(stage1_run, tmp_path):
    cfg, s1 = stage1_run
    with pytest.raises(TrainError, match="train.lr_head"):
        train(cfg.replace(**{"train.lr_head": 1.0}), opts(s1.run_dir, resume=True))
    with pytest.raises(TrainError, match="already at step 8"):
        train(cfg, opts(s1.run_dir, resume=True))
    with pytest.raises(TrainError, match="--resume"):
        train(cfg, opts(s1.run_dir))  # a fresh run into a used folder
    with pytest.raises(TrainError, match="no checkpoint"):
        train(cfg, opts(tmp_path / "empty", resume=True))


def test_rng_state_round_trip(tmp_path):
    from ckd_core.model.checkpoint import save_training_state
    import random
    seed_everything(3)
    save_training_state(tmp_path / "s.pt", {"rng": capture_rng()})
    expected = (random.random(), np.random.rand(), torch.rand(3))
    seed_everything(99)
    restore_rng(load_training_state(tmp_path / "s.pt")["rng"])
    got = (random.random(), np.random.rand(), torch.rand(3))
    assert got[0] == expected[0] and got[1] == expected[1] and torch.equal(got[2], expected[2])


# ---------------------------------------------------------------------------------------------
# Distributed data parallel
# ---------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, cfg_yaml: str, run_dir: str,
                out_dir: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    from ckd_core.config import load_config as load
    from ckd_core.train.distributed import parameter_digest
    result = train(load(cfg_yaml), TrainOptions(run_dir=Path(run_dir), max_steps=3,
                                                progress=False, threads=1))
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps({
        "digest": parameter_digest(result.model), "step": result.step,
        "loss": result.last_log["total"]}))


@pytest.mark.slow
def test_ddp_two_processes_on_cpu(data_root, tmp_path):
    """Two gloo processes, 3 steps of batch 2 each: replicas identical, rank 0 writes."""
    cfg = micro_cfg(data_root, **{"train.samples_per_epoch": 16})
    yaml_path = tmp_path / "micro.yaml"
    yaml_path.write_text(dump_config(cfg))
    run_dir = tmp_path / "run"
    torch.multiprocessing.spawn(_ddp_worker, args=(2, _free_port(), str(yaml_path),
                                                   str(run_dir), str(tmp_path)),
                                nprocs=2, join=True)
    r0 = json.loads((tmp_path / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "rank1.json").read_text())
    assert r0["step"] == r1["step"] == 3
    assert r0["digest"] == r1["digest"]
    assert r0["loss"] == r1["loss"]  # logged values are the mean over both processes
    paths = RunPaths(run_dir)
    state = load_training_state(paths.state_file(3))
    assert state["world_size"] == 2 and len(state["rng"]) == 2
    assert not torch.equal(state["rng"][0]["torch"], state["rng"][1]["torch"])
    assert len(paths.metrics.read_text().splitlines()) == 3  # rank 0 only
    # a single-process run of the same config differs (it sees half the samples per step)
    single = train(cfg, opts(tmp_path / "single", max_steps=3))
    from ckd_core.train.distributed import parameter_digest
    assert parameter_digest(single.model) != r0["digest"]


# ---------------------------------------------------------------------------------------------
# Failures: full disk, wrong data
# ---------------------------------------------------------------------------------------------

def test_full_disk_leaves_no_partial_checkpoint(data_root, tmp_path, monkeypatch):
    cfg = micro_cfg(data_root)
    real = trainer_mod.save_training_state

    def full_disk(path, state):
        if state["step"] == 6:
            Path(path).write_bytes(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, state)

    monkeypatch.setattr(trainer_mod, "save_training_state", full_disk)
    with pytest.raises(CheckpointWriteError, match="No space left on device") as info:
        train(cfg, opts(tmp_path / "run"))
    assert "step 4" in str(info.value)  # the previous checkpoint is named as intact
    paths = RunPaths(tmp_path / "run")
    assert json.loads(paths.latest.read_text())["step"] == 4
    names = sorted(p.name for p in paths.checkpoints.iterdir())
    assert names == ["latest.json", "step_00000003.safetensors", "step_00000003.state.pt",
                     "step_00000004.safetensors", "step_00000004.state.pt"]
    monkeypatch.setattr(trainer_mod, "save_training_state", real)
    assert train(cfg, opts(tmp_path / "run", resume=True)).step == 8


def test_wrong_dataset_path_is_a_clear_error(data_root, tmp_path, capsys):
    cfg = micro_cfg(data_root, **{"data.root": str(tmp_path / "nope")})
    with pytest.raises(DatasetError, match="nope.*does not exist.*--data-root"):
        train(cfg, opts(tmp_path / "run"))
    with pytest.raises(DatasetError, match="data.root is empty"):
        train(cfg.replace(**{"data.root": ""}), opts(tmp_path / "run"))
    with pytest.raises(DatasetError, match="no sequences"):
        train(cfg.replace(**{"data.root": str(tmp_path)}), opts(tmp_path / "run2"))
    yaml_path = tmp_path / "micro.yaml"
    yaml_path.write_text(dump_config(cfg))
    code = ckd_main(["train", "--config", str(yaml_path), "--out", str(tmp_path / "run3"),
                     "--data-root", str(tmp_path / "missing"), "--no-progress"])
    assert code == 2
    assert "missing' does not exist" in capsys.readouterr().err
    assert not (tmp_path / "run3").exists()


# ---------------------------------------------------------------------------------------------
# Synthetic data, AMP, CLI
# ---------------------------------------------------------------------------------------------

def test_synthetic_dataset_is_generated_once(data_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(train_data, "SYNTH_FRAMES", 12)
    monkeypatch.setattr(train_data, "SYNTH_WIDTH", 160)
    monkeypatch.setattr(train_data, "SYNTH_HEIGHT", 128)
    cache = tmp_path / "synthetic"
    cfg = micro_cfg(data_root, **{"data.dataset": "synthetic", "data.root": str(cache),
                                  "data.synthetic_sequences": 2, "data.synthetic_seed": 7})
    result = train(cfg, opts(tmp_path / "run", max_steps=1))
    assert np.isfinite(result.last_log["total"])
    assert sorted(p.name for p in cache.glob("synth_*")) == ["synth_s7_0000", "synth_s7_0001"]
    out = capsys.readouterr()
    assert "generating 2 synthetic sequences" in out.out
    assert "synthetic data" not in out.err  # no bar with progress off (--no-progress)
    marker = (cache / ".complete").stat().st_mtime_ns
    seqs = train_data.training_sequences(cfg.data)  # reuses the cache
    assert len(seqs) == 2 and (cache / ".complete").stat().st_mtime_ns == marker
    with pytest.raises(DatasetError, match="synthetic_sequences"):
        train_data.training_sequences(cfg.data.__class__(dataset="synthetic"))


def test_a_bigger_synthetic_cache_starts_from_a_smaller_one(tmp_path, monkeypatch):
    """Sequence i of a seed does not depend on the count: n=3 links n=2's two sequences and
    renders only the third, and the result equals a fresh n=3 rendering byte for byte."""
    from ckd_core.config import DataConfig

    monkeypatch.setattr(train_data, "SYNTH_FRAMES", 12)
    monkeypatch.setattr(train_data, "SYNTH_WIDTH", 160)
    monkeypatch.setattr(train_data, "SYNTH_HEIGHT", 128)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    small = DataConfig(dataset="synthetic", synthetic_sequences=2, synthetic_seed=5)
    big = DataConfig(dataset="synthetic", synthetic_sequences=3, synthetic_seed=5)
    other_seed = DataConfig(dataset="synthetic", synthetic_sequences=1, synthetic_seed=6)
    train_data.training_sequences(other_seed)  # same geometry, other seed: never reused
    train_data.training_sequences(small)
    assert len(train_data.training_sequences(big)) == 3
    small_root, big_root = (train_data.default_synthetic_root(d) for d in (small, big))
    fresh_root = tmp_path / "fresh"
    train_data.training_sequences(DataConfig(dataset="synthetic", synthetic_sequences=3,
                                             synthetic_seed=5, root=str(fresh_root)))
    files = sorted(p.relative_to(fresh_root) for p in fresh_root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(big_root) for p in big_root.rglob("*") if p.is_file())
    for rel in files:
        assert (big_root / rel).read_bytes() == (fresh_root / rel).read_bytes(), rel
    linked = {rel.parts[0] for rel in files if (small_root / rel).is_file()
              and (big_root / rel).stat().st_ino == (small_root / rel).stat().st_ino}
    assert linked == {"synth_s5_0000", "synth_s5_0001"}  # the third was rendered
    assert (big_root / "sequences.txt").read_text().split() == \
        ["synth_s5_0000", "synth_s5_0001", "synth_s5_0002"]


def test_synthetic_cache_keys_on_the_generator_version(tmp_path, monkeypatch):
    from ckd_core.config import DataConfig
    from ckd_core.data.synth import GENERATOR_VERSION

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    root = train_data.default_synthetic_root(DataConfig(dataset="synthetic",
                                                        synthetic_sequences=3))
    assert root.name.endswith(f"_g{GENERATOR_VERSION}")
    # data made by another generator version is refused, not silently reused
    stale = tmp_path / "stale"
    stale.mkdir()
    recipe = {"seed": 1, "count": 1, "frames": 4, "width": 64, "height": 64,
              "layout": "lasher", "generator": GENERATOR_VERSION}
    (stale / ".complete").write_text(json.dumps({**recipe, "generator": GENERATOR_VERSION - 1}))
    with pytest.raises(DatasetError, match="holds synthetic data made with"):
        train_data.ensure_synthetic(stale, recipe)


def test_bf16_autocast_on_cpu(data_root, tmp_path):
    cfg = micro_cfg(data_root, **{"train.amp": "bf16"})
    result = train(cfg, opts(tmp_path / "run", max_steps=2))
    assert np.isfinite(result.last_log["total"])
    assert all(p.dtype == torch.float32 for p in result.model.parameters())
    with pytest.raises(ConfigError, match="fp16 needs CUDA"):
        train(cfg.replace(**{"train.amp": "fp16"}), opts(tmp_path / "run2"))


def test_cli_train_set_overrides_and_resume(data_root, tmp_path):
    yaml_path = tmp_path / "micro.yaml"
    yaml_path.write_text(dump_config(micro_cfg(data_root)))
    out = tmp_path / "run"
    assert ckd_main(["train", "--config", str(yaml_path), "--out", str(out), "--max-steps",
                     "2", "--set", "train.log_every=2", "--set", "train.checkpoint_every=2",
                     "--no-progress", "--threads", "1", "--export-dtype", "fp16"]) == 0
    cfg = load_config(out / "config.yaml")
    assert cfg.train.log_every == 2
    _, _, meta = load_checkpoint(out / "inference.safetensors")
    assert meta["storage_dtype"] == "float16" and meta["kind"] == "inference"
    # --resume without --config re-reads the run's config.yaml
    assert ckd_main(["train", "--out", str(out), "--resume", "--max-steps", "4",
                     "--no-progress", "--threads", "1"]) == 0
    assert json.loads(RunPaths(out).latest.read_text())["step"] == 4
    assert ckd_main(["train", "--config", str(yaml_path), "--set", "train.nope=1",
                     "--out", str(tmp_path / "x")]) == 2


def test_lr_schedules():
    assert [lr_factor(s, 10, "constant", 0) for s in (0, 5, 9)] == [1.0, 1.0, 1.0]
    assert [lr_factor(s, 10, "constant", 4) for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert lr_factor(2, 12, "cosine", 2) == 1.0  # first step after the warm-up
    assert lr_factor(7, 12, "cosine", 2) == pytest.approx(0.5)  # half way through the decay
    assert lr_factor(12, 12, "cosine", 2) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="schedule"):
        lr_factor(0, 10, "linear", 0)


def test_training_presets_of_the_shipped_model():
    from ckd_core.train.trainer import check_stage_config
    s1, s2 = load_config("ckd_tiny_train_s1"), load_config("ckd_tiny_train_s2")
    assert s1.model == load_config("ckd_tiny").model
    assert s2.model == load_config("ckd_tiny_mce").model
    assert (s1.train.stage, s2.train.stage) == (1, 2)
    assert s1.train.masking and not s2.train.masking and s2.model.elimination.enabled
    assert s2.train.init_checkpoint == "runs/ckd_tiny_train_s1/inference.safetensors"
    assert s1.data == s2.data and s1.data.synthetic_sequences > 0
    for cfg in (s1, s2):
        check_stage_config(cfg)
