"""``synthetic:``: a conveyor carrying parts under a virtual camera, with per-part ground truth.

Options (``synthetic:key=value,...``)
-------------------------------------
``seed`` (0), ``speed`` (1.0: a part crosses a 640-px frame in about 100 frames), ``mode`` (``area`` or
``line``), ``defect_rate`` (0.3: share of parts with a defect), ``variant`` (a name from
:func:`~core.camera.synthetic.list_variants` or ``mixed`` for a random one per part), ``width`` (640),
``height`` (480; ignored in line mode), ``lines`` (16 rows per read in line mode), ``fps`` (30; 0 = as fast as
asked), ``noise`` (2.0 grey levels), ``drift`` (0.06 relative lighting swing), ``blur`` (0.0 pixels),
``part_size`` (pixels; default a third of the frame height, or of the width in line mode), ``gap`` (0.6 mean
gap between parts in part sizes), ``frames`` (end after this many reads; 0 = never), ``grey`` (0).

Area mode delivers ``(height, width, 3)`` frames with parts moving left to right; line mode delivers row blocks
``(lines, width, 3)`` as a line-scan camera would, the belt moving one row per line.
"""

from __future__ import annotations

import collections
import math
import time
from dataclasses import dataclass

import cv2
import numpy as np

from core.camera.frame import Frame, PartTruth
from core.camera.source import SOURCES, FrameSource, check_options, option, parse_spec
from core.camera.synthetic import BELT_BGR, DEFECT_CLASSES, PartSprite, list_variants, render_sprite

_NOISE_PAD = 64


