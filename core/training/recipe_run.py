"""Run a :class:`~core.training.recipe.TrainingRecipe` on the one engine and save what it trained.

    metainspect-lab pretrain resources/recipes/surface.json --out surface.pt --texture-weight 1.0

:func:`load_pool` gathers the training classes (``"<set>/<class>"``, ``"synthetic/<variant>/<defect>"``) into
one :class:`~core.data.ImageFolderDataset`; :func:`build_recipe_learner` makes the seeded learner;
:func:`iter_recipe` runs the supervised stage, then the episodic one, as generators of
:class:`~core.training.progress.TrainProgress` (``stage`` says which), scoring the held-out sets by the
validation callback; :func:`save_trained` writes the checkpoint with the recipe in its provenance.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from core.config import EvalConfig
from core.data import ImageFolderDataset, PooledEpisodeSampler
from core.imaging.preprocess import Preprocess
from core.training.engine import Callback, Validation, cosine_schedule, run_engine
from core.training.evaluate import evaluate
from core.training.objectives import EpisodicObjective, LabelledClasses, SupervisedObjective, trainable
from core.training.progress import Cancellable, TrainProgress
from core.training.recipe import DataSource, TrainingRecipe

#: Held-out sets are scored on this many 5-shot episodes of up to 6 ways (10 queries per class) per check.
VALIDATION = {"max_ways": 6, "shots": 5, "queries": 10, "episodes": 12, "seed": 1}


def folder_dataset(source: DataSource, root: Path, preprocess: Preprocess) -> ImageFolderDataset:
    """One image-folder set, its classes renamed ``"<set>/<class>"``."""
    ds = ImageFolderDataset.from_path(root / source.path, preprocess, subdir=source.subdir)
    names = [f"{source.name}/{c}" for c in ds.class_names]
    return ImageFolderDataset(names, ds.images, preprocess, source=ds.source)


def synthetic_dataset(
    variants: tuple[str, ...], per_class: int, preprocess: Preprocess, seed: int, render_size: int = 128
) -> ImageFolderDataset:
    """Synthetic-line crops ``"synthetic/<variant>/<defect>"``, ``per_class`` each, resized by ``preprocess``."""
    from core.camera.synthetic import DEFECT_CLASSES, render_part

    rng = np.random.default_rng(seed)
    names, images = [], []
    for variant in variants:
        for defect in DEFECT_CLASSES:
            crops = [render_part(rng, defect, variant=variant, size=render_size)[0] for _ in range(per_class)]
            names.append(f"synthetic/{variant}/{defect}")
            images.append(preprocess.batch(crops))
    return ImageFolderDataset(names, images, preprocess, source="synthetic " + ", ".join(variants))


def merge(parts: list[ImageFolderDataset], preprocess: Preprocess) -> ImageFolderDataset:
    """The classes of every part in one data set (names must differ)."""
    names = [n for p in parts for n in p.class_names]
    images = [x for p in parts for x in p.images]
    return ImageFolderDataset(names, images, preprocess, source=" + ".join(p.source for p in parts))


def load_pool(recipe: TrainingRecipe) -> ImageFolderDataset:
    """Every training class of the recipe (image-folder sets, then synthetic variants)."""
    pre = recipe.preprocess()
    parts = [folder_dataset(d, recipe.datasets_root(), pre) for d in recipe.data]
    syn = recipe.synthetic
    if syn is not None and syn.training_variants():
        parts.append(
            synthetic_dataset(syn.training_variants(), syn.per_class, pre, recipe.seed, syn.render_size)
        )
    return merge(parts, pre)


def load_held_out(recipe: TrainingRecipe) -> dict[str, ImageFolderDataset]:
    """The sets the recipe only scores: ``"variant <name>"`` per held-out variant, and each ``eval_data``."""
    pre = recipe.preprocess()
    held: dict[str, ImageFolderDataset] = {}
    syn = recipe.synthetic
    for variant in syn.held_out if syn is not None else ():
        held[f"variant {variant}"] = synthetic_dataset(
            (variant,),
            syn.eval_per_class,
            pre,
            recipe.seed + 1,
            syn.render_size,  # type: ignore[union-attr]
        )
    for d in recipe.eval_data:
        held[d.path] = folder_dataset(d, recipe.datasets_root(), pre)
    return held


def supervised_label(name: str) -> str:
    """A synthetic defect is one label across product variants (the features must see the defect, not the
    product); a real class keeps its own label."""
    return name.rsplit("/", 1)[1] if name.startswith("synthetic/") else name


def labelled_classes(pool: ImageFolderDataset) -> LabelledClasses:
    """The pool's classes with their :func:`supervised_label` (labels in first-seen order)."""
    labels: dict[str, int] = {}
    class_labels = [labels.setdefault(supervised_label(n), len(labels)) for n in pool.class_names]
    return LabelledClasses(list(pool.images), class_labels, list(labels))


