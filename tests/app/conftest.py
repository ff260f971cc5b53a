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
