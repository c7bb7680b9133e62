"""Procedural background canvases for the synthetic world: one material map, two renderings.

A canvas is drawn once per sequence as a map of material ids (roads, roofs, grass, sky...).
RGB and thermal are two different renderings of that map: RGB from each material's colour and
texture (multi-octave noise, stripes, tiles) under sun shadows and a slow illumination field;
thermal from each material's temperature relative to the ambient temperature plus a smooth
temperature field. Edges that are strong in one modality can be weak in the other (white
paint is bright in RGB, nearly invisible in thermal; metal roofs are bright in RGB and cold in
thermal), which is what a tracker must learn to fuse.

Frames are later cut from the canvas by the camera (see synth_render), so everything here is
done once per sequence and nothing here runs per frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Material:
    """colour: RGB 0-255; tex: noise texture strength; stripes/grid: pattern strengths;
    temp: temperature above ambient in kelvin; temp_tex: thermal texture amplitude (K)."""

    name: str
    colour: tuple[float, float, float]
    tex: float = 0.15
    stripes1: float = 0.0
    stripes2: float = 0.0
    grid: float = 0.0
    hue_var: float = 0.0
    temp: float = 0.0
    temp_tex: float = 0.5


MATERIALS = (
    Material("grass", (72, 112, 46), tex=0.25, hue_var=0.6, temp=-1.0, temp_tex=0.8),
    Material("soil", (128, 104, 76), tex=0.25, hue_var=0.3, temp=2.0, temp_tex=1.0),
    Material("sand", (192, 172, 132), tex=0.12, temp=4.0, temp_tex=0.6),
    Material("asphalt", (72, 72, 76), tex=0.14, temp=8.0, temp_tex=0.6),
    Material("concrete", (152, 150, 142), tex=0.10, grid=0.25, temp=5.0, temp_tex=0.4),
    Material("roof_tiles", (152, 72, 56), tex=0.10, stripes1=0.35, temp=9.0, temp_tex=0.5),
    Material("roof_flat", (118, 118, 124), tex=0.12, temp=11.0, temp_tex=0.8),
    Material("roof_metal", (170, 174, 180), tex=0.05, stripes1=0.2, temp=-5.0, temp_tex=0.3),
    Material("water", (46, 72, 92), tex=0.06, temp=-4.0, temp_tex=0.2),
    Material("canopy", (40, 76, 36), tex=0.40, hue_var=0.4, temp=-2.0, temp_tex=1.0),
    Material("paint", (222, 222, 212), tex=0.05, temp=4.0, temp_tex=0.2),
    Material("field", (112, 132, 62), tex=0.15, stripes2=0.35, hue_var=0.5, temp=1.0),
    Material("gravel", (132, 126, 116), tex=0.35, temp=4.0, temp_tex=1.0),
    Material("sky", (150, 186, 226), tex=0.04, temp=-28.0, temp_tex=1.5),
    Material("cloud", (226, 229, 233), tex=0.06, temp=-14.0, temp_tex=1.5),
    Material("facade", (172, 152, 132), tex=0.10, temp=4.0, temp_tex=0.5),
    Material("brick", (132, 74, 60), tex=0.10, stripes1=0.3, temp=5.0, temp_tex=0.5),
    Material("glass", (62, 76, 92), tex=0.04, temp=-6.0, temp_tex=0.3),
    Material("metal", (100, 100, 106), tex=0.08, temp=1.0, temp_tex=0.3),
    Material("treeline", (58, 84, 54), tex=0.30, hue_var=0.3, temp=-1.0, temp_tex=0.8),
)
MAT = {m.name: i for i, m in enumerate(MATERIALS)}
SHADOW_RGB = 0.55  # RGB factor in full shadow
SHADOW_TEMP = -2.5  # kelvin in full shadow


@dataclass(frozen=True, eq=False)
class Canvas:
    """rgb: (H, W, 3) float32 RGB, about 0-255 in daylight (not clipped); temp: (H, W)
    float32 degrees Celsius; horizon: canvas row of the horizon (robot profile) or None
    (top-down views)."""

    rgb: np.ndarray
    temp: np.ndarray
    horizon: int | None


def fractal_noise(rng: np.random.Generator, h: int, w: int, cells: float = 4.0,
                  octaves: int = 5, persistence: float = 0.55) -> np.ndarray:
    """Multi-octave value noise, (h, w) float32 in [0, 1]; `cells` = features across the
    shorter side at the coarsest octave, doubling each octave."""
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        c = cells * 2 ** o
        gh = max(2, int(round(c * h / min(h, w))) + 2)
        gw = max(2, int(round(c * w / min(h, w))) + 2)
        grid = rng.random((gh, gw), dtype=np.float32)
        out += amp * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= persistence
    out /= total
    lo, hi = float(out.min()), float(out.max())
    return (out - lo) / max(hi - lo, 1e-6)


def _stripes(h: int, w: int, angle: float, period: float) -> np.ndarray:
    """(h, w) float32 in [-0.5, 0.5], sinusoidal stripes across direction `angle` (radians)."""
    k = np.float32(2 * np.pi / period)
    phase = (np.arange(w, dtype=np.float32) * (k * np.float32(np.cos(angle))))[None, :] \
        + (np.arange(h, dtype=np.float32) * (k * np.float32(np.sin(angle))))[:, None]
    return 0.5 * np.sin(phase)


def _grid(h: int, w: int, period: int) -> np.ndarray:
    """(h, w) float32: 1 on tile joints (1-px lines every `period` px), else 0."""
    g = np.zeros((h, w), np.float32)
    g[::period, :] = 1.0
    g[:, ::period] = 1.0
    return g


def _dashed_polyline(img: np.ndarray, pts: np.ndarray, value: int, thickness: int,
                     dash: float, gap: float) -> None:
    """Draw dashes of length `dash` separated by `gap` along the polyline `pts` (N, 2)."""
    seg = np.diff(pts, axis=0)
    lengths = np.hypot(seg[:, 0], seg[:, 1])
    cum = np.concatenate([[0.0], np.cumsum(lengths)])
    s = 0.0
    while s < cum[-1]:
        a, b = s, min(s + dash, cum[-1])
        pa, pb = (np.array([np.interp(t, cum, pts[:, k]) for k in (0, 1)]) for t in (a, b))
        cv2.line(img, tuple(int(v) for v in pa), tuple(int(v) for v in pb), value, thickness)
        s += dash + gap


def _edge_point(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    side = int(rng.integers(4))
    t = rng.uniform(0.1, 0.9)
    return np.array([(t * w, 0), (w, t * h), (t * w, h), (0, t * h)][side], np.float64)


def _rotated_rect(cx: float, cy: float, rw: float, rh: float, angle_deg: float) -> np.ndarray:
    return cv2.boxPoints(((cx, cy), (rw, rh), angle_deg)).astype(np.int32)


def _uav_layout(rng: np.random.Generator, h: int, w: int, s: float, sun: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """Top-down town / countryside: material map (h, w) uint8 and shadow map (h, w) in [0, 1].
    `s` scales world features to pixels (1.0 at a 512-px frame); shadows fall towards the
    direction `sun` (radians, image axes)."""
    base = MAT[rng.choice(["grass", "grass", "soil", "sand"])]
    other = MAT[rng.choice(["soil", "grass", "gravel"])]
    mat = np.full((h, w), base, np.uint8)
    mat[fractal_noise(rng, h, w, cells=3, octaves=3) > rng.uniform(0.6, 0.75)] = other
    shadow = np.zeros((h, w), np.float32)
    sun_dir = np.array([np.cos(sun), np.sin(sun)])
    for _ in range(int(rng.integers(0, 3))):  # fields
        c = rng.uniform([0, 0], [w, h])
        poly = _rotated_rect(*c, *rng.uniform(150 * s, 400 * s, 2), rng.uniform(0, 180))
        cv2.fillPoly(mat, [poly], MAT["field"])
    if rng.random() < 0.3:  # pond
        c = tuple(int(v) for v in rng.uniform([0, 0], [w, h]))
        axes = tuple(int(v) for v in rng.uniform(40 * s, 120 * s, 2))
        cv2.ellipse(mat, c, axes, rng.uniform(0, 180), 0, 360, MAT["water"], -1)
    road_mask = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(1, 4))):  # roads with sidewalks and dashed centre lines
        pts = [_edge_point(rng, h, w)]
        pts += [rng.uniform([0.2 * w, 0.2 * h], [0.8 * w, 0.8 * h])
                for _ in range(int(rng.integers(0, 2)))]
        pts.append(_edge_point(rng, h, w))
        pts = np.array(pts)
        rw = int(rng.uniform(45, 90) * s) + 2
        poly = [pts.astype(np.int32)]
        cv2.polylines(mat, poly, False, MAT["concrete"], rw + int(16 * s) + 2)
        cv2.polylines(mat, poly, False, MAT["asphalt"], rw)
        cv2.polylines(road_mask, poly, False, 1, rw + int(16 * s) + 2)
        _dashed_polyline(mat, pts, MAT["paint"], max(1, int(3 * s)), 18 * s + 4, 14 * s + 4)
    if rng.random() < 0.4:  # parking lot
        c = rng.uniform([0.1 * w, 0.1 * h], [0.9 * w, 0.9 * h])
        lw, lh = rng.uniform(100 * s, 220 * s, 2)
        x0, y0 = int(c[0] - lw / 2), int(c[1] - lh / 2)
        cv2.rectangle(mat, (x0, y0), (int(x0 + lw), int(y0 + lh)), MAT["asphalt"], -1)
        step = max(4, int(22 * s))
        for x in range(x0, int(x0 + lw), step):
            cv2.line(mat, (x, y0), (x, y0 + int(lh * 0.35)), MAT["paint"], max(1, int(2 * s)))
    grid_angle = rng.uniform(0, 90)
    for _ in range(int(rng.integers(3, 12) * (w * h) / (1024 * 820))):  # buildings
        for _try in range(6):
            c = rng.uniform([0, 0], [w, h])
            bw, bh = rng.uniform(60 * s, 200 * s, 2)
            poly = _rotated_rect(*c, bw, bh, grid_angle + rng.choice([0, 90]) + rng.normal(0, 3))
            x0, y0 = np.maximum(poly.min(0), 0)
            x1, y1 = np.minimum(poly.max(0) + 1, [w, h])
            if x1 <= x0 or y1 <= y0:
                continue
            test = np.zeros((y1 - y0, x1 - x0), np.uint8)
            cv2.fillPoly(test, [poly - [x0, y0]], 1)
            if np.count_nonzero(test & road_mask[y0:y1, x0:x1]) < 0.03 * np.count_nonzero(test):
                break
        else:
            continue
        height = rng.uniform(10, 45) * s
        cv2.fillPoly(shadow, [(poly + sun_dir * height).astype(np.int32)], 1.0)
        roof = MAT[rng.choice(["roof_tiles", "roof_flat", "roof_metal", "concrete"])]
        cv2.fillPoly(mat, [poly], roof)
        cv2.fillPoly(shadow, [poly], 0.0)
        cv2.polylines(mat, [poly], True, MAT["metal"], max(1, int(2 * s)))
        if rng.random() < 0.5:  # a roof unit
            cv2.fillPoly(mat, [_rotated_rect(*c, 12 * s + 2, 9 * s + 2, grid_angle)],
                         MAT["roof_metal"])
    for _ in range(int(rng.integers(4, 14) * (w * h) / (1024 * 820))):  # tree clusters
        c = rng.uniform([0, 0], [w, h])
        for _k in range(int(rng.integers(1, 6))):
            p = c + rng.normal(0, 18 * s, 2)
            r = int(rng.uniform(9, 28) * s) + 2
            q = p + sun_dir * r * 0.8
            cv2.circle(shadow, (int(q[0]), int(q[1])), r, 1.0, -1)
            cv2.circle(mat, (int(p[0]), int(p[1])), r, MAT["canopy"], -1)
    return mat, cv2.GaussianBlur(shadow, (0, 0), 1.5 + 2 * s)


def _robot_layout(rng: np.random.Generator, h: int, w: int, s: float, horizon: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Ground-level street / park view with the horizon at row `horizon`: material map and
    shadow map."""
    mat = np.full((h, w), MAT["sky"], np.uint8)
    clouds = fractal_noise(rng, horizon, w, cells=3, octaves=4)
    mat[:horizon][clouds > rng.uniform(0.55, 0.8)] = MAT["cloud"]
    ridge = fractal_noise(rng, 1, w, cells=6, octaves=3)[0]
    ridge_top = (horizon - (0.04 + 0.1 * ridge) * h).astype(np.int32)
    cols = np.arange(w)
    pts = np.concatenate([np.stack([cols, ridge_top], 1), [[w - 1, horizon], [0, horizon]]])
    cv2.fillPoly(mat, [pts.astype(np.int32)], MAT["treeline"])
    x = int(rng.uniform(-50, 50) * s)
    while x < w:  # skyline: buildings with window grids, gaps with trees
        bw = int(rng.uniform(80, 260) * s) + 8
        if rng.random() < 0.7:
            bh = int(rng.uniform(0.08, 0.3) * h)
            facade = MAT[rng.choice(["facade", "brick", "concrete"])]
            cv2.rectangle(mat, (x, horizon - bh), (x + bw, horizon), facade, -1)
            win, gap = int(rng.uniform(8, 16) * s) + 2, int(rng.uniform(6, 14) * s) + 2
            for wy in range(horizon - bh + gap, horizon - win - gap, win + gap):
                for wx in range(x + gap, x + bw - win - gap, win + gap):
                    cv2.rectangle(mat, (wx, wy), (wx + win, wy + int(win * 1.3)),
                                  MAT["glass"], -1)
        else:
            for _k in range(int(rng.integers(1, 4))):
                r = int(rng.uniform(20, 60) * s) + 3
                cv2.circle(mat, (x + int(rng.uniform(0, bw)), horizon - r), r,
                           MAT["canopy"], -1)
        x += bw + int(rng.uniform(0, 60) * s)
    y, band_h = horizon, rng.uniform(8, 16) * s + 2
    while y < h:  # ground bands, taller towards the camera (a cheap perspective cue)
        kind = rng.choice(["concrete", "asphalt", "grass", "gravel", "soil"],
                          p=[0.3, 0.3, 0.2, 0.1, 0.1])
        y2 = int(y + band_h)
        cv2.rectangle(mat, (0, y), (w, y2), MAT[kind], -1)
        if kind == "asphalt" and y2 - y > 12:
            mid = np.array([[0, (y + y2) // 2], [w, (y + y2) // 2]], np.float64)
            _dashed_polyline(mat, mid, MAT["paint"], max(1, (y2 - y) // 14),
                             40 * s + 6, 30 * s + 6)
        y, band_h = y2, band_h * rng.uniform(1.4, 2.0)
    shadow = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(1, 6) * w / 1024)):  # poles with their shadows
        px = int(rng.uniform(0, w))
        base = int(rng.uniform(horizon + 4, h * 0.9))
        ph, pw = int(rng.uniform(0.2, 0.5) * h), max(2, int(rng.uniform(4, 9) * s))
        cv2.rectangle(mat, (px, base - ph), (px + pw, base), MAT["metal"], -1)
        cv2.line(shadow, (px, base), (px + int(ph * 0.4), base + int(ph * 0.08)), 1.0,
                 pw)
    return mat, cv2.GaussianBlur(shadow, (0, 0), 2.0)


def _material_tables(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-material lookup tables; colours jittered per sequence (+-12% per channel)."""
    col = np.array([m.colour for m in MATERIALS], np.float32)
    col *= rng.uniform(0.88, 1.12, col.shape).astype(np.float32)
    tables = {"colour": col}
    for name in ("tex", "stripes1", "stripes2", "grid", "hue_var", "temp", "temp_tex"):
        tables[name] = np.array([getattr(m, name) for m in MATERIALS], np.float32)
    return tables


def build_canvas(rng: np.random.Generator, profile: str, h: int, w: int, s: float,
                 ambient: float, horizon: int | None = None, sun: float = 0.0) -> Canvas:
    """The sequence's background: (h, w) canvas for `profile` ("uav": top-down, shadows
    towards `sun` radians; "robot": ground view with the horizon at canvas row `horizon`),
    features scaled by `s`, temperatures around `ambient` degrees Celsius."""
    if profile == "uav":
        mat, shadow = _uav_layout(rng, h, w, s, sun)
        horizon = None
    else:
        if horizon is None or not 0 < horizon < h:
            raise ValueError(f"robot canvas needs a horizon row in 1..{h - 1}, got {horizon}")
        mat, shadow = _robot_layout(rng, h, w, s, horizon)
    t = _material_tables(rng)
    fine = fractal_noise(rng, h, w, cells=max(8.0, 60 * s), octaves=3, persistence=0.6)
    coarse = fractal_noise(rng, h, w, cells=6, octaves=4)
    light = fractal_noise(rng, h, w, cells=2, octaves=2)
    tfield = fractal_noise(rng, h, w, cells=3, octaves=3)
    s1 = _stripes(h, w, rng.uniform(0, np.pi), rng.uniform(4, 8) * max(s, 0.5))
    s2 = _stripes(h, w, rng.uniform(0, np.pi), rng.uniform(7, 14) * max(s, 0.5))
    grid = _grid(h, w, max(4, int(rng.uniform(10, 18) * s)))

    # shade = 1 + texture + patterns, times slow illumination and sun shadows (in place:
    # these are megapixel float32 arrays).
    fine -= 0.5
    shade = t["tex"][mat] * 2
    shade *= fine
    shade += 1.0
    shade += t["stripes1"][mat] * s1
    shade += t["stripes2"][mat] * s2
    shade -= t["grid"][mat] * grid
    shade *= light * 0.3 + 0.85
    shade *= 1.0 - (1.0 - SHADOW_RGB) * shadow
    rgb = t["colour"][mat]
    rgb *= shade[:, :, None]
    coarse -= 0.5
    coarse *= t["hue_var"][mat]
    rgb += coarse[:, :, None] * np.array([28, 14, -18], np.float32)  # towards dry / yellow
    if horizon is not None:  # sky: paler towards the horizon
        ramp = np.linspace(-25, 25, horizon, dtype=np.float32)[:, None, None]
        rgb[:horizon] += ramp * (mat[:horizon] == MAT["sky"])[:, :, None]
    rgb = cv2.GaussianBlur(rgb, (3, 3), 0.6)

    temp = t["temp_tex"][mat] * 2
    temp *= fine
    temp += t["temp"][mat]
    temp += (tfield - 0.5) * 3.0 + SHADOW_TEMP * shadow + np.float32(ambient)
    temp = cv2.GaussianBlur(temp, (5, 5), 1.2)
    return Canvas(rgb=rgb, temp=temp, horizon=horizon)
