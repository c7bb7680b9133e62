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

from .synth_motion import (bounds, exit_path, facing, fold, ramps, schedule_events,
                           smooth_noise, walk)
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
        centre = walk(rng, T, speed, rng.uniform(30, 90), lo, hi)
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


@dataclass(frozen=True, eq=False)
class _Scene:
    """What planning any object needs: the spec, the camera over scene time (T rows), the
    ground (robot profile) and the weather."""

    spec: SequenceSpec
    t0: int
    scale: np.ndarray  # (T, 2) screen pixels per world pixel
    origin: np.ndarray  # (T, 2) camera window corner in the world
    canvas_wh: tuple[int, int]
    horizon: int | None  # canvas row (robot profile)
    cam_height: float  # metres (robot profile)
    ambient: float  # degrees Celsius

    @property
    def T(self) -> int:
        return len(self.scale)

    @property
    def uav(self) -> bool:
        return self.spec.profile == "uav"

    @property
    def zmax(self) -> float:
        """The largest zoom: sprites are drawn at least this big."""
        return float(self.scale.max())

    def ground_y(self, height, kind: str):
        """World centre row of a `kind` object `height` px tall standing on flat ground (see
        REAL_HEIGHT)."""
        return self.horizon + height * (self.cam_height / REAL_HEIGHT[kind] - 0.5)

    def project(self, role: str, app: Appearance, sprites, world: np.ndarray, wh_world,
                axis: int, shadow: str | None = None) -> PlannedObject:
        """An object from its world path (T, 2) and world size (T, 2) or (2,); it faces
        along its motion on `axis`."""
        k = self.spec.size_scale
        boxes = _int_boxes((world - self.origin) * self.scale,
                           np.broadcast_to(wh_world, world.shape) * self.scale)
        vel = np.diff(world[:, axis], prepend=world[0, axis])
        variant = facing(vel, 0.05 * k) if len(sprites) > 1 else np.zeros(self.T, np.uint8)
        if shadow is None:
            shadow = "drop" if self.uav else "ground"
        return PlannedObject(role=role, kind=app.kind, sprites=sprites, variant=variant,
                             boxes=boxes, shadow=shadow)


@dataclass(frozen=True, eq=False)
class _Target:
    """The planned target and what its look-alikes and occluders are derived from."""

    obj: PlannedObject
    app: Appearance
    temps: dict
    orients: tuple[str, ...]
    axis: int
    size: np.ndarray  # (T,) longer side, world px
    wh_world: np.ndarray  # (T, 2)
    world: np.ndarray  # (T, 2) centre
    speed: float  # typical px / frame


def _plan_target(scene: _Scene, events: dict, ev_rng) -> _Target:
    """The target: look, size, and a screen path kept inside the frame, with fast-motion
    bursts and out-of-view excursions edited in."""
    spec, t0 = scene.spec, scene.t0
    W, H, k = spec.width, spec.height, spec.size_scale
    look = rng_for(spec.seed, "target_look")
    app = random_appearance(look, spec.target_kind, spec.profile)
    temps = random_temps(look, spec.target_kind, scene.ambient)
    orients, axis = _orientations(app, look)
    size = _sizes(rng_for(spec.seed, "target_size"), spec, scene.T)
    sprites = _sprites(look, app, temps, orients, size.max() * scene.zmax)
    wh_world = _wh(size, sprites[0].aspect)
    wh_s = wh_world * scene.scale
    tp = rng_for(spec.seed, "target_path")
    margin = 2 + 4 * k
    lo, hi = bounds(wh_s.max(0) / 2 + margin, np.array([W, H]) - wh_s.max(0) / 2 - margin)
    speed = float(np.hypot(W, H) * tp.uniform(0.002, 0.006))
    vd = smooth_noise(tp, scene.T, 2, tp.uniform(15, 45)) * _aniso(app, axis, scene.uav)
    v = vd * speed
    for a, b in events["fast_motion"]:
        ta, tb = a - t0, b - t0
        d = vd[ta:tb].copy()
        if not scene.uav:  # on the ground the image height follows the depth: go sideways
            d = np.stack([np.where(d[:, 0] < 0, -1.0, 1.0), np.zeros(len(d))], axis=1)
        d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-9)
        v[ta:tb] = d * FAST_PX * k * ev_rng.uniform(1.3, 1.8)
    pos = fold(lo + (hi - lo) * tp.uniform(0, 1, 2) + np.cumsum(v, axis=0) - v[0], lo, hi)
    for a, total in events["out_of_view"]:
        exit_path(pos, wh_s.max(0), W, H, scene.uav, a - t0, total, 0.8 * FAST_PX * k)
    if not scene.uav:  # standing on the ground: the size decides the image row
        world_y = scene.ground_y(wh_world[:, 1], spec.target_kind)
        pos[:, 1] = np.minimum((world_y - scene.origin[:, 1]) * scene.scale[:, 1],
                               H - wh_s[:, 1] / 2 - margin)
    world = pos / scene.scale + scene.origin
    obj = scene.project("target", app, sprites, world, wh_world, axis)
    return _Target(obj=obj, app=app, temps=temps, orients=orients, axis=axis, size=size,
                   wh_world=wh_world, world=world, speed=speed)


