"""The region of interest over the live view: shown as a dashed frame, set by dragging a rectangle.

A transparent child of :class:`~app.views.frame_view.FrameView` (so the frame view itself stays as it is): it
maps between widget and frame pixels through the frame view's letter-box and lets mouse events through except
while the inspector is setting the region.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QKeyEvent, QMouseEvent, QPainter, QPen
from PySide6.QtWidgets import QWidget

from app.views.frame_view import FrameView

Roi = tuple[int, int, int, int]
MIN_SIDE = 16  # frame pixels: the station refuses a smaller region


class RoiOverlay(QWidget):
    """Emits ``roi_selected((x, y, w, h))`` in frame pixels after a drag; Esc leaves editing unchanged."""

    roi_selected = Signal(tuple)
    editing_changed = Signal(bool)

    def __init__(self, view: FrameView) -> None:
        super().__init__(view)
        self._view = view
        self.roi: Roi | None = None
        self._start: QPointF | None = None
        self._current: QPointF | None = None
        self.editing = False
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents, True)
        self.setAttribute(Qt.WidgetAttribute.WA_NoSystemBackground, True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        view.installEventFilter(self)
        self.resize(view.size())

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self._view and event.type() == QEvent.Type.Resize:
            self.resize(self._view.size())
        return False

    # ---- mapping -----------------------------------------------------------------------------------------
    def _frame_rect(self) -> tuple[QRectF, float] | None:
        """The frame's letter-boxed rectangle in widget pixels and the frame->widget scale."""
        image = self._view._image  # the frame view's current picture (same package; read only)
        if image is None or image.width() == 0:
            return None
        target = self._view._target()
        return target, target.width() / image.width()

    def to_frame(self, a: QPointF, b: QPointF) -> Roi | None:
        """The frame-pixel rectangle between two widget points, clipped to the frame; None when too small."""
        mapped = self._frame_rect()
        if mapped is None:
            return None
        target, scale = mapped
        image = self._view._image
        assert image is not None
        xs = sorted(min(max((p.x() - target.x()) / scale, 0.0), image.width()) for p in (a, b))
        ys = sorted(min(max((p.y() - target.y()) / scale, 0.0), image.height()) for p in (a, b))
        x, y, w, h = int(xs[0]), int(ys[0]), int(xs[1] - xs[0]), int(ys[1] - ys[0])
        return (x, y, w, h) if w >= MIN_SIDE and h >= MIN_SIDE else None

    # ---- editing -----------------------------------------------------------------------------------------
    def start_editing(self) -> None:
        self.editing = True
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents, False)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setFocus()
        self.editing_changed.emit(True)

    def stop_editing(self) -> None:
        self.editing = False
        self._start = self._current = None
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents, True)
        self.unsetCursor()
        self.update()
        self.editing_changed.emit(False)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if self.editing and event.button() == Qt.MouseButton.LeftButton:
            self._start = self._current = event.position()
            self.update()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._start is not None:
            self._current = event.position()
            self.update()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._start is None:
            return
        roi = self.to_frame(self._start, event.position())
        self.stop_editing()
        if roi is not None:
            self.roi = roi
            self.roi_selected.emit(roi)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if self.editing and event.key() == Qt.Key.Key_Escape:
            self.stop_editing()
        else:
            super().keyPressEvent(event)

    # ---- drawing -----------------------------------------------------------------------------------------
    def paintEvent(self, event: object) -> None:
        painter = QPainter(self)
        if self._start is not None and self._current is not None:
            painter.setPen(QPen(QColor("#58a6ff"), 2, Qt.PenStyle.DashLine))
            painter.drawRect(QRectF(self._start, self._current).normalized())
            return
        mapped = self._frame_rect()
        if self.roi is None or mapped is None:
            return
        target, scale = mapped
        x, y, w, h = self.roi
        painter.setPen(QPen(QColor(255, 255, 255, 170), 1, Qt.PenStyle.DashLine))
        painter.drawRect(QRectF(target.x() + x * scale, target.y() + y * scale, w * scale, h * scale))
