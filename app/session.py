"""The inspection session: composes core objects (workspace, capture, model) and runs them in workers.

Views listen to the session's signals and call its methods; the session never touches a widget, and the
long work (capture, part trigger, inference, adaptation) runs in worker threads.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Generator, Sequence
from typing import Any

from PySide6.QtCore import QObject, Signal

from app.preferences import Preferences
from app.workers.tasks import CancellableTask
from core.camera import CaptureRunner, PartTrigger, SourceError, parse_spec
from core.camera.synthetic import DEFECT_CLASSES
from core.inference import Decision, LiveClassifier, VerdictPolicy
from core.inference.pipeline import InspectionPipeline, PartResult
from core.inference.teach import (
    TaughtModel,
    TeachingError,
    new_defect_class_from_part,
    restore_active,
    teach,
)
from core.redact import redact_source
from core.runtime import resolve_device
from core.storage import NewInspection, StorageError, Workspace
from core.storage.checkpoint import CheckpointError, LoadedCheckpoint, load_checkpoint
from core.training.adapt import LabelWarmer

log = logging.getLogger(__name__)

CLASS_COLOURS = ("#2ea043", "#cf222e", "#bf8700", "#8250df", "#0969da", "#d1242f", "#1a7f37", "#953800")
RECENT_PARTS = 20


def user_message(exc: BaseException) -> str:
    """One line a person can act on, for errors raised by core (never a traceback)."""
    text = redact_source(str(exc)) or type(exc).__name__
    return (
        text
        if isinstance(exc, (ValueError, StorageError, CheckpointError, SourceError, OSError))
        else (f"{type(exc).__name__}: {text}")
    )


class InspectionSession(QObject):
    """Everything one running workstation holds: workspace, base model, capture pipeline, taught model."""

    part_seen = Signal(object)  # PartResult
    classes_changed = Signal()
    examples_changed = Signal()
    model_changed = Signal(object)  # LiveClassifier | None
    adapt_started = Signal(int)  # total steps
    adapt_progress = Signal(object)  # AdaptProgress
    adapt_finished = Signal(str)  # message
    capture_state = Signal(str)
    error = Signal(str)

    def __init__(self, prefs: Preferences, workspace: Workspace, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.prefs = prefs
        self.ws = workspace
        self.device = resolve_device(prefs.device)
        self.base: LoadedCheckpoint | None = None
        self.pipeline: InspectionPipeline | None = None
        self.classifier: LiveClassifier | None = None
        self.recent: collections.deque[PartResult] = collections.deque(maxlen=RECENT_PARTS)
        self.auto_teach_target = 0
        self._capture: CancellableTask | None = None
        self._adapt: CancellableTask | None = None
        self._writer = self.ws.inspections.buffered_writer(max_rows=64, max_delay_s=1.0)
        self._model_id: int | None = None
        self._log_lock = threading.Lock()
        self._log_state = (False, False)  # (verdicts waiting for disk space, verdicts lost): last shown
        self._warmer = LabelWarmer()  # embeds each labelled part in the background, so Adapt only fits

    # ---- set-up ------------------------------------------------------------------------------------------
    def load_base_model(self) -> bool:
        """Load the meta-trained checkpoint named in the preferences; False (and an error signal) if it fails."""
        try:
            self.base = load_checkpoint(self.prefs.checkpoint)
        except (CheckpointError, OSError, ValueError) as exc:
            self.error.emit(f"The meta-trained model could not be loaded: {user_message(exc)}")
            return False
        return True

    def restore_model(self) -> None:
        """Bring back the workspace's active model version, so a restart carries on where it stopped."""
        try:
            restored = restore_active(self.ws, policy=self.policy(), device=self.device)
        except (CheckpointError, StorageError, OSError, ValueError) as exc:
            self.error.emit(
                f"The last adapted model could not be restored ({user_message(exc)}); adapt again."
            )
            return
        if restored is not None:
            self._set_classifier(restored[0], restored[1].id)

    def ensure_default_classes(self) -> None:
        """A new workspace gets classes: the synthetic line's defect classes, or ``ok``/``defect`` elsewhere."""
        if self.ws.classes.list():
            return
        names = DEFECT_CLASSES if self.is_synthetic() else ("ok", "defect")
        for i, name in enumerate(names[:9]):
            self.ws.classes.add(
                name,
                colour=CLASS_COLOURS[i % len(CLASS_COLOURS)],
                is_defect=name != "ok",
                shortcut=str(i + 1),
            )
        self.classes_changed.emit()

    def is_synthetic(self) -> bool:
        try:
            return parse_spec(self.prefs.source)[0] == "synthetic"
        except ValueError:
            return False

    def policy(self) -> VerdictPolicy:
        defects = frozenset(c.name for c in self.ws.classes.list() if c.is_defect)
        return VerdictPolicy(self.prefs.min_confidence, self.prefs.min_margin, defects)

    # ---- capture -----------------------------------------------------------------------------------------
    def start_capture(self) -> None:
        """Open the configured source on a worker thread and start classifying parts."""
        self.stop_capture()
        try:
            scheme = parse_spec(self.prefs.source)[0]
            mode = "every" if scheme in ("file", "folder") else "latest"
            runner = CaptureRunner(self.prefs.source, mode=mode, backoff_s=0.5, backoff_max_s=5.0)
        except (SourceError, ValueError) as exc:
            shown = redact_source(self.prefs.source)
            self.error.emit(f"Camera source {shown!r} cannot be used: {user_message(exc)}")
            self.capture_state.emit("stopped")
            return
        pipeline = InspectionPipeline(runner, PartTrigger(crop_size=128), self.classifier, self._log_results)
        self.pipeline = pipeline

        def run(cancel: threading.Event) -> Generator[PartResult, None, None]:
            yield from pipeline.run(cancel)

        self._capture = CancellableTask(
            run, on_yield=self._on_part, on_error=self._on_capture_error, on_finish=self._on_capture_finished
        ).start()
        self.capture_state.emit("running")

    def stop_capture(self, wait_s: float = 3.0) -> None:
        """Stop the capture worker and wait (bounded) until it no longer writes to the workspace."""
        if self._capture is not None:
            self._capture.cancel()
            if not self._capture.wait(wait_s):
                log.warning("capture worker did not stop within %.1f s", wait_s)
            self._capture = None

    def _on_part(self, result: PartResult) -> None:
        self.recent.append(result)
        if self.auto_teach_target and result.crop.truth is not None:
            self._auto_label(result)
        self.part_seen.emit(result)

    def _on_capture_error(self, exc: BaseException) -> None:
        self.error.emit(f"Capture stopped: {user_message(exc)}")

    def _on_capture_finished(self) -> None:
        self.capture_state.emit("stopped")

    def _log_results(self, results: Sequence[PartResult]) -> None:
        """Runs on the pipeline thread: log every verdict; keep the image of parts that were not OK."""
        for r in results:
            v = r.verdict
            if v is None:
                continue
            image_hash = None
            if v.decision is not Decision.OK:
                try:
                    image_hash = self.ws.images.put(r.crop.image)
                except StorageError as exc:
                    log.error("could not store the image of part %s: %s", r.crop.part_id, exc)
            self._writer.add(
                NewInspection(
                    predicted=v.class_name,
                    verdict=v.decision.value,
                    probabilities=v.probabilities,
                    time=time.time(),
                    part_id=r.crop.part_id,
                    frame_id=r.crop.frame_id,
                    model_id=self._model_id,
                    low_confidence=v.low_confidence,
                    image_hash=image_hash,
                )
            )
        self._report_log_problem()

    def _report_log_problem(self) -> None:
        """Show it once when verdicts start waiting in memory (disk full) and once when some are lost."""
        state = (self._writer.error is not None, self._writer.dropped > 0)
        if state != self._log_state:
            self._log_state = state
            problem = self._writer.problem()
            if problem:
                self.error.emit(redact_source(problem[0].upper() + problem[1:] + "."))

    # ---- labelling ---------------------------------------------------------------------------------------
    def label_latest(self, class_name: str) -> bool:
        """Label the newest part as ``class_name`` (keyboard 1-9); False when no part has been seen yet."""
        if not self.recent:
            self.error.emit("No part has passed the camera yet; wait for one, then label it.")
            return False
        return self.label_part(self.recent[-1], class_name)

    def label_part(self, result: PartResult, class_name: str) -> bool:
        try:
            example = self.ws.examples.add(result.crop.image, class_name, source=self.prefs.source)
        except (StorageError, ValueError) as exc:
            self.error.emit(f"The label was not saved: {user_message(exc)}")
            return False
        self.examples_changed.emit()
        if self.base is not None:  # the image as stored is the one adaptation will read back
            try:
                self._warmer.submit(self.base, [self.ws.examples.load_image(example)])
            except (StorageError, OSError, ValueError) as exc:
                log.warning("labelled part not embedded ahead: %s", exc)
        return True

    def new_defect_from_latest(self) -> str | None:
        """Make the newest part the first example of a new defect class (key N); the class name, or None."""
        if not self.recent:
            self.error.emit("No part has passed the camera yet; wait for one, then press N.")
            return None
        try:
            record = new_defect_class_from_part(self.ws, self.recent[-1].crop.image, source=self.prefs.source)
        except (StorageError, ValueError) as exc:
            self.error.emit(f"The new defect class was not saved: {user_message(exc)}")
            return None
        self.classes_changed.emit()
        self.examples_changed.emit()
        return record.name

    def undo(self) -> bool:
        change = self.ws.examples.undo()
        self.examples_changed.emit()
        return change is not None

    def redo(self) -> bool:
        change = self.ws.examples.redo()
        self.examples_changed.emit()
        return change is not None

    def start_auto_teach(self, per_class: int = 5) -> None:
        """Demo line only: label passing parts from the line's ground truth until each class has ``per_class``."""
        if not self.is_synthetic():
            self.error.emit(
                "Automatic teaching needs the synthetic demo line (it reads the line's ground truth)."
            )
            return
        self.auto_teach_target = per_class

    def _auto_label(self, result: PartResult) -> None:
        truth = result.crop.truth
        assert truth is not None
        counts = self.ws.examples.counts()
        if counts.get(truth.defect_class, 0) < self.auto_teach_target and self.ws.classes.find(
            truth.defect_class
        ):
            self.label_part(result, truth.defect_class)
        names = [c.name for c in self.ws.classes.list()]
        counts = self.ws.examples.counts()
        if all(counts.get(n, 0) >= self.auto_teach_target for n in names):
            self.auto_teach_target = 0

    # ---- adaptation --------------------------------------------------------------------------------------
    def adapting(self) -> bool:
        return self._adapt is not None and not self._adapt.done

    def start_adaptation(self) -> None:
        """Adapt the base model to the labelled examples in a worker; progress and result come as signals."""
        if self.adapting():
            return
        if self.base is None and not self.load_base_model():
            return
        base = self.base
        assert base is not None
        steps = self.prefs.adapt_steps or None  # 0: the model's own number of steps

        def run(cancel: threading.Event) -> Generator[Any, None, TaughtModel | None]:
            return (
                yield from teach(
                    self.ws, base, steps=steps, policy=self.policy(), device=self.device, cancel=cancel
                )
            )

        self.adapt_started.emit(steps)
        self._adapt = CancellableTask(
            run, on_yield=self.adapt_progress.emit, on_return=self._on_taught, on_error=self._on_adapt_error
        ).start()

    def cancel_adaptation(self) -> None:
        if self._adapt is not None:
            self._adapt.cancel()

    def _on_taught(self, taught: TaughtModel | None) -> None:
        if taught is None:
            self.adapt_finished.emit("Adaptation cancelled; the previous model stays in use.")
            return
        if taught.version is None:  # OK examples only: the anomaly scorer alone
            self._set_classifier(taught.classifier, None)
            self.adapt_finished.emit(
                "Learned what a good part looks like: parts unlike the OK examples are rejected as unknown "
                "defects. Label defects and adapt again to name them."
            )
            return
        self._set_classifier(taught.classifier, taught.version.id)
        names = ", ".join(taught.classifier.class_names)
        self.adapt_finished.emit(f"Model version {taught.version.id} is live ({names}).")

    def _on_adapt_error(self, exc: BaseException) -> None:
        prefix = "Not ready to adapt" if isinstance(exc, TeachingError) else "Adaptation failed"
        self.adapt_finished.emit(f"{prefix}: {user_message(exc)}")
        self.error.emit(f"{prefix}: {user_message(exc)}")

    def _set_classifier(self, classifier: LiveClassifier, model_id: int | None) -> None:
        self.classifier = classifier
        self._model_id = model_id
        if self.pipeline is not None:
            self.pipeline.set_classifier(classifier)
        self.model_changed.emit(classifier)

    # ---- shutdown ----------------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop workers, flush the inspection log and release the workspace lock."""
        self.stop_capture()
        self.cancel_adaptation()
        self._warmer.close(wait=False)
        if self._adapt is not None:
            self._adapt.wait(10.0)
        try:
            self._writer.close()
        finally:
            self.ws.close()