def build_recipe_learner(recipe: TrainingRecipe, num_labels: int | None = None) -> nn.Module:
    """The recipe's learner with fresh weights from ``recipe.seed`` (the global RNG is left alone).

    The model's head has ``num_labels`` outputs when the supervised stage trains the model's own head,
    else :meth:`~TrainingRecipe.learner_ways`; ``recipe.freeze`` sub-modules stop learning.
    """
    from core.meta import create_learner
    from core.models import create_model

    ways = recipe.learner_ways()
    own_head = recipe.supervised is not None and recipe.supervised.head == "model"
    if own_head and num_labels is None:
        raise ValueError("the supervised stage trains the model's head: pass the number of labels")
    options = {k: v for k, v in recipe.learner.items() if k not in ("name", "n_way")}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        kw = {"in_channels": recipe.channels, "image_size": recipe.image_size, **recipe.backbone}
        model = create_model(**{**kw, "n_way": num_labels if own_head else ways})
        learner = create_learner(str(recipe.learner["name"]), model, n_way=ways, **options)
    for path in recipe.freeze:
        try:
            model.get_submodule(path).requires_grad_(False)
        except AttributeError:
            raise ValueError(
                f"the recipe freezes {path!r}, which a {recipe.backbone['name']!r} model does not have"
            ) from None
    return learner


def _validation(
    recipe: TrainingRecipe, learner: nn.Module, held: dict[str, ImageFolderDataset]
) -> list[Callback]:
    sets = {k: v for k, v in held.items() if len(v) >= 2}
    if not sets:
        return []

    def score() -> dict[str, float]:
        out = {}
        for name, ds in sets.items():
            cfg = EvalConfig(
                ways=min(VALIDATION["max_ways"], len(ds)), shots=VALIDATION["shots"],
                queries=VALIDATION["queries"], episodes=VALIDATION["episodes"], seed=VALIDATION["seed"],
            )  # fmt: skip
            out[name] = evaluate(learner, ds, cfg).accuracy
        return out

    return [Validation(recipe.validate_every, score, at_end=True)]


def iter_recipe(
    recipe: TrainingRecipe,
    learner: nn.Module,
    pool: ImageFolderDataset,
    held_out: dict[str, ImageFolderDataset] | None = None,
    *,
    cancel: Cancellable | None = None,
) -> Iterator[TrainProgress]:
    """Train ``learner`` (from :func:`build_recipe_learner`) on ``pool``: the supervised stage, then the
    episodic one; a cancelled stage ends the run. Held-out sets are scored every ``recipe.validate_every``
    steps and at each stage's end (``val_scores``). A supervised stage that counts epochs reports once per
    epoch (``iteration`` = epoch, ``tasks_per_s`` = images per second)."""
    old_threads = torch.get_num_threads()
    torch.set_num_threads(recipe.threads)
    callbacks = _validation(recipe, learner, held_out or {})
    try:
        last: TrainProgress | None = None
        if recipe.supervised is not None:
            for last in _supervised(recipe, learner, pool, callbacks, cancel):
                yield last
            if last is not None and last.cancelled:
                return
        if recipe.episodic is not None:
            yield from _episodic(recipe, learner, pool, callbacks, cancel)
    finally:
        torch.set_num_threads(old_threads)


