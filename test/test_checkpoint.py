"""Our checkpoint format, training-state files, and importers for foreign weights."""

from __future__ import annotations

import json
import os
import struct
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F

import authors_checkpoints as ac
from ckd_core.cli import main as ckd_main
from ckd_core.config import load_config
from ckd_core.model import build_inference_model, build_training_model
from ckd_core.model import checkpoint as ck
from ckd_core.model import key_mapping as km
from ckd_core.model.head import CenterHead

# ckd_tiny: C=128, 6 blocks, MLP 512, 8-px patches, 8x8 / 16x16 grids, head 64
TINY = dict(c=128, depth=6, hidden=512, patch=8, nz=64, nx=256, head=64)
VITB = dict(c=768, depth=12, hidden=3072, patch=16, nz=64, nx=256, head=256)


@pytest.fixture
def tiny_model(tiny_cfg):
    return build_training_model(tiny_cfg.model)


def _assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k


# ---------------------------------------------------------------------------------------------
# Our format
# ---------------------------------------------------------------------------------------------

def test_round_trip_is_bit_exact(tmp_path, tiny_cfg, tiny_model):
    path = ck.save_checkpoint(tiny_model, tiny_cfg, tmp_path / "m.safetensors",
                              extra={"step": 42, "note": "unit test"})
    state, cfg, meta = ck.load_checkpoint(path)
    _assert_same_state(state, tiny_model.state_dict())
    assert cfg == tiny_cfg
    assert meta["kind"] == "training" and meta["format"] == ck.FORMAT_NAME
    assert meta["extra"] == {"step": 42, "note": "unit test"}
    assert meta["content_sha256"] == ck.content_sha256(tiny_model.state_dict())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left


def test_load_model_rebuilds_from_embedded_config(tmp_path, tiny_cfg, tiny_model):
    path = ck.save_checkpoint(tiny_model, tiny_cfg, tmp_path / "m.safetensors")
    training = ck.load_model(path, kind="training")
    assert training.training and training.cfg == tiny_cfg.model
    _assert_same_state(training.state_dict(), tiny_model.state_dict())
    inference = ck.load_model(path)  # a training file also gives the inference model
    assert not inference.training
    reference = build_inference_model(tiny_cfg.model)
    reference.load_state_dict(tiny_model.inference_state_dict())
    g = torch.Generator().manual_seed(1)
    z = [torch.randn(1, 3, 64, 64, generator=g) for _ in range(2)]
    x = [torch.randn(1, 3, 128, 128, generator=g) for _ in range(2)]
    with torch.no_grad():
        assert torch.equal(inference(*z, *x)["score_map"], reference(*z, *x)["score_map"])


def test_fp16_storage(tmp_path, tiny_cfg, tiny_model):
    full = ck.save_checkpoint(tiny_model, tiny_cfg, tmp_path / "fp32.safetensors")
    half = ck.save_checkpoint(tiny_model, tiny_cfg, tmp_path / "fp16.safetensors",
                              dtype=torch.float16)
    assert os.path.getsize(half) < 0.55 * os.path.getsize(full)
    state, _, meta = ck.load_checkpoint(half, dtype=torch.float32)
    assert meta["storage_dtype"] == "float16"
    for k, ref in tiny_model.state_dict().items():
        got = state[k]
        if not ref.is_floating_point():
            assert torch.equal(got, ref)  # BatchNorm counters are not cast
            continue
        assert got.dtype == torch.float32
        # fp16 keeps 11 significant bits: relative error <= 2^-11 (round to nearest) for
        # normal numbers, absolute <= 2^-25 below the normal range
        assert torch.all((got - ref).abs() <= ref.abs() * 2.0 ** -11 + 2.0 ** -25), k
    model = ck.load_model(half, dtype=torch.float32)
    assert next(model.parameters()).dtype == torch.float32


