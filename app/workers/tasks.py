"""Run core generators on worker threads (superqt GeneratorWorker) with a cancel token.

Cancelling sets a ``threading.Event`` that core generators check between steps: they return, their ``finally``
blocks run (the capture pipeline stops its camera thread) and :meth:`CancellableTask.wait` sees them finish.
superqt's ``quit()`` is not used: it makes the worker leave the generator suspended at a yield, unfinished,
so ``wait()`` timed out, the camera thread kept running, and the generator was only finalised at interpreter
exit, aborting the process ("terminate called without an active exception"; found by the frozen self-test).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from typing import Any

from superqt.utils import GeneratorWorker


class CancellableTask:
    """One background generator: ``start``, ``cancel``, and signals forwarded from the worker.

    Parameters
    ----------
    make_generator
        Called on the worker thread with the cancel event; returns the generator to drive.
    on_yield, on_return, on_error, on_finish
        Slots called on the GUI thread (Qt queues the worker's signals to the receiver's thread).
    """

    def __init__(
        self,
        make_generator: Callable[[threading.Event], Generator[Any, None, Any]],
        *,
        on_yield: Callable[[Any], None] | None = None,
        on_return: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        on_finish: Callable[[], None] | None = None,
    ) -> None:
        self.cancel_event = threading.Event()
        self._done = threading.Event()

        def drive(cancel: threading.Event) -> Generator[Any, None, Any]:
            try:
                return (yield from make_generator(cancel))
            finally:
                self._done.set()  # on the worker thread, so wait() needs no event loop

        self.worker = GeneratorWorker(drive, self.cancel_event)
        if on_yield is not None:
            self.worker.yielded.connect(on_yield)
        if on_return is not None:
            self.worker.returned.connect(on_return)
        if on_error is not None:
            self.worker.errored.connect(on_error)
        if on_finish is not None:
            self.worker.finished.connect(on_finish)

    def start(self) -> CancellableTask:
        self.worker.start()
        return self

    def cancel(self) -> None:
        self.cancel_event.set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float) -> bool:
        """Block until the generator has finished on its thread (True) or ``timeout`` passed (False)."""
        return self._done.wait(timeout)