def _supervised(
    recipe: TrainingRecipe, learner: nn.Module, pool: ImageFolderDataset, callbacks: list[Callback],
    cancel: Cancellable | None,
) -> Iterator[TrainProgress]:  # fmt: skip
    stage = recipe.supervised
    assert stage is not None
    data = labelled_classes(pool)
    model = learner.model
    head = None
    if stage.head == "linear":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(recipe.seed + 7)
            head = nn.Linear(model.embedding_dim, len(data.label_names))
    objective = SupervisedObjective(
        model, data, stage.batch_size, recipe.seed, head=head, balanced=stage.steps is not None,
        augment=recipe.augment,
    )  # fmt: skip
    opt = torch.optim.Adam(trainable(learner, head), lr=stage.lr, weight_decay=stage.weight_decay)
    per_epoch = objective.steps_per_epoch if stage.epochs else 0
    steps = stage.epochs * per_epoch if stage.epochs else int(stage.steps or 0)
    records = run_engine(
        objective, opt, steps=steps, scheduler=cosine_schedule(opt, steps, stage.lr_floor),
        callbacks=callbacks, cancel=cancel, every=per_epoch or stage.report_every, stage="supervised",
    )  # fmt: skip
    for rec in records:
        if per_epoch:
            epoch = max(1, -(-rec.iteration // per_epoch))
            rec = dataclasses.replace(rec, iteration=epoch, iterations=int(stage.epochs or 0))
        yield rec
    model.eval()


def _episodic(
    recipe: TrainingRecipe, learner: nn.Module, pool: ImageFolderDataset, callbacks: list[Callback],
    cancel: Cancellable | None,
) -> Iterator[TrainProgress]:  # fmt: skip
    stage = recipe.episodic
    assert stage is not None
    sampler = PooledEpisodeSampler(
        pool, stage.shots, stage.queries, recipe.seed, ways=stage.ways, max_ways=stage.max_ways,
        within_source=stage.within_source, augment=recipe.augment,
    )  # fmt: skip
    opt = torch.optim.Adam(trainable(learner), lr=stage.lr)
    yield from run_engine(
        EpisodicObjective(learner, sampler, stage.meta_batch), opt, steps=stage.steps,
        scheduler=cosine_schedule(opt, stage.steps, stage.lr_floor), callbacks=callbacks, cancel=cancel,
        every=stage.report_every, stage="episodic",
    )  # fmt: skip
    learner.eval()


def save_trained(
    path: str | Path,
    learner: nn.Module,
    recipe: TrainingRecipe,
    pool: ImageFolderDataset,
    *,
    texture_weight: float | None = None,
    extra: dict[str, Any] | None = None,
) -> str:
    """Save ``learner`` with the recipe in its provenance; returns the file's SHA-256.

    With ``texture_weight`` a trained ``surface`` backbone is saved as ``surface_fused`` (frozen texture
    histograms of that relative weight appended to its embedding) under the same learner.
    """
    from core.meta import create_learner
    from core.storage.checkpoint import save_checkpoint

    pre = recipe.preprocess()
    if texture_weight is not None:
        from core.models.surface import fused_from_surface

        model = fused_from_surface(
            learner.model, texture_weight, input_mean=list(pre.mean), input_std=list(pre.std)
        )
        options = {k: v for k, v in recipe.learner.items() if k not in ("name", "n_way")}
        learner = create_learner(str(recipe.learner["name"]), model, n_way=recipe.learner_ways(), **options)
    learner.eval()
    own_head = recipe.supervised is not None and recipe.supervised.head == "model"
    provenance: dict[str, Any] = {
        "data": pool.source,
        "held_out": recipe.held_out_names(),
        "training_classes": list(pool.class_names),
        "seed": recipe.seed,
        "recipe": recipe.to_dict(),
        "texture_weight": texture_weight,
        **(extra or {}),
    }
    names = labelled_classes(pool).label_names if own_head else []
    return save_checkpoint(path, learner, preprocess=pre, class_names=names, provenance=provenance)


def main(argv: list[str] | None = None) -> int:
    """``metainspect-lab pretrain RECIPE.json --out X.pt`` (see :func:`core.cli.add_pretrain`)."""
    ap = argparse.ArgumentParser(prog="metainspect-lab pretrain", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("recipe", help="training recipe (JSON), e.g. resources/recipes/surface.json")
    ap.add_argument("--out", required=True, help="checkpoint to write")
    ap.add_argument("--epochs", type=int, default=None, help="override the supervised stage's epochs")
    ap.add_argument("--iterations", type=int, default=None, help="override the episodic stage's steps")
    ap.add_argument("--texture-weight", type=float, default=None,
                    help="save a surface backbone as surface_fused with this texture weight")  # fmt: skip
    args = ap.parse_args(argv)
    recipe = TrainingRecipe.from_json(args.recipe).replace_steps(
        epochs=args.epochs, iterations=args.iterations
    )
    pool = load_pool(recipe)
    print(f"{len(pool)} training classes, {pool.num_images} images", flush=True)
    learner = build_recipe_learner(recipe, len(labelled_classes(pool).label_names))
    last = None
    for rec in iter_recipe(recipe, learner, pool, load_held_out(recipe)):
        last = rec
        if rec.cancelled:
            return 1
        unit = "epoch" if rec.stage == "supervised" and recipe.supervised.epochs else "it"  # type: ignore[union-attr]
        rate = "img/s" if rec.stage == "supervised" else "tasks/s"
        scores = "".join(f"  {k}: {100 * v:.1f}%" for k, v in rec.val_scores.items())
        print(
            f"{rec.stage} {unit} {rec.iteration}/{rec.iterations} loss {rec.meta_loss:.4f} "
            f"train acc {rec.accuracy:.3f} {rec.tasks_per_s:.0f} {rate} elapsed {rec.elapsed:.0f}s{scores}",
            flush=True,
        )
    extra = {"recipe_file": str(args.recipe), "final_held_out": last.val_scores if last else {}}
    sha = save_trained(args.out, learner, recipe, pool, texture_weight=args.texture_weight, extra=extra)
    print(f"saved {args.out} sha256 {sha}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