def test_set_tracker_settings_rewrites_only_the_tracker_section(tmp_path, tiny_cfg):
    from ckd_core.config import ConfigError

    model = build_inference_model(tiny_cfg.model)
    path = ck.save_checkpoint(model, tiny_cfg, tmp_path / "m.safetensors",
                              extra={"stage": 2, "step": 7}, dtype=torch.float16)
    before = ck.read_checkpoint_meta(path)
    ck.set_tracker_settings(path, lost_threshold=0.3, recover_threshold=0.6)
    after = ck.read_checkpoint_meta(path)
    tracker = json.loads(after["config"])["tracker"]
    assert (tracker["lost_threshold"], tracker["recover_threshold"]) == (0.3, 0.6)
    for key in ("content_sha256", "storage_dtype", "extra", "kind"):
        assert after[key] == before[key], key
    old, new = json.loads(before["config"]), json.loads(after["config"])
    old.pop("tracker"), new.pop("tracker")
    assert old == new  # model, data and train sections untouched
    with pytest.raises(ValueError, match="unknown tracker setting.*frobnicate"):
        ck.set_tracker_settings(path, frobnicate=1)
    with pytest.raises(ConfigError, match="recover_threshold"):
        ck.set_tracker_settings(path, lost_threshold=0.7, recover_threshold=0.2)
    assert ck.read_checkpoint_meta(path) == after  # a refused change writes nothing


def _data_offset(path) -> int:
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
    return 8 + n


def test_flipped_byte_is_detected(tmp_path, tiny_cfg, tiny_model):
    path = ck.save_checkpoint(tiny_model, tiny_cfg, tmp_path / "m.safetensors")
    raw = bytearray(path.read_bytes())
    raw[_data_offset(path) + 1000] ^= 0x10
    path.write_bytes(bytes(raw))
    with pytest.raises(ck.CheckpointError, match="m.safetensors.*corrupt or was modified"):
        ck.load_checkpoint(path)


