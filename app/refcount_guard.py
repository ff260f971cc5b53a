"""Guard against a reference-count bug in the installed PySide6 that aborts the app after a while.

PySide6-Essentials 6.12.0 (as installed here) returns ``None`` from every void method (``QLabel.setText``,
``QWidget.update``, ``QApplication.processEvents``, ...) and ``True`` from ``Signal.emit`` *without* taking a
reference. Each call therefore lowers the reference count of ``None`` (or ``True``) by one. On Python 3.11
those singletons are ordinary objects: after some tens of thousands of calls the count reaches zero and the
interpreter aborts with ``Fatal Python error: none_dealloc`` (or ``bool_dealloc``). A GUI makes that many
calls in minutes; ``bench/bench_gui.py`` aborted after about ten minutes of a live line.

Python 3.12 made these singletons immortal (PEP 683), so the bug is harmless there. On older Pythons,
:func:`guard_singletons` checks whether the installed PySide6 leaks and, if it does, gives ``None``, ``True``
and ``False`` 2**50 extra references: what 3.12 does, in effect. At a million leaked references per second
that lasts 35 years of continuous running.
"""

from __future__ import annotations

import ctypes
import logging
import sys

log = logging.getLogger(__name__)

PIN = 1 << 50
_PROBE_CALLS = 64
_guarded = False


def pyside_leaks_singletons() -> bool:
    """Whether a PySide6 void call (and a signal emit) lowers the reference count of None (True)."""
    from PySide6.QtCore import QObject, Signal

    class _Probe(QObject):
        ping = Signal()

    probe = _Probe()
    before = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(_PROBE_CALLS):
        probe.setObjectName("probe")
        probe.ping.emit()
    after = sys.getrefcount(None), sys.getrefcount(True)
    return before[0] - after[0] >= _PROBE_CALLS // 2 or before[1] - after[1] >= _PROBE_CALLS // 2


def guard_singletons() -> bool:
    """Pin ``None``, ``True`` and ``False`` when this Python and PySide6 need it; True when pinned (once)."""
    global _guarded
    if _guarded:
        return True
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return False  # immortal singletons: nothing can drive their counts to zero
    if not pyside_leaks_singletons():
        return False
    for obj in (None, True, False):
        ctypes.c_ssize_t.from_address(id(obj)).value += PIN  # ob_refcnt is the first field of every object
    _guarded = True
    log.warning(
        "this PySide6 (%s) drops references to None/True on every call; pinned them so the app cannot abort "
        "(see app/refcount_guard.py)",
        __import__("PySide6").__version__,
    )
    return True
