"""The Qt-free station: teaching, versions and rollback, settings that apply at once, camera health."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core.camera import Frame, FrameSource, SourceError, SourceReadError
from core.camera.source import SOURCES
from core.inference import Decision
from core.station import (
    AdaptFinished,
    CameraStatus,
    Message,
    ModelActivated,
    PartInspected,
    SettingsApplied,
    Station,
    StationError,
    StationEvent,
    StationSettings,
)
from core.storage import Workspace
from core.training.progress import CancelToken
from tests.core.station.conftest import FAST_LINE, part_images


def _drive(gen: Iterator[object]) -> None:
    for _ in gen:
        pass


def _station(tmp_path: Path, checkpoint: Path, source: str = FAST_LINE, **kw: object) -> Station:
    settings = StationSettings(
        source=source, checkpoint=str(checkpoint), device="cpu", capture_mode="every", **kw
    )
    station = Station(Workspace.open(tmp_path / "ws"), settings)
    station.ensure_default_classes()
    return station


def _teach(station: Station, per_class: int = 2, seed: int = 0) -> None:
    for image, name in part_images(per_class, seed):
        assert station.label_image(image, name) is not None
    _drive(station.adapt())


def test_rollback_goes_back_to_the_version_live_before(tmp_path: Path, small_checkpoint: Path) -> None:
    station = _station(tmp_path, small_checkpoint)
    events: list[StationEvent] = []
    station.events.subscribe(events.append)
    _teach(station)
    first = station.version
    assert first is not None and first.parent_id is None
    _teach(station, per_class=1, seed=1)
    second = station.version
    assert second is not None and second.parent_id == first.id  # teach() records the parent now

    assert station.rollback() is not None
    assert station.version is not None and station.version.id == first.id
    assert station.ws.models.active().id == first.id
    activated = [e for e in events if isinstance(e, ModelActivated)][-1]  # then its stored check (if any)
    assert activated.version is not None and activated.version.id == first.id
    # Nothing before the first version: a message, not an exception.
    assert station.rollback() is None
    assert isinstance(events[-1], Message) and "no earlier version" in events[-1].text
    station.close()


def test_adapting_with_one_class_says_what_is_missing(tmp_path: Path, small_checkpoint: Path) -> None:
    station = _station(tmp_path, small_checkpoint)
    finished: list[AdaptFinished] = []
    station.events.subscribe(lambda e: finished.append(e) if isinstance(e, AdaptFinished) else None)
    station.label_image(part_images(1)[0][0], "ok")
    _drive(station.adapt())
    assert finished and finished[0].version_id is None and "at least two classes" in finished[0].message
    assert station.classifier is None
    station.close()


def test_thresholds_apply_to_the_live_model_at_once(tmp_path: Path, small_checkpoint: Path) -> None:
    station = _station(tmp_path, small_checkpoint)
    _teach(station)
    classifier = station.classifier
    assert classifier is not None
    images = [img for img, _ in part_images(1, seed=5)]
    before = classifier.classify(list(range(len(images))), images)
    applied: list[SettingsApplied] = []
    station.events.subscribe(lambda e: applied.append(e) if isinstance(e, SettingsApplied) else None)

    changed = station.apply_settings(replace(station.settings, min_confidence=1.0))
    assert changed == {"min_confidence"} and applied and applied[0].changed == {"min_confidence"}
    after = station.classifier.classify(list(range(len(images))), images)  # type: ignore[union-attr]
    assert all(v.decision is Decision.CHECK for v in after)  # nothing reaches 100 % confidence
    assert [v.class_name for v in after] == [v.class_name for v in before]
    station.close()


def test_an_unusable_new_source_is_refused_and_nothing_changes(
    tmp_path: Path, small_checkpoint: Path
) -> None:
    station = _station(tmp_path, small_checkpoint)
    cancel = CancelToken()
    parts = station.inspect(cancel)
    thread = threading.Thread(target=lambda: [None for _ in parts], daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not station.capturing and time.monotonic() < deadline:
        time.sleep(0.01)
    old = station.settings
    with pytest.raises(StationError, match="nosuchscheme"):
        station.apply_settings(replace(old, source="nosuchscheme:1"))
    assert station.settings == old
    cancel.cancel()
    thread.join(10)
    station.close()


class FlakySource(FrameSource):
    """Synthetic frames; the 20th read fails ("cable pulled") and the first reopen fails too."""

    live = True

    def __init__(self) -> None:
        super().__init__("flaky:")
        self.inner = SOURCES.create(FAST_LINE)
        self.reads = 0
        self.failed = False
        self.bad_opens = 1

    def _open(self) -> None:
        if self.failed and self.bad_opens > 0:
            self.bad_opens -= 1
            raise SourceError("flaky: device not answering")
        if not self.inner.is_open:
            self.inner.open()

    def _read(self) -> Frame | None:
        self.reads += 1
        if self.reads == 20:
            self.failed = True
            raise SourceReadError("flaky: cable pulled")
        frame = self.inner.read()
        assert frame is not None
        return Frame(frame.image, self._stamp(), time.monotonic(), self.name)

    def _release(self) -> None:
        pass


def test_a_failing_camera_reports_reconnecting_with_the_reason_and_recovers(
    tmp_path: Path, small_checkpoint: Path
) -> None:
    settings = StationSettings(
        source="flaky:", checkpoint=str(small_checkpoint), device="cpu", capture_mode="latest"
    )
    station = Station(Workspace.open(tmp_path / "ws"), settings, open_source=lambda spec: FlakySource())
    states: list[CameraStatus] = []
    station.events.subscribe(lambda e: states.append(e) if isinstance(e, CameraStatus) else None)
    cancel = CancelToken()
    parts = station.inspect(cancel)
    thread = threading.Thread(target=lambda: [None for _ in parts], daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and [s.state for s in states].count("running") < 2:
        time.sleep(0.02)
    cancel.cancel()
    thread.join(10)
    kinds = [s.state for s in states]
    assert kinds[:2] == ["connecting", "running"], kinds
    reconnecting = [s for s in states if s.state == "reconnecting"]
    assert reconnecting and "cable pulled" in reconnecting[0].reason
    assert any("device not answering" in s.reason for s in reconnecting)  # the reason follows the failure
    assert kinds.index("reconnecting") < len(kinds) - 1 - kinds[::-1].index("running")  # recovered after
    station.close()


@pytest.mark.parametrize(
    ("source", "never"),
    [("synthetic:defect_rate=0", "scratch"), ("file:line.avi", "defect")],
    ids=["line-without-defects", "classes-of-another-source"],
)
def test_demo_teach_refuses_classes_the_line_never_shows(
    tmp_path: Path, small_checkpoint: Path, source: str, never: str
) -> None:
    station = _station(tmp_path, small_checkpoint, source=source)  # default classes of that source
    station.apply_settings(replace(station.settings, source="synthetic:defect_rate=0"))
    messages: list[Message] = []
    station.events.subscribe(lambda e: messages.append(e) if isinstance(e, Message) else None)
    assert not station.start_auto_teach(1)  # it would wait for ever
    assert station.auto_teach_target == 0
    assert messages and f"never shows {never}" in messages[-1].text and "it shows ok" in messages[-1].text
    station.close()


def test_demo_teach_inspect_log_and_restart(tmp_path: Path, small_checkpoint: Path) -> None:
    station = _station(tmp_path, small_checkpoint)
    seen: list[PartInspected] = []
    station.events.subscribe(lambda e: seen.append(e) if isinstance(e, PartInspected) else None)
    assert station.start_auto_teach(1)
    cancel = CancelToken()
    parts = station.inspect(cancel)
    for _ in parts:
        if station.auto_teach_target == 0:
            break
    assert all(n >= 1 for n in station.ws.examples.counts().values())
    _drive(station.adapt())
    assert station.classifier is not None
    station.stats.reset()
    for _ in parts:
        if station.stats.parts >= 12:
            break
    parts.close()
    summary = station.stats.summary()
    assert summary.parts == 12 and summary.with_truth == 12 and summary.accuracy is not None
    assert sum(summary.verdicts.values()) == 12 and summary.latency_p50_ms is not None
    assert any(e.result.verdict is not None for e in seen)
    version = station.version
    station.close()

    with Workspace.open(tmp_path / "ws") as ws:
        assert ws.inspections.count() >= 12
        assert {i.model_id for i in ws.inspections.recent(100)} == {version.id}
        restarted = Station(ws, station.settings)
        assert restarted.restore_model() is not None
        assert restarted.classifier is not None and restarted.version.id == version.id
        restarted.close(close_workspace=False)


def test_an_override_turns_the_part_into_an_example(tmp_path: Path, small_checkpoint: Path) -> None:
    station = _station(tmp_path, small_checkpoint)
    from core.storage import NewInspection

    image_hash = station.ws.images.put(np.full((32, 32, 3), 90, np.uint8))
    row = station.ws.inspections.append(NewInspection("ok", "CHECK", (0.5, 0.5), image_hash=image_hash))
    example = station.override(row, "dent")
    assert example is not None and example.class_name == "dent"
    assert station.ws.inspections.get(row).override == "dent"
    station.close()


def test_each_adaptation_is_scored_on_the_hold_out_examples_when_there_are_any(
    tmp_path: Path, small_checkpoint: Path
) -> None:
    from core.station import AdaptSummarized

    station = _station(tmp_path, small_checkpoint)
    summaries: list[AdaptSummarized] = []
    station.events.subscribe(lambda e: summaries.append(e) if isinstance(e, AdaptSummarized) else None)
    _teach(station, per_class=2)
    first = summaries[-1].summary
    assert first.split == "train" and first.examples == 12 and first.version_id == station.version.id
    assert len(first.classes) == 6 and first.accuracy is not None
    assert len(first.wrong) == sum(c.examples - c.correct for c in first.classes)

    held = [ex for ex in station.ws.examples.list() if ex.class_name in ("ok", "dent")][:2]
    for ex in held:
        assert station.set_split(ex.id, "holdout")
    _drive(station.adapt())
    second = summaries[-1].summary
    assert second.split == "holdout" and second.examples == 2
    assert {c.name for c in second.classes} <= {"ok", "dent"}
    station.close()
