"""Acceptance: the workstation with the real shipped model on a product it never saw, then a restart.

Teach 6 classes x 5 from the demo line, adapt the shipped model, judge 200 parts of the ``copper_disc``
variant (held out of the shipped model's training) through the real window: accuracy against the line's ground
truth, and the counters, history and shift views received every part. Then close and reopen: classes,
examples, history counts and the live model come back.

Bar: 85 % 6-way accuracy on live crops (chance is 17 %). The shipped model scores ~96 % 6-way 5-shot on this
variant in the lab (rendered parts); on the live line the crops come from the part trigger: 94 % headless
with 10 adaptation steps, 98.5 % here with the model's own 50 (docs/benchmarks.md). The bar catches a broken model, wrong preprocessing or
mixed-up labels with room for the spread between runs (other teaching parts, other test parts).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from app.main_window import MainWindow
from app.preferences import Preferences
from app.session import InspectionSession
from core.inference.verdict import UNKNOWN_DEFECT
from core.storage import Workspace

ACCURACY_BAR = 0.85
PARTS = 200
PER_CLASS = 5
# Unseen variant at the line's normal frame size (parts ~160 px; at 320x240 the crops are upscaled and
# accuracy fell to 83-88 %) at a camera's 30 fps; a fast belt keeps 200 parts cheap; "every" capture: no frame is dropped (the
# trigger sees each part on several frames, whatever the load on the machine).
SOURCE = "synthetic:seed=7,variant=copper_disc,fps=30,speed=8,defect_rate=0.83"


def _window(qtbot: QtBot, prefs: Preferences) -> MainWindow:
    session = InspectionSession(prefs, Workspace.open(prefs.workspace_path()))
    session.station.apply_settings(replace(session.station.settings, capture_mode="every"))
    window = MainWindow(session)
    qtbot.addWidget(window)
    session.ensure_default_classes()
    window.refresh_classes()
    session.load_base_model()
    session.restore_model()
    window.show()
    session.start_capture()
    return window


@pytest.mark.slow
def test_teach_six_classes_adapt_the_shipped_model_and_judge_an_unseen_variant(
    qtbot: QtBot, tmp_path: Path
) -> None:
    prefs = Preferences(source=SOURCE, checkpoint="default", workspace=str(tmp_path / "ws"), device="cpu")
    window = _window(qtbot, prefs)
    session = window.session
    station = session.station
    assert station.base is not None, "the shipped model did not load"

    session.start_auto_teach(PER_CLASS)
    qtbot.waitUntil(lambda: session.auto_teach_target == 0, timeout=120_000)
    counts = session.ws.examples.counts()
    assert len(counts) == 6 and all(n == PER_CLASS for n in counts.values()), counts

    start = time.monotonic()
    with qtbot.waitSignal(session.adapt_finished, timeout=120_000) as finished:
        window.teach.adapt_button.click()
    assert "is live" in finished.args[0], finished.args[0]
    adapt_s = time.monotonic() - start
    version = session.ws.models.active()
    assert version is not None and sorted(version.class_names) == sorted(counts)

    window.verdict.reset_counts()
    station.stats.reset()
    qtbot.waitUntil(lambda: station.stats.parts >= PARTS, timeout=180_000)
    summary = station.stats.summary()
    print(f"\nacceptance: adapt {adapt_s:.1f} s; {summary.to_dict()}")
    assert summary.with_truth >= PARTS
    assert summary.accuracy is not None and summary.accuracy >= ACCURACY_BAR, summary.to_dict()
    # every taught class was predicted at some point; besides them only the anomaly scorer's "unknown defect"
    assert set(counts) <= set(summary.classes) <= set(counts) | {UNKNOWN_DEFECT}, summary.classes

    # The counters saw every part the station judged (Qt delivers the events a moment later).
    qtbot.waitUntil(lambda: window.verdict.tally.total >= PARTS, timeout=10_000)
    session.stop_capture()
    judged = station.stats.parts
    qtbot.waitUntil(lambda: window.verdict.tally.total == judged, timeout=10_000)
    station._writer.flush()  # the log is written in batches every second; the views read it now
    logged = session.ws.inspections.count()
    assert logged >= judged
    window.show_tab(3)  # History: all parts of the last hour, newest first, from the real log
    window.history.reload()
    assert window.history.table.rowCount() == min(logged, 500)
    window.show_tab(5)  # Shift
    window.refresh_log_views(force=True)
    shift = window.shift.series
    assert shift is not None and sum(shift.totals.values()) == logged
    window.close()

    # Restart: the same workspace carries on with the same classes, examples, history and live model.
    window = _window(qtbot, prefs)
    session = window.session
    assert session.ws.examples.counts() == counts
    assert session.ws.inspections.count() == logged
    assert session.station.version is not None and session.station.version.id == version.id
    assert session.classifier is not None and sorted(session.classifier.class_names) == sorted(counts)
    qtbot.waitUntil(lambda: window.verdict.tally.total >= 1, timeout=30_000)  # and judges parts at once
    window.close()
