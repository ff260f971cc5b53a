"""Render every view of the workstation to PNG: ``python -m app.screenshots [--out docs/screenshots]``.

Runs headless (offscreen Qt) on a scratch workspace: the synthetic line, the shipped model taught from the demo
line twice (so there is a version history; one example is mislabelled on purpose, for Examples to flag), a
minute of live parts, then one picture per view. Nothing of the
user's (preferences, workspace, window geometry) is read or written.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

SOURCE = "synthetic:seed=11,defect_rate=0.8,speed=2"
SIZE = (1280, 800)


def _wait(app: object, done: Callable[[], bool], timeout_s: float, what: str) -> None:
    start = time.monotonic()
    while not done():
        if time.monotonic() - start > timeout_s:
            raise TimeoutError(f"screenshots: {what} did not happen within {timeout_s:.0f} s")
        app.processEvents()  # type: ignore[attr-defined]
        time.sleep(0.01)


def render(out: Path, *, checkpoint: str = "default", parts: int = 30) -> list[Path]:
    """Teach, run the line and save one PNG per view into ``out``; returns the files written."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QCoreApplication, QSettings
    from PySide6.QtWidgets import QApplication

    from app.main import build_window
    from app.preferences import Preferences
    from app.refcount_guard import guard_singletons
    from app.views.settings_dialog import SettingsDialog
    from core.runtime import set_cpu_threads
    from core.storage import Workspace

    set_cpu_threads()
    app = QApplication.instance() or QApplication([sys.argv[0]])
    guard_singletons()
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="metainspect-shots-") as tmp:
        QSettings.setDefaultFormat(QSettings.Format.IniFormat)
        QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(Path(tmp) / "qsettings"))
        QCoreApplication.setOrganizationName("MetaInspectScreenshots")
        prefs = Preferences(
            source=SOURCE, checkpoint=checkpoint, workspace=str(Path(tmp) / "ws"), device="cpu"
        )
        window = build_window(prefs, Workspace.open(prefs.workspace_path()))
        window.resize(*SIZE)
        window.show()
        session = window.session

        def shot(name: str) -> None:
            for _ in range(5):
                app.processEvents()
            path = out / f"{name}.png"
            window.grab().save(str(path))
            written.append(path)

        try:
            _wait(app, window.frame_view.has_frame, 60, "the first frame")
            shot("01-live-not-taught")
            for per_class in (2, 3):
                session.start_auto_teach(per_class)
                _wait(app, lambda: session.auto_teach_target == 0, 300, "teaching from the demo line")
                if per_class == 3:  # a labelling mistake, for the Examples view to flag
                    session.station.relabel_example(session.ws.examples.list("dent")[0].id, "ok")
                done: list[str] = []
                session.adapt_finished.connect(done.append)
                session.start_adaptation()
                _wait(app, lambda done=done: bool(done), 300, "adaptation")
            _wait(app, lambda: not session.adapting(), 120, "the check of the last adaptation")
            seen = window.verdict.tally.total
            _wait(app, lambda: window.verdict.tally.total >= max(parts, seen + 3), 300, f"{parts} verdicts")
            window.show_tab(0)
            shot("02-live-teach")
            names = (
                "03-examples",
                "04-models",
                "05-history",
                "06-review",
                "07-shift",
                "08-adaptation",
                "09-training",
            )
            for index, name in enumerate(names, start=1):
                window.show_tab(index)
                if name == "05-history":
                    window.history.verdict.setCurrentText("REJECT")  # parts with a kept image: evidence
                    window.history.table.selectRow(0)
                    evidence = window.history.evidence
                    _wait(app, lambda evidence=evidence: evidence.count() > 0, 120, "the part's evidence")
                if name == "07-shift":
                    window.shift.period.setCurrentText("Last hour")
                window.refresh_log_views(force=True)
                shot(name)
            dialog = SettingsDialog(session.prefs, window)
            dialog.show()
            app.processEvents()
            path = out / "10-settings.png"
            dialog.grab().save(str(path))
            written.append(path)
            dialog.close()
        finally:
            window.close()
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.screenshots", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/screenshots", help="folder for the PNG files")
    parser.add_argument(
        "--checkpoint", default="default", help="meta-trained model (default: the shipped one)"
    )
    parser.add_argument("--parts", type=int, default=30, help="live verdicts to wait for before the pictures")
    args = parser.parse_args(argv)
    for path in render(Path(args.out), checkpoint=args.checkpoint, parts=args.parts):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
