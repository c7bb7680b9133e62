"""Object sprites for the synthetic world: people, vehicles, animals, trees and awnings.

Each object is drawn once per sequence as a map of parts (shirt, head, wheels, windows...);
its RGB look comes from part colours with texture, shading and dark outlines, its thermal
look from part temperatures (head warmer than clothes, engine hot, windows cold), so every
object carries an internal temperature gradient. Sprites are stored premultiplied by alpha
as a small pyramid so that per-frame resizing is a cheap bilinear resize of the nearest
larger level.

Two objects with the same `Appearance` look alike in RGB; their `temps` decide whether
thermal tells them apart (the similar-distractor attribute).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from .synth_textures import fractal_noise

SHIRTS = ((200, 40, 40), (40, 70, 170), (230, 230, 225), (30, 30, 32), (60, 130, 70),
          (230, 190, 40), (120, 120, 125), (200, 110, 40), (120, 60, 140), (90, 150, 200))
TROUSERS = ((40, 55, 95), (30, 30, 34), (160, 140, 105), (95, 95, 100), (70, 60, 50))
SKINS = ((235, 200, 170), (200, 150, 115), (150, 100, 70), (95, 65, 45))
HAIRS = ((25, 20, 18), (90, 60, 35), (200, 170, 110), (150, 150, 150))
CAR_PAINTS = ((220, 220, 222), (25, 25, 28), (160, 162, 168), (170, 30, 30), (30, 60, 140),
              (60, 90, 60), (200, 170, 60), (90, 40, 30))
COATS = ((120, 80, 45), (40, 32, 28), (220, 210, 195), (150, 140, 130), (190, 140, 80))


@dataclass(frozen=True)
class Appearance:
    """RGB look: part name -> colour (RGB 0-255), plus the drawing's shape parameters."""

    kind: str
    view: str  # "side" (seen from the side, upright) | "top" (seen from above)
    aspect: float  # width / height of the object's box
    colours: tuple[tuple[str, tuple[float, float, float]], ...]


@dataclass(frozen=True, eq=False)
class Sprite:
    """levels[i]: (h_i, w_i, 4) float32 = RGB * alpha (0-255) and alpha; thermal[i]:
    (h_i, w_i, 2) float32 = alpha and alpha * (temperature - base_temp) in kelvin. Level 0 is
    the largest; each next level is half the size. base_temp: mean object temperature (C)."""

    levels: tuple[np.ndarray, ...]
    thermal: tuple[np.ndarray, ...]
    base_temp: float

    @property
    def aspect(self) -> float:
        h, w = self.levels[0].shape[:2]
        return w / h

    def level_for(self, w: int, h: int) -> int:
        """Index of the smallest level still at least (w, h) pixels."""
        i = 0
        while i + 1 < len(self.levels) and self.levels[i + 1].shape[1] >= w \
                and self.levels[i + 1].shape[0] >= h:
            i += 1
        return i


def _pick(rng: np.random.Generator, table) -> tuple[float, float, float]:
    c = np.array(table[int(rng.integers(len(table)))], np.float64)
    return tuple(np.clip(c * rng.uniform(0.85, 1.15, 3), 0, 255))


