"""The line's set-up (base model, ROI, trigger) is kept in the workspace and restored by the next station."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from core.station import Station, StationSettings
from core.station.setup import SETUP_KEY, saved_setup
from core.storage import Workspace
from tests.conftest import write_tiny_checkpoint
from tests.core.station.conftest import FAST_LINE


def test_meta_values_survive_reopening_and_a_value_json_cannot_write_is_refused(tmp_path: Path) -> None:
    with Workspace.open(tmp_path / "ws") as ws:
        assert ws.meta.get("missing") is None
        ws.meta.set("a", {"x": [1, 2]})
        ws.meta.set("a", {"x": [3]})  # replaces
        with pytest.raises(ValueError, match="cannot be stored"):
            ws.meta.set("b", object())
    with Workspace.open(tmp_path / "ws") as ws:
        assert ws.meta.get("a") == {"x": [3]} and ws.meta.get("b") is None


def test_a_changed_base_model_roi_and_trigger_are_restored_by_the_next_station(
    tmp_path: Path, small_checkpoint: Path
) -> None:
    other = write_tiny_checkpoint(tmp_path / "other.pt")
    settings = StationSettings(source=FAST_LINE, checkpoint=str(small_checkpoint), device="cpu")
    station = Station(Workspace.open(tmp_path / "ws"), settings)
    assert saved_setup(station.ws) == {}  # nothing changed yet: nothing saved
    changed = replace(station.settings, checkpoint=str(other), roi=(10, 20, 100, 80), trigger_threshold=40.0)
    station.apply_settings(changed)
    station.apply_settings(replace(changed, min_confidence=0.9))  # not part of the set-up: not saved
    station.close()

    again = Station(Workspace.open(tmp_path / "ws"), settings)  # started with the old settings
    s = again.settings
    assert (s.checkpoint, s.roi, s.trigger_threshold, s.crop_size) == (
        str(other),
        (10, 20, 100, 80),
        40.0,
        128,
    )
    assert s.min_confidence == settings.min_confidence and s.source == FAST_LINE
    again.ws.meta.set(SETUP_KEY, {"roi": [0, 0, 4, 4], "checkpoint": "x"})  # a region the settings refuse
    again.close()
    third = Station(Workspace.open(tmp_path / "ws"), settings)
    assert third.settings == settings  # the unusable saved set-up is skipped as a whole
    third.close()
