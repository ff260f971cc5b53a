"""Supervised pre-training of a backbone on pooled labelled classes, saved as a ProtoNet checkpoint.

Classes are the synthetic defect classes (:data:`core.camera.synthetic.DEFECT_CLASSES`) pooled over every
synthetic product variant except the held-out ones (rendered with :func:`render_part`), plus optionally the
classes of image-folder data sets (``magnetic_tile.zip``, ``kolektorsdd.zip``, each a class of its own).
The backbone's ``features`` and its linear ``head`` (over all pooled classes) are trained with cross-entropy
and rot90/flip augmentation; the head is then dropped by wrapping the model in a ``protonet`` learner, which
adapts by nearest class mean on the features.

    nice -n 10 .venv/bin/python -m core.training.pretrain resources/recipes/surface.json --out surface.pt
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

import core.models.surface  # noqa: F401  (registers "surface" / "surface_fused")
from core.camera.synthetic import DEFECT_CLASSES, list_variants, render_part
from core.imaging.preprocess import Preprocess
from core.meta import create_learner
from core.models import create_model
from core.training.progress import Cancellable, TrainProgress, is_cancelled


@dataclass
class PretrainConfig:
    """What :func:`iter_pretrain` trains.

    Attributes
    ----------
    model
        ``create_model`` keyword arguments (``name`` first); ``n_way`` is set to the number of pooled classes.
    image_size
        Side of the square model input.
    render_size
        Side of the rendered synthetic crops before the Preprocess resize (128, as the synthetic line).
    held_out
        Synthetic variants never rendered for training.
    per_class
        Rendered crops per (variant, defect class).
    datasets
        Extra image-folder data sets (paths; ``path:subdir`` picks a sub-folder), each folder a class.
    epochs, batch_size, lr, weight_decay, seed
        Optimisation (Adam, cosine learning-rate decay to 5%).
    threads
        ``torch.set_num_threads`` during training (1 on a shared machine).
    """

    model: dict[str, Any] = field(default_factory=lambda: {"name": "surface", "in_channels": 1})
    image_size: int = 64
    render_size: int = 128
    held_out: list[str] = field(default_factory=lambda: ["copper_disc"])
    per_class: int = 120
    datasets: list[str] = field(default_factory=list)
    epochs: int = 8
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.0
    seed: int = 0
    threads: int = 1

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PretrainConfig:
        """Build from a JSON object; unknown keys are an error."""
        known = set(cls.__dataclass_fields__)
        extra = set(data) - known
        if extra:
            raise ValueError(f"unknown pre-training keys {sorted(extra)}; expected {sorted(known)}")
        return cls(**data)

    def preprocess(self) -> Preprocess:
        """The checkpoint's preprocessing: grey or RGB in [0, 1] (the model standardises each image)."""
        ch = int(self.model.get("in_channels", 1))
        return Preprocess(self.image_size, ch, (0.0,) * ch, (1.0,) * ch)


@dataclass(frozen=True)
class PooledData:
    """Training images ``(N, C, S, S)``, labels ``(N,)`` and the class names in label order."""

    x: torch.Tensor
    y: torch.Tensor
    class_names: list[str]


def synthetic_classes(
    variants: list[str], per_class: int, preprocess: Preprocess, seed: int, render_size: int = 128
) -> tuple[list[torch.Tensor], list[str]]:
    """Rendered crops per defect class pooled over ``variants``: ``(len(variants) * per_class, C, S, S)`` each.

    A defect class is one label across every variant, so the features learn defects, not product looks.
    Crops are rendered at ``render_size`` and resized by ``preprocess``, as the app's part trigger does.
    """
    rng = np.random.default_rng(seed)
    tensors = []
    for c in DEFECT_CLASSES:
        imgs = [
            render_part(rng, c, variant=v, size=render_size)[0] for v in variants for _ in range(per_class)
        ]
        tensors.append(preprocess.batch(imgs))
    return tensors, list(DEFECT_CLASSES)


