"""Pixels of a planned synthetic sequence: RGB and thermal frames, one at a time.

Per sequence (once): the background canvas in both modalities, lighting applied to the
canvas and to every sprite (night = low_illumination), sensor-noise banks, the thermal
camera's fixed-pattern noise and its 8-bit display range. Per frame (cheap): cut the camera
window out of the canvas (a slice, or a resize when the camera zooms), paste shadows and
sprites in drawing order, then sensor effects. Thermal frames are blurred (thermal optics
and detectors are blurrier than RGB), get temporal and column noise, and are written as
8-bit (fixed linear range per sequence, white = hot) or 16-bit radiometric counts
(counts = THERMAL_COUNTS_OFFSET + THERMAL_COUNTS_PER_K * temperature in Celsius).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, NamedTuple

import cv2
import numpy as np

from .synth_plan import SequencePlan, plan_sequence, rng_for
from .synth_spec import SequenceSpec
from .synth_textures import build_canvas

THERMAL_COUNTS_OFFSET = 4000.0
THERMAL_COUNTS_PER_K = 100.0
MIN_TARGET_CONTRAST_K = 4.0  # outside crossover the target differs this much from its background
# Motion blur: an object moving at least MOTION_BLUR_MIN_PX a frame is smeared along its
# motion over this fraction of the displacement (thermal detectors lag more than RGB ones).
MOTION_BLUR_MIN_PX = 4.0
EXPOSURE = {"rgb": 0.5, "th": 0.8}
_NOISE_PAD = 64


@dataclass(frozen=True)
class SynthFrame:
    """Frame `index`: rgb (H, W, 3) uint8 RGB order; thermal (H, W) uint8 or uint16;
    gt_rgb, gt_thermal: (4,) int32 xywh (all zeros: target out of view)."""

    index: int
    rgb: np.ndarray
    thermal: np.ndarray
    gt_rgb: np.ndarray
    gt_thermal: np.ndarray


class RenderedSequence(NamedTuple):
    """A whole sequence in memory: lists of N frames, (N, 4) int32 GT, attribute names."""

    rgb: list
    thermal: list
    gt_rgb: np.ndarray
    gt_thermal: np.ndarray
    attributes: tuple


@dataclass(frozen=True)
class _Lighting:
    gain: np.ndarray  # (3,) per-channel RGB gain
    bias: float
    noise_sigma: float  # RGB sensor noise, 0-255 units
    chroma_sigma: float
    shadow: float  # darkening in full object shadow


def _lighting(rng: np.random.Generator, night: bool) -> _Lighting:
    """Daylight (gain ~1, white balance jitter) or night (dark, blue, noisy). Both are always
    drawn so that switching low_illumination changes nothing else."""
    day = rng.uniform(0.85, 1.15) * rng.uniform(0.95, 1.05, 3)
    dark = rng.uniform(0.10, 0.22) * np.array([0.85, 0.95, 1.15]) * rng.uniform(0.95, 1.05, 3)
    day_sigma, night_sigma = rng.uniform(1.2, 2.5), rng.uniform(6.0, 10.0)
    if night:
        return _Lighting(dark.astype(np.float32), 3.0, night_sigma, 3.0, 0.12)
    return _Lighting(day.astype(np.float32), 0.0, day_sigma, 0.6, 0.4)


def _lamps(rng: np.random.Generator, rgb: np.ndarray, s: float) -> None:
    """Add a few warm street-lamp glows to a night canvas, in place."""
    h, w = rgb.shape[:2]
    for _ in range(int(rng.integers(2, 7) * w * h / (1024 * 820)) + 1):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        sig = rng.uniform(25, 70) * s + 4
        r = int(3 * sig)
        x0, x1 = max(0, int(cx) - r), min(w, int(cx) + r)
        y0, y1 = max(0, int(cy) - r), min(h, int(cy) + r)
        if x1 <= x0 or y1 <= y0:
            continue
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        g = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sig * sig))
        rgb[y0:y1, x0:x1] += g[:, :, None] * np.array([110, 85, 45], np.float32) \
            * rng.uniform(0.5, 1.0)


class SequenceRenderer:
    """Renders frames of one planned sequence; `frame(k)` in any order, deterministic."""

    def __init__(self, plan: SequencePlan):
        self.plan = plan
        spec = plan.spec
        W, H, seed = spec.width, spec.height, spec.seed
        night = spec.has("low_illumination")
        CH, CW = plan.canvas_hw
        canvas = build_canvas(rng_for(seed, "canvas"), spec.profile, CH, CW, spec.size_scale,
                              plan.ambient, plan.horizon, plan.sun)
        lrng = rng_for(seed, "lighting")
        light = _lighting(lrng, night)
        rgb = canvas.rgb
        rgb *= light.gain
        rgb += light.bias
        if night:
            _lamps(lrng, rgb, spec.size_scale)
        self.light = light
        # convertScaleAbs rounds and saturates at 255; negatives were clamped to 0 first.
        self.canvas_rgb = cv2.convertScaleAbs(np.maximum(rgb, 0, out=rgb))
        self.canvas_temp = canvas.temp
        self.sprites_rgb = [tuple(tuple(self._lit(lv) for lv in s.levels) for s in o.sprites)
                            for o in plan.objects]

        nrng = rng_for(seed, "noise")
        P = _NOISE_PAD
        z = nrng.standard_normal((H + P, W + P), dtype=np.float32)
        zc = nrng.standard_normal((H + P, W + P, 3), dtype=np.float32)
        noise = z[:, :, None] * light.noise_sigma + zc * light.chroma_sigma
        self.noise_pos = np.clip(noise, 0, 255).astype(np.uint8)
        self.noise_neg = np.clip(-noise, 0, 255).astype(np.uint8)
        netd = nrng.uniform(0.06, 0.15)
        self.thermal_noise = nrng.standard_normal((H + P, W + P), dtype=np.float32) * netd
        cols = nrng.standard_normal(W).astype(np.float32) * netd * 1.2
        yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
        r2 = ((xx - W / 2) ** 2 + (yy - H / 2) ** 2) / ((W / 2) ** 2 + (H / 2) ** 2)
        self.thermal_fixed = (cols[None, :] - nrng.uniform(0.3, 1.0) * r2).astype(np.float32)
        self.offsets = nrng.integers(0, P, (spec.num_frames, 4))
        self.blur_sigma = float(nrng.uniform(0.8, 1.3)) * max(spec.size_scale, 0.5)
        self.blur_size = 2 * int(np.ceil(2.5 * self.blur_sigma)) + 1  # +-2.5 sigma is plenty

        sample = canvas.temp[::8, ::8]
        lo, hi = np.percentile(sample, [1, 99])
        # The display range keeps the target and its look-alikes apart (not saturated).
        temps = [o.sprites[0].base_temp for o in plan.objects
                 if o.role in ("target", "similar_distractor")] or [float(np.median(sample))]
        self.t_lo = float(min(lo - 2.0, min(temps) - 8.0))
        self.t_hi = float(max(hi + 3.0, max(temps) + 4.0))
        self._cache: dict = {}
        self._blur = {m: [_blur_plan(o.boxes, EXPOSURE[m]) for o in plan.objects]
                      for m in EXPOSURE}

    def _lit(self, level: np.ndarray) -> np.ndarray:
        """Apply the sequence's lighting to a premultiplied sprite level."""
        out = level.copy()
        alpha = level[:, :, 3:4]
        out[:, :, :3] = np.minimum(level[:, :, :3] * self.light.gain + self.light.bias * alpha,
                                   255.0 * alpha)  # premultiplied colour never exceeds alpha
        return out

    def _layer(self, modality: str, i: int, v: int, tau: int, levels, w: int, h: int
               ) -> tuple[np.ndarray, ...]:
        """Object i's sprite (variant v) resized to (w, h), motion-blurred when it moves
        fast, split for compositing and cached: RGB (1 - alpha as (h, w, 3), premultiplied
        colour (h, w, 3)); thermal (1 - alpha, alpha, alpha * (T - base)), each (h, w); all
        float32."""
        lengths, angles = self._blur[modality][i]
        blur = (int(lengths[tau]), int(angles[tau]))
        key = (modality, i)
        hit = self._cache.get(key)
        if hit is not None and hit[0] == (v, w, h, blur):
            return hit[1]
        lv = levels[self.plan.objects[i].sprites[v].level_for(w, h)]
        if lv.shape[:2] != (h, w):
            lv = cv2.resize(lv, (w, h), interpolation=cv2.INTER_LINEAR)
        if blur[0]:
            lv = cv2.filter2D(lv, -1, _line_kernel(*blur), borderType=cv2.BORDER_CONSTANT)
        if lv.shape[2] == 4:
            parts = (np.ascontiguousarray(np.repeat(1.0 - lv[:, :, 3:4], 3, axis=2)),
                     np.ascontiguousarray(lv[:, :, :3]))
        else:
            parts = (1.0 - lv[:, :, 0], np.ascontiguousarray(lv[:, :, 0]),
                     np.ascontiguousarray(lv[:, :, 1]))
        self._cache[key] = ((v, w, h, blur), parts)
        return parts

    def _background(self, canvas: np.ndarray, x0: int, y0: int, cw: int, ch: int
                    ) -> np.ndarray:
        """The camera window (x0, y0, cw, ch) of `canvas` at frame size; parts outside the
        canvas are mirrored in (only a large registration offset reaches there)."""
        W, H = self.plan.spec.width, self.plan.spec.height
        CH, CW = canvas.shape[:2]
        if x0 < 0 or y0 < 0 or x0 + cw > CW or y0 + ch > CH:
            inner = canvas[max(y0, 0):min(y0 + ch, CH), max(x0, 0):min(x0 + cw, CW)]
            window = cv2.copyMakeBorder(inner, max(0, -y0), max(0, y0 + ch - CH), max(0, -x0),
                                        max(0, x0 + cw - CW), cv2.BORDER_REFLECT_101)
        else:
            window = canvas[y0:y0 + ch, x0:x0 + cw]
        if (cw, ch) == (W, H):
            return window.copy()
        return cv2.resize(window, (W, H), interpolation=cv2.INTER_LINEAR)

    def rgb(self, k: int) -> np.ndarray:
        """RGB frame k: (H, W, 3) uint8, RGB channel order."""
        self._check(k)
        plan, spec = self.plan, self.plan.spec
        tau = plan.rgb_time(k)
        frame = self._background(self.canvas_rgb, *plan.crops[tau])
        sun = np.array([np.cos(plan.sun), np.sin(plan.sun)])
        for i, obj in enumerate(plan.objects):
            x, y, w, h = (int(v) for v in obj.boxes[tau])
            if x >= spec.width or y >= spec.height or x + w <= 0 or y + h <= 0:
                continue
            if obj.shadow != "none":
                _shadow(frame, x, y, w, h, obj.shadow, sun, self.light.shadow)
            v = int(obj.variant[tau])
            _paste_rgb(frame, self._layer("rgb", i, v, tau, self.sprites_rgb[i][v], w, h), x, y)
        oy, ox = self.offsets[k, 0], self.offsets[k, 1]
        H, W = frame.shape[:2]
        cv2.add(frame, self.noise_pos[oy:oy + H, ox:ox + W], dst=frame)
        cv2.subtract(frame, self.noise_neg[oy:oy + H, ox:ox + W], dst=frame)
        return frame

    def temperature(self, k: int) -> np.ndarray:
        """Thermal frame k as a noiseless, unblurred temperature map (H, W) float32 in C."""
        self._check(k)
        plan, spec = self.plan, self.plan.spec
        W, H = spec.width, spec.height
        dx, dy = spec.registration_offset
        tau = plan.thermal_time(k)
        x0, y0, cw, ch = (int(v) for v in plan.crops[tau])
        sx, sy = W / cw, H / ch
        frame = self._background(self.canvas_temp, x0 - int(round(dx / sx)),
                                 y0 - int(round(dy / sy)), cw, ch)
        for i, obj in enumerate(plan.objects):
            x, y, w, h = (int(v) for v in obj.boxes[tau])
            x, y = x + dx, y + dy
            if x >= W or y >= H or x + w <= 0 or y + h <= 0:
                continue
            v = int(obj.variant[tau])
            sprite = obj.sprites[v]
            base, cross = sprite.base_temp, 0.0
            if i == plan.target:
                cross = float(plan.crossover[tau])
                if cross == 0.0:
                    base = _keep_contrast(frame, base, x, y, w, h)
            _paste_thermal(frame, self._layer("th", i, v, tau, sprite.thermal, w, h), x, y,
                           base, cross)
        return frame

    def thermal(self, k: int) -> np.ndarray:
        """Thermal frame k: (H, W) uint8 (8-bit) or uint16 counts (16-bit)."""
        spec = self.plan.spec
        t = self.temperature(k)
        t = cv2.GaussianBlur(t, (self.blur_size, self.blur_size), self.blur_sigma)
        cv2.add(t, self.thermal_fixed, dst=t)
        oy, ox = self.offsets[k, 2], self.offsets[k, 3]
        noise = self.thermal_noise[oy:oy + spec.height, ox:ox + spec.width]
        if spec.thermal_bits == 16:
            a, b, depth = THERMAL_COUNTS_PER_K, THERMAL_COUNTS_OFFSET, cv2.CV_16U
        else:
            a = 255.0 / (self.t_hi - self.t_lo)
            b, depth = -self.t_lo * a, cv2.CV_8U
        return cv2.addWeighted(t, a, noise, a, b, dtype=depth)

    def _check(self, k: int) -> None:
        if not 0 <= k < self.plan.spec.num_frames:
            raise IndexError(f"frame {k} is outside 0..{self.plan.spec.num_frames - 1} of "
                             f"sequence {self.plan.spec.name}")

    def frame(self, k: int) -> SynthFrame:
        """Frame k of both modalities with its ground truth."""
        return SynthFrame(index=k, rgb=self.rgb(k), thermal=self.thermal(k),
                          gt_rgb=self.plan.gt_rgb[k], gt_thermal=self.plan.gt_thermal[k])