def random_appearance(rng: np.random.Generator, kind: str, profile: str) -> Appearance:
    """A random look for a `kind` object in a `profile` ("uav" / "robot") view."""
    if kind == "person":
        colours = {"shirt": _pick(rng, SHIRTS), "trousers": _pick(rng, TROUSERS),
                   "skin": _pick(rng, SKINS), "hair": _pick(rng, HAIRS),
                   "shoes": _pick(rng, ((30, 28, 26), (200, 200, 200), (90, 60, 40)))}
        # From a drone a person is seen obliquely: shorter and wider than from the ground.
        view, aspect = "side", rng.uniform(0.36, 0.44) if profile == "robot" else \
            rng.uniform(0.55, 0.75)
    elif kind == "vehicle":
        colours = {"body": _pick(rng, CAR_PAINTS), "glass": (45, 55, 68), "tyre": (22, 22, 24),
                   "hub": (150, 150, 155), "light_front": (240, 235, 200),
                   "light_rear": (200, 30, 30)}
        colours["hood"] = colours["body"]
        view, aspect = ("top", rng.uniform(1.9, 2.3)) if profile == "uav" else \
            ("side", rng.uniform(2.0, 2.5))
    elif kind == "animal":
        coat = _pick(rng, COATS)
        colours = {"coat": coat, "coat2": _pick(rng, COATS), "head": coat,
                   "legs": tuple(0.8 * np.array(coat)), "nose": (30, 25, 25)}
        view, aspect = ("top", rng.uniform(1.8, 2.3)) if profile == "uav" else \
            ("side", rng.uniform(1.3, 1.7))
    elif kind in ("tree", "awning"):  # static occluders
        colours = {"tree": {"leaves": (44, 82, 38), "leaves2": (30, 60, 28),
                            "trunk": (80, 60, 45)},
                   "awning": {"cloth": _pick(rng, SHIRTS), "frame": (90, 90, 95)}}[kind]
        colours = {k: _pick(rng, (v,)) for k, v in colours.items()}
        view = "top" if profile == "uav" else "side"
        aspect = {"tree": rng.uniform(0.8, 1.25), "awning": rng.uniform(1.2, 2.0)}[kind]
    else:
        raise ValueError(f"unknown object kind {kind!r}")
    return Appearance(kind=kind, view=view, aspect=float(aspect),
                      colours=tuple(sorted(colours.items())))


def random_temps(rng: np.random.Generator, kind: str, ambient: float
                 ) -> dict[str, float]:
    """Part temperatures (C) of a living / running object at `ambient` C."""
    if kind == "person":
        cloth = ambient + (33.0 - ambient) * rng.uniform(0.55, 0.8)
        return {"shirt": cloth, "trousers": cloth - rng.uniform(0.5, 2.5),
                "skin": rng.uniform(32.5, 35.0), "hair": ambient + (33 - ambient) * 0.5,
                "shoes": ambient + 2.0}
    if kind == "vehicle":
        body = ambient + rng.uniform(1.0, 4.0)
        return {"body": body, "glass": ambient - rng.uniform(3, 7), "tyre": ambient + 10.0,
                "hub": ambient + 6.0, "light_front": ambient + 8.0,
                "light_rear": ambient + 6.0, "hood": ambient + rng.uniform(18, 35)}
    if kind == "animal":
        coat = ambient + (36.0 - ambient) * rng.uniform(0.55, 0.75)
        return {"coat": coat, "coat2": coat - 0.5, "head": coat + rng.uniform(1, 3),
                "legs": coat - 2.0, "nose": coat + 1.0}
    passive = {"tree": {"leaves": -2.0, "leaves2": -2.5, "trunk": 0.0},
               "awning": {"cloth": 6.0, "frame": 2.0}}[kind]
    return {k: ambient + v + rng.normal(0, 0.5) for k, v in passive.items()}


