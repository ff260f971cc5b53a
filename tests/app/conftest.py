"""pytest-qt settings for the app tests: isolated QSettings per test."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QCoreApplication, QSettings


@pytest.fixture(autouse=True)
def _isolated_qsettings(tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("qsettings")
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(path))
    QCoreApplication.setOrganizationName("MetaInspectTests")
    QCoreApplication.setApplicationName("MetaInspectTests")


from tests.core.station.conftest import small_checkpoint  # noqa: E402, F401  (shared session fixture)
