"""Small helpers the workstation views share: thumbnails and digit keys that reach the focused list."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QIcon, QKeyEvent, QPixmap

from app.views.frame_view import to_qimage

THUMB = 72


def thumbnail(image: np.ndarray, size: int = THUMB) -> QIcon:
    pix = QPixmap.fromImage(to_qimage(image))
    return QIcon(
        pix.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
    )


class DigitKeysFirst(QObject):
    """Event filter: while the filtered widget has focus, digit and Delete keys go to it, not to the window's
    label shortcuts (1-9 label the newest part everywhere else)."""

    KEYS = frozenset({*(getattr(Qt.Key, f"Key_{d}") for d in "123456789"), Qt.Key.Key_Delete, Qt.Key.Key_H})

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if (
            event.type() == QEvent.Type.ShortcutOverride
            and isinstance(event, QKeyEvent)
            and event.key() in self.KEYS
            and not event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        ):
            event.accept()  # the key then arrives as a key press at the focused list
            return True
        return False


def digit(event: QKeyEvent) -> str | None:
    """The digit 1-9 a key press typed, or None."""
    text = event.text()
    return text if len(text) == 1 and text in "123456789" else None
