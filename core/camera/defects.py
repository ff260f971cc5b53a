"""Surface defects drawn on a rendered part: the layers that make a part ``scratch``, ``spot``, ``crack``...

Each defect class has a signature a model can learn, with random size, position, contrast and orientation:
``scratch`` thin smooth line (bright or dark), ``spot`` soft coloured stain, ``crack`` dark jagged branching
line, ``dent`` round depression lit from one side (bright/dark lobes), ``chip`` piece missing from the rim.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from core.camera.frame import Box

DEFECT_CLASSES: tuple[str, ...] = ("ok", "scratch", "spot", "crack", "dent", "chip")
"""Class names; ``"ok"`` is a part without defect."""


def _curve(x0: float, y0: float, length: float, angle: float, bend: float) -> np.ndarray:
    t = np.linspace(-0.5, 0.5, 24)[:, None]
    d = np.array([math.cos(angle), math.sin(angle)])
    n = np.array([-d[1], d[0]])
    pts = np.array([x0, y0]) + t * length * d + (0.25 - t**2) * bend * length * n
    return pts


def _inside(
    rng: np.random.Generator, alpha: np.ndarray, cx: float, cy: float, r: float, frac: float, clearance: float
) -> tuple[float, float]:
    """A point within ``frac * r`` of the centre whose surroundings (``clearance`` px) are on the part.

    Rejection sampling keeps defects off ring holes and the short sides of tabs.
    """
    size = alpha.shape[0]
    solid = alpha > 0.99
    x, y = cx, cy
    for _ in range(40):
        rad = r * frac * math.sqrt(rng.uniform(0, 1))
        ang = rng.uniform(0, 2 * math.pi)
        x, y = cx + rad * math.cos(ang), cy + rad * math.sin(ang)
        probes = [(x, y)] + [
            (x + clearance * dx, y + clearance * dy) for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1))
        ]
        if all(0 <= px < size and 0 <= py < size and solid[int(py), int(px)] for px, py in probes):
            return x, y
        frac = min(frac * 1.05, 0.9)
    return x, y


def draw_defect(
    rng: np.random.Generator,
    cls: str,
    size: int,
    alpha: np.ndarray,
    cx: float,
    cy: float,
    r: float,
    light: float,
    base_bgr: tuple[float, float, float],
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray]:
    """Defect layers: brightness change ``(S,S)``, stain ``(alpha (S,S), colour (3,))`` and new coverage."""
    s = size / 128.0
    shift, scale = 4, 16
    delta = np.zeros((size, size), np.float32)
    stain_a: np.ndarray | None = None
    stain_c: np.ndarray | None = None
    cover = alpha
    if cls == "scratch":
        angle = rng.uniform(0, math.pi)
        for k in range(1 if rng.uniform() < 0.75 else 2):
            length = r * rng.uniform(0.6, 1.2)
            x0, y0 = _inside(rng, alpha, cx, cy, r, 0.45, 0.15 * r)
            if k:
                angle += rng.uniform(-0.15, 0.15)
                x0 += rng.uniform(-0.1, 0.1) * r
                y0 += rng.uniform(-0.1, 0.1) * r
            pts = _curve(x0, y0, length, angle, rng.uniform(-0.15, 0.15))
            value = rng.uniform(0.5, 0.85) * (1.0 if rng.uniform() < 0.65 else -0.85)
            width = max(1, round(rng.uniform(1.2, 2.4) * s))
            cv2.polylines(
                delta, [np.round(pts * scale).astype(np.int32)], False, value, width, cv2.LINE_AA, shift
            )
        delta = cv2.GaussianBlur(delta, (0, 0), 0.5 * s)
    elif cls == "crack":
        x, y = _inside(rng, alpha, cx, cy, r, 0.8, 0.05 * r)
        heading = math.atan2(cy - y, cx - x) + rng.uniform(-0.8, 0.8)
        total = r * rng.uniform(0.6, 1.1)
        steps = int(rng.integers(9, 15))
        pts = [(x, y)]
        for _ in range(steps):
            heading += rng.uniform(-0.7, 0.7)
            x += math.cos(heading) * total / steps
            y += math.sin(heading) * total / steps
            pts.append((x, y))
        paths = [np.array(pts)]
        for _ in range(int(rng.integers(1, 3))):
            bx, by = pts[int(rng.integers(2, len(pts) - 2))]
            bh = heading + rng.choice([-1.0, 1.0]) * rng.uniform(0.6, 1.3)
            branch = [(bx, by)]
            for _ in range(int(rng.integers(3, 6))):
                bh += rng.uniform(-0.6, 0.6)
                bx += math.cos(bh) * total / steps
                by += math.sin(bh) * total / steps
                branch.append((bx, by))
            paths.append(np.array(branch))
        value = -rng.uniform(0.65, 0.9)
        width = max(1, round(rng.uniform(1.2, 2.2) * s))
        for p in paths:
            cv2.polylines(
                delta, [np.round(p * scale).astype(np.int32)], False, value, width, cv2.LINE_AA, shift
            )
        delta = cv2.GaussianBlur(delta, (0, 0), 0.45 * s)
    elif cls == "spot":
        x, y = _inside(rng, alpha, cx, cy, r, 0.6, 0.15 * r)
        axis_a = r * rng.uniform(0.12, 0.24)
        axis_b = axis_a * rng.uniform(0.55, 1.0)
        stain = np.zeros((size, size), np.float32)
        cv2.ellipse(
            stain,
            (round(x * scale), round(y * scale)),
            (round(axis_a * scale), round(axis_b * scale)),
            rng.uniform(0, 180),
            0,
            360,
            1.0,
            -1,
            cv2.LINE_AA,
            shift,
        )
        mottle = 1.0 + 0.3 * cv2.GaussianBlur(rng.standard_normal((size, size)).astype(np.float32), (0, 0), s)
        stain = cv2.GaussianBlur(stain, (0, 0), max(0.6, 0.25 * axis_b)) * mottle
        stain_a = np.clip(stain * rng.uniform(0.7, 0.95), 0, 1).astype(np.float32)
        palette = np.array(
            [(30.0, 70.0, 140.0), (35.0, 35.0, 40.0), (25.0, 50.0, 90.0), (40.0, 95.0, 160.0)], np.float32
        )  # rust, oil, grime, light rust
        # a rust stain on copper would be nearly invisible: only colours that stand out on this material
        visible = palette[np.abs(palette - np.asarray(base_bgr, np.float32)).max(axis=1) >= 90]
        choices = visible if len(visible) else palette[1:2]
        stain_c = choices[int(rng.integers(len(choices)))] * rng.uniform(0.85, 1.15)
    elif cls == "dent":
        x, y = _inside(rng, alpha, cx, cy, r, 0.55, 0.2 * r)
        rho = r * rng.uniform(0.18, 0.32)
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        dx, dy = (xx - x) / rho, (yy - y) / rho
        bump = np.exp(-(dx**2 + dy**2))
        amp = rng.uniform(0.45, 0.75)
        delta = amp * 1.6 * (dx * math.cos(light) + dy * math.sin(light)) * bump - 0.12 * bump
        delta[bump < 0.02] = 0.0
    elif cls == "chip":
        ang = rng.uniform(0, 2 * math.pi)
        rho = r * rng.uniform(0.2, 0.34)
        # centre the cut on the actual rim along a random ray (polygons and tabs are not round)
        steps = np.arange(0.0, 1.2 * r, 0.5)
        px = np.clip((cx + steps * math.cos(ang)).astype(int), 0, size - 1)
        py = np.clip((cy + steps * math.sin(ang)).astype(int), 0, size - 1)
        on = np.nonzero(alpha[py, px] > 0.5)[0]
        rim_r = float(steps[on[-1]]) if on.size else r
        ex, ey = cx + rim_r * 1.05 * math.cos(ang), cy + rim_r * 1.05 * math.sin(ang)
        t = np.linspace(0, 2 * math.pi, 20, endpoint=False)
        rad = rho * rng.uniform(0.75, 1.2, t.size)
        poly = np.stack([ex + rad * np.cos(t), ey + rad * np.sin(t)], axis=1)
        cut = np.zeros((size, size), np.uint8)
        cv2.fillPoly(cut, [np.round(poly * scale).astype(np.int32)], 255, cv2.LINE_AA, shift)
        cutf = cut.astype(np.float32) / 255.0
        cover = alpha * (1.0 - cutf)
        rim = cv2.GaussianBlur(cutf, (0, 0), 1.2 * s) - cutf
        delta = np.clip(rim, 0, 1) * rng.uniform(1.0, 1.6)
    elif cls != "ok":
        raise ValueError(f"unknown defect class {cls!r}; known classes: {list(DEFECT_CLASSES)}")
    return delta * alpha, stain_a if stain_a is None else stain_a * alpha, stain_c, cover


def defect_box(changed: np.ndarray, pad: int, size: int) -> Box | None:
    ys, xs = np.nonzero(changed)
    if ys.size == 0:
        return None
    x0, y0 = max(int(xs.min()) - pad, 0), max(int(ys.min()) - pad, 0)
    x1, y1 = min(int(xs.max()) + pad + 1, size), min(int(ys.max()) + pad + 1, size)
    return (x0, y0, x1 - x0, y1 - y0)
