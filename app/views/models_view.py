"""Model versions: history (date, examples used, classes, parent), activate one, roll back in one key."""

from __future__ import annotations

import datetime as dt

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QFont, QKeyEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.views.message_bar import MessageBar
from core.storage import Workspace

COLUMNS = ("Version", "Live", "Created", "Examples", "Parent", "Classes")  # classes last: they stretch


class ModelsView(QWidget):
    """Lists the workspace's model versions; emits what the engineer asks for."""

    activate_requested = Signal(int)
    rollback_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.messages = MessageBar()
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.doubleClicked.connect(lambda _: self._activate_selected())
        self.activate_button = QPushButton("Make live (Enter)")
        self.rollback_button = QPushButton("Roll back (Ctrl+Backspace)")
        self.activate_button.clicked.connect(self._activate_selected)
        self.rollback_button.clicked.connect(self.rollback_requested)
        self.table.installEventFilter(self)
        self.summary = QLabel("No model version yet: label parts and press Adapt.")
        self.summary.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.activate_button)
        buttons.addWidget(self.rollback_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.messages)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        self._ids: list[int] = []

    def refresh(self, ws: Workspace) -> None:
        versions = list(reversed(ws.models.list()))  # newest first
        self._ids = [v.id for v in versions]
        self.table.setRowCount(len(versions))
        bold = QFont()
        bold.setBold(True)
        live = None
        for row, v in enumerate(versions):
            created = dt.datetime.fromtimestamp(v.created_at).strftime("%Y-%m-%d %H:%M:%S")
            cells = (
                f"v{v.id}", "● live" if v.is_active else "", created, str(len(ws.models.training_examples(v.id))),
                f"v{v.parent_id}" if v.parent_id else "—", ", ".join(v.class_names),
            )  # fmt: skip
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if v.is_active:
                    item.setFont(bold)
                self.table.setItem(row, col, item)
            if v.is_active:
                live = v
        self.table.resizeColumnsToContents()
        if live is None:
            self.summary.setText(
                "No model version is live."
                if versions
                else "No model version yet: label parts and press Adapt."
            )
        else:
            parent = f"; rolling back returns to v{live.parent_id}" if live.parent_id else ""
            self.summary.setText(f"Live: v{live.id} with {len(live.class_names)} classes{parent}.")
        self.rollback_button.setEnabled(live is not None and live.parent_id is not None)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.table and event.type() == QEvent.Type.KeyPress and isinstance(event, QKeyEvent):
            if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                self._activate_selected()
                return True
            if (
                event.key() == Qt.Key.Key_Backspace
                and event.modifiers() & Qt.KeyboardModifier.ControlModifier
            ):
                self.rollback_requested.emit()
                return True
        return super().eventFilter(watched, event)

    def selected_version(self) -> int | None:
        rows = self.table.selectionModel().selectedRows()
        return self._ids[rows[0].row()] if rows else None

    def _activate_selected(self) -> None:
        version = self.selected_version()
        if version is not None:
            self.activate_requested.emit(version)
