"""Entry point of the MetaInspect desktop app: ``metainspect [--source SPEC] [--workspace DIR] ...``.

``metainspect --self-test`` checks an installation headless instead (see :mod:`app.selftest`).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import replace

from PySide6.QtCore import QCoreApplication, QThreadPool, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from app.main_window import MainWindow
from app.preferences import APP_NAME, Preferences, load_preferences
from app.refcount_guard import guard_singletons
from app.session import InspectionSession, user_message
from core.runtime import keep_freed_memory, set_cpu_threads
from core.storage import StorageError, Workspace


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="metainspect", description="MetaInspect inspection workstation")
    parser.add_argument("--source", help="camera source, e.g. synthetic:seed=1, camera:0, file:video.mp4")
    parser.add_argument("--workspace", help="workspace folder (default: the per-user data folder)")
    parser.add_argument("--checkpoint", help="meta-trained model file, or 'default' for the shipped one")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="compute device")
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="check this installation headless in a temporary folder (camera, model, teaching, window); "
        "prints one line per check, exit code 0 when all pass",
    )
    parser.add_argument(
        "--exit-after-first-frame",
        action="store_true",
        help="print the wall-clock time (time.time()) of the first live frame shown, then quit (start-up benchmark)",
    )
    args, _qt_args = parser.parse_known_args(list(argv))
    return args


def effective_preferences(args: argparse.Namespace, prefs: Preferences) -> Preferences:
    """Command-line options override the saved preferences for this run only."""
    options = {"source", "workspace", "checkpoint", "device"}
    overrides = {k: v for k, v in vars(args).items() if k in options and v is not None}
    return replace(prefs, **overrides)


def build_window(
    prefs: Preferences,
    workspace: Workspace,
    checkpoint: str | None = None,
    *,
    load_in_background: bool = False,
) -> MainWindow:
    """Compose the session and window, and start the line. Used by :func:`main` and the end-to-end tests.

    ``checkpoint`` (``--checkpoint``) becomes the workspace's base model; without it the workspace keeps its own.
    With ``load_in_background`` (the app) the camera starts at once and the models load in a worker (live
    frames first, verdicts when the model is in); otherwise they are loaded before this returns.
    """
    session = InspectionSession(prefs, workspace)
    if checkpoint is not None:
        session.station.apply_settings(replace(session.station.settings, checkpoint=checkpoint))
        session.prefs = replace(session.prefs, checkpoint=checkpoint)
    window = MainWindow(session)
    session.ensure_default_classes()
    window.refresh_classes()
    if load_in_background:
        session.start_capture()
        window.statusBar().showMessage("Loading the model…")
        session.load_models_in_background()
        return window
    session.load_base_model()
    session.restore_model()
    session.start_capture()
    return window


def exit_after_first_frame(app: QApplication, window: MainWindow) -> None:
    """Poll for the first drawn frame; print its wall-clock time and quit (bench/bench_bundle.sh reads it)."""
    timer = QTimer(window)

    def poll() -> None:
        if window.frame_view.has_frame():
            timer.stop()
            print(f"first frame at {time.time():.3f}", flush=True)
            window.confirm_close = lambda what: True  # the model may still be loading: quit without asking
            window.close()
            app.quit()

    timer.timeout.connect(poll)
    timer.start(5)


def finish_workers(timeout_ms: int = 10_000) -> None:
    """Let the worker pool's threads end before Python shuts down.

    A cancelled worker returns from its generator, then still emits its finished signals on the pool thread; a
    pool thread alive when the interpreter tears Qt down aborts the process ("terminate called without an
    active exception"), seen once in a frozen self-test run.
    """
    QThreadPool.globalInstance().waitForDone(timeout_ms)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.self_test:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"  # headless, whatever display there is
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    set_cpu_threads()
    keep_freed_memory()
    app = QApplication.instance() or QApplication([sys.argv[0], *argv])
    guard_singletons()  # before the first window: see app/refcount_guard.py
    QCoreApplication.setOrganizationName(APP_NAME)
    QCoreApplication.setApplicationName(APP_NAME)
    if args.self_test:
        from app.selftest import run_self_test

        code = run_self_test()
        finish_workers()
        return code
    prefs, problem = load_preferences()
    try:
        prefs = effective_preferences(args, prefs)
    except ValueError as exc:
        QMessageBox.critical(None, APP_NAME, f"Invalid option: {user_message(exc)}")  # no camera password
        return 2
    try:
        workspace = Workspace.open(prefs.workspace_path())
    except (StorageError, OSError, ValueError) as exc:
        QMessageBox.critical(None, APP_NAME, f"The workspace could not be opened.\n\n{user_message(exc)}")
        return 1
    window = build_window(prefs, workspace, args.checkpoint, load_in_background=True)
    if problem:
        window.show_error(problem)
    window.show()
    if args.exit_after_first_frame:
        exit_after_first_frame(app, window)
    code = app.exec()
    finish_workers()
    return code


if __name__ == "__main__":
    sys.exit(main())
