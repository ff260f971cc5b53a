"""``metainspect --self-test``: the core checks, then the main window, headless, in a temporary folder.

Prints one line per check and a summary on stdout; the exit code is 0 only when every check passed. The
window check opens the real main window on the workspace the core checks taught, waits for the first live
frame and the first verdict of the restored model, closes the window and checks that the workspace was
released. Nothing outside the temporary folder is read or written (QSettings included).
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from PySide6.QtCore import QCoreApplication, QSettings
from PySide6.QtWidgets import QApplication

from core.selftest import (
    CORE_CHECKS,
    Check,
    SelfTestError,
    SelfTestState,
    exit_code,
    format_result,
    format_summary,
    run_checks,
)

WINDOW_SOURCE = "synthetic:seed=3,defect_rate=0.5,speed=2"
FIRST_FRAME_TIMEOUT_S = 30.0
FIRST_VERDICT_TIMEOUT_S = 60.0
CAPTURE_STOP_TIMEOUT_S = 30.0


def _wait_until(app: QApplication, done: Callable[[], bool], timeout_s: float) -> float | None:
    """Process Qt events until ``done()``; the seconds it took, or ``None`` on time-out."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout_s:
        app.processEvents()
        if done():
            return time.perf_counter() - start
        time.sleep(0.01)
    return None


def check_window(state: SelfTestState) -> str:
    """Open the main window on the taught workspace: live frames, the restored model's verdicts, clean close."""
    from app.main import build_window
    from app.preferences import Preferences
    from core.storage import Workspace

    app = QApplication.instance()
    if not isinstance(app, QApplication):
        raise SelfTestError("no QApplication")
    prefs = Preferences(
        source=WINDOW_SOURCE, checkpoint="default", workspace=str(state.workspace_path), device="cpu"
    )
    errors: list[str] = []
    window = build_window(prefs, Workspace.open(state.workspace_path))
    window.session.error.connect(errors.append)
    try:
        window.show()
        first_frame = _wait_until(app, window.frame_view.has_frame, FIRST_FRAME_TIMEOUT_S)
        if first_frame is None:
            raise SelfTestError(f"no live frame within {FIRST_FRAME_TIMEOUT_S:.0f} s ({'; '.join(errors)})")
        if window.session.classifier is None:
            raise SelfTestError(
                f"the taught model was not restored ({'; '.join(errors) or 'no error shown'})"
            )
        first_verdict = _wait_until(app, lambda: window.verdict.tally.total > 0, FIRST_VERDICT_TIMEOUT_S)
        if first_verdict is None:
            raise SelfTestError(f"no verdict within {FIRST_VERDICT_TIMEOUT_S:.0f} s ({'; '.join(errors)})")
        if errors:
            raise SelfTestError(f"the window reported: {'; '.join(errors)}")
        banner = window.verdict.banner.text()
    finally:
        # The session's own bound (3 s) can pass on a loaded 2-core PC while a part is being classified; a
        # capture worker still running when Python exits aborts the process, so give it time here.
        window.session.stop_capture(wait_s=CAPTURE_STOP_TIMEOUT_S)
        window.confirm_close = lambda what: True  # headless: a question nobody can answer would hang it
        window.close()  # stops the workers, flushes the inspection log and releases the workspace lock
    with Workspace.open(state.workspace_path) as ws:  # fails if the window kept the lock
        logged = len(ws.inspections.recent(1000))
    if logged == 0:
        raise SelfTestError("the window's verdicts were not logged in the workspace")
    return (
        f"first frame after {first_frame:.1f} s, first verdict ({banner}) after {first_frame + first_verdict:.1f} s, "
        f"{logged} inspections logged, closed"
    )


SELF_TEST_CHECKS: tuple[Check, ...] = (*CORE_CHECKS, ("window", check_window))


def run_self_test(out: TextIO | None = None, checks: tuple[Check, ...] = SELF_TEST_CHECKS) -> int:
    """Run every check in a temporary folder, print the report on ``out`` (stdout); return the exit code.

    Needs a ``QApplication`` (create it with ``QT_QPA_PLATFORM=offscreen`` for a headless run).
    """
    out = out or sys.stdout
    start = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="metainspect-selftest-") as tmp:
        root = Path(tmp)
        # Window geometry and any other QSettings go to the scratch folder, never to the user's settings.
        QSettings.setDefaultFormat(QSettings.Format.IniFormat)
        QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(root / "qsettings"))
        QCoreApplication.setOrganizationName("MetaInspectSelfTest")
        for result in run_checks(checks, SelfTestState(root)):
            results.append(result)
            print(format_result(result), file=out, flush=True)
    print(format_summary(results, time.perf_counter() - start), file=out, flush=True)
    return exit_code(results)