def pooled_data(config: PretrainConfig) -> PooledData:
    """All training classes of ``config``: synthetic variants (minus held-out) and image-folder sets."""
    from core.data import ImageFolderDataset  # local: reading zips is only needed here

    pre = config.preprocess()
    held = set(config.held_out)
    unknown = held - set(list_variants())
    if unknown:
        raise ValueError(f"unknown held-out variants {sorted(unknown)}; choose from {list_variants()}")
    variants = [v for v in list_variants() if v not in held]
    tensors, names = synthetic_classes(variants, config.per_class, pre, config.seed, config.render_size)
    for spec in config.datasets:
        path, _, subdir = spec.partition(":")
        ds = ImageFolderDataset.from_path(path, pre, subdir=subdir or None)
        for i, name in enumerate(ds.class_names):
            tensors.append(torch.as_tensor(ds.images[i]))
            names.append(f"{Path(path).stem}/{name}")
    y = torch.cat([torch.full((len(t),), i, dtype=torch.long) for i, t in enumerate(tensors)])
    return PooledData(torch.cat(tensors).float(), y, names)


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One random rot90 (0-3 quarter turns) and an optional horizontal flip, shared by the batch."""
    k = int(torch.randint(4, (1,), generator=gen))
    x = torch.rot90(x, k, (2, 3))
    if bool(torch.randint(2, (1,), generator=gen)):
        x = torch.flip(x, (3,))
    return x


def iter_pretrain(
    config: PretrainConfig,
    data: PooledData | None = None,
    *,
    cancel: Cancellable | None = None,
    result: dict[str, Any] | None = None,
) -> Iterator[TrainProgress]:
    """Train ``config.model`` with cross-entropy on the pooled classes, yielding one record per epoch.

    Parameters
    ----------
    config
        What to train.
    data
        Pre-built training data (default: :func:`pooled_data`).
    cancel
        Checked between batches; a cancelled run ends with a ``cancelled`` record.
    result
        If given, receives ``"model"`` (the trained backbone, eval mode) and ``"data"`` once done.

    Yields
    ------
    TrainProgress
        ``iteration`` = epoch, ``meta_loss`` = mean training loss, ``accuracy`` = training accuracy.
    """
    old_threads = torch.get_num_threads()
    torch.set_num_threads(max(1, config.threads))
    try:
        torch.manual_seed(config.seed)
        gen = torch.Generator().manual_seed(config.seed)
        start = time.perf_counter()
        data = data or pooled_data(config)
        kw = {k: v for k, v in config.model.items() if k != "n_way"}
        kw.setdefault("image_size", config.image_size)
        model = create_model(**kw, n_way=len(data.class_names))
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
        n = len(data.y)
        steps_per_epoch = max(1, (n + config.batch_size - 1) // config.batch_size)
        total = steps_per_epoch * config.epochs
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: 0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * min(s, total) / total))
        )
        train_time = 0.0
        for epoch in range(1, config.epochs + 1):
            model.train()
            perm = torch.randperm(n, generator=gen)
            losses, correct = [], 0
            for i in range(0, n, config.batch_size):
                if is_cancelled(cancel):
                    yield TrainProgress(
                        epoch, config.epochs, float("nan"), float("nan"), 0.0, None,
                        time.perf_counter() - start, done=True, cancelled=True,
                    )  # fmt: skip
                    return
                t0 = time.perf_counter()
                idx = perm[i : i + config.batch_size]
                x, y = augment(data.x[idx], gen), data.y[idx]
                logits = model(x)
                loss = F.cross_entropy(logits, y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                train_time += time.perf_counter() - t0
                losses.append(loss.item())
                correct += int((logits.argmax(1) == y).sum())
            yield TrainProgress(
                epoch, config.epochs, float(np.mean(losses)), correct / n,
                epoch * n / max(train_time, 1e-9), None, time.perf_counter() - start,
                done=epoch == config.epochs,
            )  # fmt: skip
        model.eval()
        if result is not None:
            result["model"] = model
            result["data"] = data
    finally:
        torch.set_num_threads(old_threads)


def save_pretrained(
    path: str | Path,
    model: torch.nn.Module,
    config: PretrainConfig,
    texture_weight: float | None = None,
) -> str:
    """Wrap ``model`` in a 6-way ``protonet`` learner and save it with provenance; returns the SHA-256.

    With ``texture_weight`` a trained ``surface`` backbone is saved as ``surface_fused`` (frozen texture
    histograms of that relative weight appended to its embedding).
    """
    from core.models.surface import fused_from_surface
    from core.storage.checkpoint import save_checkpoint

    if texture_weight is not None:
        pre = config.preprocess()
        model = fused_from_surface(
            model, texture_weight, input_mean=list(pre.mean), input_std=list(pre.std)
        ).eval()
    learner = create_learner("protonet", model, n_way=len(DEFECT_CLASSES)).eval()
    provenance = {
        "data": "synthetic render_part variants "
        + ", ".join(v for v in list_variants() if v not in config.held_out)
        + (" + " + ", ".join(config.datasets) if config.datasets else ""),
        "held_out": list(config.held_out),
        "epochs": config.epochs,
        "seed": config.seed,
        "recipe": "core.training.pretrain (supervised cross-entropy, rot90/flip)",
        "pretrain_config": asdict(config),
        "texture_weight": texture_weight,
    }
    return save_checkpoint(
        path, learner, preprocess=config.preprocess(), class_names=list(DEFECT_CLASSES), provenance=provenance
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m core.training.pretrain CONFIG.json --out X.pt``."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", help="JSON file of PretrainConfig fields")
    ap.add_argument("--out", required=True, help="checkpoint to write")
    ap.add_argument("--epochs", type=int, default=None, help="override the config's epochs")
    ap.add_argument(
        "--texture-weight", type=float, default=None,
        help="save a surface backbone as surface_fused with this texture weight",
    )  # fmt: skip
    args = ap.parse_args(argv)
    config = PretrainConfig.from_dict(json.loads(Path(args.config).read_text()))
    if args.epochs is not None:
        config.epochs = args.epochs
    result: dict[str, Any] = {}
    for rec in iter_pretrain(config, result=result):
        print(
            f"epoch {rec.iteration}/{rec.iterations} loss {rec.meta_loss:.4f} train acc {rec.accuracy:.3f} "
            f"{rec.tasks_per_s:.0f} img/s elapsed {rec.elapsed:.0f}s",
            flush=True,
        )
        if rec.cancelled:
            return 1
    sha = save_pretrained(args.out, result["model"], config, args.texture_weight)
    print(f"saved {args.out} sha256 {sha}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
