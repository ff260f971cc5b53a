"""The check after adapting is kept with its model version: it round-trips through the workspace, comes back
when the station restarts or makes another version live, and a damaged one is refused with a message."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.station import AdaptSummarized, Message, Station, StationEvent, StationSettings
from core.station.summary import AdaptSummary, ClassScore, WrongExample
from core.station.summary_store import store_summary, stored_summary, summary_from_json, summary_to_json
from core.storage import Workspace
from tests.core.station.conftest import FAST_LINE
from tests.core.station.test_station import _station, _teach

SUMMARY = AdaptSummary(
    1,
    "train",
    (ClassScore("chip", 3, 3), ClassScore("ok", 4, 3)),
    (WrongExample(10, "ok", "chip", 0.875),),
    (WrongExample(10, "ok", "chip", 0.875),),
    2,
)


def test_a_summary_round_trips_through_the_workspace(tmp_path: Path, small_checkpoint: Path) -> None:
    with Workspace.open(tmp_path / "ws") as ws:
        version = ws.models.register(small_checkpoint, algorithm="protonet", class_names=["chip", "ok"])
        assert stored_summary(ws, version.id) is None
        store_summary(ws, SUMMARY)
        assert stored_summary(ws, version.id) == SUMMARY
    with Workspace.open(tmp_path / "ws") as ws:  # and after reopening
        assert stored_summary(ws, version.id) == SUMMARY


def _damaged(change: str) -> Any:
    raw = summary_to_json(SUMMARY)
    if change == "missing field":
        del raw["flagged"]
    elif change == "extra field":
        raw["comment"] = "hand-edited"
    elif change == "count as text":
        raw["classes"][0]["examples"] = "3"
    elif change == "flag of no example":
        raw["flagged"][0]["example_id"] = None
    elif change == "unknown split":
        raw["split"] = "test"
    elif change == "more right than examples":
        raw["classes"][1]["correct"] = 5
    elif change == "confidence over 1":
        raw["wrong"][0]["confidence"] = 2.0
    elif change == "a list":
        raw = [raw]
    return raw


@pytest.mark.parametrize(
    "change",
    [
        "missing field",
        "extra field",
        "count as text",
        "flag of no example",
        "unknown split",
        "more right than examples",
        "confidence over 1",
        "a list",
    ],
)
def test_a_stored_summary_of_the_wrong_shape_is_refused(change: str) -> None:
    assert summary_from_json(json.loads(json.dumps(summary_to_json(SUMMARY)))) == SUMMARY
    with pytest.raises(ValueError, match=r"summary|class score|example"):
        summary_from_json(_damaged(change))


def _summaries(station: Station) -> list[AdaptSummary | None]:
    seen: list[AdaptSummary | None] = []
    station.events.subscribe(lambda e: seen.append(e.summary) if isinstance(e, AdaptSummarized) else None)
    return seen


def _restart(tmp_path: Path, checkpoint: Path) -> tuple[Station, list[StationEvent]]:
    settings = StationSettings(source=FAST_LINE, checkpoint=str(checkpoint), device="cpu")
    station = Station(Workspace.open(tmp_path / "ws"), settings)
    events: list[StationEvent] = []
    station.events.subscribe(events.append)
    return station, events


def test_a_restarted_station_announces_the_check_of_the_live_version_and_of_each_one_made_live(
    tmp_path: Path, small_checkpoint: Path
) -> None:
    station = _station(tmp_path, small_checkpoint)
    seen = _summaries(station)
    _teach(station, per_class=1)  # alone in their classes: nothing judged
    _teach(station, per_class=1, seed=1)
    first, second = seen
    assert first is not None and second is not None and (first.version_id, second.version_id) == (1, 2)
    assert first.unchecked == 6 and second.unchecked == 0
    station.close()

    station, events = _restart(tmp_path, small_checkpoint)
    assert station.restore_model() is not None
    assert [e.summary for e in events if isinstance(e, AdaptSummarized)] == [second]
    assert station.rollback() is not None
    assert [e.summary for e in events if isinstance(e, AdaptSummarized)] == [second, first]
    with station.ws.transaction() as conn:  # as a version adapted before checks were kept
        conn.execute("DELETE FROM model_summaries WHERE model_id = 2")
    assert station.activate(2) is not None
    assert [e.summary for e in events if isinstance(e, AdaptSummarized)] == [second, first, None]
    assert not [e for e in events if isinstance(e, Message)]
    station.close()


@pytest.mark.parametrize(
    "stored",
    ['{"version_id": 1, "spl', '{"version_id": 1}', json.dumps(summary_to_json(SUMMARY))],
    ids=["truncated", "not a summary", "another version's"],
)
def test_a_damaged_stored_check_does_not_stop_the_restart_and_says_so(
    tmp_path: Path, small_checkpoint: Path, stored: str
) -> None:
    station = _station(tmp_path, small_checkpoint)
    _teach(station, per_class=2)
    _teach(station, per_class=1, seed=1)
    with station.ws.transaction() as conn:  # truncated; not a summary; the summary of another version
        conn.execute("UPDATE model_summaries SET summary = ? WHERE model_id = 2", (stored,))
    station.close()

    station, events = _restart(tmp_path, small_checkpoint)
    restored = station.restore_model()
    assert restored is not None and restored.id == 2 and station.classifier is not None
    messages = [e for e in events if isinstance(e, Message)]
    assert len(messages) == 1 and messages[0].topic == "model" and messages[0].level == "warning"
    assert "stored check of model version 2 cannot be read" in messages[0].text
    assert [e.summary for e in events if isinstance(e, AdaptSummarized)] == [None]
    station.activate(1)  # the other version's check is unharmed
    last = [e.summary for e in events if isinstance(e, AdaptSummarized)][-1]
    assert last is not None and last.version_id == 1
    station.close()
