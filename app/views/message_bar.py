"""Messages that stay where they belong: one bar per view, each message until the person dismisses it."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QToolButton, QVBoxLayout, QWidget

from core.redact import redact_source

LEVEL_STYLE = {
    "error": "background: #cf222e; color: white;",
    "warning": "background: #bf8700; color: white;",
    "info": "background: #0969da; color: white;",
}


class _Row(QWidget):
    dismissed = Signal(object)

    def __init__(self, text: str, level: str) -> None:
        super().__init__()
        self.text = text
        self.level = level
        self.repeats = 1
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setStyleSheet(f"{LEVEL_STYLE.get(level, LEVEL_STYLE['error'])} border-radius: 4px;")
        self.label = QLabel(text)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.close_button = QToolButton()
        self.close_button.setText("✕")
        self.close_button.setToolTip("Dismiss this message")
        self.close_button.setAccessibleName("Dismiss message")
        self.close_button.setStyleSheet("color: white; border: none; font-weight: bold;")
        self.close_button.clicked.connect(lambda: self.dismissed.emit(self))
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 4, 4)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.close_button, 0, Qt.AlignmentFlag.AlignTop)

    def repeat(self) -> None:
        self.repeats += 1
        self.label.setText(f"{self.text}  (×{self.repeats})")


class MessageBar(QWidget):
    """Stacked messages for one view; a repeated message counts up instead of stacking again."""

    MAX_ROWS = 5

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(2)
        self._rows: list[_Row] = []
        self.hide()

    def show_message(self, text: str, level: str = "error") -> None:
        text = redact_source(text)  # every message passes here: none shows a camera password
        for row in self._rows:
            if row.text == text:
                row.repeat()
                return
        row = _Row(text, level)
        row.dismissed.connect(self._dismiss)
        self._rows.append(row)
        self._layout.addWidget(row)
        while len(self._rows) > self.MAX_ROWS:  # the oldest goes first; the newest matter most
            self._dismiss(self._rows[0])
        self.show()

    def texts(self) -> list[str]:
        return [row.text for row in self._rows]

    def dismiss_all(self) -> None:
        for row in list(self._rows):
            self._dismiss(row)

    def _dismiss(self, row: _Row) -> None:
        if row in self._rows:
            self._rows.remove(row)
            row.hide()
            row.deleteLater()
        self.setVisible(bool(self._rows))
