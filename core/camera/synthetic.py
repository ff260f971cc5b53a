"""Synthetic parts: machined discs, rings and plates with labelled surface defects.

:func:`render_part` draws one part crop (the part on a patch of conveyor belt) with its defect box; the
synthetic production line (:mod:`core.camera.synthetic_line`) moves the same sprites under a virtual camera.
Everything is deterministic for a given ``numpy.random.Generator`` state. Textures are precomputed once per
``(variant, size)`` so drawing a part costs a few vectorised OpenCV calls.

Defects vary in size, position, contrast and orientation but each class has a signature a model can learn:
``scratch`` thin smooth line (bright or dark), ``spot`` soft coloured stain, ``crack`` dark jagged branching
line, ``dent`` round depression lit from one side (bright/dark lobes), ``chip`` piece missing from the rim.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from core.camera.defects import DEFECT_CLASSES, defect_box, draw_defect
from core.camera.frame import Box

BELT_BGR = (52.0, 54.0, 57.0)
"""Mean colour of the conveyor belt (dark rubber); every part variant is clearly brighter."""


@dataclass(frozen=True)
class Variant:
    """Look of one product.

    Parameters
    ----------
    name
        Variant name.
    shape
        ``disc``, ``ring``, ``square`` (rounded), ``hexagon`` or ``tab`` (rounded rectangle).
    bgr
        Base colour (0-255, BGR).
    texture
        ``lathe`` (concentric turning marks), ``brushed`` (straight streaks), ``cast`` (coarse grain) or
        ``matte`` (fine grain).
    texture_strength
        Relative brightness swing of the texture.
    gloss
        Strength of the specular highlight.
    """

    name: str
    shape: str
    bgr: tuple[float, float, float]
    texture: str
    texture_strength: float
    gloss: float


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("default", "disc", (168.0, 168.0, 172.0), "lathe", 0.08, 0.30),
        Variant("brushed_plate", "square", (192.0, 190.0, 186.0), "brushed", 0.08, 0.20),
        Variant("brass_ring", "ring", (70.0, 165.0, 205.0), "lathe", 0.08, 0.35),
        Variant("cast_hex", "hexagon", (125.0, 127.0, 130.0), "cast", 0.13, 0.10),
        Variant("anodized_tab", "tab", (170.0, 110.0, 50.0), "matte", 0.06, 0.15),
        Variant("copper_disc", "disc", (85.0, 125.0, 205.0), "brushed", 0.07, 0.30),
    )
}


def list_variants() -> list[str]:
    """Product variant names (different shape, material, colour and texture)."""
    return list(VARIANTS)


def _variant(variant: str | int) -> Variant:
    names = list(VARIANTS)
    if isinstance(variant, int | np.integer):
        if not 0 <= int(variant) < len(names):
            raise ValueError(f"variant index {variant} out of range 0..{len(names) - 1}; variants: {names}")
        return VARIANTS[names[int(variant)]]
    if variant not in VARIANTS:
        raise ValueError(f"unknown product variant {variant!r}; known variants: {names}")
    return VARIANTS[variant]


@dataclass(frozen=True)
class PartSprite:
    """A rendered part ready to composite onto any background.

    ``out = background * inv / 255 + premult`` (per channel, saturating) puts the part and its shadow on the
    background. ``colour`` and ``alpha`` are the part alone.

    Attributes
    ----------
    premult
        ``(S, S, 3)`` uint8: part colour times its coverage.
    inv
        ``(S, S, 3)`` uint8: how much background shows through (shadow included), 0-255.
    alpha
        ``(S, S)`` float32 part coverage in [0, 1].
    defect_box
        Box of the defect in sprite pixels, or ``None``.
    """

    premult: np.ndarray
    inv: np.ndarray
    alpha: np.ndarray
    defect_box: Box | None
    defect_class: str
    variant: str

    @property
    def size(self) -> int:
        """Sprite side in pixels."""
        return int(self.alpha.shape[0])

    def composite(self, background: np.ndarray) -> np.ndarray:
        """Part over a ``(S, S, 3)`` uint8 background -> new ``(S, S, 3)`` uint8 image."""
        return cv2.add(cv2.multiply(background, self.inv, scale=1.0 / 255.0), self.premult)


class _Textures:
    """Precomputed noise fields for one ``(variant, size)``; read-only after construction."""

    def __init__(self, variant: Variant, size: int) -> None:
        rng = np.random.default_rng(_stable_seed(variant.name, size))
        big = 2 * size
        s = size / 128.0
        self.size = size
        if variant.texture == "brushed":
            field = rng.standard_normal((big, big)).astype(np.float32)
            k = max(3, int(size / 3))
            field = cv2.blur(field, (k, 1)) * math.sqrt(k)
            field += (
                0.4 * cv2.GaussianBlur(rng.standard_normal((big, big)).astype(np.float32), (0, 0), 6 * s) * 6
            )
        elif variant.texture == "cast":
            fine = cv2.GaussianBlur(rng.standard_normal((big, big)).astype(np.float32), (0, 0), 0.8 * s)
            coarse = cv2.GaussianBlur(rng.standard_normal((big, big)).astype(np.float32), (0, 0), 3.0 * s)
            field = fine * 1.5 + coarse * 4.0
        elif variant.texture == "matte":
            field = cv2.GaussianBlur(rng.standard_normal((big, big)).astype(np.float32), (0, 0), 0.7 * s)
        else:  # lathe: concentric rings are made per part from this radial profile
            field = cv2.GaussianBlur(rng.standard_normal((big, big)).astype(np.float32), (0, 0), 1.0 * s)
        self.field = (field - field.mean()) / (field.std() + 1e-6)
        profile = rng.standard_normal(4 * size).astype(np.float32)
        profile = cv2.GaussianBlur(profile[None, :], (0, 0), 0.6 * s)[0]
        grooves = np.sin(np.arange(4 * size, dtype=np.float32) * (2.2 / max(s, 0.25)))
        self.profile = (profile / (profile.std() + 1e-6) + 0.5 * grooves).astype(np.float32)
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        self.xx = xx
        self.yy = yy
        belt = rng.standard_normal((big, big)).astype(np.float32)
        belt = cv2.GaussianBlur(belt, (0, 0), 0.8 * s) * 4.0 + cv2.blur(belt, (1, max(3, size // 8))) * 6.0
        self.belt = belt


def _stable_seed(name: str, size: int) -> int:
    return (sum((i + 1) * ord(c) for i, c in enumerate(name)) * 1_000_003 + size) % (2**32)


@functools.lru_cache(maxsize=64)
def _textures(variant_name: str, size: int) -> _Textures:
    return _Textures(VARIANTS[variant_name], size)


def belt_patch(rng: np.random.Generator, size: int, *, variant: str = "default") -> np.ndarray:
    """A ``(size, size, 3)`` uint8 patch of conveyor belt."""
    tex = _textures(_variant(variant).name, size)
    oy, ox = (int(v) for v in rng.integers(0, size, 2))
    noise = tex.belt[oy : oy + size, ox : ox + size]
    base = np.asarray(BELT_BGR, np.float32)
    return np.clip(base[None, None, :] + noise[:, :, None], 0, 255).astype(np.uint8)


def _shape_mask(
    rng: np.random.Generator, variant: Variant, size: int
) -> tuple[np.ndarray, float, float, float]:
    """Anti-aliased part coverage ``(S, S)`` float32, centre and radius."""
    fill = rng.uniform(0.70, 0.84)
    radius = fill * size / 2
    cx = size / 2 + rng.uniform(-0.04, 0.04) * size
    cy = size / 2 + rng.uniform(-0.04, 0.04) * size
    angle = rng.uniform(0, 2 * math.pi)
    shift = 4
    scale = 1 << shift
    mask = np.zeros((size, size), np.uint8)
    if variant.shape in ("disc", "ring"):
        centre = (round(cx * scale), round(cy * scale))
        cv2.circle(mask, centre, round(radius * scale), 255, -1, cv2.LINE_AA, shift)
        if variant.shape == "ring":
            inner = radius * rng.uniform(0.32, 0.42)
            cv2.circle(mask, centre, round(inner * scale), 0, -1, cv2.LINE_AA, shift)
    else:
        if variant.shape == "hexagon":
            t = np.linspace(0, 2 * math.pi, 7)[:-1]
            px, py = np.cos(t), np.sin(t)
        else:
            n, aspect = (4.0, 1.0) if variant.shape == "square" else (6.0, 0.62)
            t = np.linspace(0, 2 * math.pi, 96, endpoint=False)
            px = np.sign(np.cos(t)) * np.abs(np.cos(t)) ** (2 / n) * 0.92
            py = np.sign(np.sin(t)) * np.abs(np.sin(t)) ** (2 / n) * 0.92 * aspect
        rx = px * math.cos(angle) - py * math.sin(angle)
        ry = px * math.sin(angle) + py * math.cos(angle)
        pts = np.stack([cx + rx * radius, cy + ry * radius], axis=1)
        cv2.fillPoly(mask, [np.round(pts * scale).astype(np.int32)], 255, cv2.LINE_AA, shift)
    return mask.astype(np.float32) / 255.0, cx, cy, radius


def _surface(
    rng: np.random.Generator,
    variant: Variant,
    tex: _Textures,
    alpha: np.ndarray,
    cx: float,
    cy: float,
    r: float,
) -> tuple[np.ndarray, float]:
    """Base part colour ``(S, S, 3)`` float32 and the light direction (radians)."""
    size = tex.size
    if variant.texture == "lathe":
        rr = np.hypot(tex.xx - cx, tex.yy - cy)
        pattern = np.take(tex.profile, np.minimum((rr * 2).astype(np.int32), tex.profile.size - 1))
    else:
        oy, ox = (int(v) for v in rng.integers(0, size // 2, 2))
        window = tex.field[oy : oy + size + size // 2, ox : ox + size + size // 2]
        rot = cv2.getRotationMatrix2D((window.shape[1] / 2, window.shape[0] / 2), rng.uniform(0, 360), 1.0)
        rot[:, 2] -= (window.shape[1] - size) / 2
        pattern = cv2.warpAffine(
            window, rot, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
        )
    light = rng.uniform(0, 2 * math.pi)
    gradient = ((tex.xx - cx) * math.cos(light) + (tex.yy - cy) * math.sin(light)) / r
    hx = cx + rng.uniform(-0.5, 0.5) * r
    hy = cy + rng.uniform(-0.5, 0.5) * r
    highlight = np.exp(-((tex.xx - hx) ** 2 + (tex.yy - hy) ** 2) / (2 * (0.35 * r) ** 2))
    dist = cv2.distanceTransform((alpha > 0.5).astype(np.uint8), cv2.DIST_L2, 3)
    bevel = np.exp(-dist / max(1.0, 0.03 * size))
    shade = (
        1.0
        + variant.texture_strength * pattern
        + rng.uniform(0.06, 0.18) * gradient
        + variant.gloss * rng.uniform(0.4, 1.0) * highlight
        + rng.uniform(-0.25, 0.25) * bevel
    )
    tint = rng.uniform(0.97, 1.03, 3) * rng.uniform(0.92, 1.08)  # mostly brightness, a little hue
    colour = np.asarray(variant.bgr, np.float32) * tint.astype(np.float32)
    return shade[:, :, None].astype(np.float32) * colour[None, None, :], light


def render_sprite(
    rng: np.random.Generator, defect_class: str, *, variant: str | int = "default", size: int = 128
) -> PartSprite:
    """One part (no background) as a :class:`PartSprite`; see :func:`render_part`."""
    if defect_class not in DEFECT_CLASSES:
        raise ValueError(f"unknown defect class {defect_class!r}; known classes: {list(DEFECT_CLASSES)}")
    if not 16 <= int(size) <= 2048:
        raise ValueError(f"part size must be 16..2048 pixels, got {size}")
    size = int(size)
    look = _variant(variant)
    tex = _textures(look.name, size)
    # independent streams: the same seed gives the same part whatever its defect, so a test can diff them
    base_rng, defect_rng = (np.random.default_rng(int(v)) for v in rng.integers(0, 2**63 - 1, 2))
    alpha, cx, cy, r = _shape_mask(base_rng, look, size)
    colour, light = _surface(base_rng, look, tex, alpha, cx, cy, r)
    delta, stain_a, stain_c, cover = draw_defect(
        defect_rng, defect_class, size, alpha, cx, cy, r, light, look.bgr
    )
    img = colour * (1.0 + delta)[:, :, None]
    changed = np.abs(delta) > 0.02
    if stain_a is not None and stain_c is not None:
        shade = colour.mean(axis=2, keepdims=True) / (np.mean(look.bgr) + 1e-6)
        img = img * (1.0 - stain_a[:, :, None]) + stain_c[None, None, :] * shade * stain_a[:, :, None]
        changed |= stain_a > 0.02
    changed |= (alpha - cover) > 0.02
    box = None if defect_class == "ok" else defect_box(changed, pad=max(1, round(size / 64)), size=size)
    s = size / 128.0
    shadow = cv2.GaussianBlur(cover, (0, 0), 2.5 * s)
    shadow = np.roll(shadow, (round(3 * s), round(3 * s)), axis=(0, 1))
    inv = (1.0 - cover) * (1.0 - 0.38 * shadow)
    premult = np.clip(img, 0, 255) * cover[:, :, None]
    return PartSprite(
        premult=np.clip(premult + 0.5, 0, 255).astype(np.uint8),
        inv=np.repeat(np.clip(inv * 255.0 + 0.5, 0, 255).astype(np.uint8)[:, :, None], 3, axis=2),
        alpha=cover.astype(np.float32),
        defect_box=box,
        defect_class=defect_class,
        variant=look.name,
    )


def apply_imaging(
    rng: np.random.Generator, image: np.ndarray, *, noise: float, blur: float, gain: float
) -> np.ndarray:
    """Camera effects on a uint8 image: gain (lighting), Gaussian blur (focus/motion) and sensor noise."""
    out = image
    if gain != 1.0:
        out = cv2.convertScaleAbs(out, alpha=gain)
    if blur > 0:
        out = cv2.GaussianBlur(out, (0, 0), blur)
    if noise > 0:
        n = rng.standard_normal(out.shape, dtype=np.float32)
        n *= noise
        n += out
        out = np.clip(n, 0, 255, out=n).astype(np.uint8)
    return out


def render_part(
    rng: np.random.Generator, defect_class: str, *, variant: str | int = "default", size: int = 128
) -> tuple[np.ndarray, Box | None]:
    """One labelled part crop: the part on a patch of belt, as the part trigger would cut it from the line.

    Random per call: part position/scale/rotation, texture phase, lighting direction and drift, highlight,
    colour tint, sensor noise and slight blur, and the defect's size, position, contrast and orientation.

    Parameters
    ----------
    rng
        Source of randomness; the same state gives the same image.
    defect_class
        One of :data:`DEFECT_CLASSES`.
    variant
        A name from :func:`list_variants` or its index.
    size
        Side of the square crop in pixels (16..2048).

    Returns
    -------
    image
        ``(size, size, 3)`` uint8 BGR.
    box
        ``(x, y, w, h)`` of the defect in the crop, ``None`` for ``"ok"``.
    """
    sprite = render_sprite(rng, defect_class, variant=variant, size=size)
    fx_rng = np.random.default_rng(int(rng.integers(0, 2**63 - 1)))
    image = sprite.composite(belt_patch(fx_rng, sprite.size, variant=sprite.variant))
    image = apply_imaging(
        fx_rng,
        image,
        noise=fx_rng.uniform(0.5, 4.0),
        blur=fx_rng.uniform(0.0, 0.6) * size / 128.0,
        gain=fx_rng.uniform(0.85, 1.15),
    )
    return image, sprite.defect_box


#: Name of the defect :func:`render_unseen_part` draws: never produced by the line nor listed in DEFECT_CLASSES.
UNSEEN_DEFECT = "burn"


def render_unseen_part(
    rng: np.random.Generator, *, variant: str | int = "default", size: int = 128
) -> tuple[np.ndarray, Box]:
    """A part crop with a defect type the line never makes (a burn mark: dark, brownish, irregular blotch).

    For checking that a scorer taught without it (the anomaly scorer, from OK parts) still flags it: the part
    is rendered as :func:`render_part` renders an OK one, then scorched at a random point well inside it.

    Returns
    -------
    image
        ``(size, size, 3)`` uint8 BGR.
    box
        ``(x, y, w, h)`` of the burn in the crop.
    """
    sprite = render_sprite(rng, "ok", variant=variant, size=size)
    solid = cv2.erode(
        (sprite.alpha > 0.99).astype(np.uint8), np.ones((5, 5), np.uint8), iterations=max(1, size // 32)
    )
    ys, xs = np.nonzero(solid)
    if ys.size == 0:
        ys, xs = np.nonzero(sprite.alpha > 0.5)
    k = int(rng.integers(ys.size))
    cx, cy = float(xs[k]), float(ys[k])
    radius = size * rng.uniform(0.04, 0.07)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    angle = np.arctan2(yy - cy, xx - cx)
    wobble = (
        1.0 + 0.3 * np.sin(3 * angle + rng.uniform(0, 6.3)) + 0.15 * np.sin(5 * angle + rng.uniform(0, 6.3))
    )
    dist = np.hypot(xx - cx, yy - cy) / (radius * wobble)
    burn = np.clip(1.3 - dist, 0.0, 1.0) * sprite.alpha
    burn = cv2.GaussianBlur(burn, (0, 0), max(0.8, radius / 4))[:, :, None]
    scorched = np.asarray((20.0, 35.0, 60.0), np.float32)  # dark brown (BGR)
    premult = sprite.premult.astype(np.float32) * (1.0 - 0.85 * burn) + 0.85 * burn * scorched
    burnt = PartSprite(
        premult=np.clip(premult + 0.5, 0, 255).astype(np.uint8),
        inv=sprite.inv,
        alpha=sprite.alpha,
        defect_box=None,
        defect_class=UNSEEN_DEFECT,
        variant=sprite.variant,
    )
    fx_rng = np.random.default_rng(int(rng.integers(0, 2**63 - 1)))
    image = burnt.composite(belt_patch(fx_rng, size, variant=sprite.variant))
    image = apply_imaging(
        fx_rng,
        image,
        noise=fx_rng.uniform(0.5, 4.0),
        blur=fx_rng.uniform(0.0, 0.6) * size / 128.0,
        gain=fx_rng.uniform(0.85, 1.15),
    )
    r = int(np.ceil(radius * 1.5))
    x0, y0 = max(0, int(cx) - r), max(0, int(cy) - r)
    return image, (x0, y0, min(size, int(cx) + r + 1) - x0, min(size, int(cy) + r + 1) - y0)


__all__ = [
    "BELT_BGR",
    "DEFECT_CLASSES",
    "UNSEEN_DEFECT",
    "VARIANTS",
    "PartSprite",
    "Variant",
    "apply_imaging",
    "belt_patch",
    "list_variants",
    "render_part",
    "render_sprite",
    "render_unseen_part",
]
