"""Meta-training or supervised pre-training in a separate process, for a workstation that must keep judging
parts meanwhile.

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
from core.training.recipe import DataSource, SupervisedStage, TrainingRecipe


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


def pretraining_recipe(config: TrainConfig, data: str | Path) -> TrainingRecipe:
    """The supervised pre-training run the workstation's form describes: cross-entropy over the classes of
    ``data`` for ``config.iterations`` label-balanced steps, through a throw-away linear head, so the result
    is a ``config.algo`` learner on a pre-trained ``config.backbone`` (adapted like any base model)."""
    folder = Path(data).resolve()
    steps = config.iterations
    return TrainingRecipe(
        backbone={"name": config.backbone, "width": config.width},
        learner={"name": config.algo, "n_way": config.ways, **config.learner_hyper()},
        image_size=config.image_size,
        channels=config.channels,
        datasets_dir=str(folder.parent),
        data=(DataSource(folder.name),),
        supervised=SupervisedStage(steps=steps, head="linear", report_every=max(1, min(20, steps // 100))),
        seed=config.seed,
        comment="pre-trained at the workstation",
    )


def _pretrain_child(config: dict[str, Any], data: str, out: str, records: Any, cancel: Any) -> None:
    """Runs in the child process: supervised pre-training on ``data``; the learner is saved at the end (also
    when cancelled, as meta-training does)."""
    try:
        from core.runtime import set_cpu_threads
        from core.training.recipe_run import build_recipe_learner, iter_recipe, load_pool, save_trained

        set_cpu_threads()
        recipe = pretraining_recipe(TrainConfig.from_dict(config), data)
        pool = load_pool(recipe)
        learner = build_recipe_learner(recipe)
        for record in iter_recipe(recipe, learner, pool, cancel=cancel):
            records.put(("progress", dataclasses.asdict(record)))
        save_trained(out, learner, recipe, pool, extra={"trained_at": "workstation"})
        records.put(("done", out))
    except Exception as exc:  # reported to the parent as one line, as in _child
        records.put(
            ("error", f"{type(exc).__name__}: {exc}" if not isinstance(exc, ValueError) else str(exc))
        )


OBJECTIVES = ("episodic", "supervised")


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
    objective
        ``"episodic"``: meta-training (:func:`~core.training.meta_train.meta_train`); ``"supervised"``:
        pre-training (:func:`pretraining_recipe`, run by the same engine).
    """

    def __init__(
        self,
        config: TrainConfig,
        data: str | Path,
        out: str | Path,
        val_fraction: float = 0.2,
        objective: str = "episodic",
    ) -> None:
        if objective not in OBJECTIVES:
            raise ValueError(f"unknown training objective {objective!r}; known: {', '.join(OBJECTIVES)}")
        if not Path(data).exists():
            raise FileNotFoundError(f"training data {data} does not exist; choose an image folder or a .zip")
        self.objective = objective
        self.config = config
        self.out = Path(out)
        ctx = mp.get_context("spawn")  # a fresh interpreter: no inherited threads, locks or Qt state
        self._records: Any = ctx.Queue()
        self._cancel = ctx.Event()
        episodic = (config.to_dict(), str(data), str(out), val_fraction, self._records, self._cancel)
        supervised = (config.to_dict(), str(data), str(out), self._records, self._cancel)
        self._process = ctx.Process(
            target=_child if objective == "episodic" else _pretrain_child,
            args=episodic if objective == "episodic" else supervised,
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
