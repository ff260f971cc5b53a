"""Labelled examples as thumbnails per class: relabel by key, delete, undo (Ctrl+Z in the window)."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QKeyEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.views.common import THUMB, DigitKeysFirst, digit, thumbnail
from app.views.message_bar import MessageBar
from core.storage import StorageError, Workspace

ALL = "All classes"


class ExampleList(QListWidget):
    """Thumbnails; digit keys relabel the selection, Delete removes it."""

    relabel = Signal(list, str)  # example ids, key
    delete = Signal(list)
    holdout = Signal(list)

    def __init__(self) -> None:
        super().__init__()
        self.setViewMode(QListWidget.ViewMode.IconMode)
        self.setIconSize(QSize(THUMB, THUMB))
        self.setGridSize(QSize(THUMB + 24, THUMB + 34))
        self.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.setMovement(QListWidget.Movement.Static)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setWordWrap(True)
        self._keys = DigitKeysFirst(self)
        self.installEventFilter(self._keys)

    def selected_ids(self) -> list[int]:
        return [int(item.data(Qt.ItemDataRole.UserRole)) for item in self.selectedItems()]

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = digit(event)
        if key is not None and self.selected_ids():
            self.relabel.emit(self.selected_ids(), key)
        elif event.key() == Qt.Key.Key_Delete and self.selected_ids():
            self.delete.emit(self.selected_ids())
        elif event.key() == Qt.Key.Key_H and self.selected_ids():
            self.holdout.emit(self.selected_ids())
        else:
            super().keyPressEvent(event)


class ExamplesView(QWidget):
    """Shows the workspace's live examples; emits relabel/delete requests (ids, class name)."""

    relabel_requested = Signal(list, str)
    delete_requested = Signal(list)
    split_requested = Signal(list, str)  # example ids, "train" or "holdout"
    files_dropped = Signal(list, str)  # image paths, class name

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.messages = MessageBar()
        self.filter = QComboBox()
        self.filter.setAccessibleName("Show examples of class")
        self.filter.currentTextChanged.connect(lambda _: self._fill())
        self.list = ExampleList()
        self.list.relabel.connect(self._relabel_by_key)
        self.list.delete.connect(self.delete_requested)
        self.list.holdout.connect(self._toggle_holdout)
        self.help = QLabel(
            "Select thumbnails, then press a class key (1-9) to relabel, Delete to remove (Ctrl+Z undoes), H to move to the hold-out set (scored after adapting, never taught) or back. Drop image files here to add them to the class shown."
        )
        self.help.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(QLabel("Show"))
        top.addWidget(self.filter, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.messages)
        layout.addLayout(top)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.help)
        self.setAcceptDrops(True)
        self._ws: Workspace | None = None
        self._icons: dict[str, object] = {}
        self._keys: dict[str, str] = {}

    def refresh(self, ws: Workspace) -> None:
        self._ws = ws
        classes = ws.classes.list()
        self._keys = {c.shortcut: c.name for c in classes if c.shortcut}
        counts = ws.examples.counts()
        current = self.filter.currentData()
        self.filter.blockSignals(True)
        self.filter.clear()
        self.filter.addItem(f"{ALL} ({sum(counts.values())})", None)
        for c in classes:
            self.filter.addItem(f"[{c.shortcut or ' '}] {c.name} ({counts.get(c.name, 0)})", c.name)
        index = self.filter.findData(current)
        self.filter.setCurrentIndex(max(0, index))
        self.filter.blockSignals(False)
        self._fill()

    def _fill(self) -> None:
        ws = self._ws
        if ws is None:
            return
        name = self.filter.currentData()
        self.list.clear()
        order = {c.name: i for i, c in enumerate(ws.classes.list())}
        examples = sorted(ws.examples.list(name), key=lambda e: (order.get(e.class_name, 99), e.id))
        for ex in examples:
            icon = self._icons.get(ex.image_hash)
            if icon is None:
                try:
                    icon = thumbnail(ws.examples.load_image(ex))
                except (StorageError, ValueError) as exc:
                    self.messages.show_message(f"Example {ex.id} cannot be shown: {exc}")
                    continue
                self._icons[ex.image_hash] = icon
            held = " hold-out" if ex.split == "holdout" else ""
            item = QListWidgetItem(icon, f"{ex.class_name}\n#{ex.id}{held}")  # type: ignore[arg-type]
            item.setData(Qt.ItemDataRole.UserRole, ex.id)
            item.setToolTip(f"Example {ex.id}: {ex.class_name} ({ex.split})")
            self.list.addItem(item)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        self.drop_files(paths)
        event.acceptProposedAction()

    def drop_files(self, paths: list[str]) -> None:
        """Image files dropped here become examples of the class shown (choose one in "Show" first)."""
        name = self.filter.currentData()
        if name is None:
            self.messages.show_message(
                "Choose the class of the dropped images in “Show” first, then drop them.", "warning"
            )
            return
        if paths:
            self.files_dropped.emit(paths, name)

    def _toggle_holdout(self, ids: list[int]) -> None:
        ws = self._ws
        if ws is None:
            return
        splits = {ws.examples.get(i).split for i in ids}
        self.split_requested.emit(ids, "train" if splits == {"holdout"} else "holdout")

    def _relabel_by_key(self, ids: list[int], key: str) -> None:
        name = self._keys.get(key)
        if name is None:
            self.messages.show_message(f"No class has the key {key}.", "warning")
            return
        self.relabel_requested.emit(ids, name)