def test_truncated_file(tmp_path, tiny_cfg, tiny_model):
    path = ck.save_checkpoint(tiny_model, tiny_cfg, tmp_path / "m.safetensors")
    raw = path.read_bytes()
    for cut in (len(raw) // 2, 100, 4):
        path.write_bytes(raw[:cut])
        with pytest.raises(ck.CheckpointError, match="m.safetensors.*truncated or corrupt"):
            ck.load_checkpoint(path)


def test_config_mismatch_lists_the_keys(tmp_path, tiny_cfg, tiny_model):
    path = ck.save_checkpoint(tiny_model, tiny_cfg, tmp_path / "m.safetensors")
    with pytest.raises(ck.ConfigMismatchError) as info:
        ck.load_model(path, cfg=load_config("ckd_vitb256"))
    msg = str(info.value)
    assert "m.safetensors" in msg
    for key in ("model.backbone.embed_dim: 128 != 768", "model.backbone.depth: 6 != 12",
                "model.head.channels: 64 != 256", "model.search_size: 128 != 256"):
        assert key in msg
    # elimination settings may differ: stage-1 weights run with MCE on
    mce = ck.load_model(path, cfg=load_config("ckd_tiny_mce"))
    assert mce.cfg.elimination.enabled
    with pytest.raises(ck.ConfigMismatchError, match="embed_dim"):
        ck.save_checkpoint(tiny_model, load_config("ckd_vitb256"), tmp_path / "bad.safetensors")


def test_inference_checkpoint_cannot_make_a_training_model(tmp_path, tiny_cfg):
    model = build_inference_model(tiny_cfg.model)
    path = ck.save_checkpoint(model, tiny_cfg, tmp_path / "inf.safetensors")
    assert ck.load_checkpoint(path)[2]["kind"] == "inference"
    with pytest.raises(ck.CheckpointError, match="inference checkpoint.*teachers"):
        ck.load_model(path, kind="training")


def test_failed_save_keeps_the_old_file(tmp_path, tiny_cfg, tiny_model, monkeypatch):
    path = ck.save_checkpoint(tiny_model, tiny_cfg, tmp_path / "m.safetensors")
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("safetensors.torch.save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        ck.save_checkpoint(tiny_model, tiny_cfg, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_foreign_safetensors_is_not_ours(tmp_path):
    from safetensors.torch import save_file
    path = tmp_path / "x.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(ck.CheckpointError, match="not a ckd-tracker checkpoint"):
        ck.load_checkpoint(path)


# ---------------------------------------------------------------------------------------------
# Training state
# ---------------------------------------------------------------------------------------------

def test_training_state_round_trip(tmp_path, tiny_model):
    import random
    opt = torch.optim.AdamW(tiny_model.parameters(), lr=1e-4)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10)
    state = {"step": 1234, "epoch": 3, "optimizer": opt.state_dict(),
             "scheduler": sched.state_dict(),
             "rng": {"torch": torch.get_rng_state(), "python": random.getstate()},
             "best": {"score": 0.5, "at": None}}
    path = ck.save_training_state(tmp_path / "train_state.pt", state)
    back = ck.load_training_state(path)
    assert back["step"] == 1234 and back["best"] == {"score": 0.5, "at": None}
    assert torch.equal(back["rng"]["torch"], state["rng"]["torch"])
    random.setstate(back["rng"]["python"])
    assert back["optimizer"]["param_groups"] == state["optimizer"]["param_groups"]


def test_training_state_rejects_objects(tmp_path):
    import numpy as np
    with pytest.raises(TypeError, match=r"\['rng'\]\['numpy'\].*torch.from_numpy"):
        ck.save_training_state(tmp_path / "s.pt", {"rng": {"numpy": np.zeros(3)}})
    with pytest.raises(TypeError, match=r"\['model'\] is a .*Linear"):
        ck.save_training_state(tmp_path / "s.pt", {"model": torch.nn.Linear(2, 2)})
    assert not (tmp_path / "s.pt").exists()
    bad = tmp_path / "cut.pt"
    ck.save_training_state(bad, {"w": torch.randn(100, 100)})
    bad.write_bytes(bad.read_bytes()[:3000])
    with pytest.raises(ck.CheckpointError, match="cut.pt.*truncated or corrupt"):
        ck.load_training_state(bad)


# ---------------------------------------------------------------------------------------------
# Key names: our model uses the authors' names (ViT-B checked on the meta device)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("preset,dims", [("ckd_tiny", TINY), ("ckd_vitb256", VITB)])
@pytest.mark.parametrize("kind", ["training", "inference"])
def test_model_keys_are_the_authors_keys(preset, dims, kind):
    authors = ac.ckd_official_shapes(**dims, training=kind == "training")
    unused = {k for k in authors if k.endswith((".cls_token", ".pos_embed"))}
    ours = ck.model_state_shapes(load_config(preset), kind)
    assert ours == {k: v for k, v in authors.items() if k not in unused}


def test_vitb_official_layout_fits_on_meta():
    mapped = km.map_ckd_official(ac.meta_state(ac.ckd_official_shapes(**VITB)))
    expected = ck.model_state_shapes(load_config("ckd_vitb256"), "training")
    state, missing, unexpected, mismatched, ignored = km.fit_state_dict(
        mapped.state, expected, "training")
    assert (missing, unexpected, mismatched, ignored) == ([], [], [], [])
    assert len(mapped.ignored) == 8  # cls_token + pos_embed of four branches
    assert ck.infer_presets(mapped.state) == ["ckd_vitb256", "ckd_vitb256_mce"]


# ---------------------------------------------------------------------------------------------
# Official CKD checkpoints
# ---------------------------------------------------------------------------------------------

def _official_checkpoint(tmp_path, monkeypatch, prefix: str = "", training: bool = True):
    net = ac.random_state(ac.ckd_official_shapes(**TINY, training=training))
    net = OrderedDict((prefix + k, v) for k, v in net.items())
    with ac.authors_code(tmp_path / "authors", monkeypatch) as (settings, stats):
        ckpt = ac.authors_objects(settings, stats)
        ckpt["net"] = net
        path = tmp_path / "OSTrack_CKD_ep0015.pth.tar"
        torch.save(ckpt, path)
    return path, net


@pytest.mark.parametrize("prefix", ["", "module."])
def test_official_ckd_imports_cleanly(tmp_path, monkeypatch, tiny_cfg, prefix):
    path, net = _official_checkpoint(tmp_path, monkeypatch, prefix)
    report = ck.import_checkpoint(path)  # preset and kind inferred
    assert report.format == "ckd_official" and report.kind == "training"
    assert report.inferred_preset == "ckd_tiny"
    assert (report.missing, report.unexpected, report.mismatched_shapes) == ([], [], [])
    assert sorted(k for k, _ in report.ignored) == sorted(
        f"{b}.{k}" for b in km.BRANCHES for k in ("cls_token", "pos_embed"))
    assert all("unused by CKD" in why for _, why in report.ignored)
    assert "lib.train.admin.settings.Settings" in report.unloaded_classes
    model = build_training_model(tiny_cfg.model)
    model.load_state_dict(report.state_dict, strict=True)
    for k, v in model.state_dict().items():
        assert torch.equal(v, net[prefix + k]), k

    inference = ck.import_checkpoint(path, tiny_cfg, kind="inference")
    assert (inference.missing, inference.unexpected, inference.mismatched_shapes) == ([], [], [])
    training_only = [k for k, why in inference.ignored if why == km.TRAINING_ONLY_REASON]
    assert training_only and all(k.startswith(km.TRAINING_ONLY) for k in training_only)
    build_inference_model(tiny_cfg.model).load_state_dict(inference.state_dict, strict=True)


def test_official_temporal_embeddings_are_ignored_not_added():
    shapes = ac.ckd_official_shapes(**TINY)
    shapes.update({f"{b}.temporal_pos_embed_{t}": (1, 1, TINY["c"])
                   for b in km.BRANCHES for t in "xz"})
    net = ac.random_state(shapes)
    mapped = km.map_ckd_official(net)
    assert torch.equal(mapped.state["rgb_branch.pos_embed_x"], net["rgb_branch.pos_embed_x"])
    assert sorted(k for k, why in mapped.ignored if why == km.UNUSED_TOKEN_TYPE) == sorted(
        f"{b}.temporal_pos_embed_{t}" for b in km.BRANCHES for t in "xz")


def test_official_inference_only_checkpoint(tmp_path, monkeypatch):
    path, _ = _official_checkpoint(tmp_path, monkeypatch, training=False)
    report = ck.import_checkpoint(path)
    assert report.kind == "inference" and report.clean
    as_training = ck.import_checkpoint(path, kind="training")
    assert as_training.missing and all(k.startswith(km.TRAINING_ONLY)
                                       for k in as_training.missing)


def test_official_checkpoint_for_another_preset_is_mis_shaped(tmp_path, monkeypatch):
    path, _ = _official_checkpoint(tmp_path, monkeypatch)
    report = ck.import_checkpoint(path, "ckd_vitb256")
    assert not report.clean and report.mismatched_shapes
    key, got, want = next(m for m in report.mismatched_shapes
                          if m[0] == "rgb_branch.patch_embed.proj.weight")
    assert got == (128, 3, 8, 8) and want == (768, 3, 16, 16)


def test_malicious_checkpoint_is_refused(tmp_path):
    marker = tmp_path / "MARKER"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pth.tar"
    torch.save({"net": {"rgb_branch.norm.weight": torch.ones(2)}, "settings": Evil()}, path)
    from ckd_core.model.safe_pickle import UnsafeCheckpointError
    with pytest.raises(UnsafeCheckpointError, match="system"):
        ck.import_checkpoint(path, "ckd_tiny")
    assert ckd_main(["inspect", str(path)]) == 2
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------
# OSTrack / DropTrack
# ---------------------------------------------------------------------------------------------

def test_ostrack_import_spreads_backbone_and_duplicates_conv1(tmp_path, tiny_cfg):
    net = ac.random_state(ac.ostrack_shapes(**TINY))
    path = tmp_path / "OSTrack_ep0300.pth.tar"
    torch.save({"net": net, "epoch": 300}, path)
    report = ck.import_checkpoint(path)
    assert report.format == "ostrack" and report.inferred_preset == "ckd_tiny"
    assert report.clean, (report.missing, report.unexpected, report.mismatched_shapes)
    sd = report.state_dict
    used = {k: v for k, v in net.items() if not k.endswith((".cls_token", ".pos_embed"))}
    for k, v in used.items():
        name = k.split(".", 1)[1]
        if k.startswith("backbone."):
            for b in km.BRANCHES:
                assert torch.equal(sd[f"{b}.{name}"], v), (b, name)
            continue
        for head in ("box_head_v", "box_head_i"):
            assert torch.equal(sd[f"{head}.{name}"], v), (head, name)
        fused = torch.cat([v, v], dim=1) if name in km.FUSED_CONV1 else v
        assert torch.equal(sd[f"box_head.{name}"], fused), name

    # the fused head's first conv computes W*f_rgb + W*f_tir + b
    fused = CenterHead(2 * TINY["c"], TINY["head"], 16)
    fused.load_state_dict({k[len("box_head."):]: v for k, v in sd.items()
                           if k.startswith("box_head.")})
    g = torch.Generator().manual_seed(3)
    f_rgb, f_tir = (torch.randn(2, TINY["c"], 16, 16, generator=g) for _ in range(2))
    w, b = net["box_head.conv1_ctr.0.weight"], net["box_head.conv1_ctr.0.bias"]
    with torch.no_grad():
        got = fused.conv1_ctr[0](torch.cat([f_rgb, f_tir], dim=1))
    want = F.conv2d(f_rgb, w, padding=1) + F.conv2d(f_tir, w, padding=1) + b.view(1, -1, 1, 1)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)
    model = build_training_model(tiny_cfg.model)
    model.load_state_dict(report.state_dict, strict=True)