def _look_alike(scene: _Scene, tgt: _Target, j: int) -> PlannedObject:
    """Same kind and colours as the target, 4-9 K warmer or colder, walking around it."""
    r = rng_for(scene.spec.seed, "similar", j)
    app = recolour_like(tgt.app, r)
    delta = float(r.choice([-1.0, 1.0]) * r.uniform(4.0, 9.0))
    f = r.uniform(0.9, 1.1)
    sprites = _sprites(r, app, {n: t + delta for n, t in tgt.temps.items()}, tgt.orients,
                       tgt.size.max() * f * scene.zmax)
    wh = _wh(tgt.size * f, sprites[0].aspect)
    R = 2.5 * float(tgt.size.mean())
    lo = np.array([-R, -R if scene.uav else -0.15 * R])
    start = np.array([r.choice([-1.0, 1.0]) * R * r.uniform(0.6, 1.0), 0.0])
    rel = walk(r, scene.T, tgt.speed * r.uniform(0.3, 0.8), r.uniform(20, 60), lo, -lo,
               start=start)
    path = tgt.world + rel
    if not scene.uav:
        path[:, 1] = scene.ground_y(wh[:, 1], scene.spec.target_kind)
    return scene.project("similar_distractor", app, sprites, path, wh, tgt.axis)


def _wanderer(scene: _Scene, tgt: _Target, i: int) -> PlannedObject:
    """A random person, vehicle or animal wandering over the whole canvas, sized like the
    real thing next to the target."""
    spec = scene.spec
    r = rng_for(spec.seed, "distractor", i)
    kind = KINDS[int(r.integers(len(KINDS)))]
    app = random_appearance(r, kind, spec.profile)
    temps = random_temps(r, kind, scene.ambient)
    orients, axis = _orientations(app, r)
    size_lo, size_hi = (v * spec.size_scale for v in PROFILE_SIZES[spec.profile])
    px_per_m = float(tgt.size.mean()) / NOMINAL_METRES[spec.target_kind]
    size = float(np.clip(NOMINAL_METRES[kind] * px_per_m * r.uniform(0.85, 1.15),
                         max(MIN_SIZE_PX, 0.6 * size_lo), 1.5 * size_hi))
    sprites = _sprites(r, app, temps, orients, size * scene.zmax)
    wh = _wh(np.float64(size), sprites[0].aspect)
    path = walk(r, scene.T, tgt.speed * r.uniform(0.4, 1.2), r.uniform(15, 60), wh / 2,
                np.array(scene.canvas_wh) - wh / 2, _aniso(app, axis, scene.uav))
    if not scene.uav:
        path[:, 1] = scene.ground_y(wh[1], kind)
    return scene.project("distractor", app, sprites, path, wh, axis)


