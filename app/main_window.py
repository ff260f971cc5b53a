"""The main window: composes the live view, verdict, teaching and training panels around one session."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QCloseEvent, QColor, QKeySequence, QShortcut
from PySide6.QtWidgets import QDialog, QLabel, QMainWindow, QSplitter, QTabWidget, QVBoxLayout, QWidget

from app.preferences import save_preferences
from app.session import InspectionSession
from app.views.frame_view import FrameView
from app.views.settings_dialog import SettingsDialog
from app.views.teach_panel import TeachPanel
from app.views.training_panel import TrainingPanel
from app.views.verdict_panel import VerdictPanel, verdict_look
from core.inference import LiveClassifier
from core.inference.anomaly import anomaly_overlay
from core.inference.pipeline import PartResult
from core.redact import redact_source
from core.storage import StorageError
from core.training.progress import AdaptProgress

BOX_FRAMES = 2  # frames after the crop on which the part's box still roughly matches the picture


class MainWindow(QMainWindow):
    """Shows one :class:`~app.session.InspectionSession`; holds no capture or learning logic itself."""

    def __init__(self, session: InspectionSession) -> None:
        super().__init__()
        self.session = session
        self.setWindowTitle(f"MetaInspect — {session.ws.root}")
        self.frame_view = FrameView(placeholder="Connecting to the camera…")
        self.verdict = VerdictPanel()
        self.teach = TeachPanel()
        self.training = TrainingPanel()
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: white; background: #cf222e; padding: 6px; border-radius: 4px;")
        self.message.hide()
        # (box, colour, frame id): the part keeps moving, so its box is drawn only on frames close to the crop's.
        self._last_box: tuple[tuple[int, int, int, int], QColor, int] | None = None
        self._last_overlay: tuple[tuple[int, int, int, int], np.ndarray] | None = None
        self._drawn_frame_id = -1
        self._build_layout()
        self._connect()
        self._shortcuts()
        self._timer = QTimer(self)
        self._timer.setInterval(max(8, int(1000 / session.prefs.display_fps)))
        self._timer.timeout.connect(self._draw_latest_frame)
        self._timer.start()
        self.refresh_classes()
        self._restore_geometry()

    # ---- layout ------------------------------------------------------------------------------------------
    def _build_layout(self) -> None:
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.addWidget(self.message)
        left_layout.addWidget(self.frame_view, 3)
        left_layout.addWidget(self.training, 1)
        tabs = QTabWidget()
        tabs.addTab(self.teach, "Teach")
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.verdict)
        right.addWidget(tabs)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        self.setCentralWidget(split)
        menu = self.menuBar().addMenu("&File")
        menu.addAction("&Settings…", QKeySequence("Ctrl+,"), self.open_settings)
        menu.addAction("&Restart camera", QKeySequence("F5"), self.session.start_capture)
        menu.addAction("Reset &counts", self.verdict.reset_counts)
        menu.addSeparator()
        menu.addAction("&Quit", QKeySequence.StandardKey.Quit, self.close)
        self.statusBar().showMessage("Starting…")

    def _connect(self) -> None:
        s = self.session
        s.part_seen.connect(self.on_part)
        s.examples_changed.connect(self.refresh_classes)
        s.classes_changed.connect(self.refresh_classes)
        s.model_changed.connect(self.on_model)
        s.adapt_started.connect(self.on_adapt_started)
        s.adapt_progress.connect(self.on_adapt_progress)
        s.adapt_finished.connect(self.on_adapt_finished)
        s.error.connect(self.show_error)
        s.capture_state.connect(
            lambda state: self.statusBar().showMessage(f"Camera {state}: {redact_source(s.prefs.source)}")
        )
        self.teach.label_requested.connect(self.label)
        self.teach.undo_requested.connect(s.undo)
        self.teach.redo_requested.connect(s.redo)
        self.teach.adapt_requested.connect(s.start_adaptation)
        self.teach.auto_teach_requested.connect(s.start_auto_teach)
        self.teach.add_class_requested.connect(self.add_class)
        self.training.cancel_requested.connect(s.cancel_adaptation)

    def _shortcuts(self) -> None:
        for key in "123456789":
            QShortcut(QKeySequence(key), self, activated=lambda k=key: self.label_by_key(k))
        QShortcut(QKeySequence.StandardKey.Undo, self, activated=self.session.undo)
        QShortcut(QKeySequence("Ctrl+Shift+Z"), self, activated=self.session.redo)
        QShortcut(QKeySequence("Ctrl+Y"), self, activated=self.session.redo)
        QShortcut(QKeySequence("Ctrl+Return"), self, activated=self.session.start_adaptation)
        QShortcut(QKeySequence("Escape"), self, activated=self.session.cancel_adaptation)
        QShortcut(QKeySequence("F11"), self, activated=self.toggle_fullscreen)
        QShortcut(QKeySequence("N"), self, activated=self.new_defect_from_latest)

    # ---- actions -----------------------------------------------------------------------------------------
    def label_by_key(self, key: str) -> None:
        for cls in self.session.ws.classes.list():
            if cls.shortcut == key:
                self.label(cls.name)
                return

    def label(self, class_name: str) -> None:
        if self.session.label_latest(class_name):
            part = self.session.recent[-1].crop.part_id
            self.statusBar().showMessage(f"Part {part} labelled as {class_name}. Ctrl+Z undoes it.", 4000)

    def new_defect_from_latest(self) -> None:
        name = self.session.new_defect_from_latest()
        if name is not None:
            part = self.session.recent[-1].crop.part_id
            self.statusBar().showMessage(
                f"Part {part} is the first example of {name!r}. Label more, then Adapt (Ctrl+Return).", 8000
            )

    def add_class(self, name: str, is_defect: bool) -> None:
        used = {c.shortcut for c in self.session.ws.classes.list()}
        free = next((k for k in "123456789" if k not in used), None)
        try:
            self.session.ws.classes.add(name, is_defect=is_defect, shortcut=free)
        except ValueError as exc:
            self.show_error(str(exc))
            return
        self.refresh_classes()

    def refresh_classes(self) -> None:
        ws = self.session.ws
        self.teach.set_classes(ws.classes.list(), ws.examples.counts())

    def open_settings(self) -> None:
        dialog = SettingsDialog(self.session.prefs, self)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return
        prefs = dialog.preferences()
        source_changed = prefs.source != self.session.prefs.source
        self.session.prefs = prefs
        try:
            save_preferences(prefs)
        except StorageError as exc:
            self.show_error(f"Settings are in use but could not be saved: {exc}")
        if source_changed:
            self.session.start_capture()

    def toggle_fullscreen(self) -> None:
        self.showNormal() if self.isFullScreen() else self.showFullScreen()

    # ---- session signals ---------------------------------------------------------------------------------
    def on_part(self, result: PartResult) -> None:
        self.teach.show_part(result)
        self._last_overlay = None
        if result.verdict is not None:
            self.verdict.show_verdict(result.verdict, result.crop.image)
            colour = verdict_look(result.verdict)[1]
            anomaly = result.verdict.anomaly
            if anomaly is not None and anomaly.patch_map is not None:
                # the crop is the square of side max(w, h) / fill round the part's box (core.camera.trigger)
                x, y, w, h = result.crop.box
                side = (
                    round(max(w, h) / self.session.pipeline.trigger.fill)
                    if self.session.pipeline
                    else max(w, h)
                )
                square = (round(x + w / 2 - side / 2), round(y + h / 2 - side / 2), side, side)
                self._last_overlay = (square, anomaly_overlay(result.crop.image, anomaly))
        else:
            colour = QColor(200, 200, 200)
        self._last_box = (result.crop.box, colour, result.crop.frame_id)

    def on_model(self, classifier: LiveClassifier | None) -> None:
        if classifier is None:
            self.verdict.show_waiting("No model yet.")
            return
        self.verdict.set_classes(list(classifier.class_names))
        self.verdict.detail.setText("Model ready: verdicts appear as parts pass.")

    def on_adapt_started(self, steps: int) -> None:
        self.teach.set_adapting(True)
        self.training.start(steps, f"Adapting to the labelled examples ({steps} steps)…")

    def on_adapt_progress(self, progress: AdaptProgress) -> None:
        if progress.loss is not None:
            self.training.add_point(progress.step, progress.loss)

    def on_adapt_finished(self, message: str) -> None:
        self.teach.set_adapting(False)
        self.training.finish(message)
        self.statusBar().showMessage(message, 8000)

    def show_error(self, text: str) -> None:
        self.message.setText(text)
        self.message.show()
        QTimer.singleShot(12000, self.message.hide)

    def _draw_latest_frame(self) -> None:
        pipeline = self.session.pipeline
        frame = pipeline.latest_frame() if pipeline is not None else None
        if frame is None or frame.frame_id == self._drawn_frame_id:
            return
        self._drawn_frame_id = frame.frame_id
        boxes = overlays = None
        if self._last_box is not None and 0 <= frame.frame_id - self._last_box[2] <= BOX_FRAMES:
            boxes = [self._last_box[:2]]
            overlays = [self._last_overlay] if self._last_overlay is not None else None
        self.frame_view.set_frame(frame.image, boxes, overlays)

    # ---- window state ------------------------------------------------------------------------------------
    def _restore_geometry(self) -> None:
        geometry = QSettings().value("main_window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1280, 800)

    def closeEvent(self, event: QCloseEvent) -> None:
        QSettings().setValue("main_window/geometry", self.saveGeometry())
        self._timer.stop()
        self.session.close()
        super().closeEvent(event)
