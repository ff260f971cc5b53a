"""Labelled examples as thumbnails per class: relabel by key, delete, undo (Ctrl+Z in the window).

After each adaptation the examples whose leave-one-out prediction disagrees with their label are flagged
(:attr:`core.station.summary.AdaptSummary.flagged`): a mark, an orange tile and a tooltip naming the class
the model adapted without them predicts, until they are relabelled or deleted. The check is kept with its model
version, so the flags of the live version come back after a restart (and change with the version made live).
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QDragEnterEvent, QDropEvent, QKeyEvent
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
from core.station.summary import AdaptSummary, WrongExample
from core.storage import StorageError, Workspace

ALL = "All classes"
FLAGGED = "\x00flagged"  # filter entry: the examples the last check flagged
FLAG_MARK = "\u26a0 "
FLAG_BRUSH = QBrush(QColor("#ffd8a8"))


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
        self.flag_note = QLabel()
        self.flag_note.setWordWrap(True)
        self.flag_note.setStyleSheet("background: #ffd8a8; color: #402000; padding: 4px;")
        self.flag_note.hide()
        top = QHBoxLayout()
        top.addWidget(QLabel("Show"))
        top.addWidget(self.filter, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.messages)
        layout.addLayout(top)
        layout.addWidget(self.flag_note)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.help)
        self.setAcceptDrops(True)
        self._ws: Workspace | None = None
        self._icons: dict[str, object] = {}
        self._keys: dict[str, str] = {}
        self._flags: dict[int, WrongExample] = {}

    def set_flags(self, summary: AdaptSummary | None) -> None:
        """Flag the examples ``summary`` found suspicious (replacing the last check's flags; None: no flags)."""
        self._flags = {w.example_id: w for w in summary.flagged} if summary is not None else {}
        if self._ws is not None:
            self.refresh(self._ws)

    def flag_of(self, example_id: int, class_name: str) -> WrongExample | None:
        """The last check's flag on this example, unless it has been relabelled since."""
        flag = self._flags.get(example_id)
        return flag if flag is not None and flag.label == class_name else None

    def flagged_ids(self) -> list[int]:
        """Ids of the examples shown flagged now (in the workspace, label unchanged since the check)."""
        ws = self._ws
        if ws is None:
            return []
        return [ex.id for ex in ws.examples.list() if self.flag_of(ex.id, ex.class_name) is not None]

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
        flagged = len(self.flagged_ids())
        if flagged:
            self.filter.addItem(f"{FLAG_MARK}Flagged by the last check ({flagged})", FLAGGED)
        self.flag_note.setVisible(bool(flagged))
        self.flag_note.setText(
            f"{FLAG_MARK}{flagged} example{'s' if flagged != 1 else ''} may be mislabelled: a model adapted "
            "without each one calls it another class (hover a marked tile to see which). Relabel (1-9) or "
            "delete them, then adapt again."
        )
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
        shown = ws.examples.list(None if name == FLAGGED else name)
        if name == FLAGGED:
            shown = [ex for ex in shown if self.flag_of(ex.id, ex.class_name) is not None]
        examples = sorted(shown, key=lambda e: (order.get(e.class_name, 99), e.id))
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
            flag = self.flag_of(ex.id, ex.class_name)
            mark = FLAG_MARK if flag is not None else ""
            item = QListWidgetItem(icon, f"{mark}{ex.class_name}\n#{ex.id}{held}")  # type: ignore[arg-type]
            item.setData(Qt.ItemDataRole.UserRole, ex.id)
            tip = f"Example {ex.id}: {ex.class_name} ({ex.split})"
            if flag is not None:
                item.setBackground(FLAG_BRUSH)
                tip += (
                    f"\nFlagged: a model adapted without it predicts {flag.predicted} ({flag.confidence:.0%}). "
                    "Relabel it (1-9) or delete it if the label is wrong."
                )
            item.setToolTip(tip)
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
        if name is None or name == FLAGGED:
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
