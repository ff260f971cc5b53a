"""The Qt-free self-test checks run against the real source tree, and report a broken installation."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from core.selftest import (
    CORE_CHECKS,
    SelfTestState,
    check_classify,
    check_registry,
    check_resources,
    check_teach,
    exit_code,
    format_result,
    format_summary,
    run_checks,
)


@pytest.mark.slow
def test_every_core_check_passes_from_source(tmp_path: Path) -> None:
    state = SelfTestState(tmp_path)
    results = list(run_checks(CORE_CHECKS, state))
    assert [r.name for r in results] == [name for name, _ in CORE_CHECKS]
    assert all(r.passed for r in results), "\n".join(format_result(r) for r in results)
    assert exit_code(results) == 0
    assert (tmp_path / "workspace" / "workspace.sqlite").is_file(), "the teach check wrote no workspace"
    assert state.taught is not None and len(state.taught.classifier.class_names) == 6


def test_a_bundle_without_its_resources_fails_the_resources_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A frozen app finds resources under sys._MEIPASS: an empty one is a bundle that lost its data files.
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    [result] = run_checks([("resources", check_resources)], SelfTestState(tmp_path))
    assert not result.passed
    assert "missing" in result.detail and "default.pt" in result.detail


def test_checks_after_a_failed_one_say_what_they_need_and_the_run_fails(tmp_path: Path) -> None:
    # No camera and no model check ran, so teaching and classifying cannot pass.
    checks = [("registry", check_registry), ("teach", check_teach), ("classify", check_classify)]
    results = list(run_checks(checks, SelfTestState(tmp_path)))
    assert [r.passed for r in results] == [True, False, False]
    assert "needs the model check" in results[1].detail
    assert "needs the teach check" in results[2].detail
    assert exit_code(results) == 1
    assert format_summary(results, 1.0).startswith("self-test: 1 passed, 2 failed")
    assert format_result(results[1]).startswith("FAIL  teach")


def test_no_check_at_all_is_not_a_pass() -> None:
    assert exit_code([]) == 1
