"""The inspection station: capture -> part trigger -> classify -> verdict -> log, teaching and model versions.

Everything one running workstation does except drawing, with no Qt: the desktop app wraps it
(``app/session.py`` turns its events into signals), ``metainspect-lab station`` drives it headless.

Threads. :meth:`Station.inspect` (the capture loop) and :meth:`Station.adapt` are generators the caller drives
on a worker thread; everything else returns quickly (except :meth:`activate`, :meth:`rollback` and a device
change in :meth:`apply_settings`, which load a model file: call them off the GUI thread). Events are
delivered on the thread that caused them.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence

from core.camera import CaptureRunner, Frame, FrameSource, PartTrigger, parse_spec
from core.camera.source import SOURCES
from core.camera.synthetic import DEFECT_CLASSES
from core.camera.synthetic_line import shown_classes
from core.inference.live import LiveClassifier
from core.inference.pipeline import InspectionPipeline, PartResult
from core.inference.teach import TaughtModel, TeachingError, teach
from core.inference.verdict import Decision, VerdictPolicy
from core.redact import redact_source
from core.runtime import resolve_device
from core.station.camera import CameraHealth, CameraMonitor
from core.station.errors import USER_ERRORS, StationError, describe_error
from core.station.events import (
    AdaptFinished,
    AdaptStarted,
    AdaptStep,
    AdaptSummarized,
    CameraStatus,
    ClassesChanged,
    EventHub,
    ModelActivated,
    PartInspected,
    SettingsApplied,
)
from core.station.labelling import LabellingMixin
from core.station.models import load_version, workspace_policy
from core.station.settings import CAPTURE_FIELDS, POLICY_FIELDS, TRIGGER_FIELDS, StationSettings
from core.station.setup import SETUP_FIELDS, restore_setup, save_setup
from core.station.stats import LineStats
from core.station.summary import AdaptSummary, summarize
from core.station.summary_store import store_summary, stored_summary
from core.storage import ModelVersion, NewInspection, Workspace
from core.storage.checkpoint import LoadedCheckpoint, load_checkpoint
from core.training.adapt import LabelWarmer
from core.training.progress import AdaptProgress, Cancellable, is_cancelled

log = logging.getLogger(__name__)

CLASS_COLOURS = ("#2ea043", "#cf222e", "#bf8700", "#8250df", "#0969da", "#d1242f", "#1a7f37", "#953800")
RECENT_PARTS = 20
SourceOpener = Callable[[str], FrameSource]


class Station(LabellingMixin):
    """One running inspection line on one workspace.

    Parameters
    ----------
    workspace
        The open workspace: classes, examples, model versions and the inspection log.
    settings
        Initial settings; change them with :meth:`apply_settings`.
    open_source
        Builds the (unopened) frame source a spec names; the default is the source registry. Tests pass a
        source that fails on purpose.
    """

    def __init__(
        self,
        workspace: Workspace,
        settings: StationSettings,
        *,
        open_source: SourceOpener = SOURCES.create,
    ) -> None:
        self.ws = workspace
        settings = restore_setup(workspace, settings)  # the line's base model, ROI and trigger, as left
        self._settings = settings
        self.device = resolve_device(settings.device)
        self.events = EventHub()
        self.stats = LineStats()
        self.base: LoadedCheckpoint | None = None
        self.recent: collections.deque[PartResult] = collections.deque(maxlen=RECENT_PARTS)
        self._open_source = open_source
        self._lock = threading.RLock()
        self._classifier: LiveClassifier | None = None
        self._version: ModelVersion | None = None
        self._pipeline: InspectionPipeline | None = None
        self._next_runner: CaptureRunner | None = None
        self._new_trigger_wanted = False
        self._auto_target = 0
        self._camera = CameraMonitor(self.events.emit)
        self._writer = workspace.inspections.buffered_writer(max_rows=64, max_delay_s=1.0)
        self.warmer = LabelWarmer()  # embeds each labelled part in the background, so Adapt only fits
        self._log_state = (False, False)
        self._closed = False
        self.summarize_after_adapt = (
            True  # score the labelled examples after each adaptation (AdaptSummarized)
        )

    # ---- state -------------------------------------------------------------------------------------------
    @property
    def settings(self) -> StationSettings:
        return self._settings

    @property
    def classifier(self) -> LiveClassifier | None:
        with self._lock:
            return self._classifier

    @property
    def version(self) -> ModelVersion | None:
        """The live model version (None before the first adaptation)."""
        with self._lock:
            return self._version

    @property
    def auto_teach_target(self) -> int:
        """Examples per class the demo teacher still aims for (0: not teaching)."""
        return self._auto_target

    def is_synthetic(self) -> bool:
        try:
            return parse_spec(self._settings.source)[0] == "synthetic"
        except ValueError:
            return False

    def policy(self) -> VerdictPolicy:
        return workspace_policy(self.ws, self._settings.min_confidence, self._settings.min_margin)

    # ---- set-up ------------------------------------------------------------------------------------------
    def load_base_model(self) -> bool:
        """Load the meta-trained checkpoint named in the settings; False (and a message) if it fails."""
        try:
            self.base = load_checkpoint(self._settings.checkpoint)
        except USER_ERRORS as exc:
            self._message("model", f"The meta-trained model could not be loaded: {describe_error(exc)}")
            return False
        return True

    def restore_model(self) -> ModelVersion | None:
        """Bring back the workspace's active model version, so a restart carries on where it stopped."""
        active = self.ws.models.active()
        if active is None:
            return None
        try:
            classifier, version = load_version(self.ws, active, self.policy(), self.device)
        except USER_ERRORS as exc:
            self._message(
                "model", f"The last adapted model could not be restored ({describe_error(exc)}); adapt again."
            )
            return None
        self._set_model(classifier, version)
        self._show_stored_summary(version)
        return version

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
        self.events.emit(ClassesChanged())

    def add_class(self, name: str, *, is_defect: bool = True) -> bool:
        """Add a class with the first free key 1-9; False (and a message) for a bad or duplicate name."""
        used = {c.shortcut for c in self.ws.classes.list()}
        free = next((k for k in "123456789" if k not in used), None)
        colour = CLASS_COLOURS[len(used) % len(CLASS_COLOURS)]
        try:
            self.ws.classes.add(name, is_defect=is_defect, shortcut=free, colour=colour)
        except USER_ERRORS as exc:
            self._message("teach", f"The class was not added: {describe_error(exc)}")
            return False
        self.events.emit(ClassesChanged())
        return True

    # ---- settings ----------------------------------------------------------------------------------------
    def apply_settings(self, new: StationSettings) -> frozenset[str]:
        """Make ``new`` the settings now: thresholds apply to the next part, a new device reloads the live
        model there, a new ROI or trigger applies to the next frame, a new source replaces the camera.

        Raises
        ------
        StationError
            The new source cannot be used; nothing was changed.
        """
        changed = new.changed(self._settings)
        if not changed:
            return changed
        runner = None
        if changed & CAPTURE_FIELDS and self._pipeline is not None:
            runner = self._new_runner(new)  # raises before anything changed
        device = resolve_device(new.device)
        with self._lock:
            self._settings = new
            if runner is not None:
                if self._next_runner is not None:
                    self._next_runner.stop(0.1)
                self._next_runner = runner
            if changed & TRIGGER_FIELDS:
                self._new_trigger_wanted = True
            classifier = self._classifier
        if changed & set(SETUP_FIELDS):
            try:
                save_setup(self.ws, new)
            except USER_ERRORS as exc:
                self._message(
                    "settings", f"The line set-up is in use but was not saved: {describe_error(exc)}"
                )
        if "checkpoint" in changed:
            self.base = None  # the next adaptation loads the new base model
        if classifier is not None and changed & POLICY_FIELDS:
            classifier.policy = self.policy()  # one attribute swap: the next part is judged by it
        if device != self.device:
            self.device = device
            if self.base is not None:
                self.base.learner.to(device)
            version = self.version
            if version is not None:
                self.activate(version.id)
        self.events.emit(SettingsApplied(changed))
        return changed

    # ---- capture -----------------------------------------------------------------------------------------
    def _new_runner(self, settings: StationSettings) -> CaptureRunner:
        mode = settings.capture_mode
        try:
            if mode == "auto":
                scheme = parse_spec(settings.source)[0]
                mode = "every" if scheme in ("file", "folder") else "latest"
            source = self._open_source(settings.source)
        except USER_ERRORS as exc:
            shown = redact_source(settings.source)
            raise StationError(f"camera source {shown!r} cannot be used: {describe_error(exc)}") from exc
        return CaptureRunner(
            source, mode=mode, backoff_s=0.5, backoff_max_s=5.0, on_event=self._camera.on_event
        )

    def _new_trigger(self) -> PartTrigger:
        s = self._settings
        return PartTrigger(roi=s.roi, crop_size=s.crop_size, threshold=s.trigger_threshold)

    def latest_frame(self) -> Frame | None:
        """The newest frame the capture loop has processed, for display (safe from any thread)."""
        pipeline = self._pipeline
        return pipeline.latest_frame() if pipeline is not None else None

    def health(self) -> CameraHealth:
        """Camera state and figures now (safe from any thread; cheap enough for a 1 Hz status bar)."""
        pipeline = self._pipeline
        return self._camera.health(pipeline.runner.stats if pipeline is not None else None)

    @property
    def capturing(self) -> bool:
        return self._pipeline is not None

    def inspect(self, cancel: Cancellable | None = None, *, poll_s: float = 0.05) -> Iterator[PartResult]:
        """The capture loop: yield every part as it is judged, until cancelled, closed or the source ends.

        Every part is also logged, counted and emitted as :class:`PartInspected`; camera state changes come
        as :class:`CameraStatus`. The camera is released however the generator finishes.

        Raises
        ------
        StationError
            The source cannot be used (unknown scheme, bad options).
        """
        pipeline = InspectionPipeline(
            self._new_runner(self._settings), self._new_trigger(), None, self._on_results
        )
        with self._lock:  # under the lock: a model activated meanwhile reaches this pipeline, not a stale one
            self._pipeline = pipeline
            pipeline.set_classifier(self._classifier)
            self._new_trigger_wanted = False
        self._camera.set(CameraStatus("connecting"))
        pipeline.runner.start()
        try:
            while not is_cancelled(cancel):
                self._reconfigure(pipeline)
                frame = pipeline.runner.get(timeout=poll_s)
                if frame is None:
                    if pipeline.runner.ended and self._next_runner is None:
                        return
                    continue
                self.stats.add_frame()
                yield from pipeline.process(frame)
        finally:
            pipeline.runner.stop()
            with self._lock:
                if self._pipeline is pipeline:
                    self._pipeline = None

    def _reconfigure(self, pipeline: InspectionPipeline) -> None:
        """On the capture thread: swap in a new camera or trigger asked for by :meth:`apply_settings`."""
        with self._lock:
            runner, self._next_runner = self._next_runner, None
            trigger_wanted, self._new_trigger_wanted = self._new_trigger_wanted, False
        if runner is not None:
            pipeline.runner.stop()
            pipeline.runner = runner
            self._camera.set(CameraStatus("connecting"))
            runner.start()
            trigger_wanted = True
        if trigger_wanted:
            pipeline.trigger = self._new_trigger()

    def _on_results(self, results: Sequence[PartResult]) -> None:
        """On the capture thread: log, count and announce each part; teach from the demo line if asked."""
        now = time.monotonic()
        self._log_results(results)
        for result in results:
            latency = now - result.crop.timestamp
            self.stats.add(result, latency)
            self.recent.append(result)
            if self._auto_target and result.crop.truth is not None:
                self._auto_label(result)
            self.events.emit(PartInspected(result, latency))

    def _log_results(self, results: Sequence[PartResult]) -> None:
        """Log every verdict; keep the image of parts that were not OK (for review and overrides)."""
        model_id = self._version.id if self._version is not None else None
        for r in results:
            v = r.verdict
            if v is None:
                continue
            image_hash = None
            if v.decision is not Decision.OK:
                try:
                    image_hash = self.ws.images.put(r.crop.image)
                except USER_ERRORS as exc:
                    log.error("could not store the image of part %s: %s", r.crop.part_id, exc)
            self._writer.add(
                NewInspection(
                    predicted=v.class_name,
                    verdict=v.decision.value,
                    probabilities=v.probabilities,
                    time=time.time(),
                    part_id=r.crop.part_id,
                    frame_id=r.crop.frame_id,
                    model_id=model_id,
                    low_confidence=v.low_confidence,
                    image_hash=image_hash,
                )
            )
        state = (self._writer.error is not None, self._writer.dropped > 0)
        if state != self._log_state:  # once when verdicts start waiting (disk full), once when some are lost
            self._log_state = state
            problem = self._writer.problem()
            if problem:
                self._message("log", problem[0].upper() + problem[1:] + ".")

    def start_auto_teach(self, per_class: int = 5) -> bool:
        """Demo line only: label passing parts from the line's truth until each class has ``per_class``."""
        if not self.is_synthetic():
            self._message(
                "teach",
                "Automatic teaching needs the synthetic demo line (it reads the line's ground truth).",
            )
            return False
        if per_class < 1:
            raise ValueError(f"per_class must be at least 1, got {per_class}")
        shown = shown_classes(self._settings.source)
        never = [c.name for c in self.ws.classes.list() if c.name not in shown]
        if never:  # it would wait for them for ever
            self._message(
                "teach",
                f"Automatic teaching labels the demo line's parts by their truth, and this line never shows "
                f"{', '.join(never)} (it shows {', '.join(shown)}). Remove that class, label it by hand, or "
                "teach in a new workspace.",
            )
            return False
        self._auto_target = per_class
        return True

    def _auto_label(self, result: PartResult) -> None:
        truth = result.crop.truth
        assert truth is not None
        counts = self.ws.examples.counts()
        if counts.get(truth.defect_class, self._auto_target) < self._auto_target:
            self.label_image(result.crop.image, truth.defect_class)
            counts = self.ws.examples.counts()
        if all(n >= self._auto_target for n in counts.values()):
            self._message(
                "teach", f"Taught {self._auto_target} parts of each class from the demo line.", "info"
            )
            self._auto_target = 0

    # ---- adaptation and model versions ---------------------------------------------------------------------
    def adapt(self, cancel: Cancellable | None = None) -> Generator[AdaptProgress, None, TaughtModel | None]:
        """Adapt the base model to the labelled examples, record the version (its parent: the version live
        before) and make it live. Progress comes as :class:`AdaptStep` events (and is yielded); the end as
        :class:`AdaptFinished`. Returns None when it failed (a message says why) or was cancelled."""
        steps = self._settings.adapt_steps or None  # None: the model's own number of steps
        if self.base is None and not self.load_base_model():
            self.events.emit(AdaptFinished("Adaptation failed: the meta-trained model could not be loaded."))
            return None
        base = self.base
        assert base is not None
        self.events.emit(AdaptStarted(steps or int(getattr(base.learner, "inner_steps", 0) or 0)))
        try:
            gen = teach(self.ws, base, steps=steps, policy=self.policy(), device=self.device, cancel=cancel)
            while True:
                try:
                    progress = next(gen)
                except StopIteration as stop:
                    taught: TaughtModel | None = stop.value
                    break
                self.events.emit(AdaptStep(progress))
                yield progress
        except USER_ERRORS as exc:
            prefix = "Not ready to adapt" if isinstance(exc, TeachingError) else "Adaptation failed"
            text = f"{prefix}: {describe_error(exc)}"
            self._message("teach", text)
            self.events.emit(AdaptFinished(text))
            return None
        if taught is None:
            self.events.emit(AdaptFinished("Adaptation cancelled; the previous model stays in use."))
            return None
        if taught.version is None:  # OK examples only: the anomaly scorer alone, no classifier version
            self._set_model(taught.classifier, None)
            self.events.emit(
                AdaptFinished(
                    "Learned what a good part looks like: parts unlike the OK examples are rejected as "
                    "unknown defects. Label defects and adapt again to name them."
                )
            )
            return taught
        self._set_model(taught.classifier, taught.version)
        names = ", ".join(taught.classifier.class_names)
        self.events.emit(
            AdaptFinished(f"Model version {taught.version.id} is live ({names}).", taught.version.id)
        )
        if self.summarize_after_adapt:
            # After going live: the line is already judged by the new model while its examples are scored.
            try:
                summary = summarize(self.ws, taught, cancel)
            except USER_ERRORS as exc:
                self._message("teach", f"The new model could not be checked: {describe_error(exc)}")
            else:
                if summary is not None:  # None: cancelled while checking
                    self._keep_summary(summary)
                    self.events.emit(AdaptSummarized(summary))
        return taught

    def activate(self, version_id: int) -> ModelVersion | None:
        """Load a stored version and make it the live one; None (and a message) if it cannot be loaded."""
        try:
            classifier, version = load_version(self.ws, version_id, self.policy(), self.device)
            version = self.ws.models.activate(version.id)
        except USER_ERRORS as exc:
            self._message("model", f"Model version {version_id} was not activated: {describe_error(exc)}")
            return None
        self._set_model(classifier, version)
        self._show_stored_summary(version)
        return version

    def rollback(self) -> ModelVersion | None:
        """Go back to the version the live one was adapted after (its parent)."""
        current = self.ws.models.active()
        if current is None or current.parent_id is None:
            what = "no model is active" if current is None else f"version {current.id} has no earlier version"
            self._message("model", f"Nothing to roll back to: {what}.")
            return None
        return self.activate(current.parent_id)

    def _keep_summary(self, summary: AdaptSummary) -> None:
        """Store the check with its version, so a restart or a later activation shows it again."""
        try:
            store_summary(self.ws, summary)
        except USER_ERRORS as exc:
            self._message(
                "teach",
                f"The check of model version {summary.version_id} was not saved ({describe_error(exc)}); "
                "it is shown now but not after a restart.",
                "warning",
            )

    def _show_stored_summary(self, version: ModelVersion) -> None:
        """Announce the check stored with the version now live (None: it has none, or it cannot be read)."""
        try:
            summary = stored_summary(self.ws, version.id)
        except USER_ERRORS as exc:
            self._message(
                "model",
                f"The stored check of model version {version.id} cannot be read ({describe_error(exc)}); "
                "it is not shown. Adapt again to check the examples.",
                "warning",
            )
            summary = None
        self.events.emit(AdaptSummarized(summary))

    def _set_model(self, classifier: LiveClassifier, version: ModelVersion | None) -> None:
        with self._lock:
            self._classifier = classifier
            self._version = version
            pipeline = self._pipeline
        if pipeline is not None:
            pipeline.set_classifier(classifier)
        self.events.emit(ModelActivated(version, tuple(classifier.class_names)))

    # ---- shutdown ----------------------------------------------------------------------------------------
    def close(self, *, close_workspace: bool = True) -> None:
        """Flush the inspection log and (by default) close the workspace. Stop the capture loop first."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            runner, self._next_runner = self._next_runner, None
        if runner is not None:
            runner.stop(0.1)
        self.warmer.close(wait=False)
        try:
            self._writer.close()
        finally:
            if close_workspace:
                self.ws.close()