def _blur_plan(boxes: np.ndarray, exposure: float) -> tuple[np.ndarray, np.ndarray]:
    """Motion blur of an object with these (T, 4) boxes, per scene time: kernel length in
    px (0: none) and direction in 15-degree steps."""
    c = boxes[:, :2] + boxes[:, 2:] / 2
    d = np.diff(c, axis=0, prepend=c[:1])
    speed = np.hypot(d[:, 0], d[:, 1])
    length = np.rint(speed * exposure).astype(np.int32)
    length[(speed < MOTION_BLUR_MIN_PX) | (length < 2)] = 0
    angle = np.rint(np.degrees(np.arctan2(d[:, 1], d[:, 0])) / 15).astype(np.int32) % 12
    return length, angle


def _line_kernel(length: int, angle_step: int) -> np.ndarray:
    """Normalised (n, n) line kernel of `length` px at angle_step * 15 degrees."""
    n = length | 1
    k = np.zeros((n, n), np.float32)
    t = np.radians(15 * angle_step)
    r = (length - 1) / 2
    c = n // 2
    p0 = (int(round(c - r * np.cos(t))), int(round(c - r * np.sin(t))))
    p1 = (int(round(c + r * np.cos(t))), int(round(c + r * np.sin(t))))
    cv2.line(k, p0, p1, 1.0, 1, cv2.LINE_AA)
    return k / k.sum()


