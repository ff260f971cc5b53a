"""Report plots as PNG bytes, drawn headless with matplotlib's Agg canvas (no pyplot, no GUI backend).

matplotlib is imported inside each function: the app and the other sub-commands never pay for it.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

from core.lab.metrics import CalibrationBin, ThresholdPoint
from core.lab.shots import ShotsPoint


def _figure(width: float = 5.2, height: float = 3.4) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for an inline ``<img>``."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def reliability_plot(bins: Sequence[CalibrationBin]) -> bytes:
    """Accuracy per confidence bin against the diagonal of perfect calibration; bar width ~ bin."""
    fig, ax = _figure()
    ax.plot([0, 1], [0, 1], color="#888888", linestyle="--", linewidth=1, label="perfectly calibrated")
    used = [b for b in bins if b.count]
    ax.bar(
        [(b.low + b.high) / 2 for b in used], [b.accuracy or 0.0 for b in used],
        width=[0.9 * (b.high - b.low) for b in used], color="#3b7dd8", alpha=0.8, label="accuracy in bin",
    )  # fmt: skip
    for b in used:
        ax.annotate(str(b.count), ((b.low + b.high) / 2, (b.accuracy or 0.0) + 0.02), ha="center", fontsize=7)
    ax.set(xlim=(0, 1), ylim=(0, 1.08), xlabel="top probability (confidence)", ylabel="accuracy")
    ax.legend(loc="upper left", fontsize=8)
    return _png(fig)


def threshold_plot(points: Sequence[ThresholdPoint], chosen: ThresholdPoint | None) -> bytes:
    """Escape, false-reject and check rates against min_confidence (at the chosen min_margin)."""
    fig, ax = _figure()
    margin = chosen.min_margin if chosen is not None else (points[0].min_margin if points else 0.0)
    row = [p for p in points if p.min_margin == margin]
    xs = [p.min_confidence for p in row]
    ax.plot(xs, [p.escape_rate or 0.0 for p in row], marker="o", ms=3, color="#d62728", label="escape rate")
    ax.plot(
        xs,
        [p.false_reject_rate or 0.0 for p in row],
        marker="s",
        ms=3,
        color="#ff7f0e",
        label="false-reject rate",
    )
    ax.plot(xs, [p.check_rate for p in row], marker="^", ms=3, color="#7f7f7f", label="CHECK rate")
    if chosen is not None:
        ax.axvline(chosen.min_confidence, color="#2ca02c", linewidth=1.2, label="suggested")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel=f"min_confidence (min_margin {margin:g})", ylabel="rate")
    ax.legend(loc="upper center", fontsize=8)
    return _png(fig)


def shots_plot(points: Sequence[ShotsPoint]) -> bytes:
    """Mean accuracy with 95% CI per K."""
    fig, ax = _figure()
    ax.errorbar(
        [p.shots for p in points], [p.accuracy for p in points], yerr=[p.ci95 for p in points],
        marker="o", capsize=3, color="#3b7dd8",
    )  # fmt: skip
    from matplotlib.ticker import NullFormatter

    ax.set_xscale("log")
    ax.set_xticks([p.shots for p in points], [str(p.shots) for p in points])
    ax.xaxis.set_minor_formatter(NullFormatter())  # no math-text labels (the bundle keeps no math fonts)
    ax.set(ylim=(0, 1.02), xlabel="support images per class (K)", ylabel="accuracy on the rest")
    ax.grid(alpha=0.3)
    return _png(fig)
