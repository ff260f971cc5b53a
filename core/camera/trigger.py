"""A software photo-eye: one crop per part once the part lies wholly inside the region of interest.

Parts are found as connected components of "not belt" pixels (colour distance from a running estimate of the
belt colour), tracked from frame to frame by nearest centroid, and emitted once, the first frame they touch
no edge of the ROI. Works on any area-camera frames: the synthetic line, a recorded video of it, a real belt
whose parts contrast with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from core.camera.frame import Box, Frame, PartTruth
from core.imaging.roi import Roi, resize_to, square_crop

#: Share of the crop side a part's longer side fills, unless a trigger is told otherwise.
DEFAULT_FILL = 0.8


@dataclass(frozen=True)
class PartCrop:
    """One part, cut out once.

    Attributes
    ----------
    part_id
        Running number of parts seen by this trigger (0, 1, ...), never repeated.
    image
        Square crop ``(S, S, 3)`` BGR or ``(S, S)`` grey, the part filling about ``fill`` of its side.
    frame_id, timestamp
        Of the frame the crop was cut from.
    box
        The part's bounding box in frame pixels.
    truth
        Ground truth of the part when the frame carries it (synthetic line), else ``None``.
    """

    part_id: int
    image: np.ndarray
    frame_id: int
    timestamp: float
    box: Box
    truth: PartTruth | None = None


@dataclass
class _Track:
    cx: float
    cy: float
    last_seen: int
    emitted: bool = False


class PartTrigger:
    """Detect parts fully inside the ROI and emit one :class:`PartCrop` each.

    Parameters
    ----------
    roi
        ``(x, y, w, h)`` or :class:`~core.imaging.roi.Roi`; ``None`` uses the whole frame.
    threshold
        Grey levels a pixel must differ from the belt colour (largest channel difference) to be "part".
    belt_colour
        Known belt colour (BGR or grey); ``None`` learns it as the running median colour of the ROI (parts
        must cover less than half of it).
    min_area, max_area
        Component area bounds as fractions of the ROI area.
    fill
        Share of the crop side the part's longer side fills (the rest is belt around it).
    crop_size
        Resize crops to this square side; ``None`` keeps their natural size.
    max_jump
        Largest centroid move between frames, as a fraction of the ROI's longer side.
    lost_after
        Frames a track survives without being seen.
    detect_width
        Width the ROI is shrunk to for detection (speed); crops come from the full-resolution frame.
    """

    def __init__(
        self,
        roi: Roi | tuple[int, int, int, int] | None = None,
        *,
        threshold: float = 28.0,
        belt_colour: tuple[float, ...] | None = None,
        min_area: float = 0.004,
        max_area: float = 0.6,
        fill: float = DEFAULT_FILL,
        crop_size: int | None = None,
        max_jump: float = 0.2,
        lost_after: int = 3,
        detect_width: int = 320,
    ) -> None:
        if threshold <= 0 or not 0 < min_area < max_area <= 1 or not 0.2 <= fill <= 1:
            raise ValueError("need threshold > 0, 0 < min_area < max_area <= 1 and 0.2 <= fill <= 1")
        if crop_size is not None and crop_size < 8:
            raise ValueError(f"crop_size must be at least 8 pixels, got {crop_size}")
        self.roi = roi
        self.threshold = threshold
        self.belt_colour = None if belt_colour is None else np.asarray(belt_colour, np.float32)
        self._learn = belt_colour is None
        self.min_area, self.max_area = min_area, max_area
        self.fill = fill
        self.crop_size = crop_size
        self.max_jump = max_jump
        self.lost_after = lost_after
        self.detect_width = detect_width
        self._next_id = 0
        self.reset()

    def reset(self) -> None:
        """Forget tracks and the learned belt colour; part ids continue (they stay unique)."""
        self._tracks: list[_Track] = []
        self._frame_no = 0
        if self._learn:
            self.belt_colour = None
        self.frames_seen = 0

    @property
    def parts_emitted(self) -> int:
        """Crops emitted so far."""
        return self._next_id

    def _mask(self, small: np.ndarray) -> np.ndarray:
        channels = small.shape[2] if small.ndim == 3 else 1
        if self._learn:
            # a sparse grid is plenty for a median and ~16x cheaper than all pixels
            sample = small[::6, ::6].reshape(-1, channels)
            median = np.median(sample, axis=0).astype(np.float32)
            self.belt_colour = median if self.belt_colour is None else 0.8 * self.belt_colour + 0.2 * median
        assert self.belt_colour is not None
        reference = np.empty_like(small)
        reference[...] = (
            np.clip(np.round(np.resize(self.belt_colour, channels)), 0, 255).astype(np.uint8).squeeze()
        )
        diff = cv2.absdiff(small, reference)
        if diff.ndim == 3:  # largest channel difference; cv2.max is far faster than ndarray.max(axis=2)
            planes = cv2.split(diff)
            diff = planes[0]
            for plane in planes[1:]:
                diff = cv2.max(diff, plane)
        _, mask = cv2.threshold(diff, self.threshold, 1, cv2.THRESH_BINARY)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
        return cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))

    def feed(self, frame: Frame | np.ndarray) -> list[PartCrop]:
        """Process one frame; returns crops of parts that became fully visible in it (usually none or one)."""
        image = frame.image if isinstance(frame, Frame) else frame
        if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or image.dtype != np.uint8:
            raise ValueError(
                f"PartTrigger needs uint8 (H, W) or (H, W, 3) frames, got {getattr(image, 'shape', image)}"
            )
        roi = Roi.coerce(self.roi, image)
        region = image[roi.y : roi.y + roi.h, roi.x : roi.x + roi.w]
        scale = max(1.0, roi.w / self.detect_width)
        # nearest-neighbour subsampling: ~10x cheaper than INTER_AREA and the mask is cleaned up below anyway
        small = (
            region
            if scale == 1.0
            else cv2.resize(
                region, (round(roi.w / scale), round(roi.h / scale)), interpolation=cv2.INTER_NEAREST
            )
        )
        mask = self._mask(small)
        sh, sw = mask.shape
        count, _, stats, centroids = cv2.connectedComponentsWithStats(mask, connectivity=8)
        area_min, area_max = self.min_area * sh * sw, self.max_area * sh * sw
        found = [
            (float(centroids[i][0]), float(centroids[i][1]), tuple(int(v) for v in stats[i][:4]))
            for i in range(1, count)
            if area_min <= stats[i][cv2.CC_STAT_AREA] <= area_max
        ]
        self._frame_no += 1
        self.frames_seen += 1
        crops: list[PartCrop] = []
        for track, (_, _, (x, y, w, h)) in self._match(found, max(sh, sw) * self.max_jump):
            inside = x > 0 and y > 0 and x + w < sw and y + h < sh
            if not inside or track.emitted:
                continue
            track.emitted = True
            box = (
                roi.x + round(x * scale),
                roi.y + round(y * scale),
                max(1, round(w * scale)),
                max(1, round(h * scale)),
            )
            crops.append(self._crop(frame, image, box))
        return crops

    def _match(
        self, found: list[tuple[float, float, tuple[int, int, int, int]]], jump: float
    ) -> list[tuple[_Track, tuple[float, float, tuple[int, int, int, int]]]]:
        """Greedy nearest-centroid assignment of components to tracks; unmatched components start tracks."""
        pairs = sorted(
            (np.hypot(c[0] - t.cx, c[1] - t.cy), ti, ci)
            for ti, t in enumerate(self._tracks)
            for ci, c in enumerate(found)
        )
        used_t: set[int] = set()
        used_c: set[int] = set()
        out = []
        for dist, ti, ci in pairs:
            if dist > jump or ti in used_t or ci in used_c:
                continue
            used_t.add(ti)
            used_c.add(ci)
            track = self._tracks[ti]
            track.cx, track.cy = found[ci][0], found[ci][1]
            track.last_seen = self._frame_no
            out.append((track, found[ci]))
        for ci, comp in enumerate(found):
            if ci not in used_c:
                track = _Track(comp[0], comp[1], self._frame_no)
                self._tracks.append(track)
                out.append((track, comp))
        self._tracks = [t for t in self._tracks if self._frame_no - t.last_seen < self.lost_after]
        return out

    def _crop(self, frame: Frame | np.ndarray, image: np.ndarray, box: Box) -> PartCrop:
        x, y, w, h = box
        cx, cy = x + w / 2, y + h / 2
        side = max(8, round(max(w, h) / self.fill))
        crop = square_crop(image, cx, cy, side)
        if self.crop_size is not None:
            crop = resize_to(crop, self.crop_size)
        truth = None
        if isinstance(frame, Frame) and frame.parts:
            best = min(
                frame.parts,
                key=lambda t: (
                    (t.part_box[0] + t.part_box[2] / 2 - cx) ** 2
                    + (t.part_box[1] + t.part_box[3] / 2 - cy) ** 2
                ),
            )
            bx, by, bw, bh = best.part_box
            if abs(bx + bw / 2 - cx) < bw / 2 and abs(by + bh / 2 - cy) < bh / 2:
                truth = best
        part_id = self._next_id
        self._next_id += 1
        return PartCrop(
            part_id=part_id,
            image=crop,
            frame_id=frame.frame_id if isinstance(frame, Frame) else self._frame_no - 1,
            timestamp=frame.timestamp if isinstance(frame, Frame) else 0.0,
            box=box,
            truth=truth,
        )
