"""The main window: composes the live view, verdict and the workstation's views around one session.

It only lays out views and forwards what they ask for to the session; the station (core) does the work.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QCloseEvent, QColor, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.preferences import save_preferences
from app.session import InspectionSession
from app.views.adaptation_view import AdaptationView
from app.views.examples_view import ExamplesView
from app.views.frame_view import FrameView
from app.views.history_view import HistoryView
from app.views.message_bar import MessageBar
from app.views.models_view import ModelsView
from app.views.review_view import ReviewView
from app.views.roi_overlay import RoiOverlay
from app.views.settings_dialog import SettingsDialog
from app.views.shift_view import ShiftView
from app.views.teach_panel import TeachPanel
from app.views.training_panel import TrainingPanel
from app.views.training_view import TrainingView
from app.views.verdict_panel import VerdictPanel, verdict_look
from core.camera.trigger import DEFAULT_FILL
from core.inference import LiveClassifier
from core.inference.pipeline import PartResult
from core.station import CameraStatus, Message
from core.station.camera import CameraHealth
from core.station.summary import AdaptSummary
from core.storage import StorageError
from core.training.progress import AdaptProgress

BOX_FRAMES = 2  # frames after the crop on which the part's box still roughly matches the picture
LOG_VIEWS_REFRESH_MS = 2000  # history, review and shift read the log; the log is flushed every second


def _scrolled(widget: QWidget) -> QScrollArea:
    """Wrap a panel so its minimum size never makes the window grow (it scrolls instead)."""
    area = QScrollArea()
    area.setWidget(widget)
    area.setWidgetResizable(True)
    area.setFrameShape(QScrollArea.Shape.NoFrame)
    return area


def ask_to_quit(parent: QWidget, what: str) -> bool:
    answer = QMessageBox.question(
        parent,
        "Quit MetaInspect?",
        f"{what[0].upper() + what[1:]} is still running. Stop it and quit?",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No,
    )
    return answer == QMessageBox.StandardButton.Yes


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
        self.examples = ExamplesView()
        self.models = ModelsView()
        self.history = HistoryView()
        self.review = ReviewView()
        self.shift = ShiftView()
        self.adaptation = AdaptationView()
        self.meta_training = TrainingView(session.ws.root / "trained")
        self.roi_overlay = RoiOverlay(self.frame_view)
        self.messages = MessageBar()  # camera, log and settings messages: above the live view
        self.teach_messages = MessageBar()
        self.camera_label = QLabel("Camera starting…")
        self.camera_banner = QLabel()
        self.camera_banner.setWordWrap(True)
        self.camera_banner.setStyleSheet(
            "background: #bf8700; color: white; padding: 6px; font-weight: bold;"
        )
        self.camera_banner.hide()
        self.confirm_close: Callable[[str], bool] = lambda what: ask_to_quit(self, what)
        # (box, colour, frame id): the part keeps moving, so its box is drawn only on frames close to the crop's.
        self._last_box: tuple[tuple[int, int, int, int], QColor, int] | None = None
        self._last_overlay: tuple[tuple[int, int, int, int], np.ndarray] | None = None
        self._drawn_frame_id = -1
        self._camera_status = CameraStatus("connecting")
        self._log_dirty = True
        self._examples_dirty = True
        self._build_layout()
        self._connect()
        self._shortcuts()
        self._timer = QTimer(self)
        self._timer.setInterval(max(8, int(1000 / session.prefs.display_fps)))
        self._timer.timeout.connect(self._draw_latest_frame)
        self._timer.start()
        self._health_timer = QTimer(self)
        self._health_timer.setInterval(1000)
        self._health_timer.timeout.connect(self.update_camera_health)
        self._health_timer.start()
        self._log_timer = QTimer(self)
        self._log_timer.setInterval(LOG_VIEWS_REFRESH_MS)
        self._log_timer.timeout.connect(self.refresh_log_views)
        self._log_timer.start()
        self.refresh_classes()
        self.models.refresh(session.ws)
        self._restore_geometry()

    # ---- layout ------------------------------------------------------------------------------------------
    def _build_layout(self) -> None:
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.addWidget(self.messages)
        left_layout.addWidget(self.camera_banner)
        left_layout.addWidget(self.frame_view, 3)
        left_layout.addWidget(self.training, 1)
        teach_page = QWidget()
        teach_layout = QVBoxLayout(teach_page)
        teach_layout.setContentsMargins(0, 0, 0, 0)
        teach_layout.addWidget(self.teach_messages)
        teach_layout.addWidget(self.teach, 1)
        self.tabs = QTabWidget()
        self.tabs.setUsesScrollButtons(True)
        pages = (
            (_scrolled(teach_page), "&Teach"), (self.examples, "E&xamples"), (self.models, "&Models"),
            (self.history, "&History"), (self.review, "Re&view"), (self.shift, "S&hift"),
            (self.adaptation, "&Adaptation"), (_scrolled(self.meta_training), "T&raining"),
        )  # fmt: skip
        for page, title in pages:
            self.tabs.addTab(page, title)
        self.tabs.currentChanged.connect(lambda _: self.refresh_log_views(force=True))
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(_scrolled(self.verdict))
        right.addWidget(self.tabs)
        right.setStretchFactor(0, 2)
        right.setStretchFactor(1, 3)
        right.setSizes([330, 450])  # the verdict with its bars and recent parts; the tabs below
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
        camera = self.menuBar().addMenu("&Camera")
        camera.addAction("Set &region of interest (drag on the live view)", QKeySequence("Ctrl+R"),
                         self.start_roi_editing)  # fmt: skip
        camera.addAction("&Whole frame", self.clear_roi)
        view = self.menuBar().addMenu("&View")
        for i in range(self.tabs.count()):
            title = self.tabs.tabText(i).replace("&", "")
            view.addAction(title, QKeySequence(f"Ctrl+{i + 1}"), lambda i=i: self.show_tab(i))
        self.statusBar().addPermanentWidget(self.camera_label)
        self.statusBar().showMessage("Starting…")

    def _connect(self) -> None:
        s = self.session
        s.part_seen.connect(self.on_part)
        s.examples_changed.connect(self.refresh_classes)
        s.classes_changed.connect(self.refresh_classes)
        s.model_changed.connect(self.on_model)
        s.version_changed.connect(lambda _: self.models.refresh(s.ws))
        s.adapt_started.connect(self.on_adapt_started)
        s.adapt_progress.connect(self.on_adapt_progress)
        s.adapt_finished.connect(self.on_adapt_finished)
        s.adapt_summary.connect(self.on_adapt_summary)
        s.message.connect(self.on_message)
        s.camera_status.connect(self.on_camera_status)
        s.settings_applied.connect(self.on_settings_applied)
        self.teach.label_requested.connect(self.label)
        self.teach.undo_requested.connect(s.undo)
        self.teach.redo_requested.connect(s.redo)
        self.teach.adapt_requested.connect(s.start_adaptation)
        self.teach.auto_teach_requested.connect(s.start_auto_teach)
        self.teach.add_class_requested.connect(self.add_class)
        self.training.cancel_requested.connect(s.cancel_adaptation)
        self.roi_overlay.roi_selected.connect(self.set_roi)
        self.models.activate_requested.connect(s.activate)
        self.models.rollback_requested.connect(s.rollback)
        self.examples.relabel_requested.connect(self.relabel_examples)
        self.examples.delete_requested.connect(self.delete_examples)
        self.examples.split_requested.connect(self.move_examples)
        self.examples.files_dropped.connect(
            lambda paths, name: self.statusBar().showMessage(
                f"{s.station.import_images(paths, name)} of {len(paths)} files added as {name}.", 6000
            )
        )
        self.history.override_requested.connect(self.override)
        self.history.evidence_requested.connect(s.request_evidence)
        s.evidence_ready.connect(self.history.show_evidence)
        self.meta_training.start_requested.connect(self.start_training)
        self.meta_training.cancel_requested.connect(s.cancel_training)
        self.meta_training.use_requested.connect(self.use_trained_model)
        s.training_progress.connect(self.meta_training.add_records)
        s.training_finished.connect(self.meta_training.finished)
        self.review.override_requested.connect(self.override)

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
    def start_roi_editing(self) -> None:
        self.roi_overlay.start_editing()
        self.statusBar().showMessage(
            "Drag a rectangle on the live view around where parts pass; Esc cancels."
        )

    def set_roi(self, roi: tuple[int, int, int, int] | None) -> None:
        if not self.session.set_roi(roi):
            return
        self.roi_overlay.roi = roi
        self.roi_overlay.update()
        where = "the whole frame" if roi is None else f"x {roi[0]}, y {roi[1]}, {roi[2]} x {roi[3]} px"
        self.statusBar().showMessage(f"Parts are now cut from {where}.", 6000)

    def clear_roi(self) -> None:
        self.set_roi(None)

    def show_tab(self, index: int) -> None:
        self.tabs.setCurrentIndex(index)
        page = self.tabs.currentWidget()
        focus = {self.examples: self.examples.list, self.models: self.models.table,
                 self.history: self.history.table, self.review: self.review.list}.get(page)  # fmt: skip
        (focus or page).setFocus()

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
        self.session.station.add_class(name, is_defect=is_defect)

    def relabel_examples(self, ids: list[int], class_name: str) -> None:
        for example_id in ids:
            self.session.station.relabel_example(example_id, class_name)

    def move_examples(self, ids: list[int], split: str) -> None:
        for example_id in ids:
            self.session.station.set_split(example_id, split)

    def delete_examples(self, ids: list[int]) -> None:
        for example_id in ids:
            self.session.station.delete_example(example_id)

    def override(self, inspection_id: int, class_name: str) -> None:
        if self.session.station.override(inspection_id, class_name) is not None:
            self.statusBar().showMessage(f"Corrected to {class_name}; kept as a labelled example.", 4000)
        self.refresh_log_views(force=True)

    def start_training(self, config: object, data: str, out: str, objective: str = "episodic") -> None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        if self.session.start_training(config, data, out, objective):  # type: ignore[arg-type]
            self.meta_training.started(config.iterations)  # type: ignore[attr-defined]

    def use_trained_model(self, path: str) -> None:
        self.session.use_as_base_model(path)
        self.statusBar().showMessage(f"The next adaptation teaches from {path}.", 8000)

    def refresh_classes(self) -> None:
        """After labels or classes changed: the teach buttons now, the examples when their tab is shown."""
        ws = self.session.ws
        self.teach.set_classes(ws.classes.list(), ws.examples.counts())
        self.history.set_classes(ws)
        self._examples_dirty = True
        if self.tabs.currentWidget() is self.examples:
            self.refresh_examples()

    def refresh_examples(self) -> None:
        self._examples_dirty = False
        self.examples.refresh(self.session.ws)

    def refresh_log_views(self, force: bool = False) -> None:
        """Re-read the log for the visible log view (history, review, shift) when parts arrived."""
        if self.tabs.currentWidget() is self.examples and self._examples_dirty:
            self.refresh_examples()
        if not (self._log_dirty or force):
            return
        self._log_dirty = False
        page = self.tabs.currentWidget()
        if page is self.history:
            self.history.reload()
        elif page is self.review:
            self.review.refresh(self.session.ws)
        elif page is self.shift:
            self.shift.refresh(self.session.ws)

    def open_settings(self) -> None:
        dialog = SettingsDialog(self.session.prefs, self)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return
        self.apply_preferences(dialog.preferences())

    def apply_preferences(self, prefs: object) -> None:
        """Use and save new preferences; they take effect now (``settings_applied`` confirms)."""
        from app.preferences import Preferences

        assert isinstance(prefs, Preferences)
        self.session.apply_preferences(prefs)
        try:
            save_preferences(prefs)
        except StorageError as exc:
            self.messages.show_message(f"Settings are in use but could not be saved: {exc}")

    def toggle_fullscreen(self) -> None:
        self.showNormal() if self.isFullScreen() else self.showFullScreen()

    # ---- session signals ---------------------------------------------------------------------------------
    def on_part(self, result: PartResult) -> None:
        self.teach.show_part(result)
        self._last_overlay = None
        if result.verdict is not None:
            self.verdict.show_verdict(result.verdict, result.crop.image)
            colour = verdict_look(result.verdict)[1]
            self._log_dirty = True
            if result.overlay is not None:
                # the crop is the square of side max(w, h) / fill round the part's box (core.camera.trigger)
                x, y, w, h = result.crop.box
                side = round(max(w, h) / DEFAULT_FILL)
                square = (round(x + w / 2 - side / 2), round(y + h / 2 - side / 2), side, side)
                self._last_overlay = (square, result.overlay)
        else:
            colour = QColor(200, 200, 200)
        self._last_box = (result.crop.box, colour, result.crop.frame_id)

    def on_model(self, classifier: LiveClassifier | None) -> None:
        if classifier is None:
            self.verdict.show_waiting("No model yet.")
            return
        self.verdict.set_classes(list(classifier.class_names))
        self.verdict.show_ready("Model ready: verdicts appear as parts pass.")

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

    def on_adapt_summary(self, summary: AdaptSummary | None) -> None:
        self.adaptation.show_summary(summary, self.session.ws)
        self.examples.set_flags(summary)

    def on_message(self, message: Message) -> None:
        bars = {
            "teach": self.teach_messages, "model": self.models.messages, "history": self.history.messages,
            "training": self.meta_training.messages,
        }  # fmt: skip
        bar = bars.get(message.topic, self.messages)
        if message.level == "info":
            self.statusBar().showMessage(message.text, 8000)
            return
        bar.show_message(message.text, message.level)
        if bar is not self.messages and self.tabs.currentWidget() is not bar.parentWidget():
            self.statusBar().showMessage(message.text, 8000)  # also where the eye is

    def show_error(self, text: str) -> None:
        self.messages.show_message(text)

    def on_camera_status(self, status: CameraStatus) -> None:
        self._camera_status = status
        self.update_camera_health()

    def update_camera_health(self) -> None:
        health: CameraHealth = self.session.station.health()
        text = health.describe()
        self.camera_label.setText(text)
        colour = {"running": "", "reconnecting": "color: #bf8700;", "lost": "color: #cf222e;"}
        self.camera_label.setStyleSheet(colour.get(health.state, "color: #666;"))
        # Over the live view too: a frozen frame must not look like a running line.
        self.camera_banner.setVisible(health.state in ("reconnecting", "lost", "ended"))
        self.camera_banner.setText(text)

    def on_settings_applied(self, changed: frozenset[str]) -> None:
        names = ", ".join(sorted(changed)) or "nothing changed"
        self.statusBar().showMessage(f"Settings applied ({names}).", 6000)

    def _draw_latest_frame(self) -> None:
        frame = self.session.station.latest_frame()
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
        self.roi_overlay.roi = self.session.station.settings.roi  # kept in the workspace (core.station.setup)
        geometry = QSettings().value("main_window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1280, 800)

    def closeEvent(self, event: QCloseEvent) -> None:
        busy = self.session.busy()
        if busy is not None and not self.confirm_close(busy):
            event.ignore()
            return
        QSettings().setValue("main_window/geometry", self.saveGeometry())
        for timer in (self._timer, self._health_timer, self._log_timer):
            timer.stop()
        self.session.close()
        super().closeEvent(event)
