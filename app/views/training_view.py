"""Training at the workstation: meta-training (episodes) or pre-training (supervised, every class at once) on a
chosen data folder, with a learner and backbone; watch loss and accuracy per step (the run is a separate
process), cancel, and make the result the workspace's base model."""

from __future__ import annotations

import time
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.views.message_bar import MessageBar
from core.config import TrainConfig
from core.meta import list_learners
from core.models import list_models
from core.training.progress import TrainProgress


class TrainingView(QWidget):
    """Emits ``start_requested(config, data, out, objective)``, ``cancel_requested()`` and
    ``use_requested(path)``; ``objective`` is ``"episodic"`` (meta-training) or ``"supervised"`` (pre-training)."""

    start_requested = Signal(object, str, str, str)
    cancel_requested = Signal()
    use_requested = Signal(str)

    def __init__(self, models_dir: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._models_dir = models_dir
        self.messages = MessageBar()
        self.data = QLineEdit()
        self.data.setPlaceholderText("folder or .zip with one sub-folder per class")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.objective = QComboBox()
        self.objective.addItem("Meta-training (episodes)", "episodic")
        self.objective.addItem("Pre-training (supervised)", "supervised")
        self.objective.setAccessibleName("Training objective")
        self.algo = QComboBox()
        self.algo.addItems(list_learners())
        self.algo.setCurrentText("protonet")
        self.backbone = QComboBox()
        self.backbone.addItems(list_models())
        self.backbone.setCurrentText("conv4")
        self.ways, self.shots, self.iterations = QSpinBox(), QSpinBox(), QSpinBox()
        self.image_size, self.val_every = QSpinBox(), QSpinBox()
        for box, lo, hi, value in ((self.ways, 2, 20, 5), (self.shots, 1, 20, 1), (self.iterations, 1, 100000, 500),
                                   (self.image_size, 16, 224, 28), (self.val_every, 0, 100000, 50)):  # fmt: skip
            box.setRange(lo, hi)
            box.setValue(value)
        self.channels = QComboBox()
        self.channels.addItems(["1 (grey)", "3 (colour)"])
        self.start_button = QPushButton("Start training")
        self.cancel_button = QPushButton("Cancel")
        self.use_button = QPushButton("Use as base model")
        self.cancel_button.setEnabled(False)
        self.use_button.setEnabled(False)
        self.start_button.clicked.connect(self._start)
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.use_button.clicked.connect(lambda: self.use_requested.emit(self._result or ""))
        self.status = QLabel("No training run yet. The run uses its own process; the line keeps running.")
        self.status.setWordWrap(True)
        self.loss_plot = pg.PlotWidget(title="Training loss per step")
        self.acc_plot = pg.PlotWidget(title="Training accuracy (validation: dots)")
        self.acc_plot.setYRange(0, 1)
        for plot in (self.loss_plot, self.acc_plot):
            plot.setMinimumHeight(160)  # readable; the page scrolls when the window is small
        self.loss_curve = self.loss_plot.plot([], [], pen=pg.mkPen("#0969da", width=2))
        self.acc_curve = self.acc_plot.plot([], [], pen=pg.mkPen("#2ea043", width=2))
        self.val_curve = self.acc_plot.plot([], [], pen=None, symbol="o", symbolBrush="#bf8700")
        row = QHBoxLayout()
        row.addWidget(self.data, 1)
        row.addWidget(browse)
        form = QFormLayout()
        form.addRow("Data", row)
        form.addRow("Objective", self.objective)
        form.addRow("Learner", self.algo)
        form.addRow("Backbone", self.backbone)
        form.addRow("Ways / shots", self._pair(self.ways, self.shots))
        form.addRow("Iterations", self.iterations)
        form.addRow("Validate every (0: never)", self.val_every)
        form.addRow("Image size / channels", self._pair(self.image_size, self.channels))
        buttons = QHBoxLayout()
        for b in (self.start_button, self.cancel_button, self.use_button):
            buttons.addWidget(b)
        layout = QVBoxLayout(self)
        layout.addWidget(self.messages)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(self.loss_plot, 1)
        layout.addWidget(self.acc_plot, 1)
        self._records: list[TrainProgress] = []
        self._result: str | None = None

    @staticmethod
    def _pair(a: QWidget, b: QWidget) -> QWidget:
        box = QWidget()
        layout = QHBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(a)
        layout.addWidget(b)
        return box

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Training data: one sub-folder per class")
        if folder:
            self.data.setText(folder)

    def config(self) -> TrainConfig:
        """The run the form describes (raises ValueError naming the bad field)."""
        return TrainConfig.from_dict({
            "algo": self.algo.currentText(), "backbone": self.backbone.currentText(), "ways": self.ways.value(),
            "shots": self.shots.value(), "queries": 5, "iterations": self.iterations.value(),
            "image_size": self.image_size.value(), "channels": 1 if self.channels.currentIndex() == 0 else 3,
            "val_every": self.val_every.value(), "val_episodes": 20,
            "checkpoint_every": 0, "device": "auto", "width": 32,
        })  # fmt: skip

    def _start(self) -> None:
        data = self.data.text().strip()
        if not data:
            self.messages.show_message("Choose the training data first.", "warning")
            return
        try:
            config = self.config()
        except ValueError as exc:
            self.messages.show_message(f"These settings cannot be trained: {exc}")
            return
        out = self._models_dir / f"trained-{time.strftime('%Y%m%d-%H%M%S')}.pt"
        self.start_requested.emit(config, data, str(out), self.objective.currentData())

    def started(self, iterations: int) -> None:
        self._records.clear()
        self._result = None
        for curve in (self.loss_curve, self.acc_curve, self.val_curve):
            curve.setData([], [])
        what = self.objective.currentText().split(" (")[0]
        self.status.setText(f"{what}: starting a separate process ({iterations} steps)…")
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.use_button.setEnabled(False)

    def add_records(self, records: list[TrainProgress]) -> None:
        self._records.extend(r for r in records if not r.cancelled)
        its = [r.iteration for r in self._records]
        self.loss_curve.setData(its, [r.meta_loss for r in self._records])
        self.acc_curve.setData(its, [r.accuracy for r in self._records])
        val = [(r.iteration, r.val_accuracy) for r in self._records if r.val_accuracy is not None]
        self.val_curve.setData([v[0] for v in val], [v[1] for v in val])
        self.status.setText(self._progress_text())

    def _progress_text(self) -> str:
        if not self._records:
            return ""
        last = self._records[-1]
        return (
            f"Iteration {last.iteration} of {last.iterations}: loss {last.meta_loss:.3f}, "
            f"accuracy {last.accuracy:.0%}, {last.tasks_per_s:.1f} tasks/s"
        )

    def finished(self, message: str, path: object) -> None:
        self.status.setText(f"{message}\n{self._progress_text()}".strip())
        self._result = str(path) if path else None
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.use_button.setEnabled(self._result is not None and Path(self._result).is_file())
        if path is None:
            self.messages.show_message(message)

    def points(self) -> int:
        return len(self._records)
