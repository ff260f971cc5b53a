"""The inspection log: filter by verdict, class and time; a part's detail with its evidence (the model version
that judged it, the nearest labelled examples); an operator's correction."""

from __future__ import annotations

import datetime as dt
import time

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.views.common import thumbnail
from app.views.frame_view import to_qimage
from app.views.message_bar import MessageBar
from core.station.evidence import PartEvidence
from core.station.history import find_inspections
from core.storage import StorageError, Workspace
from core.storage.records import Inspection

COLUMNS = ("Time", "Part", "Verdict", "Class", "Confidence", "Model", "Corrected to")
PERIODS = (("Last hour", 3600.0), ("Last 8 hours", 8 * 3600.0), ("Last 24 hours", 86400.0), ("All", None))
VERDICTS = ("Any verdict", "OK", "REJECT", "CHECK")


class HistoryView(QWidget):
    """Emits ``override_requested(inspection id, class name)`` when the operator corrects a verdict and
    ``evidence_requested(Inspection)`` when a part is selected (answer with :meth:`show_evidence`)."""

    override_requested = Signal(int, str)
    evidence_requested = Signal(object)

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
        self.evidence_title = QLabel()
        self.evidence_title.setWordWrap(True)
        self.evidence_title.setFixedWidth(150)
        self.evidence = QListWidget()
        self.evidence.setAccessibleName("Nearest labelled examples")
        self.evidence.setIconSize(QSize(40, 40))
        self.evidence.setFixedWidth(150)
        self.evidence.setFocusPolicy(Qt.FocusPolicy.NoFocus)
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
        side.addWidget(self.detail)
        side.addWidget(self.evidence_title)
        side.addWidget(self.evidence, 1)
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
        before = self.selected()
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
        self._keep_selection(before)
        self.count.setText(
            f"{len(self._rows)} parts shown" + (" (newest 500)" if len(self._rows) == 500 else "")
        )

    def _keep_selection(self, before: Inspection | None) -> None:
        """After a reload: the part selected before stays selected (its row may have moved as parts arrived,
        its detail is not asked for again); if it is no longer listed, the detail is cleared."""
        ids = [r.id for r in self._rows]
        self.table.blockSignals(True)
        try:
            if before is not None and before.id in ids:
                self.table.selectRow(ids.index(before.id))
            else:
                self.table.clearSelection()
        finally:
            self.table.blockSignals(False)
        if before is not None and before.id not in ids:
            self.image.setText("No part selected")
            self.detail.clear()
            self.evidence.clear()
            self.evidence_title.clear()

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
        self.evidence.clear()
        self.evidence_title.setText("Finding the nearest labelled examples…" if r.image_hash else "")
        if r.image_hash:
            self.evidence_requested.emit(r)

    def show_evidence(self, evidence: PartEvidence) -> None:
        """Show a part's evidence (ignored when another part is selected by now)."""
        r = self.selected()
        ws = self._ws
        if r is None or ws is None or r.id != evidence.inspection_id:
            return
        self.evidence.clear()
        v = evidence.version
        judged = (
            f"Judged by <b>model v{v.id}</b> ({dt.datetime.fromtimestamp(v.created_at):%H:%M})"
            if v
            else "Judged before any model version"
        )
        if not evidence.neighbours:
            self.evidence_title.setText(f"{judged}. {evidence.note}")
            return
        self.evidence_title.setText(f"{judged}. Nearest of its {evidence.compared} labelled examples:")
        for n in evidence.neighbours:
            item = QListWidgetItem(f"{n.class_name} #{n.example_id}\n{n.distance:.2f}")
            item.setToolTip(
                f"Example {n.example_id} ({n.class_name}): distance {n.distance:.3f} from this part in the "
                "model's embedding (0: the same picture, about 1: unrelated)"
            )
            try:
                item.setIcon(thumbnail(ws.images.load(n.image_hash), 48))
            except (StorageError, ValueError) as exc:
                item.setText(f"{item.text()}\n(image unreadable: {exc})")
            self.evidence.addItem(item)

    def _correct(self) -> None:
        r = self.selected()
        if r is None:
            self.messages.show_message("Select a part first.", "warning")
            return
        self.override_requested.emit(r.id, self.correct_to.currentText())