def _shadow(frame, x, y, w, h, mode, sun, strength) -> None:
    """Darken the frame under an object's shadow: cast along the sun ("drop") or a flat
    ellipse at its feet ("ground")."""
    if mode == "drop":
        d = 0.35 * max(w, h)
        cx, cy, ax, ay = x + w / 2 + sun[0] * d, y + h / 2 + sun[1] * d, w / 2, h / 2
    else:
        cx, cy, ax, ay = x + w / 2, y + h, 0.6 * w, max(1.0, 0.07 * h)
    H, W = frame.shape[:2]
    x0, x1 = max(0, int(cx - ax) - 1), min(W, int(cx + ax) + 2)
    y0, y1 = max(0, int(cy - ay) - 1), min(H, int(cy + ay) + 2)
    if x1 <= x0 or y1 <= y0:
        return
    mask = np.zeros((y1 - y0, x1 - x0, 3), np.uint8)
    cv2.ellipse(mask, (int(round(cx - x0)), int(round(cy - y0))),
                (max(1, int(ax)), max(1, int(ay))), 0, 0, 360,
                (int(255 * strength),) * 3, -1, cv2.LINE_AA)
    roi = frame[y0:y1, x0:x1]
    roi[...] = cv2.subtract(roi, cv2.multiply(roi, mask, scale=1.0 / 255))


