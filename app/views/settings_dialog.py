"""Settings an engineer changes: camera source, compute device, confidence thresholds, adaptation steps."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QWidget,
)

from app.preferences import Preferences
from core.camera import list_sources
from core.runtime import DEVICE_CHOICES


class SettingsDialog(QDialog):
    """Edits a copy of the preferences; :meth:`preferences` returns the result (validated)."""

    def __init__(self, prefs: Preferences, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self._prefs = prefs
        self.source = QLineEdit(prefs.source)
        self.source.setToolTip("Known schemes: " + ", ".join(list_sources()))
        self.device = QComboBox()
        self.device.addItems(list(DEVICE_CHOICES))
        self.device.setCurrentText(prefs.device if prefs.device in DEVICE_CHOICES else "auto")
        self.checkpoint = QLineEdit(prefs.checkpoint)
        self.min_confidence = QDoubleSpinBox()
        self.min_confidence.setRange(0.0, 1.0)
        self.min_confidence.setSingleStep(0.05)
        self.min_confidence.setValue(prefs.min_confidence)
        self.min_margin = QDoubleSpinBox()
        self.min_margin.setRange(0.0, 1.0)
        self.min_margin.setSingleStep(0.05)
        self.min_margin.setValue(prefs.min_margin)
        self.adapt_steps = QSpinBox()
        self.adapt_steps.setRange(0, 1000)
        self.adapt_steps.setSpecialValueText("model's own")  # 0: the steps the model was tuned with
        self.adapt_steps.setValue(prefs.adapt_steps)
        self.error = QLabel()
        self.error.setStyleSheet("color: #cf222e;")
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow("Camera source", self.source)
        form.addRow(
            QLabel("e.g. synthetic:seed=1 · camera:0 · file:/path/video.mp4 · folder:/images · rtsp://…")
        )
        form.addRow("Compute device", self.device)
        form.addRow("Meta-trained model", self.checkpoint)
        form.addRow("Minimum confidence", self.min_confidence)
        form.addRow("Minimum margin", self.min_margin)
        form.addRow("Adaptation steps", self.adapt_steps)
        form.addRow(self.error)
        form.addRow(buttons)

    def preferences(self) -> Preferences:
        return replace(
            self._prefs,
            source=self.source.text().strip(),
            device=self.device.currentText(),
            checkpoint=self.checkpoint.text().strip() or "default",
            min_confidence=self.min_confidence.value(),
            min_margin=self.min_margin.value(),
            adapt_steps=self.adapt_steps.value(),
        )

    def _accept(self) -> None:
        try:
            self.preferences()
        except ValueError as exc:
            self.error.setText(str(exc))
            return
        self.accept()
