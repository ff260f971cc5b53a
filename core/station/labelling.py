"""The station's labelling face: the newest part, image files, undo/redo, relabel, hold-out, delete, operator
overrides and new defect classes (a mixin of :class:`core.station.station.Station`, which owns the state)."""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Sequence

import numpy as np

from core.imaging.decode import decode_image
from core.inference.pipeline import PartResult
from core.inference.teach import new_defect_class_from_part
from core.redact import redact_source
from core.station.errors import USER_ERRORS, describe_error
from core.station.events import ClassesChanged, EventHub, ExamplesChanged, Message, Topic
from core.station.settings import StationSettings
from core.storage import Example, Workspace
from core.storage.checkpoint import LoadedCheckpoint
from core.storage.inspections import BufferedInspectionWriter
from core.training.adapt import LabelWarmer

log = logging.getLogger(__name__)


class LabellingMixin:
    """Labelling and example edits; every failure is a message on the station's event hub, never a raise."""

    ws: Workspace
    events: EventHub
    base: LoadedCheckpoint | None
    warmer: LabelWarmer
    recent: collections.deque[PartResult]
    _settings: StationSettings
    _writer: BufferedInspectionWriter

    def _message(self, topic: Topic, text: str, level: str = "error") -> None:
        text = redact_source(text)  # a camera's password never reaches the log or the window
        log.log(logging.ERROR if level == "error" else logging.INFO, "%s: %s", topic, text)
        self.events.emit(Message(topic, text, level))  # type: ignore[arg-type]

    def label_latest(self, class_name: str) -> Example | None:
        """Label the newest part (keyboard 1-9); None (and a message) when no part has been seen yet."""
        if not self.recent:
            self._message("teach", "No part has passed the camera yet; wait for one, then label it.")
            return None
        return self.label_image(self.recent[-1].crop.image, class_name)

    def label_image(self, image: np.ndarray, class_name: str) -> Example | None:
        """Store ``image`` as a labelled example; None (and a message) when it cannot be saved."""
        try:
            example = self.ws.examples.add(image, class_name, source=self._settings.source)
        except USER_ERRORS as exc:
            self._message("teach", f"The label was not saved: {describe_error(exc)}")
            return None
        self.events.emit(ExamplesChanged())
        base = self.base
        if base is not None:  # the image as stored is the one adaptation will read back
            try:
                self.warmer.submit(base, [self.ws.examples.load_image(example)])
            except USER_ERRORS as exc:
                log.warning("labelled part not embedded ahead: %s", exc)
        return example

    def import_images(self, paths: Sequence[str], class_name: str) -> int:
        """Label image files as ``class_name`` (files dragged onto the examples); returns how many were added.
        A file that is not a readable image gets a message naming it; the others are still added."""
        import cv2  # here: only this path reads files from disk

        added, bad = 0, []
        for path in paths:
            try:  # fromfile copes with non-ASCII paths; the one decoder checks the header first
                data = np.fromfile(path, dtype=np.uint8).tobytes()
                image = decode_image(data, what=str(path), flags=cv2.IMREAD_COLOR)
            except (OSError, ValueError):
                bad.append(str(path))
                continue
            added += self.label_image(image, class_name) is not None
        if bad:
            names = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
            self._message("teach", f"Not an image OpenCV can read, skipped: {names}.", "warning")
        return added

    def _edit(self, what: str, change: Callable[[], object]) -> bool:
        try:
            done = change()
        except USER_ERRORS as exc:
            self._message("teach", f"{what} failed: {describe_error(exc)}")
            return False
        self.events.emit(ExamplesChanged())
        return done is not None

    def undo(self) -> bool:
        return self._edit("Undo", self.ws.examples.undo)

    def redo(self) -> bool:
        return self._edit("Redo", self.ws.examples.redo)

    def relabel_example(self, example_id: int, class_name: str) -> bool:
        return self._edit("Relabelling", lambda: self.ws.examples.relabel(example_id, class_name))

    def set_split(self, example_id: int, split: str) -> bool:
        """Move an example to the hold-out split (scored after each adaptation, never taught) or back."""
        return self._edit("Moving", lambda: self.ws.examples.set_split(example_id, split))  # type: ignore[arg-type]

    def delete_example(self, example_id: int) -> bool:
        return self._edit("Deleting", lambda: self.ws.examples.delete(example_id))

    def override(self, inspection_id: int, class_name: str) -> Example | None:
        """An operator's correction of a logged verdict: recorded on the row, and the part's image (kept for
        every part that was not OK) becomes a labelled example of ``class_name``."""
        try:
            row = self.ws.inspections.get(inspection_id)
            self.ws.classes.resolve(class_name)
            self._writer.flush()
            self.ws.inspections.set_override(inspection_id, class_name)
            if row.image_hash is None:
                self._message(
                    "history",
                    f"Part {row.part_id} was recorded as {class_name}; no image was kept (OK parts keep none), "
                    "so it did not become an example.",
                    "warning",
                )
                return None
            image = self.ws.images.load(row.image_hash)
        except USER_ERRORS as exc:
            self._message("history", f"The correction was not saved: {describe_error(exc)}")
            return None
        return self.label_image(image, class_name)

    def new_defect_from_latest(self) -> str | None:
        """Make the newest part the first example of a new defect class (key N); its name, or None (a message
        says why)."""
        if not self.recent:
            self._message("teach", "No part has passed the camera yet; wait for one, then press N.")
            return None
        try:
            record = new_defect_class_from_part(
                self.ws, self.recent[-1].crop.image, source=self._settings.source
            )
        except USER_ERRORS as exc:
            self._message("teach", f"The new defect class was not saved: {describe_error(exc)}")
            return None
        self.events.emit(ClassesChanged())
        self.events.emit(ExamplesChanged())
        return record.name