def _clip_roi(shape, x: int, y: int, w: int, h: int):
    """(frame slices, layer slices) of a (w, h) layer placed at (x, y); None if outside."""
    H, W = shape[:2]
    fx0, fy0, fx1, fy1 = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
    if fx1 <= fx0 or fy1 <= fy0:
        return None
    return ((slice(fy0, fy1), slice(fx0, fx1)),
            (slice(fy0 - y, fy1 - y), slice(fx0 - x, fx1 - x)))


def _paste_rgb(frame: np.ndarray, layer: tuple[np.ndarray, np.ndarray], x: int, y: int
               ) -> None:
    """Composite a layer (1 - alpha, premultiplied colour), both (h, w, 3) float32, onto a
    uint8 RGB frame at (x, y), in place."""
    inv, colour = layer
    cut = _clip_roi(frame.shape, x, y, inv.shape[1], inv.shape[0])
    if cut is None:
        return
    fs, ls = cut
    roi = frame[fs]
    f = roi.astype(np.float32)
    cv2.multiply(f, inv[ls], dst=f)
    cv2.add(f, colour[ls], dst=f)
    roi[...] = cv2.convertScaleAbs(f)  # rounds and saturates


def _keep_contrast(bg: np.ndarray, base: float, x: int, y: int, w: int, h: int) -> float:
    """The target's temperature moved, if needed, to MIN_TARGET_CONTRAST_K from the typical
    (median) background behind its box, so that only thermal_crossover sequences have
    crossovers."""
    H, W = bg.shape
    step = max(1, min(w, h) // 8)  # a sample is enough for a median
    roi = bg[max(0, y):min(H, y + h):step, max(0, x):min(W, x + w):step]
    if roi.size == 0:
        return base
    d = base - float(np.median(roi))
    if abs(d) >= MIN_TARGET_CONTRAST_K:
        return base
    return base + (MIN_TARGET_CONTRAST_K if d >= 0 else -MIN_TARGET_CONTRAST_K) - d


def _paste_thermal(frame: np.ndarray, layer: tuple[np.ndarray, ...], x: int, y: int,
                   base: float, cross: float = 0.0) -> None:
    """Composite a layer (1 - alpha, alpha, alpha * (T - base)), each (h, w) float32, at
    temperature `base` onto a float32 temperature map, in place. With crossover strength
    `cross` in [0, 1] the object takes the temperature of whatever is behind it, pixel by
    pixel, keeping 15 % of its internal gradient at cross = 1 (it nearly vanishes)."""
    inv, alpha, grad = layer
    cut = _clip_roi(frame.shape, x, y, inv.shape[1], inv.shape[0])
    if cut is None:
        return
    fs, ls = cut
    if cross == 0.0:
        f = cv2.multiply(frame[fs], inv[ls])
        cv2.scaleAdd(alpha[ls], base, f, dst=f)
        cv2.add(f, grad[ls], dst=f)
        frame[fs] = f
    else:
        a = alpha[ls] * (1.0 - cross)
        frame[fs] = frame[fs] * (1.0 - a) + a * base + (1.0 - 0.85 * cross) * grad[ls]


def iter_sequence(spec: SequenceSpec | SequencePlan) -> Iterator[SynthFrame]:
    """Frames 0..N-1 one at a time (memory stays at one frame: suitable for long streams,
    e.g. a 20-minute 30 Hz soak test)."""
    plan = spec if isinstance(spec, SequencePlan) else plan_sequence(spec)
    renderer = SequenceRenderer(plan)
    for k in range(plan.spec.num_frames):
        yield renderer.frame(k)


def render_sequence(spec: SequenceSpec | SequencePlan) -> RenderedSequence:
    """The whole sequence in memory: (rgb frames, thermal frames, gt_rgb (N, 4),
    gt_thermal (N, 4), attributes)."""
    plan = spec if isinstance(spec, SequencePlan) else plan_sequence(spec)
    rgb, thermal = [], []
    for f in iter_sequence(plan):
        rgb.append(f.rgb)
        thermal.append(f.thermal)
    return RenderedSequence(rgb, thermal, plan.gt_rgb.copy(), plan.gt_thermal.copy(),
                            plan.spec.attributes)
