"""The inspection loop: frames -> part trigger -> live classifier -> results, as a cancellable generator.

The GUI runs :meth:`InspectionPipeline.run` in a generator worker and draws :meth:`latest_frame` on a timer;
the CLI or a test drives the same generator with a plain loop. Nothing here knows about Qt.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from core.camera import CaptureRunner, Frame, PartCrop, PartTrigger
from core.inference.anomaly import anomaly_overlay
from core.inference.live import LiveClassifier
from core.inference.verdict import Verdict
from core.training.progress import Cancellable, is_cancelled


@dataclass(frozen=True)
class PartResult:
    """One part seen on the line, with its verdict (``None`` while no model has been taught)."""

    crop: PartCrop
    verdict: Verdict | None
    overlay: np.ndarray | None = field(default=None, compare=False, repr=False)
    """The crop with its anomaly map drawn over it (BGR, the crop's size), made on the pipeline's thread so the
    GUI only paints it; ``None`` when the verdict carries no anomaly map."""


def _with_overlay(crop: PartCrop, verdict: Verdict) -> PartResult:
    anomaly = verdict.anomaly
    if anomaly is None or anomaly.patch_map is None:
        return PartResult(crop, verdict)
    return PartResult(crop, verdict, anomaly_overlay(crop.image, anomaly))


class InspectionPipeline:
    """Pull frames from a running capture, cut one crop per part and classify it.

    Parameters
    ----------
    runner
        A started or unstarted :class:`~core.camera.CaptureRunner` (started by :meth:`run` if needed).
    trigger
        Part trigger that turns frames into one crop per part.
    classifier
        Live classifier, or ``None`` to only collect parts (before the first adaptation). Replace it at any
        time from another thread with :meth:`set_classifier`; the next part uses the new one.
    on_results
        Called on the pipeline's thread with each non-empty batch of results (e.g. to log inspections).
    """

    def __init__(
        self,
        runner: CaptureRunner,
        trigger: PartTrigger,
        classifier: LiveClassifier | None = None,
        on_results: Callable[[Sequence[PartResult]], None] | None = None,
    ) -> None:
        self.runner = runner
        self.trigger = trigger
        self._classifier = classifier
        self._on_results = on_results
        self._lock = threading.Lock()
        self._latest: Frame | None = None
        self.frames_seen = 0

    def set_classifier(self, classifier: LiveClassifier | None) -> None:
        with self._lock:
            self._classifier = classifier

    @property
    def classifier(self) -> LiveClassifier | None:
        with self._lock:
            return self._classifier

    def latest_frame(self) -> Frame | None:
        """The newest frame the pipeline has processed (for display; safe from any thread)."""
        with self._lock:
            return self._latest

    def process(self, frame: Frame) -> list[PartResult]:
        """Feed one frame; returns the parts it completed, classified when a classifier is set."""
        with self._lock:
            self._latest = frame
            classifier = self._classifier
        self.frames_seen += 1
        crops = self.trigger.feed(frame)
        if not crops:
            return []
        if classifier is None:
            results = [PartResult(c, None) for c in crops]
        else:
            verdicts = classifier.classify([c.part_id for c in crops], [c.image for c in crops])
            results = [_with_overlay(c, v) for c, v in zip(crops, verdicts, strict=True)]
        if self._on_results is not None:
            self._on_results(results)
        return results

    def run(self, cancel: Cancellable | None = None, poll_s: float = 0.05) -> Iterator[PartResult]:
        """Yield each part as it is classified until cancelled, the generator is closed or the source ends.

        The capture runner is stopped when the generator finishes, however it finishes.
        """
        if not self.runner.running:
            self.runner.start()
        try:
            while not is_cancelled(cancel):
                frame = self.runner.get(timeout=poll_s)
                if frame is None:
                    if self.runner.ended:
                        return
                    continue
                yield from self.process(frame)
        finally:
            self.runner.stop()
