"""Teaching from a workspace with the anomaly scorer: OK parts only first, then with a labelled defect."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.camera import CaptureRunner, PartTrigger, open_source
from core.camera.synthetic import render_part, render_unseen_part
from core.inference import UNKNOWN_DEFECT, Decision
from core.inference.anomaly import anomaly_overlay
from core.inference.live import LiveClassifier
from core.inference.pipeline import InspectionPipeline
from core.inference.teach import TeachingError, new_defect_class_from_part, restore_active, teach
from core.storage import Workspace
from core.storage.checkpoint import LoadedCheckpoint, load_checkpoint
from tests.conftest import finish_generator as _run


@pytest.fixture(scope="module")
def base() -> LoadedCheckpoint:
    return load_checkpoint("default")


def test_ok_parts_only_give_an_anomaly_verdict_then_a_labelled_defect_adds_its_name(
    tmp_path: Path, base: LoadedCheckpoint
) -> None:
    rng = np.random.default_rng(8)
    with Workspace.open(tmp_path / "ws") as ws:
        ws.classes.add("ok")
        ws.classes.add("scratch", is_defect=True)
        for _ in range(12):
            ws.examples.add(render_part(rng, "ok", size=128)[0], "ok")

        taught = _run(teach(ws, base, steps=5))
        assert taught.version is None and taught.adapted is None  # no classifier to register yet
        live = taught.classifier
        assert live.model is None and live.anomaly is not None and live.class_names == ("ok",)
        ok_parts = [render_part(rng, "ok", size=128)[0] for _ in range(6)]
        burnt = [render_unseen_part(rng, size=128)[0] for _ in range(6)]
        verdicts = live.classify(list(range(12)), ok_parts + burnt)
        assert sum(v.decision is Decision.OK for v in verdicts[:6]) >= 5
        assert sum(v.class_name == UNKNOWN_DEFECT for v in verdicts[6:]) >= 5
        assert ws.models.active() is None
        _pipeline_draws_the_overlay_off_the_gui_thread(live)

        # label a few scratches: the classifier now names them, the anomaly scorer still guards the rest
        for _ in range(4):
            ws.examples.add(render_part(rng, "scratch", size=128)[0], "scratch")
        taught = _run(teach(ws, base, steps=5))
        assert taught.version is not None and taught.classifier.anomaly is not None
        assert set(taught.classifier.class_names) == {"ok", "scratch"}
        cracks = [render_part(rng, "crack", size=128)[0] for _ in range(6)]  # never labelled
        verdicts = taught.classifier.classify(list(range(6)), cracks)
        assert sum(v.decision is Decision.REJECT for v in verdicts) >= 5

        restored = restore_active(ws)
        assert restored is not None and restored[0].anomaly is not None


def test_teaching_needs_two_ok_parts_when_nothing_else_is_labelled(
    tmp_path: Path, base: LoadedCheckpoint
) -> None:
    with Workspace.open(tmp_path / "ws") as ws:
        ws.classes.add("ok")
        ws.examples.add(render_part(np.random.default_rng(0), "ok", size=64)[0], "ok")
        with pytest.raises(TeachingError, match="at least two OK parts"):
            _run(teach(ws, base))


def test_a_part_becomes_the_first_example_of_a_new_defect_class(tmp_path: Path) -> None:
    image = render_unseen_part(np.random.default_rng(1), size=64)[0]
    with Workspace.open(tmp_path / "ws") as ws:
        ws.classes.add("ok", shortcut="1")
        first = new_defect_class_from_part(ws, image)
        second = new_defect_class_from_part(ws, image)
        assert (first.name, first.is_defect, first.shortcut) == ("new defect 1", True, "2")
        assert second.name == "new defect 2"
        counts = ws.examples.counts()
        assert (counts["new defect 1"], counts["new defect 2"], counts.get("ok", 0)) == (1, 1, 0)


def _pipeline_draws_the_overlay_off_the_gui_thread(live: LiveClassifier) -> None:
    """The pipeline (a worker thread in the app) hands each part's anomaly overlay ready to paint."""
    source = open_source("synthetic:seed=4,fps=60,speed=3,defect_rate=0.5")
    pipeline = InspectionPipeline(CaptureRunner(source), PartTrigger(crop_size=128), live)
    results = []
    for _ in range(400):
        frame = source.read()
        assert frame is not None
        results += pipeline.process(frame)
        if len(results) >= 2:
            break
    assert len(results) >= 2
    for r in results:
        assert r.verdict is not None and r.verdict.anomaly is not None
        assert r.overlay is not None and r.overlay.dtype == np.uint8
        assert r.overlay.shape == (*r.crop.image.shape[:2], 3)
        assert np.array_equal(r.overlay, anomaly_overlay(r.crop.image, r.verdict.anomaly))
    pipeline.set_classifier(None)
    source_frames = [source.read() for _ in range(400)]
    bare = [r for f in source_frames if f is not None for r in pipeline.process(f)]
    assert bare and all(r.verdict is None and r.overlay is None for r in bare)
