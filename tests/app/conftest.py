"""pytest-qt settings for the app tests: isolated QSettings per test."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QCoreApplication, QSettings


@pytest.fixture(autouse=True, scope="session")
def _refcount_guard() -> None:
    """As the app does at start: a long test session makes enough PySide6 calls to hit the bug."""
    from app.refcount_guard import guard_singletons

    guard_singletons()


@pytest.fixture(autouse=True)
def _isolated_qsettings(tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("qsettings")
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(path))
    QCoreApplication.setOrganizationName("MetaInspectTests")
    QCoreApplication.setApplicationName("MetaInspectTests")


@pytest.fixture(autouse=True)
def _no_modal_quit_question(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Offscreen, nobody can answer the "still running, quit?" box: it would block the test run for ever. Answer
    as an inspector who wants out would ("Yes": stop the work and quit) and keep what was asked. Tests of the
    question itself set ``window.confirm_close``."""
    import app.main_window

    asked: list[str] = []

    def answer_yes(parent: object, what: str) -> bool:
        asked.append(what)
        return True

    monkeypatch.setattr(app.main_window, "ask_to_quit", answer_yes)
    return asked