def test_droptrack_resizes_tables_and_adds_temporal_embeddings(tmp_path):
    dims = dict(TINY, nz=144, nx=576)  # 192 / 384 crops: 12x12 and 24x24 grids
    net = ac.random_state(ac.ostrack_shapes(**dims, temporal=True))
    path = tmp_path / "DropTrack_k700_800E_alldata.pth.tar"
    torch.save({"net": net}, path)
    report = ck.import_checkpoint(path, "ckd_tiny")
    assert report.format == "droptrack" and report.inferred_preset == "ckd_tiny"
    assert report.clean, (report.missing, report.unexpected, report.mismatched_shapes)
    c = TINY["c"]
    for key, side, grid, temporal in (("pos_embed_z", 12, 8, "temporal_pos_embed_z"),
                                      ("pos_embed_x", 24, 16, "temporal_pos_embed_x")):
        table = net[f"backbone.{key}"].reshape(1, side, side, c).permute(0, 3, 1, 2)
        want = F.interpolate(table, size=(grid, grid), mode="bilinear", align_corners=False)
        want = want.permute(0, 2, 3, 1).reshape(1, grid * grid, c) + net[f"backbone.{temporal}"]
        for b in km.BRANCHES:
            torch.testing.assert_close(report.state_dict[f"{b}.{key}"], want)
    assert any("resized 24x24 -> 16x16 (bilinear)" in n for n in report.notes)
    assert any("temporal_pos_embed_x: added into pos_embed_x" in n for n in report.notes)


