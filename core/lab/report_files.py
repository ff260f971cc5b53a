"""Write a :class:`~core.lab.report.LabReport`: ``report.html`` (Jinja2, self-contained), ``metrics.json``, CSVs.

Every file is written atomically. The HTML carries its plots and thumbnails as ``data:`` URIs and its style
inline: it opens offline, from a mail attachment or a file share, and references nothing outside itself.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.lab import plots
from core.lab.report import LabReport
from core.storage.files import atomic_write_bytes

TEMPLATE_DIR = Path(__file__).with_name("templates")
TEMPLATE = "report.html.j2"


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def _csv(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for row in rows:
        w.writerow(["" if v is None else (f"{v:.6f}" if isinstance(v, float) else v) for v in row])
    return buf.getvalue().encode("utf-8")


def csv_files(report: LabReport) -> dict[str, bytes]:
    """The CSV files of a report, by name."""
    names = report.class_names
    preds = _csv(
        ["file", "true", "predicted", "verdict", "confidence", "margin", *[f"p_{c}" for c in names]],
        [[p.file, p.true_class, p.predicted, p.verdict, p.confidence, p.margin, *p.probabilities]
         for p in report.predictions],
    )  # fmt: skip
    per_class = _csv(
        ["class", "support", "predicted", "precision", "precision_low", "precision_high", "recall",
         "recall_low", "recall_high", "f1", "f1_low", "f1_high"],
        [[c.name, c.support, c.predicted, c.precision.value, c.precision.low, c.precision.high, c.recall.value,
          c.recall.low, c.recall.high, c.f1, c.f1_low, c.f1_high] for c in report.per_class],
    )  # fmt: skip
    confusion = _csv(
        ["true \\ predicted", *names],
        [[n, *row] for n, row in zip(names, report.confusion.tolist(), strict=True)],
    )
    thresholds = _csv(
        ["min_confidence", "min_margin", "parts", "escapes", "defective", "escape_rate", "false_rejects",
         "ok_parts", "false_reject_rate", "checks", "check_rate", "cost_per_part"],
        [[p.min_confidence, p.min_margin, p.parts, p.escapes, p.defective, p.escape_rate, p.false_rejects,
          p.ok_parts, p.false_reject_rate, p.checks, p.check_rate, p.cost_per_part] for p in report.thresholds],
    )  # fmt: skip
    shots = _csv(
        ["shots", "repeats", "accuracy", "ci95", "queries"],
        [[p.shots, p.repeats, p.accuracy, p.ci95, p.queries] for p in report.shots_curve],
    )
    return {
        "predictions.csv": preds,
        "per_class.csv": per_class,
        "confusion.csv": confusion,
        "thresholds.csv": thresholds,
        "shots_curve.csv": shots,
    }


def render_html(report: LabReport) -> str:
    """The report page (Jinja2 with autoescaping; plots drawn here)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = lambda v, digits=1: "–" if v is None else f"{100 * v:.{digits}f}%"
    env.filters["num"] = lambda v, digits=3: "–" if v is None else f"{v:.{digits}f}"
    current_margin = report.suggested.min_margin if report.suggested is not None else None
    sweep_rows = [p for p in report.thresholds if p.min_margin == current_margin]
    figures = {
        "reliability": plots.data_uri(plots.reliability_plot(report.calibration)),
        "thresholds": plots.data_uri(plots.threshold_plot(report.thresholds, report.suggested))
        if report.thresholds
        else None,
        "shots": plots.data_uri(plots.shots_plot(report.shots_curve)) if report.shots_curve else None,
    }
    confusion = report.confusion
    row_totals = confusion.sum(1)
    shares = np.divide(confusion, np.maximum(row_totals[:, None], 1))
    return env.get_template(TEMPLATE).render(
        r=report,
        m=report.metrics(),
        figures=figures,
        sweep_rows=sweep_rows,
        confusion=confusion.tolist(),
        shares=shares.tolist(),
        mistakes=[(m, p, plots.data_uri(png)) for m, p, png in report.mistakes],
    )


def write_report(report: LabReport, out: Path) -> dict[str, Path]:
    """Write every file into ``out`` (created); returns their paths by name."""
    out.mkdir(parents=True, exist_ok=True)
    files = csv_files(report)
    files["metrics.json"] = json.dumps(
        report.metrics(), indent=2, allow_nan=False, default=_json_default
    ).encode()
    files["report.html"] = render_html(report).encode("utf-8")
    paths: dict[str, Path] = {}
    for name, data in files.items():
        atomic_write_bytes(out / name, data)
        paths[name] = out / name
    return paths
