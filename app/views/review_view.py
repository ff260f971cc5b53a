"""The review queue: parts the model sent to CHECK, oldest first; Enter confirms, a class key relabels."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QKeyEvent
from PySide6.QtWidgets import QLabel, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from app.views.common import DigitKeysFirst, digit, thumbnail
from app.views.message_bar import MessageBar
from core.station.history import review_queue
from core.storage import StorageError, Workspace


class ReviewList(QListWidget):
    decided = Signal(int, str)  # row, key ("" = confirm the model's class)

    def __init__(self) -> None:
        super().__init__()
        self.setIconSize(QSize(64, 64))
        self._keys = DigitKeysFirst(self)
        self.installEventFilter(self._keys)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        row = self.currentRow()
        key = digit(event)
        if row >= 0 and key is not None:
            self.decided.emit(row, key)
        elif row >= 0 and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Space):
            self.decided.emit(row, "")
        else:
            super().keyPressEvent(event)


class ReviewView(QWidget):
    """Emits ``override_requested(inspection id, class name)``: the person's decision on a CHECK part."""

    override_requested = Signal(int, str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.messages = MessageBar()
        self.header = QLabel()
        self.list = ReviewList()
        self.list.decided.connect(self._decide)
        help_text = QLabel("Enter or Space: the model was right. A class key (1-9): it is that class. "
                           "Each decision becomes a labelled example.")  # fmt: skip
        help_text.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.messages)
        layout.addWidget(self.header)
        layout.addWidget(self.list, 1)
        layout.addWidget(help_text)
        self._ws: Workspace | None = None
        self._ids: list[tuple[int, str]] = []
        self._keys: dict[str, str] = {}
        self._icons: dict[
            str, QIcon
        ] = {}  # image hash -> thumbnail: parts stay in the queue across refreshes

    def refresh(self, ws: Workspace) -> None:
        self._ws = ws
        self._keys = {c.shortcut: c.name for c in ws.classes.list() if c.shortcut}
        queue = review_queue(ws)
        row = max(0, self.list.currentRow())
        self.list.clear()
        self._ids = []
        for r in queue:
            text = f"Part {r.part_id}: model says {r.predicted} ({max(r.probabilities, default=0):.0%})"
            item = QListWidgetItem(text)
            if r.image_hash:
                try:
                    icon = self._icons.get(r.image_hash)
                    if icon is None:
                        icon = self._icons[r.image_hash] = thumbnail(ws.images.load(r.image_hash), 64)
                    item.setIcon(icon)
                except (StorageError, ValueError):
                    item.setText(text + " (image unreadable)")
            self.list.addItem(item)
            self._ids.append((r.id, r.predicted))
        self.header.setText(f"<b>{len(queue)} parts to check by hand</b>" if queue else "Nothing to check.")
        if queue:
            self.list.setCurrentRow(min(row, len(queue) - 1))

    def _decide(self, row: int, key: str) -> None:
        inspection_id, predicted = self._ids[row]
        name = predicted if key == "" else self._keys.get(key)
        if name is None:
            self.messages.show_message(f"No class has the key {key}.", "warning")
            return
        self.override_requested.emit(inspection_id, name)