def test_resize_keeps_a_constant_table_constant():
    table = torch.full((1, 24 * 24, 4), 0.5)
    for mode in ("bilinear", "bicubic"):
        out = km.resize_pos_table(table, 16, mode)
        assert out.shape == (1, 256, 4)
        torch.testing.assert_close(out, torch.full_like(out, 0.5))


# ---------------------------------------------------------------------------------------------
# timm ViT / MAE / DropMAE
# ---------------------------------------------------------------------------------------------

def test_timm_vit_interpolates_positions(tmp_path, tiny_cfg):
    shapes = ac.timm_vit_shapes(TINY["c"], TINY["depth"], TINY["hidden"], TINY["patch"])
    sd = ac.random_state(shapes)
    path = tmp_path / "vit_tiny.pth"
    torch.save({"model": sd}, path)  # MAE / DeiT wrap the weights in "model"
    report = ck.import_checkpoint(path)
    assert report.format == "timm_vit" and report.inferred_preset == "ckd_tiny"
    assert report.unexpected == [] and report.mismatched_shapes == []
    assert report.missing and all(k.startswith(("box_head.", "box_head_v.", "box_head_i."))
                                  for k in report.missing)
    assert {k for k, _ in report.ignored} == {"cls_token", "head.weight", "head.bias"}
    grid = sd["pos_embed"][:, 1:].reshape(1, 14, 14, -1).permute(0, 3, 1, 2)
    for key, side in (("pos_embed_z", 8), ("pos_embed_x", 16)):
        want = F.interpolate(grid, size=(side, side), mode="bicubic", align_corners=False)
        want = want.permute(0, 2, 3, 1).reshape(1, side * side, -1)
        for b in km.BRANCHES:
            assert report.state_dict[f"{b}.{key}"].shape == (1, side * side, TINY["c"])
            torch.testing.assert_close(report.state_dict[f"{b}.{key}"], want)
    model = build_training_model(tiny_cfg.model)
    missing, unexpected = model.load_state_dict(report.state_dict, strict=False)
    assert unexpected == []
    # torch does not call BatchNorm counters missing (it defaults them); we list them too
    assert set(missing) == {k for k in report.missing if not k.endswith("num_batches_tracked")}


def test_timm_vitb_on_meta_fits_the_paper_model():
    shapes = ac.timm_vit_shapes(768, 12, 3072, 16)
    sd = ac.meta_state(shapes)
    sd["pos_embed"] = torch.randn(1, 197, 768)
    mapped = km.map_vit(sd, (8, 16))
    expected = ck.model_state_shapes(load_config("ckd_vitb256"), "training")
    _, missing, unexpected, mismatched, _ = km.fit_state_dict(mapped.state, expected, "training")
    assert unexpected == [] and mismatched == []
    assert missing and all(k.startswith(("box_head", )) for k in missing)
    assert ck.infer_presets(mapped.state, fixed_grids=False) == ["ckd_vitb256",
                                                                 "ckd_vitb256_mce"]


