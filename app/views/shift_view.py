"""The shift at a glance: parts per class and the defect rate over time, read from the inspection log."""

from __future__ import annotations

import time

import pyqtgraph as pg
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from core.station.history import ShiftSeries, shift_series
from core.storage import Workspace

PERIODS = (("Last 8 hours", 8 * 3600.0, 300), ("Last hour", 3600.0, 60), ("Last 24 hours", 86400.0, 1800))
PALETTE = ("#2ea043", "#cf222e", "#bf8700", "#8250df", "#0969da", "#d1242f", "#1a7f37", "#953800")


class ShiftView(QWidget):
    """Two plots (parts per class per bucket, reject rate per bucket) and the totals."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.period = QComboBox()
        self.period.setAccessibleName("Shift period")
        for label, seconds, bucket in PERIODS:
            self.period.addItem(label, (seconds, bucket))
        self.period.currentIndexChanged.connect(lambda _: self._redraw())
        self.totals = QLabel()
        self.totals.setWordWrap(True)
        axis = {"bottom": pg.DateAxisItem()}
        self.counts_plot = pg.PlotWidget(title="Parts per class", axisItems=axis)
        self.counts_plot.addLegend(offset=(5, 5))
        self.counts_plot.setLabel("left", "parts")
        self.rate_plot = pg.PlotWidget(title="Reject rate", axisItems={"bottom": pg.DateAxisItem()})
        self.rate_plot.setLabel("left", "share rejected")
        self.rate_plot.setYRange(0, 1)
        self.rate_plot.setXLink(self.counts_plot)
        top = QHBoxLayout()
        top.addWidget(self.period)
        top.addWidget(self.totals, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.counts_plot, 2)
        layout.addWidget(self.rate_plot, 1)
        self._ws: Workspace | None = None
        self.series: ShiftSeries | None = None

    def refresh(self, ws: Workspace) -> None:
        self._ws = ws
        self._redraw()

    def _redraw(self) -> None:
        if self._ws is None:
            return
        seconds, bucket = self.period.currentData()
        now = time.time()
        series = shift_series(self._ws, now - seconds, bucket)
        self.series = series
        self.counts_plot.clear()
        self.rate_plot.clear()
        x = [t + bucket / 2 for t in series.times]
        for i, (name, counts) in enumerate(sorted(series.counts.items())):
            pen = pg.mkPen(PALETTE[i % len(PALETTE)], width=2)
            self.counts_plot.plot(
                x, counts, pen=pen, symbol="o", symbolSize=6, symbolBrush=PALETTE[i % len(PALETTE)], name=name
            )
        if x:
            self.rate_plot.plot(
                x, series.defect_rate, pen=pg.mkPen("#cf222e", width=2), symbol="o", symbolSize=6
            )
        self.counts_plot.setXRange(now - seconds, now, padding=0.02)  # the whole period, however few points
        total = sum(series.totals.values())
        parts = ", ".join(f"{n}: {c}" for n, c in sorted(series.totals.items(), key=lambda kv: -kv[1]))
        self.totals.setText(
            f"<b>{total} parts</b> this period. {parts}" if total else "No parts logged in this period."
        )
