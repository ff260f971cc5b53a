"""The Qt face of the station: turns :class:`core.station.Station` events into signals and runs its long work
(capture loop, adaptation, model loading, settings that reload the model) in worker threads.

No capture, learning or logging logic lives here: that is all in :mod:`core.station`. Views listen to the
signals and call these methods; nothing here touches a widget.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable, Generator
from dataclasses import replace
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from app.preferences import Preferences
from app.workers.tasks import CancellableTask
from core.config import TrainConfig
from core.inference import LiveClassifier
from core.inference.pipeline import PartResult
from core.runtime import generator_in_thread, release_freed_memory
from core.station import (
    AdaptFinished,
    AdaptStarted,
    AdaptStep,
    AdaptSummarized,
    CameraStatus,
    ClassesChanged,
    ExamplesChanged,
    Message,
    ModelActivated,
    PartInspected,
    SettingsApplied,
    Station,
    StationEvent,
    StationSettings,
    describe_error,
)
from core.station.evidence import PartEvidence, part_evidence
from core.storage import Workspace
from core.storage.checkpoint import LoadedCheckpoint
from core.storage.records import Inspection
from core.training.background import BackgroundTraining

log = logging.getLogger(__name__)


def user_message(exc: BaseException) -> str:
    """One line a person can act on, for errors raised by core (never a traceback, never a password)."""
    return describe_error(exc)


def station_settings(prefs: Preferences, current: StationSettings | None = None) -> StationSettings:
    """The station settings the preferences ask for; fields the preferences do not hold (ROI, trigger) are
    kept from ``current``."""
    base = current or StationSettings()
    return replace(
        base,
        source=prefs.source,
        device=prefs.device,
        checkpoint=prefs.checkpoint,
        min_confidence=prefs.min_confidence,
        min_margin=prefs.min_margin,
        adapt_steps=prefs.adapt_steps,
    )


def _call(fn: Callable[[], Any]) -> Callable[[threading.Event], Generator[None, None, Any]]:
    """A one-shot call as the generator a :class:`CancellableTask` drives."""

    def run(cancel: threading.Event) -> Generator[None, None, Any]:
        yield None
        return fn()

    return run


class InspectionSession(QObject):
    """One running workstation: a :class:`Station` and the workers that drive it."""

    part_seen = Signal(object)  # PartResult
    classes_changed = Signal()
    examples_changed = Signal()
    model_changed = Signal(object)  # LiveClassifier | None
    version_changed = Signal(object)  # ModelVersion | None
    adapt_started = Signal(int)  # total steps
    adapt_progress = Signal(object)  # AdaptProgress
    adapt_finished = Signal(str)  # message
    adapt_summary = Signal(object)  # core.station.summary.AdaptSummary | None (the live version has none)
    capture_state = Signal(str)  # "running", "stopped"
    camera_status = Signal(object)  # CameraStatus
    settings_applied = Signal(object)  # frozenset of changed field names
    message = Signal(object)  # core.station.Message
    training_progress = Signal(list)  # new TrainProgress records of the background run
    training_finished = Signal(str, object)  # message, checkpoint path (None when it failed)
    evidence_ready = Signal(object)  # core.station.evidence.PartEvidence
    error = Signal(str)  # the text of every error-level message

    def __init__(
        self, prefs: Preferences, workspace: Workspace, parent: QObject | None = None, **station_kw: Any
    ) -> None:
        super().__init__(parent)
        self.station = Station(workspace, station_settings(prefs), **station_kw)
        # The workspace's own base model (core.station.setup) wins over the user-wide preference.
        self.prefs = replace(prefs, checkpoint=self.station.settings.checkpoint)
        self._unsubscribe = self.station.events.subscribe(self._on_event)
        self._capture: CancellableTask | None = None
        self._adapt: CancellableTask | None = None
        self.memory_releases = 0  # adaptations whose freed memory went back to the OS (the allocator trimmed)
        self._model_task: CancellableTask | None = None
        self._evidence: CancellableTask | None = None
        self.training: BackgroundTraining | None = None
        self._training_timer = QTimer(self)
        self._training_timer.setInterval(250)
        self._training_timer.timeout.connect(self._poll_training)

    # ---- what views read ---------------------------------------------------------------------------------
    @property
    def ws(self) -> Workspace:
        return self.station.ws

    @property
    def base(self) -> LoadedCheckpoint | None:
        """The meta-trained model taught from (None until loaded)."""
        return self.station.base

    @property
    def classifier(self) -> LiveClassifier | None:
        return self.station.classifier

    @property
    def recent(self) -> collections.deque[PartResult]:
        return self.station.recent

    @property
    def auto_teach_target(self) -> int:
        return self.station.auto_teach_target

    # ---- events -> signals (any thread; Qt queues them to the receivers' thread) ---------------------------
    def _on_event(self, event: StationEvent) -> None:
        if isinstance(event, PartInspected):
            self.part_seen.emit(event.result)
        elif isinstance(event, CameraStatus):
            self.camera_status.emit(event)
        elif isinstance(event, ExamplesChanged):
            self.examples_changed.emit()
        elif isinstance(event, ClassesChanged):
            self.classes_changed.emit()
        elif isinstance(event, ModelActivated):
            self.model_changed.emit(self.station.classifier)
            self.version_changed.emit(event.version)
        elif isinstance(event, AdaptStarted):
            self.adapt_started.emit(event.steps)
        elif isinstance(event, AdaptStep):
            self.adapt_progress.emit(event.progress)
        elif isinstance(event, AdaptFinished):
            self.adapt_finished.emit(event.message)
        elif isinstance(event, AdaptSummarized):
            self.adapt_summary.emit(event.summary)
        elif isinstance(event, SettingsApplied):
            self.settings_applied.emit(event.changed)
        elif isinstance(event, Message):
            self.message.emit(event)
            if event.level == "error":
                self.error.emit(event.text)

    def _report(self, topic: str, exc: BaseException) -> None:
        self.message.emit(Message(topic, user_message(exc)))  # type: ignore[arg-type]
        self.error.emit(user_message(exc))

    # ---- set-up ------------------------------------------------------------------------------------------
    def load_base_model(self) -> bool:
        return self.station.load_base_model()

    def restore_model(self) -> None:
        self.station.restore_model()

    def load_models_in_background(self) -> None:
        """Start-up without waiting for the model: restore the workspace's live version (verdicts resume), then
        load the meta-trained model taught from, both in a worker; ``model_changed`` says when verdicts can
        come. The camera runs meanwhile; Adapt waits for it (see :meth:`start_adaptation`)."""

        def load() -> None:
            self.station.restore_model()
            if self.station.load_base_model():
                self.message.emit(Message("model", "Model loaded.", "info"))

        self._run_model_task(load)

    def model_loading(self) -> bool:
        """True while a model is being loaded or activated in a worker."""
        return self._model_task is not None and not self._model_task.done

    def ensure_default_classes(self) -> None:
        self.station.ensure_default_classes()

    def is_synthetic(self) -> bool:
        return self.station.is_synthetic()

    # ---- capture -----------------------------------------------------------------------------------------
    def start_capture(self) -> None:
        """(Re)start the capture loop on a worker thread."""
        self.stop_capture()
        self._capture = CancellableTask(
            self.station.inspect,
            on_error=lambda exc: self._report("camera", exc),
            on_finish=lambda: self.capture_state.emit("stopped"),
        ).start()
        self.capture_state.emit("running")

    def stop_capture(self, wait_s: float = 3.0) -> None:
        """Stop the capture loop and wait (bounded) until it no longer writes to the workspace."""
        if self._capture is not None:
            self._capture.cancel()
            if not self._capture.wait(wait_s):
                log.warning("capture worker did not stop within %.1f s", wait_s)
            self._capture = None

    # ---- labelling ---------------------------------------------------------------------------------------
    def label_latest(self, class_name: str) -> bool:
        return self.station.label_latest(class_name) is not None

    def label_part(self, result: PartResult, class_name: str) -> bool:
        return self.station.label_image(result.crop.image, class_name) is not None

    def new_defect_from_latest(self) -> str | None:
        """Make the newest part the first example of a new defect class (key N); its name, or None."""
        return self.station.new_defect_from_latest()

    def undo(self) -> bool:
        return self.station.undo()

    def redo(self) -> bool:
        return self.station.redo()

    def start_auto_teach(self, per_class: int = 5) -> None:
        self.station.start_auto_teach(per_class)

    # ---- adaptation and versions -------------------------------------------------------------------------
    def adapting(self) -> bool:
        return self._adapt is not None and not self._adapt.done

    def busy(self) -> str | None:
        """What long work is running (for "quit anyway?"), or None."""
        if self.training is not None and self.training.running:
            return "a training run"
        if self.adapting():
            return "an adaptation"
        if self.model_loading():
            return "loading a model"
        return None

    def start_adaptation(self) -> None:
        """Adapt in a worker (on a thread of its own at lower priority, so the GUI and the line get the cores
        first); progress and result come as signals. Refused (with a message) while one runs."""
        busy = (
            "An adaptation (or the check of the last one) is still running"
            if self.adapting()
            else "The model is still loading"
            if self.model_loading()
            else None
        )
        if busy is not None:
            self.message.emit(Message("teach", f"{busy}; try again in a moment.", "warning"))
            return
        self._adapt = CancellableTask(
            lambda cancel: generator_in_thread(
                lambda: self.station.adapt(cancel), name="metainspect-adaptation"
            ),
            on_error=lambda exc: self._finish_failed(exc),
            on_finish=self._release_after_views,
        ).start()

    #: Seconds after an adaptation's end (its summary handed to the views) before the freed memory is given
    #: back: the views redraw the new model's check in between, on the GUI thread.
    RELEASE_AFTER_VIEWS_S = 0.5

    def _release_after_views(self) -> None:
        """Give the memory the adaptation freed back to the OS, so the running app's resident memory stays
        flat from one adaptation to the next: after the views have drawn its outcome, because what the GUI
        thread allocated and freed for them (thumbnails, curves) would otherwise stay resident until the next
        adaptation (samples swung by up to ~60 MB; docs/benchmarks.md). Once per adaptation, on a short-lived
        thread: ``malloc_trim`` holds each allocator arena while it works, tens of milliseconds on a large
        heap, during which the GUI thread cannot allocate."""
        timer = threading.Timer(self.RELEASE_AFTER_VIEWS_S, self._release_memory)
        timer.daemon = True
        timer.name = "metainspect-release-memory"
        timer.start()

    def _release_memory(self) -> None:
        release_freed_memory()
        self.memory_releases += 1

    def _finish_failed(self, exc: BaseException) -> None:
        text = f"Adaptation failed: {user_message(exc)}"
        self.adapt_finished.emit(text)
        self.error.emit(text)

    def cancel_adaptation(self) -> None:
        if self._adapt is not None:
            self._adapt.cancel()

    def _run_model_task(self, fn: Callable[[], Any], topic: str = "model") -> None:
        if self.model_loading():
            self.message.emit(Message("model", "A model is still loading; try again in a moment.", "warning"))
            return
        self._model_task = CancellableTask(_call(fn), on_error=lambda exc: self._report(topic, exc)).start()

    def activate(self, version_id: int) -> None:
        """Load and make live a stored version (in a worker; ``version_changed`` says when)."""
        self._run_model_task(lambda: self.station.activate(version_id))

    def rollback(self) -> None:
        """Go back to the version before the live one (in a worker)."""
        self._run_model_task(self.station.rollback)

    def apply_preferences(self, prefs: Preferences) -> None:
        """Use new preferences now: thresholds and ROI at once, a device change reloads the model (in a worker),
        a new source replaces the camera. ``settings_applied`` says when it took effect."""
        settings = station_settings(prefs, self.station.settings)
        self.prefs = prefs
        self._run_model_task(lambda: self.station.apply_settings(settings), topic="settings")

    def set_roi(self, roi: tuple[int, int, int, int] | None) -> bool:
        """Cut parts only inside ``roi`` (frame pixels; None: the whole frame), from the next frame on."""
        try:
            self.station.apply_settings(replace(self.station.settings, roi=roi))
        except ValueError as exc:  # StationError and a region the settings refuse
            self._report("camera", exc)
            return False
        return True

    def wait_model_task(self, timeout_s: float = 10.0) -> bool:
        return self._model_task is None or self._model_task.wait(timeout_s)

    def request_evidence(self, inspection: Inspection) -> None:
        """Find a logged part's nearest labelled examples in a worker; ``evidence_ready`` brings them. A new
        request cancels the one before (only the selected part matters)."""
        if self._evidence is not None:
            self._evidence.cancel()

        def find() -> PartEvidence | None:
            if self.station.base is None and not self.station.load_base_model():
                return None  # the station said why
            base = self.station.base
            return None if base is None else part_evidence(self.ws, inspection, base)

        self._evidence = CancellableTask(
            _call(find),
            on_return=self._evidence_found,
            on_error=lambda exc: self._report("history", exc),
        ).start()

    def _evidence_found(self, evidence: PartEvidence | None) -> None:
        if evidence is not None:
            self.evidence_ready.emit(evidence)

    # ---- meta-training in a separate process --------------------------------------------------------------
    def start_training(self, config: TrainConfig, data: str, out: str, objective: str = "episodic") -> bool:
        """Start meta-training (``objective`` ``"episodic"``) or pre-training (``"supervised"``) on ``data`` in a
        child process; progress comes as ``training_progress``."""
        if self.training is not None and self.training.running:
            self.message.emit(
                Message("training", "A training run is already going; cancel it first.", "warning")
            )
            return False
        try:
            self.training = BackgroundTraining(config, data, out, objective=objective).start()
        except (OSError, ValueError) as exc:
            self._report("training", exc)
            return False
        self._training_timer.start()
        return True

    def cancel_training(self) -> None:
        if self.training is not None:
            self.training.cancel()

    def _poll_training(self) -> None:
        run = self.training
        if run is None:
            self._training_timer.stop()
            return
        fresh = run.poll()
        if fresh:
            self.training_progress.emit(fresh)
        if run.finished:
            self._training_timer.stop()
            last = run.history[-1] if run.history else None
            if run.error is not None:
                self.training_finished.emit(f"Training failed: {run.error}", None)
            elif last is not None and last.cancelled:
                self.training_finished.emit(
                    f"Training cancelled at iteration {last.iteration}.", str(run.out)
                )
            else:
                self.training_finished.emit(f"Training finished: {run.out}", str(run.out))

    def use_as_base_model(self, checkpoint: str) -> None:
        """Teach from ``checkpoint`` from now on (the next adaptation loads it)."""
        self.apply_preferences(replace(self.prefs, checkpoint=checkpoint))

    # ---- shutdown ----------------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop workers, flush the inspection log and release the workspace lock."""
        self.stop_capture()
        self.cancel_adaptation()
        self._training_timer.stop()
        if self.training is not None:
            self.training.stop()
        if self._evidence is not None:
            self._evidence.cancel()
        for task in (self._adapt, self._model_task, self._evidence):
            if task is not None and not task.wait(30.0):
                log.warning("a worker did not stop within 30 s")
        self._unsubscribe()
        self.station.close()
