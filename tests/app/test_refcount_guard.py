"""The guard against PySide6 dropping references to None/True (see app/refcount_guard.py)."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal

from app.refcount_guard import PIN, guard_singletons, pyside_leaks_singletons


class _Emitter(QObject):
    ping = Signal(object)


def test_many_qt_calls_cannot_drive_none_or_true_to_zero() -> None:
    leaks = pyside_leaks_singletons()
    pinned = guard_singletons()
    if sys.version_info < (3, 12) and leaks:
        assert pinned and sys.getrefcount(None) > PIN // 2 and sys.getrefcount(True) > PIN // 2
    emitter = _Emitter()
    for _ in range(100_000):  # more than None's ordinary count in this process: aborted before the guard
        emitter.setObjectName("x")
        emitter.ping.emit(None)
    assert sys.getrefcount(None) > 1000 and sys.getrefcount(True) > 1000