def _draw_parts(app: Appearance, w: int, h: int) -> tuple[np.ndarray, list[str]]:
    """Label map (h, w) uint8 of the object's parts (0 = outside) and the part names,
    drawn facing right (+x)."""
    names = [n for n, _ in app.colours]
    lab = np.zeros((h, w), np.uint8)
    L = {n: i + 1 for i, n in enumerate(names)}

    def P(u, v):  # unit coordinates -> pixel point
        return int(round(u * (w - 1))), int(round(v * (h - 1)))

    def ell(part, cu, cv, ru, rv, angle=0.0):
        cv2.ellipse(lab, P(cu, cv), (max(1, int(ru * w)), max(1, int(rv * h))), angle, 0, 360,
                    L[part], -1)

    def rect(part, u0, v0, u1, v1):
        cv2.rectangle(lab, P(u0, v0), P(u1, v1), L[part], -1)

    def rrect(part, u0, v0, u1, v1, r):
        x0, y0 = P(u0, v0)
        x1, y1 = P(u1, v1)
        rr = max(1, int(r * min(x1 - x0, y1 - y0)))
        cv2.rectangle(lab, (x0 + rr, y0), (x1 - rr, y1), L[part], -1)
        cv2.rectangle(lab, (x0, y0 + rr), (x1, y1 - rr), L[part], -1)
        for cx, cy in ((x0 + rr, y0 + rr), (x1 - rr, y0 + rr), (x0 + rr, y1 - rr),
                       (x1 - rr, y1 - rr)):
            cv2.circle(lab, (cx, cy), rr, L[part], -1)

    k, view = app.kind, app.view
    if k == "person":
        rrect("trousers", 0.32, 0.50, 0.49, 0.96, 0.4)
        rrect("trousers", 0.51, 0.50, 0.68, 0.96, 0.4)
        rect("shoes", 0.30, 0.93, 0.50, 1.0)
        rect("shoes", 0.50, 0.93, 0.72, 1.0)
        rrect("shirt", 0.20, 0.17, 0.80, 0.56, 0.35)  # torso
        rrect("shirt", 0.04, 0.19, 0.20, 0.50, 0.45)  # arms
        rrect("shirt", 0.80, 0.19, 0.96, 0.50, 0.45)
        ell("skin", 0.12, 0.52, 0.07, 0.03)  # hands
        ell("skin", 0.88, 0.52, 0.07, 0.03)
        ell("skin", 0.5, 0.09, 0.20, 0.085)
        ell("hair", 0.5, 0.055, 0.21, 0.05)
    elif k == "vehicle" and view == "side":
        rrect("body", 0.0, 0.40, 1.0, 0.85, 0.3)
        rrect("hood", 0.70, 0.42, 1.0, 0.80, 0.3)
        pts = np.array([P(0.18, 0.42), P(0.30, 0.04), P(0.66, 0.04), P(0.78, 0.42)])
        cv2.fillPoly(lab, [pts], L["body"])
        pts = np.array([P(0.24, 0.40), P(0.33, 0.11), P(0.63, 0.11), P(0.72, 0.40)])
        cv2.fillPoly(lab, [pts], L["glass"])
        rect("body", 0.47, 0.10, 0.50, 0.42)
        for u in (0.2, 0.8):
            ell("tyre", u, 0.82, 0.09, 0.18)
            ell("hub", u, 0.82, 0.04, 0.08)
        rect("light_front", 0.96, 0.48, 1.0, 0.58)
        rect("light_rear", 0.0, 0.48, 0.03, 0.58)
    elif k == "vehicle":  # top view, front to the right
        rrect("body", 0.0, 0.0, 1.0, 1.0, 0.3)
        rrect("hood", 0.72, 0.06, 1.0, 0.94, 0.3)
        rect("glass", 0.56, 0.12, 0.70, 0.88)
        rect("glass", 0.14, 0.16, 0.24, 0.84)
        rect("light_front", 0.96, 0.08, 1.0, 0.25)
        rect("light_front", 0.96, 0.75, 1.0, 0.92)
        rect("light_rear", 0.0, 0.08, 0.03, 0.25)
        rect("light_rear", 0.0, 0.75, 0.03, 0.92)
    elif k == "animal" and view == "side":
        for u in (0.22, 0.32, 0.62, 0.72):
            rect("legs", u, 0.55, u + 0.06, 1.0)
        ell("coat", 0.47, 0.45, 0.34, 0.22)
        ell("coat2", 0.42, 0.52, 0.15, 0.10)
        cv2.line(lab, P(0.14, 0.38), P(0.02, 0.62), L["coat"], max(1, w // 30))
        ell("head", 0.86, 0.24, 0.12, 0.16, -20)
        ell("nose", 0.97, 0.30, 0.03, 0.05)
    elif k == "animal":  # top view
        ell("coat", 0.45, 0.5, 0.34, 0.42)
        ell("coat2", 0.40, 0.5, 0.14, 0.22)
        ell("head", 0.86, 0.5, 0.13, 0.25)
        cv2.line(lab, P(0.12, 0.5), P(0.0, 0.5), L["coat"], max(1, h // 8))
    elif k == "tree":
        if view == "side":
            rect("trunk", 0.44, 0.6, 0.56, 1.0)
        for cu, cv, r in ((0.5, 0.35, 0.34), (0.3, 0.45, 0.22), (0.7, 0.45, 0.22),
                          (0.5, 0.55, 0.25)):
            ell("leaves", cu, cv * (0.75 if view == "side" else 1.0) + 0.05, r, r * 1.1)
        ell("leaves2", 0.6, 0.5, 0.15, 0.15)
    elif k == "awning":
        rect("cloth", 0.0, 0.0, 1.0, 1.0)
        cv2.rectangle(lab, P(0, 0), P(1, 1), L["frame"], max(1, w // 25))
    return lab, names


ORIENTATIONS = ("right", "left", "down", "up")


def make_sprite(rng: np.random.Generator, app: Appearance, temps: dict[str, float],
                height_px: int, orientation: str = "right") -> Sprite:
    """Draw `app` with `temps` so that level 0 is about `height_px` tall (before rotation),
    its front towards `orientation` (one of ORIENTATIONS; "down"/"up" turn it by 90 degrees,
    for top views of objects moving along y)."""
    if orientation not in ORIENTATIONS:
        raise ValueError(f"orientation {orientation!r} is invalid; expected one of "
                         f"{', '.join(ORIENTATIONS)}")
    H = max(16, int(height_px)) * 2  # drawn at 2x, then area-downscaled: soft edges
    W = max(8, int(round(H * app.aspect)))
    lab, names = _draw_parts(app, W, H)
    colours = dict(app.colours)
    col = np.array([[0, 0, 0]] + [colours[n] for n in names], np.float32)
    tmp = np.array([0.0] + [temps[n] for n in names], np.float32)
    noise = fractal_noise(rng, H, W, cells=6, octaves=3)
    u = np.linspace(-1, 1, W, dtype=np.float32)[None, :]
    v = np.linspace(0, 1, H, dtype=np.float32)[:, None]
    if app.view == "side":  # rounded body lit from above
        shade = (1.0 - 0.28 * u ** 2) * (1.12 - 0.25 * v)
    else:
        shade = 1.05 - 0.25 * (u ** 2 + (2 * v - 1) ** 2) / 2
    shade = shade * (0.88 + 0.24 * noise)
    edges = cv2.morphologyEx(lab, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    shade = np.where(edges, shade * 0.7, shade)
    rgb = np.minimum(col[lab] * shade[:, :, None], 255.0)
    alpha = (lab > 0).astype(np.float32)
    temp = tmp[lab] + 0.8 * (noise - 0.5)
    base = float(temp[lab > 0].mean())
    top = np.dstack([rgb * alpha[:, :, None], alpha])
    th = np.dstack([alpha, alpha * (temp - base)])
    if orientation == "left":
        top, th = top[:, ::-1], th[:, ::-1]
    elif orientation == "up":  # rot90 turns counter-clockwise: the right edge goes up
        top, th = np.rot90(top), np.rot90(th)
    elif orientation == "down":
        top, th = np.rot90(top, -1), np.rot90(th, -1)
    size = (top.shape[1] // 2, top.shape[0] // 2)
    top = cv2.resize(np.ascontiguousarray(top), size, interpolation=cv2.INTER_AREA)
    th = cv2.resize(np.ascontiguousarray(th), size, interpolation=cv2.INTER_AREA)
    ys, xs = np.nonzero(top[:, :, 3] > 0.05)  # tight box: the GT box is the sprite's box
    top = top[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    th = th[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    levels, thermal = [top], [th]
    while min(levels[-1].shape[:2]) >= 8:
        s = (levels[-1].shape[1] // 2, levels[-1].shape[0] // 2)
        levels.append(cv2.resize(levels[-1], s, interpolation=cv2.INTER_AREA))
        thermal.append(cv2.resize(thermal[-1], s, interpolation=cv2.INTER_AREA))
    return Sprite(levels=tuple(np.ascontiguousarray(x) for x in levels),
                  thermal=tuple(np.ascontiguousarray(x) for x in thermal), base_temp=base)


def recolour_like(app: Appearance, rng: np.random.Generator) -> Appearance:
    """A look-alike: same kind, view and colours (+-4%), slightly different proportions."""
    colours = tuple((n, tuple(float(np.clip(c * rng.uniform(0.96, 1.04), 0, 255)) for c in col))
                    for n, col in app.colours)
    return replace(app, colours=colours, aspect=float(app.aspect * rng.uniform(0.95, 1.05)))
