"""Meta-training on one data set as a generator of progress records (Adam outer loop, validation,
checkpoints, resume): the episodic objective on :func:`core.training.engine.run_engine`.

The GUI wraps :func:`meta_train` in a generator worker and the CLI drives a progress bar with it; both
stop it with a cancel token or by closing the generator. Under ``torchrun`` (``WORLD_SIZE`` > 1) the work is
shared through :mod:`core.training.distributed`: each rank samples its own tasks, gradients are averaged by
DDP, and only the main rank validates, writes checkpoints and reports.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.config import EvalConfig, TrainConfig
from core.data import Augment, EpisodeSampler, ImageFolderDataset
from core.runtime import resolve_device
from core.storage.checkpoint import load_checkpoint, save_checkpoint
from core.training.engine import Callback, Checkpoint, EngineState, Validation, run_engine
from core.training.evaluate import evaluate
from core.training.objectives import EpisodicObjective
from core.training.progress import Cancellable, TrainProgress

log = logging.getLogger(__name__)


def build_learner(config: TrainConfig, device: torch.device | str = "cpu") -> nn.Module:
    """A fresh learner for ``config``, initialised from ``config.seed`` without touching the global RNG."""
    from core.meta import create_learner
    from core.models import create_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = create_model(
            config.backbone,
            in_channels=config.channels,
            n_way=config.ways,
            image_size=config.image_size,
            width=config.width,
        )
        learner = create_learner(config.algo, model, n_way=config.ways, **config.learner_hyper())
    return learner.to(device)


def _dist_context(device: str) -> Any:
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    from core.training.distributed import init_from_env

    return init_from_env(device)


def meta_train(
    config: TrainConfig,
    dataset: ImageFolderDataset,
    *,
    train_classes: Sequence[int] | None = None,
    val_classes: Sequence[int] | None = None,
    out: str | Path | None = None,
    resume: str | Path | None = None,
    learner: nn.Module | None = None,
    augment: Augment | None = None,
    cancel: Cancellable | None = None,
    provenance: dict[str, Any] | None = None,
) -> Iterator[TrainProgress]:
    """Meta-train a learner on episodes from ``dataset``; yields one :class:`TrainProgress` per iteration.

    Parameters
    ----------
    config
        The run (algorithm, backbone, N/K/Q, meta-batch, rates, iterations, validation, seed, device).
    dataset
        Prepared images; its preprocessing must match ``config.image_size`` / ``config.channels``.
    train_classes, val_classes
        Class ids for meta-training (default all) and for validation (needed when ``config.val_every``).
    out
        Checkpoint file written every ``config.checkpoint_every`` iterations, when stopped, and at the end.
    resume
        A checkpoint written by this function: weights, Adam state, iteration and sampler state are
        restored and training continues up to ``config.iterations``.
    learner
        Train this learner instead of building one from ``config`` (its weights are updated in place).
    augment
        Optional per-image augmentation for the training episodes (see ``EpisodeSampler``).
    cancel
        Stop between iterations once ``cancel.is_set()``; the last record then has ``cancelled=True``.
    provenance
        Extra provenance stored in checkpoints (e.g. the data path).
    """
    prep = dataset.preprocess
    if (prep.image_size, prep.channels) != (config.image_size, config.channels):
        raise ValueError(
            f"the data set is prepared as {prep.channels}-channel {prep.image_size}px images but the config "
            f"asks for {config.channels}-channel {config.image_size}px; load the data with the same settings"
        )
    if config.val_every and not val_classes:
        raise ValueError("val_every is set but no validation classes were given")
    dist = _dist_context(config.device)
    device = dist.device if dist is not None else resolve_device(config.device)
    if learner is None:
        learner = build_learner(config, device)
    learner.to(device).train()
    seed = dist.seed_for(config.seed) if dist is not None else config.seed
    sampler = EpisodeSampler(
        dataset, config.ways, config.shots, config.queries, seed, train_classes,
        rotations=config.rotations, augment=augment,
    )  # fmt: skip
    optimizer = torch.optim.Adam(learner.parameters(), lr=config.outer_lr)
    start = 0
    if resume is not None:
        start = _restore(resume, config, learner, optimizer, sampler, device, dist)
    is_main = dist is None or dist.is_main
    objective = EpisodicObjective(
        dist.wrap(learner) if dist is not None else learner, sampler, config.meta_batch,
        reduce=dist.all_reduce_mean if dist is not None else None,
        world_size=dist.world_size if dist is not None else 1,
    )  # fmt: skip
    prov = {
        "data": dataset.source,
        "train_classes": sampler.num_classes,
        "seed": config.seed,
        "world_size": dist.world_size if dist is not None else 1,  # tasks per step = world_size * meta_batch
        "config": config.to_dict(),
        **(provenance or {}),
    }

    def save(state: EngineState) -> str | None:
        if out is None:
            return None
        training_state = {**state.training_state(), "seed": config.seed}
        save_checkpoint(
            out, learner, preprocess=prep, class_names=[], provenance={**prov, "iterations": state.step},
            training_state=training_state,
        )  # fmt: skip
        return str(out)

    callbacks: list[Callback] = []
    if is_main:
        if config.val_every:
            callbacks.append(
                Validation(config.val_every, lambda: _validate(learner, dataset, val_classes or [], config))
            )
        callbacks.append(Checkpoint(config.checkpoint_every, save))
    try:
        yield from run_engine(
            objective, optimizer, steps=config.iterations, start=start, callbacks=callbacks, cancel=cancel,
            report=is_main,
        )  # fmt: skip
    finally:
        if dist is not None:
            dist.close()


def _validate(
    learner: nn.Module, dataset: ImageFolderDataset, val_classes: Sequence[int], cfg: TrainConfig
) -> float:
    """Mean accuracy on fixed validation episodes (same seed every time, so values are comparable)."""
    ecfg = EvalConfig(
        ways=cfg.ways,
        shots=cfg.shots,
        queries=cfg.queries,
        episodes=max(1, cfg.val_episodes),
        seed=cfg.seed + 1,
    )
    was_training = learner.training
    try:
        return evaluate(learner, dataset, ecfg, class_ids=val_classes).accuracy
    finally:
        learner.train(was_training)


def _restore(
    resume: str | Path,
    config: TrainConfig,
    learner: nn.Module,
    optimizer: torch.optim.Optimizer,
    sampler: EpisodeSampler,
    device: torch.device,
    dist: Any,
) -> int:
    ck = load_checkpoint(resume, device=device)
    state = ck.training_state
    if not state:
        raise ValueError(f"{resume} holds no training state to resume from (was it written by meta-train?)")
    saved = ck.learner.config()
    if saved.get("name") != learner.config().get("name"):
        raise ValueError(
            f"{resume} was trained with {saved.get('name')!r}, not {config.algo!r}; pass --algo to match"
        )
    try:
        learner.load_state_dict(ck.learner.state_dict())
        optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise ValueError(f"{resume} does not fit this configuration: {exc}") from None
    if dist is None and state.get("sampler_state"):
        sampler.set_state(state["sampler_state"])
    iteration = int(state["iteration"])
    if iteration >= config.iterations:
        log.info("resume: %s is already at iteration %d of %d", resume, iteration, config.iterations)
    return iteration
