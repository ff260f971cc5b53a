"""The inspection log: filter by verdict, class and time; a part's detail; an operator's correction."""

from __future__ import annotations

import datetime as dt
import time

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.views.frame_view import to_qimage
from app.views.message_bar import MessageBar
from core.station.history import find_inspections
from core.storage import StorageError, Workspace
from core.storage.records import Inspection

COLUMNS = ("Time", "Part", "Verdict", "Class", "Confidence", "Model", "Corrected to")
PERIODS = (("Last hour", 3600.0), ("Last 8 hours", 8 * 3600.0), ("Last 24 hours", 86400.0), ("All", None))
VERDICTS = ("Any verdict", "OK", "REJECT", "CHECK")


class HistoryView(QWidget):
    """Emits ``override_requested(inspection id, class name)`` when the operator corrects a verdict."""

    override_requested = Signal(int, str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.messages = MessageBar()
        self.verdict = QComboBox()
        self.verdict.addItems(list(VERDICTS))
        self.verdict.setAccessibleName("Verdict filter")
        self.predicted = QComboBox()
        self.predicted.setAccessibleName("Class filter")
        self.period = QComboBox()
        self.period.setAccessibleName("Time filter")
        for label, seconds in PERIODS:
            self.period.addItem(label, seconds)
        for box in (self.verdict, self.predicted, self.period):
            box.currentIndexChanged.connect(lambda _: self.reload())
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.itemSelectionChanged.connect(self._show_detail)
        self.image = QLabel("No part selected")
        self.image.setFixedSize(128, 128)
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image.setStyleSheet("background: #202024; color: #ccc;")
        self.detail = QLabel()
        self.detail.setWordWrap(True)
        self.detail.setFixedWidth(150)
        self.correct_to = QComboBox()
        self.correct_to.setAccessibleName("Correct the class to")
        self.correct_button = QPushButton("Correct && keep as example")
        self.correct_button.clicked.connect(self._correct)
        self.count = QLabel()
        filters = QHBoxLayout()
        for widget in (self.verdict, self.predicted, self.period):
            filters.addWidget(widget)
        filters.addWidget(self.count, 1)
        correction = QHBoxLayout()
        correction.addWidget(QLabel("Correct to"))
        correction.addWidget(self.correct_to, 1)
        correction.addWidget(self.correct_button)
        side = QVBoxLayout()
        side.addWidget(self.image)
        side.addWidget(self.detail, 1)
        body = QHBoxLayout()
        body.addWidget(self.table, 1)
        body.addLayout(side, 0)
        layout = QVBoxLayout(self)
        layout.addWidget(self.messages)
        layout.addLayout(filters)
        layout.addLayout(body, 1)
        layout.addLayout(correction)
        self._ws: Workspace | None = None
        self._rows: list[Inspection] = []

    def refresh(self, ws: Workspace) -> None:
        """Reload the class lists and the table."""
        self.set_classes(ws)
        self.reload()

    def set_classes(self, ws: Workspace) -> None:
        """Update the class lists only (cheap; the table is re-read by :meth:`reload`)."""
        self._ws = ws
        names = [c.name for c in ws.classes.list()]
        current = self.predicted.currentText()
        self.predicted.blockSignals(True)
        self.predicted.clear()
        self.predicted.addItems(["Any class", *names])
        self.predicted.setCurrentIndex(max(0, self.predicted.findText(current)))
        self.predicted.blockSignals(False)
        self.correct_to.clear()
        self.correct_to.addItems(names)

    def reload(self) -> None:
        ws = self._ws
        if ws is None:
            return
        seconds = self.period.currentData()
        verdict = self.verdict.currentText() if self.verdict.currentIndex() > 0 else None
        predicted = self.predicted.currentText() if self.predicted.currentIndex() > 0 else None
        self._rows = find_inspections(
            ws, verdict=verdict, predicted=predicted, since=None if seconds is None else time.time() - seconds
        )
        self.table.setRowCount(len(self._rows))
        for row, r in enumerate(self._rows):
            confidence = max(r.probabilities) if r.probabilities else 0.0
            cells = (
                dt.datetime.fromtimestamp(r.time).strftime("%H:%M:%S"), str(r.part_id), r.verdict, r.predicted,
                f"{confidence:.0%}", f"v{r.model_id}" if r.model_id else "—", r.override or "",
            )  # fmt: skip
            for col, text in enumerate(cells):
                self.table.setItem(row, col, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        self.count.setText(
            f"{len(self._rows)} parts shown" + (" (newest 500)" if len(self._rows) == 500 else "")
        )

    def selected(self) -> Inspection | None:
        rows = self.table.selectionModel().selectedRows()
        return self._rows[rows[0].row()] if rows else None

    def _show_detail(self) -> None:
        r = self.selected()
        if r is None or self._ws is None:
            return
        if r.image_hash:
            try:
                pix = QPixmap.fromImage(to_qimage(self._ws.images.load(r.image_hash)))
                self.image.setPixmap(pix.scaled(128, 128, Qt.AspectRatioMode.KeepAspectRatio))
            except (StorageError, ValueError) as exc:
                self.image.setText(f"image unreadable: {exc}")
        else:
            self.image.setText("no image kept\n(OK parts)")
        version = self._ws.models.get(r.model_id) if r.model_id else None
        names = version.class_names if version else ()
        probs = ", ".join(
            f"{n} {p:.0%}" for n, p in sorted(zip(names, r.probabilities, strict=False), key=lambda x: -x[1])
        )
        self.detail.setText(
            f"<b>Part {r.part_id}</b>: {r.verdict}, {r.predicted}<br>"
            f"model v{r.model_id}<br>{probs}"
            + (f"<br>corrected to <b>{r.override}</b>" if r.override else "")
        )
        self.correct_to.setCurrentText(r.override or r.predicted)

    def _correct(self) -> None:
        r = self.selected()
        if r is None:
            self.messages.show_message("Select a part first.", "warning")
            return
        self.override_requested.emit(r.id, self.correct_to.currentText())
