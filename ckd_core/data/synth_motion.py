"""Motion and timing for the synthetic world: smooth random paths, events over time.

Pure functions of a numpy Generator and sizes, vectorised over time so that a 20-minute
stream (36,000 frames) plans in about a second: velocities are Gaussian-smoothed noise,
positions their running sum folded back into bounds (objects bounce off the edges).
Event windows (out of view, occlusion, fast-motion bursts, thermal crossover) are placed in
equal slots of the timeline so they never overlap and frame 0 is always clean.
"""

from __future__ import annotations

import numpy as np

from .synth_spec import SequenceSpec


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


def bounds(lo, hi):
    """Bounds with lo > hi collapsed to their midpoint."""
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    mid = (lo + hi) / 2
    return np.where(lo <= hi, lo, mid), np.where(lo <= hi, hi, mid)


def walk(rng, n, speed, corr, lo, hi, aniso=(1.0, 1.0), start=None) -> np.ndarray:
    """(n, 2) path in the box [lo, hi] from `start` (default: uniform in the box): smooth
    random velocity of RMS `speed` px/frame, scaled per axis by `aniso`."""
    lo, hi = bounds(lo, hi)
    draw = rng.uniform(0, 1, 2)
    start = lo + (hi - lo) * draw if start is None else np.clip(start, lo, hi)
    v = smooth_noise(rng, n, 2, corr) * speed * np.asarray(aniso)
    return fold(start + np.cumsum(v, axis=0) - v[0], lo, hi)


def facing(vel: np.ndarray, threshold: float) -> np.ndarray:
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


def _slots(start: int, end: int, n: int, rng) -> list[tuple[int, int]]:
    """n consecutive equal slots covering [start, end), in random order."""
    edges = np.linspace(start, end, n + 1).astype(int)
    order = rng.permutation(n)
    return [(int(edges[i]), int(edges[i + 1])) for i in order]


def schedule_events(rng, spec: SequenceSpec) -> dict[str, list]:
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


def _ease(n: int) -> np.ndarray:
    """(n, 1) fractions 0 -> 1 of a smooth (cosine) move over n frames, last one 1."""
    return ((1 - np.cos(np.pi * np.arange(1, n + 1) / n)) / 2)[:, None]


def exit_path(pos, wh_max, W, H, uav, a, total, vmax) -> None:
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
    pos[a + 1:a + 1 + m1] = p + (out - p) * _ease(m1)
    pos[a + 1 + m1:a + 1 + m1 + hold] = out
    n3 = b - (a + m1 + hold)
    if n3 > 0:
        pos[a + m1 + hold + 1:b + 1] = out + (q - out) * _ease(n3)


def ramps(windows, N: int) -> np.ndarray:
    """(N,) crossover strength from (start, ramp, end) windows."""
    c = np.zeros(N)
    t = np.arange(N)
    for a, r, b in windows:
        up = np.clip((t - a) / r, 0, 1)
        down = np.clip((b - t) / r, 0, 1)
        c = np.maximum(c, np.minimum(up, down))
    return c
