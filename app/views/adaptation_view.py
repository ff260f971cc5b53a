"""After each adaptation: per-class accuracy on the labelled examples and the examples the model gets wrong
(hold-out examples, or else each training example judged leave-one-out)."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.views.common import thumbnail
from core.station.summary import AdaptSummary
from core.storage import StorageError, Workspace

NO_SUMMARY = (
    "No check of the live model yet. After each adaptation, the new model is scored here on the labelled "
    "examples: on the hold-out ones when there are any (press H in Examples), else each example by a model "
    "adapted without it."
)


class AdaptationView(QWidget):
    """Shows one :class:`~core.station.summary.AdaptSummary`."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.header = QLabel(NO_SUMMARY)
        self.header.setWordWrap(True)
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(("Class", "Examples", "Right", "Accuracy"))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.wrong = QListWidget()
        self.wrong.setIconSize(QSize(56, 56))
        layout = QVBoxLayout(self)
        layout.addWidget(self.header)
        layout.addWidget(self.table, 1)
        layout.addWidget(QLabel("<b>Examples it gets wrong</b> (relabel or delete them in Examples)"))
        layout.addWidget(self.wrong, 1)
        self.summary: AdaptSummary | None = None

    def show_summary(self, summary: AdaptSummary | None, ws: Workspace) -> None:
        """Show ``summary`` (None: the live model has no check; back to the empty view)."""
        self.summary = summary
        if summary is None:
            self.header.setText(NO_SUMMARY)
            self.table.setRowCount(0)
            self.wrong.clear()
            return
        where = (
            "hold-out examples"
            if summary.split == "holdout"
            else "training examples, each judged by a model adapted without it"
        )
        acc = summary.accuracy
        flagged = len(summary.flagged)
        self.header.setText(
            f"<b>Model v{summary.version_id}</b> on {summary.examples} {where}: "
            + (f"<b>{acc:.0%}</b> right." if acc is not None else "nothing to score.")
            + (f" {flagged} training example(s) flagged in Examples." if flagged else "")
            + (f" {summary.unchecked} not judged (alone in their class)." if summary.unchecked else "")
        )
        self.table.setRowCount(len(summary.classes))
        for row, c in enumerate(summary.classes):
            for col, text in enumerate((c.name, str(c.examples), str(c.correct), f"{c.accuracy:.0%}")):
                item = QTableWidgetItem(text)
                if col and c.correct < c.examples:
                    item.setForeground(Qt.GlobalColor.red)
                self.table.setItem(row, col, item)
        self.table.resizeColumnsToContents()
        self.wrong.clear()
        for w in summary.wrong:
            item = QListWidgetItem(
                f"#{w.example_id}: labelled {w.label}, model says {w.predicted} ({w.confidence:.0%})"
            )
            try:
                item.setIcon(thumbnail(ws.examples.load_image(w.example_id), 56))
            except (StorageError, ValueError) as exc:
                item.setText(f"{item.text()} (image unreadable: {exc})")
            self.wrong.addItem(item)
        if not summary.wrong:
            self.wrong.addItem("None.")
