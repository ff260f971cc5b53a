"""Records that travel from a frame source to its consumers: frames, ground truth and errors."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

Box = tuple[int, int, int, int]
"""An axis-aligned box ``(x, y, w, h)`` in pixels of the image it belongs to."""


class SourceError(RuntimeError):
    """A frame source cannot be created or opened; the message names the source and the reason."""


class UnknownSourceError(SourceError, ValueError):
    """The source string names a scheme no source is registered for."""


class SourceReadError(SourceError):
    """A read failed on an open source (disconnect, truncated file, camera error): worth reconnecting."""


@dataclass(frozen=True)
class PartTruth:
    """Ground truth of one part on the synthetic line.

    Parameters
    ----------
    part_id
        Index of the part on the line (0, 1, 2, ... in belt order), stable for a seed.
    defect_class
        One of :data:`core.camera.synthetic.DEFECT_CLASSES`.
    variant
        Product variant the part was rendered as.
    part_box
        Box of the part's square sprite in frame pixels; may extend past the frame edges.
    defect_box
        Box of the drawn defect in frame pixels, or ``None`` for ``"ok"`` parts.
    """

    part_id: int
    defect_class: str
    variant: str
    part_box: Box
    defect_box: Box | None


@dataclass(frozen=True)
class Frame:
    """One captured image.

    Parameters
    ----------
    image
        ``uint8`` array, BGR ``(H, W, 3)`` or grey ``(H, W)`` (OpenCV convention). Line-scan sources deliver
        row blocks ``(lines, W, 3)``.
    frame_id
        Running number per opened source, starting at 0 (restarts are not reset by reconnects).
    timestamp
        ``time.monotonic()`` when the image was captured.
    source
        Name of the source that produced it.
    truth
        For the synthetic line: the part nearest the frame centre (the one "under the camera"), else ``None``.
    parts
        For the synthetic line: every part at least partly visible, in belt order; empty otherwise.
    """

    image: np.ndarray
    frame_id: int
    timestamp: float
    source: str
    truth: PartTruth | None = None
    parts: tuple[PartTruth, ...] = field(default=())

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of :attr:`image`."""
        return tuple(self.image.shape)
