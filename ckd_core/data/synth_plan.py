"""Scene geometry of a synthetic sequence: camera, object paths, events, ground truth.

Everything here is decided before a single pixel is drawn, as arrays over scene time, so
the ground truth is exact (it is the box the renderer pastes the target into) and frames can
be rendered one at a time in any order.

Coordinates. The background canvas is the world (pixels of the canvas). The RGB camera at
scene time tau sees the canvas window crops[tau] = (x0, y0, cw, ch) scaled to the frame:
screen = (world - (x0, y0)) * (W / cw, H / ch). The thermal camera sees the same scene
shifted by `registration_offset` (screen pixels) and, with `time_offset`, at another time.
Scene time tau covers both modalities: RGB frame k is tau = k - t0, thermal frame k is
tau = k - time_offset - t0, with t0 = min(0, -time_offset) (so tau >= 0).

The target's screen path is designed directly (kept inside the frame except during
out-of-view events); its world path follows from the camera. Other objects move in the
world. Randomness comes from named sub-streams of the spec's seed, so switching one
attribute on leaves the parts of the scene it does not concern unchanged (e.g. a
low_illumination sequence has the same geometry and thermal frames as without it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .synth_spec import ATTRIBUTES, KINDS, SequenceSpec
from .synth_sprites import (Appearance, Sprite, make_sprite, random_appearance, random_temps,
                            recolour_like)

PROFILE_SIZES = {"uav": (8.0, 40.0), "robot": (60.0, 220.0)}  # longer side, px at 512
MIN_SIZE_PX = 5.0
ZOOM_RANGE = (0.85, 1.18)
NOMINAL_METRES = {"person": 1.75, "vehicle": 4.5, "animal": 1.3}  # longer side
# Box height in metres of side views: on flat ground seen from a camera at height c, an
# object of height r whose box is h px tall has its feet c / r * h px below the horizon.
REAL_HEIGHT = {"person": 1.75, "vehicle": 1.5, "animal": 0.9}
FAST_PX = 20.0  # fast motion (RGBT234 / LasHeR rule): the centre moves > 20 px a frame
# (scaled by SequenceSpec.size_scale like every size here)
_STREAMS = ("scene", "camera", "target_look", "target_size", "target_path", "events",
            "event_sizes", "distractor", "similar", "occluder", "canvas", "lighting", "noise")


def rng_for(seed: int, stream: str, index: int = 0) -> np.random.Generator:
    """Independent generator for a named part of a sequence (e.g. "distractor", 2)."""
    if stream not in _STREAMS:
        raise ValueError(f"unknown random stream {stream!r}; expected one of {_STREAMS}")
    key = _STREAMS.index(stream)
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(key, index)))


@dataclass(frozen=True, eq=False)
class PlannedObject:
    """One object. sprites: orientation variants; variant: (T,) index into sprites per
    scene time; boxes: (T, 4) int32 xywh in RGB screen pixels per scene time (unclipped);
    shadow: "drop" (top-down view, cast along the sun), "ground" (ellipse at the feet) or
    "none"."""

    role: str  # "target" | "distractor" | "similar_distractor" | "occluder"
    kind: str
    sprites: tuple[Sprite, ...]
    variant: np.ndarray
    boxes: np.ndarray
    shadow: str


@dataclass(frozen=True, eq=False)
class SequencePlan:
    """Everything about a sequence except pixels. Arrays over scene time have T = N +
    |time_offset| rows; per-frame arrays (gt_*, frame_flags) have N = spec.num_frames rows.

    crossover: (T,) in [0, 1], how far the target's temperature has moved to the background's.
    gt_rgb, gt_thermal: (N, 4) int32 xywh, the visible target box clipped to the image; all
    zeros when no part of the target is in view. Occluded targets keep their full box.
    frame_flags: attribute name -> (N,) bool, the frames where the challenge is present.
    """

    spec: SequenceSpec
    ambient: float  # degrees Celsius
    sun: float  # radians, direction shadows fall in (image axes)
    canvas_hw: tuple[int, int]
    horizon: int | None  # canvas row (robot profile)
    t0: int
    crops: np.ndarray  # (T, 4) int32
    objects: tuple[PlannedObject, ...]  # drawing order
    target: int  # index into objects
    crossover: np.ndarray
    gt_rgb: np.ndarray
    gt_thermal: np.ndarray
    frame_flags: dict

    def rgb_time(self, k: int) -> int:
        return k - self.t0

    def thermal_time(self, k: int) -> int:
        return k - self.spec.time_offset - self.t0


def smooth_noise(rng: np.random.Generator, n: int, dims: int, corr: float) -> np.ndarray:
    """(n, dims) float64 Gaussian-smoothed white noise, unit RMS per column; `corr` is the
    smoothing sigma in frames."""
    pad = int(3 * corr) + 1
    x = rng.normal(size=(n + 2 * pad, dims))
    t = np.arange(-pad, pad + 1)
    kern = np.exp(-0.5 * (t / corr) ** 2)
    y = np.stack([np.convolve(x[:, d], kern, mode="valid") for d in range(dims)], axis=1)
    return y / np.sqrt(np.mean(y ** 2, axis=0) + 1e-12)


def fold(x: np.ndarray, lo, hi) -> np.ndarray:
    """Reflect values into [lo, hi] (a path bouncing off the bounds)."""
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    span = np.maximum(hi - lo, 1e-9)
    u = np.mod((x - lo) / span, 2.0)
    return np.where(hi > lo, lo + span * (1.0 - np.abs(u - 1.0)), lo)


def _bounds(lo, hi):
    """Bounds with lo > hi collapsed to their midpoint."""
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    mid = (lo + hi) / 2
    return np.where(lo <= hi, lo, mid), np.where(lo <= hi, hi, mid)


def _walk(rng, n, speed, corr, lo, hi, aniso=(1.0, 1.0), start=None) -> np.ndarray:
    """(n, 2) path in the box [lo, hi] from `start` (default: uniform in the box): smooth
    random velocity of RMS `speed` px/frame, scaled per axis by `aniso`."""
    lo, hi = _bounds(lo, hi)
    draw = rng.uniform(0, 1, 2)
    start = lo + (hi - lo) * draw if start is None else np.clip(start, lo, hi)
    v = smooth_noise(rng, n, 2, corr) * speed * np.asarray(aniso)
    return fold(start + np.cumsum(v, axis=0) - v[0], lo, hi)


def _plan_camera(rng, spec: SequenceSpec, T: int):
    """Canvas size, horizon row and (T, 4) crop windows."""
    W, H = spec.width, spec.height
    uav = spec.profile == "uav"
    margin = 16  # the thermal window may leave the canvas (registration offset): padded
    horizon_frac = rng.uniform(0.28, 0.42)
    if not spec.has("camera_motion"):
        CH, CW = H + 2 * margin, W + 2 * margin
        crops = np.tile(np.array([margin, margin, W, H], np.int32), (T, 1))
    else:
        CW, CH = int(W * (2.0 if uav else 2.2)), int(H * (1.7 if uav else 1.3))
        lz = smooth_noise(rng, T, 1, rng.uniform(40, 120))[:, 0] * 0.5
        zoom = np.exp(fold(np.cumsum(lz * 0.01) + rng.uniform(*np.log(ZOOM_RANGE)),
                           *np.log(ZOOM_RANGE)))
        cw, ch = np.rint(W / zoom), np.rint(H / zoom)
        half = np.array([W, H]) / ZOOM_RANGE[0] / 2 + margin
        lo, hi = half, np.array([CW, CH]) - half
        if not uav:  # a ground robot turns and drives; it does not fly up and down
            lo[1], hi[1] = CH / 2 - 0.04 * H, CH / 2 + 0.04 * H
        speed = rng.uniform(1.5, 5.0) * spec.size_scale
        centre = _walk(rng, T, speed, rng.uniform(30, 90), lo, hi)
        crops = np.stack([np.rint(centre[:, 0] - cw / 2), np.rint(centre[:, 1] - ch / 2),
                          cw, ch], axis=1).astype(np.int32)
    horizon = None if uav else int(round(CH / 2 - H / 2 + horizon_frac * H))
    return (CH, CW), horizon, crops


def _scales(crops: np.ndarray, W: int, H: int) -> np.ndarray:
    return np.stack([W / crops[:, 2], H / crops[:, 3]], axis=1)


def _wh(size: np.ndarray, aspect: float) -> np.ndarray:
    """(..., 2) width, height of boxes whose longer side is `size`."""
    return np.stack([size * min(1.0, aspect), size * min(1.0, 1.0 / aspect)], axis=-1)


def _int_boxes(centre: np.ndarray, wh: np.ndarray) -> np.ndarray:
    """Float centres and sizes -> (T, 4) int32 xywh placements (w, h >= 1)."""
    wi = np.maximum(1, np.rint(wh))
    xy = np.rint(centre - wi / 2)
    return np.concatenate([xy, wi], axis=1).astype(np.int32)


def clip_boxes(boxes: np.ndarray, W: int, H: int) -> np.ndarray:
    """(N, 4) xywh clipped to [0, W) x [0, H); boxes with nothing inside become zeros."""
    b = np.asarray(boxes, np.int64)
    x1, y1 = np.clip(b[:, 0], 0, W), np.clip(b[:, 1], 0, H)
    x2, y2 = np.clip(b[:, 0] + b[:, 2], 0, W), np.clip(b[:, 1] + b[:, 3], 0, H)
    out = np.stack([x1, y1, x2 - x1, y2 - y1], axis=1)
    out[(out[:, 2] <= 0) | (out[:, 3] <= 0)] = 0
    return out.astype(np.int32)


def _facing(vel: np.ndarray, threshold: float) -> np.ndarray:
    """(T,) 0 = moving towards +axis, 1 = towards -axis, switching only on clear motion."""
    k = np.ones(9) / 9
    v = np.convolve(np.pad(vel, 4, mode="edge"), k, mode="valid")
    state = np.where(v > threshold, 1, np.where(v < -threshold, -1, 0))
    idx = np.where(state != 0, np.arange(len(state)), 0)
    np.maximum.accumulate(idx, out=idx)
    filled = state[idx]
    first = state[state != 0][0] if np.any(state != 0) else 1
    filled = np.where(filled == 0, first, filled)
    return (filled < 0).astype(np.uint8)


def _orientations(app: Appearance, rng) -> tuple[tuple[str, ...], int]:
    """Sprite orientation variants (positive, negative direction) and the motion axis."""
    if app.view == "top" and app.kind in ("vehicle", "animal") and rng.random() < 0.5:
        return ("down", "up"), 1
    return ("right", "left"), 0


def _sizes(rng, spec: SequenceSpec, T: int) -> np.ndarray:
    """(T,) target size (longer side, px at zoom 1)."""
    lo, hi = (max(MIN_SIZE_PX, v * spec.size_scale) for v in PROFILE_SIZES[spec.profile])
    g = np.cumsum(smooth_noise(rng, T, 1, max(3.0, T / 12))[:, 0])
    g = (g - g.min()) / max(np.ptp(g), 1e-9) * 2 - 1 if T > 1 else np.zeros(T)
    if spec.has("scale_variation"):
        ratio = min(rng.uniform(2.2, 4.0), hi / lo)
        base = np.exp(rng.uniform(np.log(lo * np.sqrt(ratio)), np.log(hi / np.sqrt(ratio))))
    else:
        ratio = 1.25
        base = np.exp(rng.uniform(np.log(lo * 1.12), np.log(hi / 1.12)))
    return base * np.exp(0.5 * np.log(ratio) * g)


def _slots(start: int, end: int, n: int, rng) -> list[tuple[int, int]]:
    """n consecutive equal slots covering [start, end), in random order."""
    edges = np.linspace(start, end, n + 1).astype(int)
    order = rng.permutation(n)
    return [(int(edges[i]), int(edges[i + 1])) for i in order]


def _schedule(rng, spec: SequenceSpec) -> dict[str, list]:
    """Event windows in RGB frame indices: out_of_view (start, length), occlusion
    centre frames, fast-motion bursts (a, b), crossover windows (a, ramp, b)."""
    N = spec.num_frames
    start, end = max(3, int(0.12 * N)), N - max(2, int(0.05 * N))
    out = {"out_of_view": [], "occlusion": [], "fast_motion": [], "thermal_crossover": []}
    kinds = ["out_of_view"] * (max(1, N // 600) if spec.has("out_of_view") else 0)
    # Top-down occluders stay in the scene: long sequences get a few, passed again and again.
    n_occ = max(1, N // 600) if spec.profile == "robot" else min(3, max(1, N // 600))
    kinds += ["occlusion"] * (n_occ if spec.has("occlusion") else 0)
    for kind, (a, b) in zip(kinds, _slots(start, end, len(kinds), rng) if kinds else []):
        if kind == "out_of_view":
            total = min(2 * int(np.clip(round(0.08 * N), 2, 40))
                        + int(np.clip(round(0.08 * N), 2, 60)), b - a)
            s = int(rng.integers(a, max(a + 1, b - total + 1)))
            out[kind].append((s, max(3, total)))
        else:
            out[kind].append(int(rng.integers(a + (b - a) // 4, max(a + (b - a) // 4 + 1,
                                                                    b - (b - a) // 4))))
    if spec.has("fast_motion"):
        n = max(2, N // 100)
        length = int(np.clip(round(0.04 * N), 3, 20))
        for a, b in sorted(_slots(start, N - 1, n, rng)):
            s = int(rng.integers(a, max(a + 1, b - length)))
            out["fast_motion"].append((s, min(s + length, N)))
    if spec.has("thermal_crossover"):
        n = max(1, N // 900)
        for a, b in sorted(_slots(max(2, int(0.1 * N)), N, n, rng)):
            length = int((b - a) * rng.uniform(0.6, 0.85))
            s = int(rng.integers(a, max(a + 1, b - length)))
            out["thermal_crossover"].append((s, max(1, length // 5), s + length))
    return out


def _exit_path(pos, wh_max, W, H, uav, a, total, vmax) -> None:
    """Rewrite pos[a : a + total] so the target leaves the frame across the nearest allowed
    edge (no faster than `vmax` px/frame when the window leaves room), stays out, and comes
    back to where its path continues."""
    b = min(a + total, len(pos) - 1)
    total = b - a
    p, q = pos[a].copy(), pos[b].copy()
    gap = wh_max / 2 + 3
    cands = {"left": (p[0], np.array([-gap[0], p[1]])),
             "right": (W - p[0], np.array([W + gap[0], p[1]]))}
    if uav:
        cands["top"] = (p[1], np.array([p[0], -gap[1]]))
        cands["bottom"] = (H - p[1], np.array([p[0], H + gap[1]]))
    out = min(cands.values(), key=lambda c: c[0])[1]
    # An eased move peaks at pi/2 times its mean speed.
    need = [int(np.ceil(np.pi / 2 * np.linalg.norm(e) / vmax)) for e in (out - p, q - out)]
    if sum(need) > total - 1:  # a short window: move faster, keep one frame out of view
        m1 = max(1, int((total - 1) * need[0] / max(sum(need), 1)))
        m3 = max(1, total - 1 - m1)
    else:
        m1, m3 = need
    hold = total - m1 - m3
    ease = lambda n: ((1 - np.cos(np.pi * np.arange(1, n + 1) / n)) / 2)[:, None]
    pos[a + 1:a + 1 + m1] = p + (out - p) * ease(m1)
    pos[a + 1 + m1:a + 1 + m1 + hold] = out
    n3 = b - (a + m1 + hold)
    if n3 > 0:
        pos[a + m1 + hold + 1:b + 1] = out + (q - out) * ease(n3)


def _ramps(windows, N: int) -> np.ndarray:
    """(N,) crossover strength from (start, ramp, end) windows."""
    c = np.zeros(N)
    t = np.arange(N)
    for a, r, b in windows:
        up = np.clip((t - a) / r, 0, 1)
        down = np.clip((b - t) / r, 0, 1)
        c = np.maximum(c, np.minimum(up, down))
    return c


def _sprites(rng, app: Appearance, temps: dict, orients, longer_px: float
             ) -> tuple[Sprite, ...]:
    """The orientation variants of one object, identical but for the turn."""
    height = longer_px * min(1.0, 1.0 / app.aspect)
    height = int(np.clip(np.ceil(height), 16, 256))
    sub = int(rng.integers(2 ** 63))
    return tuple(make_sprite(np.random.default_rng(sub), app, temps, height, o)
                 for o in orients)


def _aniso(app: Appearance, axis: int, uav: bool) -> tuple[float, float]:
    """Vehicles and animals seen from above move along their body; on the ground, things
    move across the view much more than in depth."""
    if app.view == "top" and app.kind in ("vehicle", "animal"):
        return (1.0, 0.25) if axis == 0 else (0.25, 1.0)
    return (1.0, 1.0) if uav else (1.0, 0.35)


def _ground_y(horizon: int, height, cam_height: float, kind: str):
    """World centre row of a `kind` object `height` px tall standing on flat ground seen
    from `cam_height` metres (see REAL_HEIGHT)."""
    return horizon + height * (cam_height / REAL_HEIGHT[kind] - 0.5)


def _object(role, app, sprites, world, wh_world, origin, sc, axis, shadow, k) -> PlannedObject:
    """Project a world path (T, 2) and world sizes (T, 2) or (2,) through the camera."""
    boxes = _int_boxes((world - origin) * sc, np.broadcast_to(wh_world, world.shape) * sc)
    vel = np.diff(world[:, axis], prepend=world[0, axis])
    variant = _facing(vel, 0.05 * k) if len(sprites) > 1 else np.zeros(len(world), np.uint8)
    return PlannedObject(role=role, kind=app.kind, sprites=sprites, variant=variant,
                         boxes=boxes, shadow=shadow)


def plan_sequence(spec: SequenceSpec) -> SequencePlan:
    """Plan every object, the camera and the events of `spec` (no pixels)."""
    N, W, H, k = spec.num_frames, spec.width, spec.height, spec.size_scale
    off, (dx, dy) = spec.time_offset, spec.registration_offset
    t0, T = min(0, -off), N + abs(off)
    uav = spec.profile == "uav"
    seed = spec.seed
    scene = rng_for(seed, "scene")
    ambient, sun = float(scene.uniform(0, 28)), float(scene.uniform(0, 2 * np.pi))
    cam_height = float(scene.uniform(0.6, 1.6))  # metres, robot profile
    (CH, CW), horizon, crops = _plan_camera(rng_for(seed, "camera"), spec, T)
    sc, origin = _scales(crops, W, H), crops[:, :2].astype(np.float64)
    zmax = float(sc.max())
    events = _schedule(rng_for(seed, "events"), spec)
    ev = rng_for(seed, "event_sizes")
    shadow = "drop" if uav else "ground"
    size_lo, size_hi = (v * k for v in PROFILE_SIZES[spec.profile])

    # The target: look, size, screen path (bounded; out-of-view and fast bursts edited in).
    look = rng_for(seed, "target_look")
    app = random_appearance(look, spec.target_kind, spec.profile)
    temps = random_temps(look, spec.target_kind, ambient)
    orients, axis = _orientations(app, look)
    size = _sizes(rng_for(seed, "target_size"), spec, T)
    sprites = _sprites(look, app, temps, orients, size.max() * zmax)
    wh_world = _wh(size, sprites[0].aspect)
    wh_s = wh_world * sc
    tp = rng_for(seed, "target_path")
    margin = 2 + 4 * k
    lo = wh_s.max(0) / 2 + margin
    hi = np.array([W, H]) - wh_s.max(0) / 2 - margin
    speed = float(np.hypot(W, H) * tp.uniform(0.002, 0.006))
    vd = smooth_noise(tp, T, 2, tp.uniform(15, 45)) * _aniso(app, axis, uav)
    v = vd * speed
    for a, b in events["fast_motion"]:
        ta, tb = a - t0, b - t0
        d = vd[ta:tb].copy()
        if not uav:  # on the ground the image height follows the depth: bursts go sideways
            d = np.stack([np.where(d[:, 0] < 0, -1.0, 1.0), np.zeros(len(d))], axis=1)
        d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-9)
        v[ta:tb] = d * FAST_PX * k * ev.uniform(1.3, 1.8)
    lo, hi = _bounds(lo, hi)
    pos = fold(lo + (hi - lo) * tp.uniform(0, 1, 2) + np.cumsum(v, axis=0) - v[0], lo, hi)
    for a, total in events["out_of_view"]:
        _exit_path(pos, wh_s.max(0), W, H, uav, a - t0, total, 0.8 * FAST_PX * k)
    if not uav:
        world_y = _ground_y(horizon, wh_world[:, 1], cam_height, spec.target_kind)
        pos[:, 1] = np.minimum((world_y - origin[:, 1]) * sc[:, 1],
                               H - wh_s[:, 1] / 2 - margin)
    world = pos / sc + origin
    target = _object("target", app, sprites, world, wh_world, origin, sc, axis, shadow, k)

    # Look-alikes: same kind and colours, other temperatures, walking around the target.
    n_sim = 0
    if spec.has("similar_distractor"):
        n_sim = 2 if spec.num_distractors >= 3 and look.random() < 0.5 else 1
    similar = []
    for j in range(n_sim):
        r = rng_for(seed, "similar", j)
        app_j = recolour_like(app, r)
        delta = float(r.choice([-1.0, 1.0]) * r.uniform(4.0, 9.0))
        f = r.uniform(0.9, 1.1)
        spr = _sprites(r, app_j, {n: t + delta for n, t in temps.items()}, orients,
                       size.max() * f * zmax)
        wh_j = _wh(size * f, spr[0].aspect)
        R = 2.5 * float(size.mean())
        lo_r = np.array([-R, -R if uav else -0.15 * R])
        start = np.array([r.choice([-1.0, 1.0]) * R * r.uniform(0.6, 1.0), 0.0])
        rel = _walk(r, T, speed * r.uniform(0.3, 0.8), r.uniform(20, 60), lo_r, -lo_r,
                    start=start)
        path = world + rel
        if not uav:
            path[:, 1] = _ground_y(horizon, wh_j[:, 1], cam_height, spec.target_kind)
        similar.append(_object("similar_distractor", app_j, spr, path, wh_j, origin,
                               sc, axis, shadow, k))

    # Other objects wander over the whole canvas, sized like real ones next to the target.
    ppm = float(size.mean()) / NOMINAL_METRES[spec.target_kind]
    others = []
    for i in range(max(0, spec.num_distractors - n_sim)):
        r = rng_for(seed, "distractor", i)
        kind = KINDS[int(r.integers(len(KINDS)))]
        app_i = random_appearance(r, kind, spec.profile)
        temps_i = random_temps(r, kind, ambient)
        orients_i, axis_i = _orientations(app_i, r)
        size_i = float(np.clip(NOMINAL_METRES[kind] * ppm * r.uniform(0.85, 1.15),
                               max(MIN_SIZE_PX, 0.6 * size_lo), 1.5 * size_hi))
        spr = _sprites(r, app_i, temps_i, orients_i, size_i * zmax)
        wh_i = _wh(np.float64(size_i), spr[0].aspect)
        lo_w, hi_w = wh_i / 2, np.array([CW, CH]) - wh_i / 2
        path = _walk(r, T, speed * r.uniform(0.4, 1.2), r.uniform(15, 60), lo_w, hi_w,
                     _aniso(app_i, axis_i, uav))
        if not uav:
            path[:, 1] = _ground_y(horizon, wh_i[1], cam_height, kind)
        others.append(_object("distractor", app_i, spr, path, wh_i, origin, sc, axis_i,
                              shadow, k))

    occluders = [_occluder(rng_for(seed, "occluder", j), spec, tc - t0, world, wh_world,
                           sprites[0].aspect, ambient, origin, sc, zmax, k)
                 for j, tc in enumerate(events["occlusion"])]

    objects = tuple(others + similar + [target] + occluders)
    t_idx = len(others) + len(similar)
    cross = _ramps([(a - t0, r_, b - t0) for a, r_, b in events["thermal_crossover"]], T)

    kk = np.arange(N)
    full = target.boxes[kk - t0]
    gt_rgb = clip_boxes(full, W, H)
    gt_thermal = clip_boxes(target.boxes[kk - off - t0] + np.array([dx, dy, 0, 0]), W, H)
    return SequencePlan(spec=spec, ambient=ambient, sun=sun, canvas_hw=(CH, CW),
                        horizon=horizon, t0=t0, crops=crops, objects=objects, target=t_idx,
                        crossover=cross.astype(np.float32), gt_rgb=gt_rgb,
                        gt_thermal=gt_thermal,
                        frame_flags=_frame_flags(spec, full,
                                                 [o.boxes[kk - t0] for o in occluders],
                                                 cross[kk - t0]))


def _occluder(r, spec: SequenceSpec, tau: int, world: np.ndarray, wh_world: np.ndarray,
              target_aspect: float, ambient: float, origin, sc, zmax: float, k: float
              ) -> PlannedObject:
    """An object that hides the target around scene time `tau`, its box covering the
    target's with 30 % to spare. Top-down: a static tree or awning where the target will be.
    Ground level: a passer-by (person, or car for wide targets) crossing just in front of
    the target, closer to the camera."""
    uav = spec.profile == "uav"
    T = len(world)
    if uav:
        kind = str(r.choice(["tree", "tree", "awning"]))
    else:
        kind = "person" if target_aspect < 0.8 else "vehicle"
    app = random_appearance(r, kind, spec.profile)
    temps = random_temps(r, kind, ambient)
    tw, th = wh_world[tau]
    h_est = max(1.3 * th, 1.3 * tw / app.aspect)
    orients = ("right",) if uav else ("right", "left")
    sprites = _sprites(r, app, temps, orients, h_est * max(1.0, app.aspect) * zmax)
    ao = sprites[0].aspect  # the drawn sprite's true aspect decides the box
    h = max(1.3 * th, 1.3 * tw / ao)
    wh = np.array([h * ao, h])
    if uav:
        path = np.broadcast_to(world[tau], (T, 2))
        return _object("occluder", app, sprites, path, wh, origin, sc, 0,
                       "drop" if kind == "tree" else "none", k)
    crossing = float(np.clip(0.1 * spec.num_frames, 8, 60))  # frames to pass the target
    v = float(r.choice([-1.0, 1.0])) * (wh[0] + tw) / crossing
    x = world[tau, 0] + v * (np.arange(T) - tau)
    feet = world[tau, 1] + th / 2 + 0.08 * th  # a little closer than the target
    path = np.stack([x, np.full(T, feet - h / 2)], axis=1)
    return _object("occluder", app, sprites, path, wh, origin, sc, 0, "ground", k)


def _frame_flags(spec: SequenceSpec, full: np.ndarray, occ_boxes: list, cross: np.ndarray
                 ) -> dict[str, np.ndarray]:
    """Per-frame presence of each attribute: measured from the geometry for the event
    attributes, the sequence label for the others."""
    W, H, N = spec.width, spec.height, spec.num_frames
    flags = {a: np.full(N, spec.has(a)) for a in ATTRIBUTES}
    x, y, w, h = (full[:, i].astype(np.int64) for i in range(4))
    flags["out_of_view"] = (x < 0) | (y < 0) | (x + w > W) | (y + h > H)
    cover = np.zeros(N)
    for ob in occ_boxes:
        iw = np.clip(np.minimum(x + w, ob[:, 0] + ob[:, 2]) - np.maximum(x, ob[:, 0]), 0, None)
        ih = np.clip(np.minimum(y + h, ob[:, 1] + ob[:, 3]) - np.maximum(y, ob[:, 1]), 0, None)
        cover = np.maximum(cover, iw * ih / (w * h))
    flags["occlusion"] = cover > 0.1
    c = full[:, :2] + full[:, 2:] / 2
    disp = np.linalg.norm(np.diff(c, axis=0, prepend=c[:1]), axis=1)
    flags["fast_motion"] = disp > FAST_PX * spec.size_scale
    flags["thermal_crossover"] = cross > 0.5
    return flags
