"""A widget that shows the newest camera frame, scaled to fit, with optional overlay boxes and pictures
(the anomaly map drawn over a part)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRect, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget


def to_qimage(image: np.ndarray) -> QImage:
    """OpenCV image (grey ``(H, W)`` or BGR ``(H, W, 3)``, uint8) -> QImage that owns a copy of the pixels."""
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"expected a uint8 grey or BGR image, got {image.dtype} with shape {image.shape}")
    arr = np.ascontiguousarray(image)
    h, w = arr.shape[:2]
    if arr.ndim == 2:
        return QImage(arr.data, w, h, arr.strides[0], QImage.Format.Format_Grayscale8).copy()
    if arr.shape[2] != 3:
        raise ValueError(f"expected 3 colour channels (BGR), got {arr.shape[2]}")
    # BGR888 exists since Qt 5.14: no channel swap in numpy needed; .copy() detaches from the numpy buffer.
    return QImage(arr.data, w, h, arr.strides[0], QImage.Format.Format_BGR888).copy()


class FrameView(QWidget):
    """Paints the latest frame letter-boxed; boxes are ``(x, y, w, h)`` in frame pixels."""

    def __init__(self, parent: QWidget | None = None, placeholder: str = "No camera frames yet") -> None:
        super().__init__(parent)
        self._image: QImage | None = None
        self._boxes: list[tuple[tuple[int, int, int, int], QColor]] = []
        self._overlays: list[tuple[tuple[int, int, int, int], QImage]] = []
        self._placeholder = placeholder
        self.setMinimumSize(320, 240)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_frame(
        self,
        image: np.ndarray,
        boxes: list[tuple[tuple[int, int, int, int], QColor]] | None = None,
        overlays: list[tuple[tuple[int, int, int, int], np.ndarray]] | None = None,
    ) -> None:
        """Show ``image``; ``overlays`` are pictures (e.g. a part with its anomaly map) drawn into their boxes."""
        self._image = to_qimage(image)
        self._boxes = boxes or []
        self._overlays = [(box, to_qimage(picture)) for box, picture in (overlays or [])]
        self.update()

    def set_placeholder(self, text: str) -> None:
        self._placeholder = text
        self._image = None
        self.update()

    def has_frame(self) -> bool:
        return self._image is not None

    def _target(self) -> QRectF:
        assert self._image is not None
        iw, ih = self._image.width(), self._image.height()
        scale = min(self.width() / iw, self.height() / ih)
        w, h = iw * scale, ih * scale
        return QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h)

    def paintEvent(self, event: object) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(24, 24, 28))
        if self._image is None:
            painter.setPen(QColor(200, 200, 200))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self._placeholder)
            return
        target = self._target()
        painter.drawImage(target, self._image)
        scale = target.width() / self._image.width()
        for (x, y, w, h), picture in self._overlays:
            painter.drawImage(
                QRectF(target.x() + x * scale, target.y() + y * scale, w * scale, h * scale), picture
            )
        for (x, y, w, h), colour in self._boxes:
            painter.setPen(QPen(colour, 3))
            painter.drawRect(
                QRect(
                    int(target.x() + x * scale), int(target.y() + y * scale), int(w * scale), int(h * scale)
                )
            )