def test_dropmae_folds_temporal_and_ignores_decoder(tmp_path):
    shapes = ac.timm_vit_shapes(TINY["c"], TINY["depth"], TINY["hidden"], TINY["patch"])
    del shapes["cls_token"], shapes["head.weight"], shapes["head.bias"]
    shapes.update({"temporal_pos_embed_x": (1, 1, TINY["c"]),
                   "temporal_pos_embed_z": (1, 1, TINY["c"]),
                   "decoder_embed.weight": (64, TINY["c"]), "mask_token": (1, 1, 64),
                   "decoder_temporal_pos_embed_x": (1, 1, 64)})
    sd = ac.random_state(shapes)
    sd["pos_embed"] = torch.zeros(1, 197, TINY["c"])  # constant table: resize keeps it
    path = tmp_path / "dropmae.pth"
    torch.save({"model": sd}, path)
    report = ck.import_checkpoint(path, "ckd_tiny")
    assert report.format == "dropmae" and report.unexpected == []
    assert {k for k, _ in report.ignored} == {"decoder_embed.weight", "mask_token",
                                              "decoder_temporal_pos_embed_x"}
    z = report.state_dict["teacher_tir.pos_embed_z"]
    torch.testing.assert_close(z, sd["temporal_pos_embed_z"].expand_as(z))


def test_detect_format():
    t = torch.zeros(1)
    assert ck.detect_format({"net": {"rgb_branch.norm.weight": t}}) == "ckd_official"
    assert ck.detect_format({"net": {"module.backbone.norm.weight": t}}) == "ostrack"
    assert ck.detect_format({"net": {"backbone.temporal_pos_embed_x": t}}) == "droptrack"
    assert ck.detect_format({"patch_embed.proj.weight": t, "pos_embed": t}) == "timm_vit"
    assert ck.detect_format({"state_dict": {"patch_embed.proj.weight": t, "pos_embed": t}}) \
        == "timm_vit"
    assert ck.detect_format({"model": {"patch_embed.proj.weight": t, "pos_embed": t,
                                       "temporal_pos_embed_x": t}}) == "dropmae"
    assert ck.detect_format({"weights": [1, 2]}) == "unknown"


def test_unrecognised_layout_is_a_clear_error(tmp_path):
    path = tmp_path / "odd.pth"
    torch.save({"weights": {"conv.weight": torch.zeros(2)}, "epoch": 1}, path)
    with pytest.raises(ck.CheckpointError, match="odd.pth: unrecognised checkpoint layout"):
        ck.import_checkpoint(path, "ckd_tiny")


# ---------------------------------------------------------------------------------------------
# ckd inspect
# ---------------------------------------------------------------------------------------------

def test_inspect_clean_official(tmp_path, monkeypatch, capsys):
    path, _ = _official_checkpoint(tmp_path, monkeypatch)
    assert ckd_main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "format: ckd_official" in out and "inferred preset: ckd_tiny" in out
    assert "rgb_branch.cls_token  (unused by CKD" in out
    assert "lib.train.admin.settings.Settings" in out and "result: loads cleanly" in out


def test_inspect_reports_missing_and_mis_shaped(tmp_path, capsys, tiny_cfg, tiny_model):
    timm_path = tmp_path / "vit.pth"
    shapes = ac.timm_vit_shapes(TINY["c"], TINY["depth"], TINY["hidden"], TINY["patch"])
    torch.save(ac.random_state(shapes), timm_path)
    assert ckd_main(["inspect", str(timm_path)]) == 1
    out = capsys.readouterr().out
    assert "missing (" in out and "box_head.conv1_ctr.0.weight" in out
    assert "does NOT load cleanly" in out

    ours = ck.save_checkpoint(tiny_model, tiny_cfg, tmp_path / "m.safetensors")
    assert ckd_main(["inspect", str(ours), "--preset", "ckd_vitb256"]) == 1
    out = capsys.readouterr().out
    assert "format: ckd" in out and "rgb_branch.pos_embed_z: checkpoint (1, 64, 128) != " \
                                    "model (1, 64, 768)" in out
    assert ckd_main(["inspect", str(ours)]) == 0
    meta = json.loads(ck.read_checkpoint_meta(ours)["config"])
    assert meta["name"] == "ckd_tiny"