@dataclass(frozen=True)
class LineConfig:
    """Settings of the synthetic line; see the module docstring for their meaning."""

    seed: int = 0
    speed: float = 1.0
    mode: str = "area"
    defect_rate: float = 0.3
    variant: str = "default"
    width: int = 640
    height: int = 480
    lines: int = 16
    fps: float = 30.0
    noise: float = 2.0
    drift: float = 0.06
    blur: float = 0.0
    part_size: int = 0
    gap: float = 0.6
    frames: int = 0
    grey: bool = False

    def __post_init__(self) -> None:
        if self.mode not in ("area", "line"):
            raise ValueError(f"synthetic mode must be 'area' or 'line', got {self.mode!r}")
        if self.variant != "mixed" and self.variant not in list_variants():
            raise ValueError(f"unknown variant {self.variant!r}; known: {[*list_variants(), 'mixed']}")
        if not 0.0 <= self.defect_rate <= 1.0:
            raise ValueError(f"defect_rate must be within 0..1, got {self.defect_rate}")
        if not (32 <= self.width <= 8192 and 32 <= self.height <= 8192):
            raise ValueError(f"frame size must be 32..8192 pixels, got {self.width}x{self.height}")
        if self.speed <= 0 or self.fps < 0 or self.lines < 1 or self.gap < 0 or self.frames < 0:
            raise ValueError("speed must be > 0; fps, gap and frames >= 0; lines >= 1")
        across = self.width if self.mode == "line" else self.height
        if self.part_size and not 16 <= self.part_size <= across:
            raise ValueError(f"part_size must be 16..{across} pixels, got {self.part_size}")

    @property
    def size(self) -> int:
        """Part sprite side in pixels."""
        across = self.width if self.mode == "line" else self.height
        return self.part_size or max(32, across // 3)


@dataclass(frozen=True)
class _Part:
    index: int
    start: int  # belt coordinate of the sprite's leading edge
    across: int  # offset across the belt (row in area mode, column in line mode)
    sprite: PartSprite


class SyntheticLine(FrameSource):
    """The synthetic production line as a :class:`FrameSource` (see the module docstring)."""

    def __init__(self, config: LineConfig, name: str = "synthetic:") -> None:
        super().__init__(name)
        self.config = config
        c = config
        size = c.size
        self._across = c.width if c.mode == "line" else c.height
        self._window = c.lines if c.mode == "line" else c.width
        period = max(1024, 2 * self._window)
        rng = np.random.default_rng([c.seed, 7])
        belt = rng.standard_normal((self._across, period)).astype(np.float32)
        belt = cv2.GaussianBlur(belt, (0, 0), 0.8) * 4.0 + cv2.blur(belt, (max(3, period // 64), 1)) * 5.0
        belt = np.clip(np.asarray(BELT_BGR, np.float32)[None, None, :] + belt[:, :, None], 0, 255).astype(
            np.uint8
        )
        belt = np.concatenate([belt, belt[:, : self._window]], axis=1)  # wrap-around without modulo per pixel
        # line mode reads rows along the belt: store travel-major so a block is one contiguous slice
        self._belt = np.ascontiguousarray(belt.transpose(1, 0, 2)) if c.mode == "line" else belt
        self._period = period
        shape = (
            (self._window + _NOISE_PAD, self._across, 3)
            if c.mode == "line"
            else (self._across + _NOISE_PAD, self._window, 3)
        )
        if c.noise > 0:
            noise = rng.normal(0.0, c.noise, shape)
            self._noise_pos = np.clip(noise, 0, 255).astype(np.uint8)
            self._noise_neg = np.clip(-noise, 0, 255).astype(np.uint8)
        self._size = size
        self._step = c.speed * c.width / 100.0 if c.mode == "area" else float(c.lines)
        self._reset()

    def _reset(self) -> None:
        self._parts: collections.deque[_Part] = collections.deque()
        self._next_index = 0
        self._next_start = self._window // 2 if self.config.mode == "area" else self._window * 2
        self._frame_no = 0
        self._fx_rng = np.random.default_rng([self.config.seed, 11])
        self._next_time = 0.0

    # -- parts ----------------------------------------------------------------------------------------
    def _spawn(self) -> _Part:
        c = self.config
        rng = np.random.default_rng([c.seed, 1000 + self._next_index])
        cls = "ok"
        if rng.uniform() < c.defect_rate:
            cls = DEFECT_CLASSES[1 + int(rng.integers(len(DEFECT_CLASSES) - 1))]
        variant = (
            c.variant if c.variant != "mixed" else list_variants()[int(rng.integers(len(list_variants())))]
        )
        sprite = render_sprite(rng, cls, variant=variant, size=self._size)
        margin = max(0, self._across - self._size)
        across = int(rng.integers(0, margin + 1)) if margin else 0
        part = _Part(self._next_index, self._next_start, across, sprite)
        self._next_index += 1
        self._next_start += self._size + round(self._size * c.gap * rng.uniform(0.4, 1.6)) + 1
        return part

    def _visible_parts(self, position: int) -> list[_Part]:
        """Parts whose belt span meets ``[position, position + window)``; older ones are dropped."""
        end = position + self._window
        while self._next_start < end:
            self._parts.append(self._spawn())
        while self._parts and self._parts[0].start + self._size <= position:
            self._parts.popleft()
        return [p for p in self._parts if p.start < end]

    # -- FrameSource ---------------------------------------------------------------------------------
    def _open(self) -> None:
        self._reset()
        self._next_time = time.monotonic()

    def _release(self) -> None:
        self._parts.clear()

    def _read(self) -> Frame | None:
        c = self.config
        if c.frames and self._frame_no >= c.frames:
            return None
        if c.fps > 0:
            delay = self._next_time - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            # after a stall, do not burst to catch up: a camera would have dropped those frames
            self._next_time = max(self._next_time, time.monotonic() - 0.1) + 1.0 / c.fps
        position = math.floor(self._frame_no * self._step)
        gain = 1.0 + c.drift * math.sin(self._frame_no * 2 * math.pi / 300.0 + c.seed) if c.drift > 0 else 1.0
        image, parts = self._compose(position, gain)
        self._frame_no += 1
        image = self._effects(image)
        truths = tuple(self._truth(p, position) for p in parts)
        centre = (c.width / 2, image.shape[0] / 2)
        nearest = min(
            truths,
            key=lambda t: (
                (t.part_box[0] + t.part_box[2] / 2 - centre[0]) ** 2
                + (t.part_box[1] + t.part_box[3] / 2 - centre[1]) ** 2
            ),
            default=None,
        )
        return Frame(
            image=image,
            frame_id=self._stamp(),
            timestamp=time.monotonic(),
            source=self.name,
            truth=nearest,
            parts=truths,
        )

    def _place(self, part: _Part, position: int) -> tuple[int, int]:
        """Top-left ``(x, y)`` of a part's sprite in the current image."""
        if self.config.mode == "line":
            return part.across, part.start - position
        # area: belt coordinate b shows at column W - 1 - (b - position), so parts travel left to right
        return self._window - (part.start - position) - self._size, part.across

    def _compose(self, position: int, gain: float) -> tuple[np.ndarray, list[_Part]]:
        """Belt window plus parts, lighting gain applied; one pass over the frame for the belt."""
        if self.config.mode == "line":
            off = position % self._period
            window = self._belt[off : off + self._window]
        else:
            # texture column x - position, so the belt moves right with the parts
            off = (-position) % self._period
            window = self._belt[:, off : off + self._window]
        # copy and lighting gain in one pass (convertScaleAbs beat cv2.LUT and cv2.multiply here)
        image = window.copy() if gain == 1.0 else cv2.convertScaleAbs(window, alpha=gain)
        parts = self._visible_parts(position)
        h, w = image.shape[:2]
        s = self._size
        for part in parts:
            x, y = self._place(part, position)
            x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + s, w), min(y + s, h)
            if x0 >= x1 or y0 >= y1:
                continue
            sx, sy = x0 - x, y0 - y
            region = image[y0:y1, x0:x1]
            inv = part.sprite.inv[sy : sy + y1 - y0, sx : sx + x1 - x0]
            pre = part.sprite.premult[sy : sy + y1 - y0, sx : sx + x1 - x0]
            shown = cv2.multiply(region, inv, scale=1.0 / 255.0)
            lit = pre if gain == 1.0 else cv2.convertScaleAbs(pre, alpha=gain)
            image[y0:y1, x0:x1] = cv2.add(shown, lit)
        return image, parts

    def _effects(self, image: np.ndarray) -> np.ndarray:
        c = self.config
        if c.blur > 0:
            image = cv2.GaussianBlur(image, (0, 0), c.blur)
        if c.noise > 0:
            k = int(self._fx_rng.integers(0, _NOISE_PAD))
            rows = image.shape[0]
            cv2.add(image, self._noise_pos[k : k + rows], dst=image)
            cv2.subtract(image, self._noise_neg[k : k + rows], dst=image)
        if c.grey:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        return image

    def _truth(self, part: _Part, position: int) -> PartTruth:
        x, y = self._place(part, position)
        box = part.sprite.defect_box
        defect = None if box is None else (x + box[0], y + box[1], box[2], box[3])
        return PartTruth(
            part_id=part.index,
            defect_class=part.sprite.defect_class,
            variant=part.sprite.variant,
            part_box=(x, y, self._size, self._size),
            defect_box=defect,
        )

    def set_properties(self, requested: dict[str, float]) -> dict[str, float | None]:
        """The synthetic camera reports its fixed width/height/fps; it accepts no changes after creation."""
        known = {
            "width": float(self.config.width),
            "height": float(self.config.height),
            "fps": self.config.fps,
        }
        return {k: known.get(k) for k in requested}


_OPTIONS = {f for f in LineConfig.__dataclass_fields__}


def shown_classes(spec: str) -> tuple[str, ...]:
    """The classes the synthetic line of source string ``spec`` shows: ``ok`` unless every part has a defect,
    the defect classes unless none has (its ``defect_rate``)."""
    options = parse_spec(spec)[2]
    rate = option(options, "defect_rate", LineConfig().defect_rate, float, spec)
    return tuple(c for c in DEFECT_CLASSES if (c == "ok" and rate < 1.0) or (c != "ok" and rate > 0.0))


@SOURCES.register("synthetic")
def _synthetic(target: str, options: dict[str, str]) -> FrameSource:
    spec = "synthetic:" + ",".join(f"{k}={v}" for k, v in options.items())
    if target:
        raise ValueError(
            f"synthetic source takes only key=value options, got {target!r} in 'synthetic:{target}'"
        )
    check_options(options, _OPTIONS, spec)
    defaults = LineConfig()
    values = {
        name: option(options, name, getattr(defaults, name), type(getattr(defaults, name)), spec)
        for name in _OPTIONS
    }
    return SyntheticLine(LineConfig(**values), name=spec)
