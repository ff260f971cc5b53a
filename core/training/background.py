"""Meta-training in a separate process, for a workstation that must keep judging parts meanwhile.

The run's ``meta_train`` generator executes in a child process (its own interpreter: no GIL shared with the
GUI or the capture loop, and a crash there cannot take the line down). Progress records come back through a
queue; the parent drains them with :meth:`BackgroundTraining.poll` from any loop (a GUI timer, a CLI loop).
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import queue
from pathlib import Path
from typing import Any

from core.config import TrainConfig
from core.training.progress import TrainProgress


def _child(
    config: dict[str, Any], data: str, out: str, val_fraction: float, records: Any, cancel: Any
) -> None:
    """Runs in the child process: load the data, meta-train, send each record (or the error) to the parent."""
    try:
        from core.data.episodes import split_classes
        from core.data.folder import ImageFolderDataset
        from core.imaging import Preprocess
        from core.runtime import set_cpu_threads
        from core.training.meta_train import meta_train

        set_cpu_threads()
        cfg = TrainConfig.from_dict(config)
        grey = cfg.channels == 1
        prep = (
            Preprocess(image_size=cfg.image_size, channels=1)
            if grey
            else Preprocess(image_size=cfg.image_size, channels=3, mean=(0.5,) * 3, std=(0.25,) * 3)
        )
        dataset = ImageFolderDataset.from_path(data, prep)
        train_ids = val_ids = None
        if cfg.val_every:
            train_ids, val_ids = split_classes(dataset, (1.0 - val_fraction, val_fraction), seed=cfg.seed)
        for record in meta_train(
            cfg, dataset, train_classes=train_ids, val_classes=val_ids, out=out, cancel=cancel,
            provenance={"trained_at": "workstation"},
        ):  # fmt: skip
            records.put(("progress", dataclasses.asdict(record)))
        records.put(("done", out))
    except Exception as exc:  # reported to the parent as one line; the parent decides how to show it
        records.put(
            ("error", f"{type(exc).__name__}: {exc}" if not isinstance(exc, ValueError) else str(exc))
        )


class BackgroundTraining:
    """One meta-training run in a child process.

    Parameters
    ----------
    config
        The run; ``config.device`` is honoured in the child.
    data
        Image-folder tree or ``.zip`` (one folder per class).
    out
        Checkpoint file the run writes (periodically, when cancelled, and at the end).
    """

    def __init__(
        self, config: TrainConfig, data: str | Path, out: str | Path, val_fraction: float = 0.2
    ) -> None:
        if not Path(data).exists():
            raise FileNotFoundError(f"training data {data} does not exist; choose an image folder or a .zip")
        self.config = config
        self.out = Path(out)
        ctx = mp.get_context("spawn")  # a fresh interpreter: no inherited threads, locks or Qt state
        self._records: Any = ctx.Queue()
        self._cancel = ctx.Event()
        self._process = ctx.Process(
            target=_child,
            args=(config.to_dict(), str(data), str(out), val_fraction, self._records, self._cancel),
            name="metainspect-training",
            daemon=True,
        )
        self.history: list[TrainProgress] = []
        self.error: str | None = None
        self.finished = False

    def start(self) -> BackgroundTraining:
        self._process.start()
        return self

    def cancel(self) -> None:
        """Ask the run to stop after its current iteration (it still writes its checkpoint)."""
        self._cancel.set()

    def poll(self) -> list[TrainProgress]:
        """Records that arrived since the last call (never blocks); sets :attr:`finished` / :attr:`error`."""
        fresh: list[TrainProgress] = []
        while True:
            try:
                kind, payload = self._records.get_nowait()
            except queue.Empty:
                break
            if kind == "progress":
                fresh.append(TrainProgress(**payload))
            elif kind == "error":
                self.error, self.finished = str(payload), True
            else:
                self.finished = True
        if not fresh and not self.finished and not self._process.is_alive() and self._process.exitcode:
            self.error = f"the training process ended unexpectedly (exit code {self._process.exitcode})"
            self.finished = True
        self.history.extend(fresh)
        return fresh

    @property
    def running(self) -> bool:
        return self._process.is_alive() and not self.finished

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the child to exit; True when it has."""
        self._process.join(timeout)
        return not self._process.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel, wait up to ``timeout`` s, then terminate the child if it is still there."""
        self.cancel()
        if not self.join(timeout):
            self._process.terminate()
            self._process.join(2.0)