def _occluder(scene: _Scene, tgt: _Target, j: int, tau: int) -> PlannedObject:
    """An object that hides the target around scene time `tau`, its box covering the
    target's with 30 % to spare. Top-down: a static tree or awning where the target will be.
    Ground level: a passer-by (person, or car for wide targets) crossing just in front of
    the target, closer to the camera."""
    spec = scene.spec
    r = rng_for(spec.seed, "occluder", j)
    if scene.uav:
        kind = str(r.choice(["tree", "tree", "awning"]))
    else:
        kind = "person" if tgt.obj.sprites[0].aspect < 0.8 else "vehicle"
    app = random_appearance(r, kind, spec.profile)
    temps = random_temps(r, kind, scene.ambient)
    tw, th = tgt.wh_world[tau]
    h_est = max(1.3 * th, 1.3 * tw / app.aspect)
    orients = ("right",) if scene.uav else ("right", "left")
    sprites = _sprites(r, app, temps, orients, h_est * max(1.0, app.aspect) * scene.zmax)
    ao = sprites[0].aspect  # the drawn sprite's true aspect decides the box
    h = max(1.3 * th, 1.3 * tw / ao)
    wh = np.array([h * ao, h])
    if scene.uav:
        path = np.broadcast_to(tgt.world[tau], (scene.T, 2))
        return scene.project("occluder", app, sprites, path, wh, 0,
                             "drop" if kind == "tree" else "none")
    crossing = float(np.clip(0.1 * spec.num_frames, 8, 60))  # frames to pass the target
    v = float(r.choice([-1.0, 1.0])) * (wh[0] + tw) / crossing
    x = tgt.world[tau, 0] + v * (np.arange(scene.T) - tau)
    feet = tgt.world[tau, 1] + th / 2 + 0.08 * th  # a little closer than the target
    path = np.stack([x, np.full(scene.T, feet - h / 2)], axis=1)
    return scene.project("occluder", app, sprites, path, wh, 0)


def plan_sequence(spec: SequenceSpec) -> SequencePlan:
    """Plan the camera, every object and the events of `spec` (no pixels)."""
    N, W, H = spec.num_frames, spec.width, spec.height
    off, (dx, dy) = spec.time_offset, spec.registration_offset
    t0, T = min(0, -off), N + abs(off)
    weather = rng_for(spec.seed, "scene")
    ambient, sun = float(weather.uniform(0, 28)), float(weather.uniform(0, 2 * np.pi))
    cam_height = float(weather.uniform(0.6, 1.6))
    (CH, CW), horizon, crops = _plan_camera(rng_for(spec.seed, "camera"), spec, T)
    scene = _Scene(spec=spec, t0=t0, scale=_scales(crops, W, H),
                   origin=crops[:, :2].astype(np.float64), canvas_wh=(CW, CH),
                   horizon=horizon, cam_height=cam_height, ambient=ambient)
    events = schedule_events(rng_for(spec.seed, "events"), spec)

    tgt = _plan_target(scene, events, rng_for(spec.seed, "event_sizes"))
    n_sim = 0
    if spec.has("similar_distractor"):
        n_sim = 2 if spec.num_distractors >= 3 and \
            rng_for(spec.seed, "similar", 99).random() < 0.5 else 1
    similar = [_look_alike(scene, tgt, j) for j in range(n_sim)]
    others = [_wanderer(scene, tgt, i) for i in range(max(0, spec.num_distractors - n_sim))]
    occluders = [_occluder(scene, tgt, j, tc - t0)
                 for j, tc in enumerate(events["occlusion"])]
    objects = tuple(others + similar + [tgt.obj] + occluders)  # drawing order
    cross = ramps([(a - t0, r, b - t0) for a, r, b in events["thermal_crossover"]], T)

    kk = np.arange(N)
    full = tgt.obj.boxes[kk - t0]
    gt_thermal = clip_boxes(tgt.obj.boxes[kk - off - t0] + np.array([dx, dy, 0, 0]), W, H)
    flags = _frame_flags(spec, full, [o.boxes[kk - t0] for o in occluders], cross[kk - t0])
    return SequencePlan(spec=spec, ambient=ambient, sun=sun, canvas_hw=(CH, CW),
                        horizon=horizon, t0=t0, crops=crops, objects=objects,
                        target=len(others) + len(similar), crossover=cross.astype(np.float32),
                        gt_rgb=clip_boxes(full, W, H), gt_thermal=gt_thermal,
                        frame_flags=flags)


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
