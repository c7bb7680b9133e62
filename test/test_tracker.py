"""Tracker mechanics: geometry, determinism, LOST/re-acquire, modality health, resolutions,
input validation. A deterministic stand-in network (it finds the bright target in whichever
search crop is non-zero) makes the expected boxes computable; the real CKD model is used for
the determinism and end-to-end shape checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from ckd_core.config import CKDConfig, TrackerConfig, load_config
from ckd_core.crops import sample_target
from ckd_core.model import build_inference_model
from ckd_core.tracking import Tracker, TrackState, hann_window
from ckd_core.tracking.tracker import map_box_back

W, H = 320, 240


class BrightSpotNet(nn.Module):
    """Score map = mean brightness of each 8x8 cell of the search crops (max over modalities,
    ignoring all-zero inputs), scaled to [0, 1]; size = the true target size / crop; offset =
    the centre of the cell (0.5). Same interface as CKDInference."""

    def __init__(self, cfg, target_px: float):
        super().__init__()
        self.cfg = cfg
        self.target_px = target_px
        self.dummy = nn.Parameter(torch.zeros(1))
        self.last_search_side = None

    def forward(self, z_rgb, z_tir, x_rgb, x_tir, template_box=None, elimination=None):
        g = self.cfg.search_grid
        maps = []
        for x in (x_rgb, x_tir):
            if torch.count_nonzero(x) == 0:
                continue
            img = x.mean(1, keepdim=True)  # normalised, ~[-2, 2.6]
            maps.append(nn.functional.adaptive_avg_pool2d(img, g))
        m = torch.stack(maps).amax(0)
        score = ((m + 2.2) / 5.0).clamp(1e-4, 1 - 1e-4)
        b = x_rgb.shape[0]
        size = torch.full((b, 2, g, g), 0.0)
        offset = torch.full((b, 2, g, g), 0.5)
        return {"score_map": score, "size_map": size + self._size, "offset_map": offset}

    _size = 0.0


def scene(cx, cy, size=16, visible=True, value=255):
    rgb = np.full((H, W, 3), 40, np.uint8)
    tir = np.full((H, W), 30, np.uint8)
    if visible:
        x0, y0 = int(round(cx - size / 2)), int(round(cy - size / 2))
        rgb[max(0, y0):y0 + size, max(0, x0):x0 + size] = value
        tir[max(0, y0):y0 + size, max(0, x0):x0 + size] = value
    return rgb, tir


def make_tracker(state_machine=True, **tracker_kw):
    cfg = load_config("ckd_tiny")
    tcfg = TrackerConfig(state_machine=state_machine, **tracker_kw)
    cfg = CKDConfig(name=cfg.name, model=cfg.model, data=cfg.data, train=cfg.train, tracker=tcfg)
    net = BrightSpotNet(cfg.model, 16)
    return Tracker(net, cfg), net


def test_hann_window_values():
    w = hann_window(16)[0, 0]
    k = np.arange(1, 17)
    h = 0.5 * (1 - np.cos(2 * np.pi * k / 17))
    np.testing.assert_allclose(w.numpy(), np.outer(h, h), rtol=1e-6)
    assert float(w.max()) < 1 and float(w.min()) > 0


def test_map_box_back_hand_computed():
    # previous box centre (110, 70); crop side 200 -> crop origin at centre - 100 = (10, -30)
    box = map_box_back((120.0, 80.0, 20.0, 10.0), (100.0, 60.0, 20.0, 20.0), 200.0)
    assert box == pytest.approx((120 + 10 - 10, 80 - 30 - 5, 20, 10))


def test_tracks_a_moving_target_to_cell_precision():
    tracker, net = make_tracker()
    net._size = 16 / (math.ceil(math.sqrt(16 * 16) * 4.0))  # true size / crop side
    tracker.init(*scene(100, 100), (92, 92, 16, 16))
    cx, cy = 100.0, 100.0
    for _ in range(12):
        cx, cy = cx + 4, cy + 2
        r = tracker.update(*scene(cx, cy))
        bx, by, bw, bh = r.box_xywh
        # 4 px per cell at this scale; the stand-in's average-pooled peak may sit up to 1.5
        # cells from the target centre (the exact geometry is checked by the manual step test)
        tol = 2 * 64 / 16
        assert abs(bx + bw / 2 - cx) <= tol and abs(by + bh / 2 - cy) <= tol
        assert bw == pytest.approx(16, abs=1e-3) and bh == pytest.approx(16, abs=1e-3)
        assert r.state == TrackState.TRACKING and r.score > 0.8
        assert r.health == {"rgb": "ok", "thermal": "ok"}
        assert set(r.timings) == {"preprocess", "model", "postprocess", "total"}


def test_lost_when_out_of_view_then_reacquires_and_box_is_held():
    tracker, net = make_tracker(lost_threshold=0.3, recover_threshold=0.5, lost_frames=2)
    net._size = 16 / 64
    tracker.init(*scene(150, 120), (142, 112, 16, 16))
    tracker.update(*scene(150, 120))
    held = tracker.box
    states = [tracker.update(*scene(0, 0, visible=False)).state for _ in range(4)]
    assert states[0] == TrackState.TRACKING and states[1:] == [TrackState.LOST] * 3
    assert tracker.box == pytest.approx(held, abs=4)  # low-confidence peaks did not move it
    # while LOST the search area grows, so a target re-appearing further away is found
    r = tracker.update(*scene(175, 120))
    assert r.state == TrackState.TRACKING
    # the grown crop (3 x 64 px) has 12 px cells; the stand-in's peak is within 1.5 cells
    assert abs(r.box_xywh[0] + 8 - 175) <= 18


def test_long_lost_spell_keeps_the_search_growth_capped():
    # lost_search_growth ** frames overflowed a float after ~1750 LOST frames (1 min at 30 Hz):
    # every later update raised OverflowError. 100000 frames is about an hour at 30 Hz.
    tracker, net = make_tracker(lost_threshold=0.3, recover_threshold=0.5, lost_frames=2)
    net._size = 16 / 64
    tracker.init(*scene(150, 120), (142, 112, 16, 16))
    for _ in range(4):
        r = tracker.update(*scene(0, 0, visible=False))
    assert r.state == TrackState.LOST
    tracker._lost_frames = 100_000  # as if LOST that long (stepping there would take minutes)
    assert tracker._search_growth() == tracker.cfg.lost_search_max_factor
    assert tracker.update(*scene(0, 0, visible=False)).state == TrackState.LOST


def test_authors_mode_never_holds_the_box():
    tracker, net = make_tracker(state_machine=False)
    net._size = 16 / 64
    tracker.init(*scene(150, 120), (142, 112, 16, 16))
    before = tracker.box
    r = tracker.update(*scene(0, 0, visible=False))
    assert r.box_xywh != before  # it follows whatever peak it sees, like the authors' code


def test_missing_black_frozen_modalities_are_reported_and_tracking_continues():
    tracker, net = make_tracker()
    net._size = 16 / 64
    rgb, tir = scene(100, 100)
    tracker.init(rgb, tir, (92, 92, 16, 16))
    r = tracker.update(None, scene(104, 100)[1])
    assert r.health["rgb"] == "missing" and r.state == TrackState.TRACKING
    assert abs(r.box_xywh[0] + 8 - 104) <= 8
    black = np.zeros((H, W, 3), np.uint8)
    r = tracker.update(black, scene(108, 100)[1])
    assert r.health["rgb"] == "black" and abs(r.box_xywh[0] + 8 - 108) <= 8
    frozen_tir = scene(108, 100)[1]
    for i in range(4):
        r = tracker.update(scene(112 + 0 * i, 100)[0], frozen_tir)
    assert r.health["thermal"] == "frozen" and r.health["rgb"] == "frozen"
    white = np.full((H, W, 3), 255, np.uint8)
    r = tracker.update(scene(112, 100)[0], white)
    assert r.health["thermal"] == "saturated"
    r = tracker.update(None, None)
    assert r.state == TrackState.LOST and r.score == 0.0


def test_different_resolutions_map_to_the_reference_camera():
    tracker, net = make_tracker(reference_camera="rgb")
    net._size = 16 / 64
    rgb, tir = scene(100, 100)
    tir_half = tir[::2, ::2].copy()  # thermal camera at half resolution
    tracker.init(rgb, tir_half, (92, 92, 16, 16))
    r = tracker.update(*scene(104, 102))
    assert abs(r.box_xywh[0] + 8 - 104) <= 8


@pytest.mark.parametrize("box, match", [
    ((-50, 10, 20, 20), "outside"), ((10, 10, 0, 20), "zero"),
    ((10, 10, float("nan"), 5), "NaN"), ((W + 1, 0, 5, 5), "outside"), ((1, 2, 3), "four"),
])
def test_bad_init_boxes_are_clear_errors(box, match):
    tracker, _ = make_tracker()
    with pytest.raises(ValueError, match=match):
        tracker.init(*scene(100, 100), box)


@pytest.mark.parametrize("image, match", [
    (np.zeros((H, W, 3), np.float32), "dtype"), (np.zeros((H, W, 4), np.uint8), "channels"),
    (np.zeros((0, W, 3), np.uint8), "non-empty"), ([[1, 2]], "numpy"),
])
def test_bad_images_are_clear_errors(image, match):
    tracker, _ = make_tracker()
    with pytest.raises(ValueError, match=match):
        tracker.init(image, scene(1, 1)[1], (10, 10, 20, 20))


def test_update_before_init_is_an_error():
    tracker, _ = make_tracker()
    with pytest.raises(RuntimeError, match="before init"):
        tracker.update(*scene(10, 10))


def test_real_model_is_deterministic_and_matches_a_manual_step():
    cfg = load_config("ckd_tiny_mce")
    model = build_inference_model(cfg.model)
    runs = []
    for _ in range(2):
        t = Tracker(model, cfg)
        t.init(*scene(100, 100), (92, 92, 16, 16))
        runs.append([t.update(*scene(100 + 3 * i, 100)).box_xywh for i in range(3)])
    assert runs[0] == runs[1]
    # one step by hand: crop, normalise, forward, window, decode, map back, clip
    from ckd_core.boxes import clip_xywh
    from ckd_core.imaging import normalize_crop
    from ckd_core.model.head import decode_boxes
    t = Tracker(model, cfg)
    box0 = (92.0, 92.0, 16.0, 16.0)
    rgb0, tir0 = scene(100, 100)
    t.init(rgb0, tir0, box0)
    rgb1, tir1 = scene(103, 100)
    got = t.update(rgb1, tir1).box_xywh
    zr = normalize_crop(sample_target(rgb0, box0, 2.0, 64).image)
    zt = normalize_crop(sample_target(np.repeat(tir0[:, :, None], 3, 2), box0, 2.0, 64).image)
    cr = sample_target(rgb1, box0, 4.0, 128)
    ct = sample_target(np.repeat(tir1[:, :, None], 3, 2), box0, 4.0, 128)
    with torch.no_grad():
        out = model(zr, zt, normalize_crop(cr.image), normalize_crop(ct.image))
    boxes, _, _ = decode_boxes(out["score_map"] * hann_window(16), out["size_map"],
                               out["offset_map"])
    cx, cy, w, h = (boxes[0] * 128 / cr.resize_factor).tolist()
    side = 128 / cr.resize_factor
    exp = clip_xywh((cx + 100 - side / 2 - w / 2, cy + 100 - side / 2 - h / 2, w, h), W, H, 10)
    assert got == pytest.approx(exp, abs=1e-4)


def test_from_checkpoint_round_trip_and_clear_errors(tmp_path):
    from ckd_core.model.checkpoint import save_checkpoint

    cfg = load_config("ckd_tiny_mce")
    model = build_inference_model(cfg.model)
    path = save_checkpoint(model, cfg, tmp_path / "m.safetensors")
    t = Tracker.from_checkpoint(path, tracker_config=TrackerConfig(lost_threshold=0.1))
    assert t.cfg.lost_threshold == 0.1 and t.model_cfg == cfg.model
    t.init(*scene(100, 100), (92, 92, 16, 16))
    ref = Tracker(model, cfg)
    ref.init(*scene(100, 100), (92, 92, 16, 16))
    assert t.update(*scene(103, 100)).box_xywh == ref.update(*scene(103, 100)).box_xywh
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Tracker.from_checkpoint(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError):
        Tracker.from_checkpoint(bad)


def test_from_checkpoint_overrides_single_fields(tmp_path):
    from ckd_core.model.checkpoint import save_checkpoint

    cfg = load_config("ckd_tiny_mce").replace(**{"tracker.clip_margin": 5.0})
    path = save_checkpoint(build_inference_model(cfg.model), cfg, tmp_path / "m.safetensors")
    t = Tracker.from_checkpoint(path, tracker_overrides={"lost_threshold": 0.2})
    assert t.cfg.lost_threshold == 0.2 and t.cfg.clip_margin == 5.0  # the rest kept
    with pytest.raises(ValueError, match="unknown tracker setting"):
        Tracker.from_checkpoint(path, tracker_overrides={"lost": 0.2})
    with pytest.raises(ValueError, match="recover_threshold"):
        Tracker.from_checkpoint(path, tracker_overrides={"lost_threshold": 0.9,
                                                         "recover_threshold": 0.5})


@pytest.fixture(scope="module")
def out_of_view_case():
    """(a 12-frame synthetic sequence whose target leaves the view, preset ckd_tiny_mce,
    a random-weights model of it, the first true box): for exactness comparisons."""
    from ckd_core.data.synth import make_sequence_spec, render_sequence

    seq = render_sequence(make_sequence_spec(5, 0, num_frames=12, width=W, height=H,
                                             attributes=("out_of_view",)))
    cfg = load_config("ckd_tiny_mce")
    torch.manual_seed(0)
    model = build_inference_model(cfg.model)
    return seq, cfg, model, tuple(float(v) for v in seq.gt_rgb[0])


def test_grey_frames_track_exactly_like_their_three_channel_copies(out_of_view_case):
    """The tracker crops grey frames single-channel and repeats only the crops: the boxes
    must be identical to giving it the frames already repeated to (H, W, 3) or (H, W, 1)."""
    seq, cfg, model, box0 = out_of_view_case
    runs = {}
    for name, conv in (("grey", lambda g: g), ("hw1", lambda g: g[:, :, None]),
                       ("rgb", lambda g: np.repeat(g[:, :, None], 3, axis=2))):
        t = Tracker(model, cfg)
        t.init(seq.rgb[0], conv(seq.thermal[0]), box0)
        runs[name] = [t.update(r, conv(g)) for r, g in zip(seq.rgb[1:], seq.thermal[1:])]
    for name in ("hw1", "rgb"):
        assert [r.box_xywh for r in runs[name]] == [r.box_xywh for r in runs["grey"]]
        assert [r.score for r in runs[name]] == [r.score for r in runs["grey"]]
        assert [r.health for r in runs[name]] == [r.health for r in runs["grey"]]
    # a grey RGB camera too (the reference modality)
    t1, t2 = Tracker(model, cfg), Tracker(model, cfg)
    grey = [r[:, :, 1].copy() for r in seq.rgb[:4]]
    t1.init(grey[0], seq.thermal[0], box0)
    t2.init(np.repeat(grey[0][:, :, None], 3, axis=2), seq.thermal[0], box0)
    for g, th in zip(grey[1:], seq.thermal[1:4]):
        assert t1.update(g, th).box_xywh == t2.update(np.repeat(g[:, :, None], 3, 2),
                                                      th).box_xywh


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_windowed_thermal_frames_track_exactly_like_mapped_ones(dtype, out_of_view_case):
    """A WindowedFrame (raw thermal, mapped only where the tracker reads it) gives the same
    boxes, scores and health as the whole frame mapped first: while LOST (bigger windows),
    for a frozen camera, and at a resolution the tracker resizes to the reference camera."""
    from ckd_core.imaging import WindowedFrame, window_to_uint8

    seq, cfg, model, box0 = out_of_view_case
    raws = [g.astype(dtype) * 16 + 2000 for g in seq.thermal]
    raws[3:3] = [raws[2]] * 4  # a frozen camera
    if dtype == np.float32:
        raws[1][0, :5] = np.nan
    window = (2400.0, 5600.5)
    rgbs = list(seq.rgb[:3]) + [seq.rgb[2]] * 4 + list(seq.rgb[3:])
    for half in (False, True):
        runs = {}
        for name, wrap in (("mapped", lambda r: window_to_uint8(r, window)),
                           ("windowed", lambda r: WindowedFrame(r, window))):
            frames = [wrap(r[::2, ::2].copy() if half else r) for r in raws]
            t = Tracker(model, cfg)
            t.init(rgbs[0], frames[0], box0)
            runs[name] = [t.update(r, f) for r, f in zip(rgbs[1:], frames[1:])]
            if name == "windowed" and not half:  # only the frozen frames were mapped whole
                assert [f._whole is not None for f in frames[1:]] == \
                    [False] + [True] * 5 + [False] * 9
        assert [r.box_xywh for r in runs["windowed"]] == [r.box_xywh for r in runs["mapped"]]
        assert [r.score for r in runs["windowed"]] == [r.score for r in runs["mapped"]]
        assert [r.health for r in runs["windowed"]] == [r.health for r in runs["mapped"]]
        assert any(r.health["thermal"] == "frozen" for r in runs["mapped"])
        assert any(r.state == TrackState.LOST for r in runs["mapped"])
