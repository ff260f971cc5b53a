"""Line-scan assembly: rows or row blocks from a line camera -> frames of N lines."""

from __future__ import annotations

import time

import numpy as np

from core.camera.frame import Frame, PartTruth


class LineScanAssembler:
    """Stack incoming rows into frames of ``lines`` rows, consecutive frames sharing ``overlap`` rows.

    Rows keep their arrival order exactly: frame ``k`` holds global rows
    ``[k * (lines - overlap), k * (lines - overlap) + lines)``.

    Parameters
    ----------
    lines
        Rows per output frame.
    overlap
        Rows repeated at the top of the next frame (0 <= overlap < lines), so a part cut by a frame border is
        whole in one of them when it is at most ``overlap`` rows long.
    source
        Name stamped on output frames.

    Notes
    -----
    Feed blocks ``(n, W)`` (grey) or ``(n, W, C)`` (colour); a single line is ``(1, W)`` or ``(1, W, C)``. Width,
    channels and dtype must stay the same. Ground truth carried by fed :class:`Frame` objects is moved into
    output-frame coordinates.
    """

    def __init__(self, lines: int, overlap: int = 0, source: str = "linescan") -> None:
        if lines < 1:
            raise ValueError(f"lines must be at least 1, got {lines}")
        if not 0 <= overlap < lines:
            raise ValueError(f"overlap must be within 0..{lines - 1} for {lines}-line frames, got {overlap}")
        self.lines = lines
        self.overlap = overlap
        self.source = source
        self.reset()

    def reset(self) -> None:
        """Forget buffered rows and restart numbering."""
        self._buffer: np.ndarray | None = None
        self._fill = 0
        self._start = 0  # global row index of buffer row 0
        self._seen = 0  # global rows received so far
        self._next_id = 0
        self._truths: dict[int, PartTruth] = {}  # part id -> truth with y in global rows

    @property
    def lines_seen(self) -> int:
        """Rows received since creation or :meth:`reset`."""
        return self._seen

    def feed(self, block: np.ndarray | Frame) -> list[Frame]:
        """Add rows; returns the frames completed by them (possibly none, possibly several)."""
        timestamp = time.monotonic()
        if isinstance(block, Frame):
            timestamp = block.timestamp
            for t in block.parts:
                x, y, w, h = t.part_box
                box = t.defect_box
                self._truths[t.part_id] = PartTruth(
                    t.part_id,
                    t.defect_class,
                    t.variant,
                    (x, y + self._seen, w, h),
                    None if box is None else (box[0], box[1] + self._seen, box[2], box[3]),
                )
            block = block.image
        rows = np.asarray(block)
        if rows.ndim not in (2, 3) or rows.shape[0] == 0:
            raise ValueError(f"expected a row block (n, W) or (n, W, C), got shape {rows.shape}")
        if self._buffer is None:
            self._buffer = np.empty((self.lines, *rows.shape[1:]), dtype=rows.dtype)
        elif rows.shape[1:] != self._buffer.shape[1:] or rows.dtype != self._buffer.dtype:
            raise ValueError(
                f"row block {rows.shape} {rows.dtype} does not match earlier rows "
                f"(n, {', '.join(map(str, self._buffer.shape[1:]))}) {self._buffer.dtype}"
            )
        out: list[Frame] = []
        i = 0
        while i < rows.shape[0]:
            take = min(self.lines - self._fill, rows.shape[0] - i)
            self._buffer[self._fill : self._fill + take] = rows[i : i + take]
            self._fill += take
            i += take
            if self._fill == self.lines:
                out.append(self._emit(timestamp))
        self._seen += rows.shape[0]
        return out

    def _emit(self, timestamp: float) -> Frame:
        assert self._buffer is not None
        start, end = self._start, self._start + self.lines
        parts = []
        for t in self._truths.values():
            x, y, w, h = t.part_box
            if y < end and y + h > start:
                box = t.defect_box
                parts.append(
                    PartTruth(
                        t.part_id,
                        t.defect_class,
                        t.variant,
                        (x, y - start, w, h),
                        None if box is None else (box[0], box[1] - start, box[2], box[3]),
                    )
                )
        frame = Frame(
            image=self._buffer.copy(),
            frame_id=self._next_id,
            timestamp=timestamp,
            source=self.source,
            truth=None,
            parts=tuple(sorted(parts, key=lambda p: p.part_id)),
        )
        self._next_id += 1
        step = self.lines - self.overlap
        if self.overlap:
            self._buffer[: self.overlap] = self._buffer[step:]
        self._fill = self.overlap
        self._start += step
        self._truths = {k: t for k, t in self._truths.items() if t.part_box[1] + t.part_box[3] > self._start}
        return frame
