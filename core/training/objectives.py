"""The engine's objectives: episodic (a learner's ``meta_loss`` on sampled tasks) and supervised
(cross-entropy over pooled classes). Each draws its batches from one seeded ``numpy`` Generator."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.data import Augment, EpisodeSampler
from core.meta import Task


class EpisodicObjective:
    """Mean query loss after adaptation over ``meta_batch`` tasks from ``sampler`` (any registered learner).

    Parameters
    ----------
    learner
        The learner, or what drives it (a ``DistributedDataParallel`` wrapper: called as ``driver(tasks)``).
    sampler
        :class:`~core.data.EpisodeSampler` or :class:`~core.data.PooledEpisodeSampler`.
    meta_batch
        Tasks per step.
    reduce
        Applied to the loss and accuracy metrics (the mean over ranks of a distributed run).
    world_size
        Ranks that each draw ``meta_batch`` tasks per step (for the throughput).
    """

    def __init__(
        self,
        learner: nn.Module,
        sampler: EpisodeSampler,
        meta_batch: int,
        *,
        reduce: Callable[[float], float] | None = None,
        world_size: int = 1,
    ) -> None:
        self.learner, self.sampler, self.meta_batch = learner, sampler, meta_batch
        self.reduce, self.world_size = reduce, world_size

    def draw(self) -> list[Task]:
        return self.sampler.sample_batch(self.meta_batch)

    def loss(self, batch: list[Task]) -> tuple[torch.Tensor, dict[str, float]]:
        self.learner.train()
        loss, metrics = self.learner(batch)
        out = {"loss": float(metrics["loss"]), "accuracy": float(metrics["accuracy"])}
        if self.reduce is not None:
            out = {k: float(self.reduce(v)) for k, v in out.items()}
        out["items"] = float(self.meta_batch * self.world_size)
        return loss, out

    def get_state(self) -> Any:
        return self.sampler.get_state()

    def set_state(self, state: Any) -> None:
        self.sampler.set_state(state)


@dataclass(frozen=True)
class LabelledClasses:
    """Classes for supervised training: images ``(n_i, C, H, W)`` per class, the label of each class (several
    classes may share one, e.g. a synthetic defect across product variants) and the label names."""

    images: list[torch.Tensor]
    class_labels: list[int]
    label_names: list[str]

    @property
    def num_images(self) -> int:
        return sum(len(x) for x in self.images)


class SupervisedObjective:
    """Cross-entropy of a classifier over the pooled labels.

    Parameters
    ----------
    model
        Trained in train mode; logits are ``model(x)`` (the backbone's own head, sized to the labels) or, with
        ``head``, ``head(model.features(x))`` (a throw-away linear layer, so the learner's head keeps its
        episode size).
    data
        The labelled classes.
    batch_size, seed
        Images per step; seed of the generator that draws batches and augmentations.
    balanced
        ``False``: shuffled epochs (every image once per ``steps_per_epoch`` steps; the last batch of an
        epoch may be smaller), the augmentation's geometry shared by the batch. ``True``: label-balanced
        draws (a label uniformly, then one of its classes, then an image), each image augmented on its own.
    augment
        E.g. :class:`core.imaging.augment.TensorAugment`.
    """

    def __init__(
        self,
        model: nn.Module,
        data: LabelledClasses,
        batch_size: int,
        seed: int,
        *,
        head: nn.Module | None = None,
        balanced: bool = False,
        augment: Augment | None = None,
    ) -> None:
        if data.num_images == 0 or len(data.label_names) < 2:
            raise ValueError("supervised training needs at least two labels with images")
        self.model, self.head, self.data = model, head, data
        self.batch_size, self.balanced, self.augment = batch_size, balanced, augment
        self.rng = np.random.default_rng(seed)
        self.x = torch.cat(data.images)
        self.y = torch.cat(
            [
                torch.full((len(x),), lab, dtype=torch.long)
                for x, lab in zip(data.images, data.class_labels, strict=True)
            ]
        )
        self.members: list[list[int]] = [
            [c for c, lab in enumerate(data.class_labels) if lab == label]
            for label in range(len(data.label_names))
        ]
        self._perm: list[int] = []
        self._cursor = 0

    @property
    def steps_per_epoch(self) -> int:
        return max(1, -(-len(self.y) // self.batch_size))

    def draw(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(images (B, C, H, W), labels (B,))``, augmented."""
        rng = self.rng
        if self.balanced:
            ys = rng.integers(len(self.data.label_names), size=self.batch_size)
            xs = []
            for label in ys:
                members = self.members[int(label)]
                imgs = self.data.images[members[int(rng.integers(len(members)))]]
                x = imgs[int(rng.integers(len(imgs)))].unsqueeze(0)
                xs.append(self.augment(x, rng) if self.augment is not None else x)
            return torch.cat(xs), torch.from_numpy(ys).long()
        if self._cursor >= len(self._perm):
            self._perm, self._cursor = rng.permutation(len(self.y)).tolist(), 0
        idx = torch.tensor(self._perm[self._cursor : self._cursor + self.batch_size])
        self._cursor += self.batch_size
        x = self.x[idx]
        return (self.augment(x, rng) if self.augment is not None else x), self.y[idx]

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        x, y = batch
        self.model.train()
        logits = self.head(self.model.features(x)) if self.head is not None else self.model(x)
        loss = F.cross_entropy(logits, y)
        accuracy = float((logits.argmax(1) == y).float().mean())
        return loss, {"loss": float(loss.detach()), "accuracy": accuracy, "items": float(len(y))}

    def get_state(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "perm": list(self._perm), "cursor": self._cursor}

    def set_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self._perm, self._cursor = list(state["perm"]), int(state["cursor"])


def trainable(*modules: nn.Module | None) -> Sequence[nn.Parameter]:
    """Parameters that require gradients, each once, in order."""
    seen: set[int] = set()
    out = []
    for m in modules:
        for p in m.parameters() if m is not None else ():
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                out.append(p)
    return out
