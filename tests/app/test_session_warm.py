"""Labelling a part embeds it in the background, so Adapt with the shipped model only fits the head."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pytestqt.qtbot import QtBot

from app.preferences import Preferences
from app.session import InspectionSession
from core.camera.synthetic import DEFECT_CLASSES, render_part
from core.camera.trigger import PartCrop
from core.inference.pipeline import PartResult
from core.storage import Workspace


def test_labelled_parts_are_embedded_before_adapt_and_adapt_reuses_them(qtbot: QtBot, tmp_path: Path) -> None:
    prefs = Preferences(source="synthetic:seed=1", checkpoint="default", workspace=str(tmp_path / "ws"))
    session = InspectionSession(prefs, Workspace.open(prefs.workspace_path()))
    try:
        session.ensure_default_classes()
        assert session.load_base_model()
        rng = np.random.default_rng(3)
        for i, name in enumerate(c for c in DEFECT_CLASSES[:3] for _ in range(2)):
            image = render_part(rng, name, size=96)[0]
            crop = PartCrop(i, image, i, 0.0, (0, 0, 96, 96))
            assert session.label_part(PartResult(crop, None), name)
        session.station.warmer.wait(60)
        cache = session.base.learner.cache  # type: ignore[union-attr]
        views = len(session.base.learner.views)  # type: ignore[union-attr]
        assert cache.misses == 6 * views and len(cache) == 6 * views
        with qtbot.waitSignal(session.adapt_finished, timeout=60000) as finished:
            session.start_adaptation()
        assert "is live" in finished.args[0]
        assert cache.misses == 6 * views, "adapt embedded labelled parts again"
        assert cache.hits >= 6 * views
        # the memory the adaptation freed goes back to the OS once, after the views had its outcome
        assert session.memory_releases == 0
        qtbot.waitUntil(lambda: not session.adapting(), timeout=60000)
        qtbot.waitUntil(lambda: session.memory_releases == 1, timeout=10000)
    finally:
        session.close()
