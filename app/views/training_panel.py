"""Adaptation progress: a progress bar, a cancel button and the loss curve (pyqtgraph).

Points arrive once per adaptation step (dozens a second); the curve is redrawn at most every
``REDRAW_MS``: a pyqtgraph redraw per step kept the GUI thread busy for most of an adaptation on a 2-core PC
(bench/bench_gui.py --watchdog, docs/benchmarks.md).
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QProgressBar, QPushButton, QVBoxLayout, QWidget
from superqt import QElidingLabel

REDRAW_MS = 250


class TrainingPanel(QWidget):
    """Shows one adaptation or training run; ``cancel_requested`` fires when the user presses Cancel."""

    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        # One line, elided to the panel's width (the whole text in its tooltip): a long outcome neither widens
        # the window nor, as a word-wrapped label would, takes height from the live view.
        self.status = QElidingLabel("No adaptation run yet.")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.cancel_button = QPushButton("Cancel (Esc)")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.plot = pg.PlotWidget(title="Support loss per step")
        self.plot.setLabel("bottom", "step")
        self.plot.setLabel("left", "loss")
        self.plot.setMinimumHeight(140)
        self.curve = self.plot.plot([], [], pen=pg.mkPen(width=2))
        self._steps: list[float] = []
        self._losses: list[float] = []
        self._redraw = QTimer(self)
        self._redraw.setSingleShot(True)
        self._redraw.setInterval(REDRAW_MS)
        self._redraw.timeout.connect(self._draw)
        top = QHBoxLayout()
        top.addWidget(self.progress, 1)
        top.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.status)
        layout.addLayout(top)
        layout.addWidget(self.plot, 1)

    def _say(self, text: str) -> None:
        self.status.setText(text)
        self.status.setToolTip(text)

    def start(self, total_steps: int, text: str) -> None:
        self._steps.clear()
        self._losses.clear()
        self._redraw.stop()
        self.curve.setData([], [])
        self.progress.setRange(0, max(1, total_steps))
        self.progress.setValue(0)
        self._say(text)
        self.cancel_button.setEnabled(True)

    def add_point(self, step: int, loss: float) -> None:
        self._steps.append(float(step))
        self._losses.append(float(loss))
        self.progress.setValue(step)
        if not self._redraw.isActive():
            self._redraw.start()

    def _draw(self) -> None:
        self.curve.setData(self._steps, self._losses)

    def finish(self, text: str) -> None:
        self._redraw.stop()
        self._draw()
        self._say(text)
        self.progress.setValue(self.progress.maximum())
        self.cancel_button.setEnabled(False)

    def points(self) -> list[tuple[float, float]]:
        return list(zip(self._steps, self._losses, strict=True))
