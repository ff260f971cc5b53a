"""The inspector's verdict display: a big coloured decision, class confidences, counts and recent parts."""

from __future__ import annotations

import cv2
import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QIcon, QPixmap, QResizeEvent
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from app.views.frame_view import to_qimage
from core.inference import Decision, Verdict, VerdictTally

DECISION_COLOURS: dict[Decision, QColor] = {
    Decision.OK: QColor(46, 160, 67),
    Decision.REJECT: QColor(207, 34, 46),
    Decision.CHECK: QColor(219, 171, 9),
}
DECISION_TEXT = {Decision.OK: "OK", Decision.REJECT: "REJECT", Decision.CHECK: "CHECK BY HAND"}
#: A reject nobody has taught a class for (far from every OK part): its own colour, so it stands out.
UNKNOWN_DEFECT_COLOUR = QColor(130, 80, 223)
UNKNOWN_DEFECT_TEXT = "UNKNOWN DEFECT"
READY_TEXT = "WAITING FOR A PART"  # a model is live; no part judged by it yet
RECENT_LIMIT = 50
BANNER_POINTS = 28


def verdict_look(verdict: Verdict) -> tuple[str, QColor]:
    """Banner text and colour of a verdict; an unknown defect gets its own."""
    if verdict.unknown_defect:
        return UNKNOWN_DEFECT_TEXT, UNKNOWN_DEFECT_COLOUR
    return DECISION_TEXT[verdict.decision], DECISION_COLOURS[verdict.decision]


class VerdictPanel(QWidget):
    """Shows the latest verdict; updated by :meth:`show_verdict` on the GUI thread."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tally = VerdictTally()
        self.banner = QLabel("NOT TAUGHT YET")
        self.banner.setAlignment(Qt.AlignmentFlag.AlignCenter)
        font = QFont()
        font.setPointSize(BANNER_POINTS)
        font.setBold(True)
        self.banner.setFont(font)
        self.banner.setMinimumHeight(90)
        self.banner.setFrameShape(QFrame.Shape.StyledPanel)
        # The banner takes the width it is given and shrinks its font to fit (never clips, never widens
        # the window); see _fit_banner.
        self.banner.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.detail = QLabel("Label a few parts of each class, then press Adapt (Ctrl+Return).")
        self.detail.setWordWrap(True)
        self.detail.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.detail.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.bars_box = QWidget()
        self.bars_layout = QGridLayout(self.bars_box)
        self.bars: dict[str, QProgressBar] = {}
        self.counts = QLabel()
        self.recent = QListWidget()
        self.recent.setIconSize(QPixmap(48, 48).size())
        layout = QVBoxLayout(self)
        layout.addWidget(self.banner)
        layout.addWidget(self.detail)
        layout.addWidget(self.bars_box)
        layout.addWidget(self.counts)
        layout.addWidget(QLabel("Recent parts"))
        layout.addWidget(self.recent, 1)
        self._set_banner("NOT TAUGHT YET", QColor(90, 90, 90))
        self._update_counts()

    def _set_banner(self, text: str, colour: QColor) -> None:
        self.banner.setText(text)
        self.banner.setStyleSheet(f"background-color: {colour.name()}; color: white; border-radius: 6px;")
        self._fit_banner()

    def _fit_banner(self) -> None:
        """The largest font (up to BANNER_POINTS) at which the banner's text fits its width."""
        font = self.banner.font()
        room = max(40, self.banner.contentsRect().width() - 16)
        for points in range(BANNER_POINTS, 9, -2):
            font.setPointSize(points)
            if QFontMetrics(font).horizontalAdvance(self.banner.text()) <= room:
                break
        self.banner.setFont(font)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit_banner()

    def set_classes(self, class_names: list[str]) -> None:
        """Rebuild one confidence bar per class (after a new model is adapted)."""
        for bar in self.bars.values():
            bar.deleteLater()
        while self.bars_layout.count():
            item = self.bars_layout.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.bars = {}
        for i, name in enumerate(class_names):
            bar = QProgressBar()
            bar.setRange(0, 100)
            bar.setFormat("%p%")
            row, col = i // 2, 2 * (i % 2)  # two columns: six classes take three rows, not six
            self.bars_layout.addWidget(QLabel(name), row, col)
            self.bars_layout.addWidget(bar, row, col + 1)
            self.bars[name] = bar

    def show_waiting(self, message: str) -> None:
        self._set_banner("NOT TAUGHT YET", QColor(90, 90, 90))
        self.detail.setText(message)

    def show_ready(self, message: str) -> None:
        """A model is live and no part has been judged by it yet (no verdict of an earlier model stays up)."""
        self._set_banner(READY_TEXT, QColor(90, 90, 90))
        self.detail.setText(message)

    def show_verdict(self, verdict: Verdict, crop: np.ndarray | None = None) -> None:
        self.tally.add(verdict)
        text, colour = verdict_look(verdict)
        self._set_banner(text, colour)
        detail = f"Part {verdict.part_id}: {verdict.class_name}"
        if len(verdict.class_names) > 1:  # a classifier spoke (not OK examples only)
            detail += f"  ({verdict.confidence:.0%} confident)"
        if verdict.anomaly is not None:
            detail += f"  anomaly {verdict.anomaly.ratio:.1f}x the OK limit"
        if verdict.unknown_defect:
            detail += "  (press N to make it a new defect class)"
        self.detail.setText(detail)
        for name, p in zip(verdict.class_names, verdict.probabilities, strict=True):
            if name in self.bars:
                self.bars[name].setValue(round(100 * p))
        item = QListWidgetItem(f"#{verdict.part_id}  {text}  {verdict.class_name} {verdict.confidence:.0%}")
        item.setForeground(colour)
        if crop is not None:
            small = cv2.resize(crop, (48, 48), interpolation=cv2.INTER_AREA)  # off Qt's painter, GIL released
            item.setIcon(QIcon(QPixmap.fromImage(to_qimage(small))))
        self.recent.insertItem(0, item)
        while self.recent.count() > RECENT_LIMIT:
            self.recent.takeItem(self.recent.count() - 1)
        self._update_counts()

    def reset_counts(self) -> None:
        self.tally.reset()
        self.recent.clear()
        self._update_counts()

    def _update_counts(self) -> None:
        d = self.tally.decisions
        self.counts.setText(
            f"Parts: {self.tally.total}    OK: {d[Decision.OK]}    Reject: {d[Decision.REJECT]}    "
            f"Check: {d[Decision.CHECK]}    Reject rate: {self.tally.reject_rate():.1%}"
        )
