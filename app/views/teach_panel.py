"""Teaching: label the newest part with a class (buttons or keys 1-9), undo/redo, and start adaptation."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.views.frame_view import to_qimage
from core.inference.pipeline import PartResult
from core.storage import ClassRecord

THUMB = 160


class AddClassDialog(QDialog):
    """Ask for a new class name and whether it is a defect."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Add class")
        self.name = QLineEdit()
        self.name.setPlaceholderText("e.g. scratch")
        self.is_defect = QCheckBox("Parts of this class are rejected")
        self.is_defect.setChecked(True)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow("Name", self.name)
        form.addRow("", self.is_defect)
        form.addRow(buttons)


class TeachPanel(QWidget):
    """Emits what the inspector asks for; the main window forwards it to the session."""

    label_requested = Signal(str)
    undo_requested = Signal()
    redo_requested = Signal()
    adapt_requested = Signal()
    auto_teach_requested = Signal()
    add_class_requested = Signal(str, bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.thumb = QLabel("No part yet")
        self.thumb.setFixedSize(THUMB, THUMB)
        self.thumb.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.thumb.setStyleSheet("background: #202024; color: #ccc; border-radius: 4px;")
        self.thumb_caption = QLabel("")
        self.hint = QLabel()
        self.hint.setWordWrap(True)
        self.class_box = QWidget()
        self.class_grid = QGridLayout(self.class_box)
        self.class_buttons: dict[str, QPushButton] = {}
        self.undo_button = QPushButton("Undo (Ctrl+Z)")
        self.redo_button = QPushButton("Redo (Ctrl+Shift+Z)")
        self.adapt_button = QPushButton("Adapt (Ctrl+Return)")
        self.adapt_button.setStyleSheet("font-weight: bold; padding: 8px;")
        self.auto_button = QPushButton("Teach from demo line")
        self.auto_button.setToolTip(
            "Synthetic line only: label 5 passing parts of each class from the line's truth"
        )
        self.add_class_button = QPushButton("Add class…")
        self.undo_button.clicked.connect(self.undo_requested)
        self.redo_button.clicked.connect(self.redo_requested)
        self.adapt_button.clicked.connect(self.adapt_requested)
        self.auto_button.clicked.connect(self.auto_teach_requested)
        self.add_class_button.clicked.connect(self._ask_class)
        edits = QHBoxLayout()
        edits.addWidget(self.undo_button)
        edits.addWidget(self.redo_button)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("<b>Newest part</b>"))
        layout.addWidget(self.thumb, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(self.thumb_caption)
        layout.addWidget(QLabel("<b>Label it as</b> (press the key)"))
        layout.addWidget(self.class_box)
        layout.addLayout(edits)
        layout.addWidget(self.add_class_button)
        layout.addWidget(self.auto_button)
        layout.addWidget(self.adapt_button)
        layout.addWidget(self.hint)
        layout.addStretch(1)

    def set_classes(self, classes: list[ClassRecord], counts: dict[str, int]) -> None:
        for button in self.class_buttons.values():
            button.deleteLater()
        self.class_buttons = {}
        for i, cls in enumerate(classes):
            key = f"[{cls.shortcut}] " if cls.shortcut else ""
            button = QPushButton(f"{key}{cls.name}  ({counts.get(cls.name, 0)})")
            button.setStyleSheet(f"border-left: 6px solid {cls.colour}; padding: 6px; text-align: left;")
            button.setToolTip("defect: rejected" if cls.is_defect else "good part")
            button.clicked.connect(lambda _=False, name=cls.name: self.label_requested.emit(name))
            self.class_grid.addWidget(button, i // 2, i % 2)
            self.class_buttons[cls.name] = button
        labelled = sum(1 for c in classes if counts.get(c.name, 0) > 0)
        if labelled < 2:
            self.hint.setText(
                "Label at least one part of two or more classes (5 each is better), then Adapt."
            )
        else:
            self.hint.setText(
                f"{sum(counts.values())} examples in {labelled} classes. Press Adapt to teach the model."
            )

    def show_part(self, result: PartResult) -> None:
        """The newest part, with its anomaly map drawn over it when it has one (the evidence of an unknown
        defect stays here until the next part; on the live view it follows the part for two frames only)."""
        image = result.overlay if result.overlay is not None else result.crop.image
        pix = QPixmap.fromImage(to_qimage(image))
        self.thumb.setPixmap(pix.scaled(THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio))
        verdict = result.verdict
        text = f"Part {result.crop.part_id}"
        if verdict is not None:
            text += f": {verdict.class_name} ({verdict.confidence:.0%})"
            if verdict.anomaly is not None and verdict.anomaly.anomalous:
                text += " - the glow marks what differs from OK"
        self.thumb_caption.setText(text)

    def set_adapting(self, busy: bool) -> None:
        self.adapt_button.setEnabled(not busy)
        self.adapt_button.setText("Adapting…" if busy else "Adapt (Ctrl+Return)")

    def _ask_class(self) -> None:
        dialog = AddClassDialog(self)
        if dialog.exec() == QDialog.DialogCode.Accepted and dialog.name.text().strip():
            self.add_class_requested.emit(dialog.name.text().strip(), dialog.is_defect.isChecked())
