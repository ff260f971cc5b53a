"""The shipped model's meta-training recipe: several image-folder data sets plus the synthetic line, pooled.

``core.training.meta_train`` trains on one data set; the shipped model needs more classes than any single set
has (docs/adr/0005), so this module pools classes from every source in a :class:`Recipe`, draws class-balanced
episodes (each class equally likely, whatever its image count), augments them as surfaces allow (rotations,
flips, brightness/contrast, blur, sensor noise) and trains any registered learner + backbone on them.

    nice -n 10 python -m core.lab.recipe resources/recipes/texture_fused.json --out texture_fused.pt

Progress comes back as :class:`TrainRecord` from the generator :func:`train`; the CLI form prints them.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from core.imaging.preprocess import Preprocess
from core.meta import Task, create_learner
from core.models import create_model

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Recipe:
    """Everything that decides the shipped model (stored in its provenance).

    ``data``: image-folder trees/zips as ``{"path": ..., "subdir": ...}`` (paths relative to ``datasets_dir``);
    ``synthetic_variants``: synthetic-line product variants whose defect classes join the pool;
    ``eval_variant`` / ``eval_data``: held out, only scored while training. Episodes are 2..``max_ways``-way,
    or exactly ``ways``-way when set (learners with a fixed-size head: the MAML family; sources with fewer
    classes are then left out).
    """

    backbone: str = "texture_fused"
    backbone_options: dict[str, Any] = field(default_factory=dict)
    learner: str = "protonet"
    learner_options: dict[str, Any] = field(default_factory=dict)
    image_size: int = 64
    channels: int = 3
    data: tuple[dict[str, Any], ...] = ()
    datasets_dir: str = "../shared/datasets"
    synthetic_variants: tuple[str, ...] = ()
    synthetic_per_class: int = 60
    eval_variant: str | None = None
    eval_data: dict[str, Any] | None = None
    pretrain_iterations: int = 0
    pretrain_batch: int = 32
    iterations: int = 1000
    meta_batch: int = 2
    max_ways: int = 6
    ways: int | None = None
    shots: tuple[int, ...] = (1, 5)
    queries: int = 8
    lr: float = 1e-3
    augment: bool = True
    freeze_texture: bool = False
    seed: int = 0

    @classmethod
    def from_file(cls, path: str | Path) -> Recipe:
        raw = json.loads(Path(path).read_text())
        known = set(cls.__dataclass_fields__)
        extra = set(raw) - known - {"comment"}
        if extra:
            raise ValueError(f"unknown recipe keys {sorted(extra)} in {path}; known: {sorted(known)}")
        raw.pop("comment", None)
        for key in ("data", "synthetic_variants", "shots"):
            if key in raw:
                raw[key] = tuple(raw[key])
        return cls(**raw)

    def preprocess(self) -> Preprocess:
        return Preprocess(self.image_size, self.channels, (0.0,) * self.channels, (1.0,) * self.channels)


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return (x * 255.0).round().clamp(0, 255).to(torch.uint8)


def folder_classes(path: Path, preprocess: Preprocess, subdir: str | None = None) -> dict[str, torch.Tensor]:
    """Image-folder tree/zip -> ``{"<set>/<class>": uint8 (n, C, S, S)}`` (images prepared, not normalised)."""
    from core.data import ImageFolderDataset

    ds = ImageFolderDataset.from_path(path, preprocess, subdir=subdir)
    stem = Path(path).name.removesuffix(".zip")
    return {f"{stem}/{name}": _to_uint8(x) for name, x in zip(ds.class_names, ds.images, strict=True)}


def synthetic_classes(
    variants: tuple[str, ...], per_class: int, preprocess: Preprocess, seed: int
) -> dict[str, torch.Tensor]:
    """Synthetic-line part crops: ``{"synthetic/<variant>/<defect>": uint8 (per_class, C, S, S)}``."""
    from core.camera.synthetic import DEFECT_CLASSES, render_part

    rng = np.random.default_rng(seed)
    out: dict[str, torch.Tensor] = {}
    for variant in variants:
        for defect in DEFECT_CLASSES:
            crops = [render_part(rng, defect, variant=variant, size=128)[0] for _ in range(per_class)]
            out[f"synthetic/{variant}/{defect}"] = _to_uint8(preprocess.batch(crops))
    return out


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Surface-safe augmentation of uint8 ``(B, C, S, S)`` -> float in [0, 1]: one rotation by 90 degrees and
    flip for the whole class batch (so a class keeps one look), per-image brightness/contrast, blur, noise."""
    x = x.float()
    x = torch.rot90(x, int(torch.randint(4, (1,), generator=g)), (2, 3))
    if float(torch.rand(1, generator=g)) < 0.5:
        x = x.flip(3)
    b = x.shape[0]
    contrast = torch.empty(b, 1, 1, 1).uniform_(0.75, 1.25, generator=g)
    bright = torch.empty(b, 1, 1, 1).uniform_(-20.0, 20.0, generator=g)
    mean = x.mean((1, 2, 3), keepdim=True)
    x = (x - mean) * contrast + mean + bright
    if float(torch.rand(1, generator=g)) < 0.3:
        k = torch.tensor([1.0, 2.0, 1.0])
        kernel = (k[:, None] * k[None, :] / 16.0).expand(x.shape[1], 1, 3, 3)
        x = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), kernel, groups=x.shape[1])
    x = x + torch.randn(x.shape, generator=g) * float(torch.empty(1).uniform_(0.0, 5.0, generator=g))
    return x.clamp(0.0, 255.0).round() / 255.0


def sample_task(
    pool: dict[str, torch.Tensor],
    names: list[str],
    n_way: int,
    k_shot: int,
    q_query: int,
    rng: np.random.Generator,
    g: torch.Generator | None = None,
) -> Task:
    """Class-balanced episode: ``n_way`` classes drawn uniformly from ``names``; a class with fewer than
    ``k_shot + q_query`` images gives ``k_shot`` support images and the rest as queries. ``g`` turns on
    augmentation."""
    chosen = rng.choice(len(names), n_way, replace=False)
    sx, sy, qx, qy = [], [], [], []
    for label, ci in enumerate(chosen):
        x = pool[names[ci]]
        order = torch.from_numpy(rng.permutation(len(x)))
        q = min(q_query, len(x) - k_shot)
        if q < 1:
            raise ValueError(f"class {names[ci]} has {len(x)} images; needs more than {k_shot}")
        batch = x[order[: k_shot + q]]
        batch = augment(batch, g) if g is not None else batch.float() / 255.0
        sx.append(batch[:k_shot])
        qx.append(batch[k_shot:])
        sy += [label] * k_shot
        qy += [label] * q
    return Task(torch.cat(sx), torch.tensor(sy), torch.cat(qx), torch.tensor(qy))


@dataclass(frozen=True)
class TrainRecord:
    """Progress of :func:`train`: iteration, mean training loss/accuracy since the last record, optional
    held-out scores, seconds elapsed."""

    iteration: int
    loss: float
    accuracy: float
    held_out: dict[str, float]
    seconds: float


def held_out_accuracy(
    learner: Any, pool: dict[str, torch.Tensor], n_way: int, episodes: int, seed: int
) -> float:
    """Mean accuracy over ``episodes`` 5-shot episodes of ``n_way`` classes from ``pool`` (no augmentation)."""
    rng = np.random.default_rng(seed)
    names = sorted(pool)
    hits = []
    for _ in range(episodes):
        t = sample_task(pool, names, min(n_way, len(names)), 5, 10, rng)
        pred = learner.adapt(t.support_x, t.support_y).predict(t.query_x)
        hits.append(float((pred == t.query_y).float().mean()))
    return float(np.mean(hits))


def class_groups(pool: dict[str, torch.Tensor]) -> dict[str, list[str]]:
    """Classes grouped by source (``"<set>/<class>"`` -> ``"<set>"``; ``"synthetic/<variant>/<defect>"`` ->
    ``"synthetic/<variant>"``), groups of one class dropped.

    An episode draws all its classes from one group, as at deployment (one product's defects, seen on one
    line); mixed-source episodes are solved by telling sources apart, which teaches nothing about defects.
    """
    groups: dict[str, list[str]] = {}
    for name in sorted(pool):
        groups.setdefault(name.rsplit("/", 1)[0], []).append(name)
    return {k: v for k, v in groups.items() if len(v) >= 2}


def build(recipe: Recipe) -> Any:
    """Backbone + learner from the recipe (fresh weights, seeded)."""
    torch.manual_seed(recipe.seed)
    head_size = recipe.ways or recipe.max_ways
    model = create_model(
        recipe.backbone,
        in_channels=recipe.channels,
        image_size=recipe.image_size,
        n_way=head_size,
        **recipe.backbone_options,
    )
    learner = create_learner(recipe.learner, model, n_way=head_size, **recipe.learner_options)
    if recipe.freeze_texture:
        # Keep the classic histograms exactly (identity-initialised texture branch): learning them on the few
        # training sets made them worse on the held-out set (docs/adr/0005); only the CNN branch learns.
        texture = getattr(model.features, "texture", None)
        if texture is None:
            raise ValueError(f"freeze_texture needs a texture_fused backbone, got {recipe.backbone!r}")
        texture.requires_grad_(False)
    return learner


def train(
    recipe: Recipe,
    learner: Any,
    pool: dict[str, torch.Tensor],
    held_out: dict[str, dict[str, torch.Tensor]],
    every: int = 50,
) -> Iterator[TrainRecord]:
    """Meta-train ``learner`` on class-balanced episodes from ``pool``; yield a record every ``every`` steps."""
    groups = {k: v for k, v in class_groups(pool).items() if len(v) >= (recipe.ways or 2)}
    if not groups:
        raise ValueError(
            f"the recipe gives no data set (or synthetic variant) with at least {recipe.ways or 2} classes"
        )
    group_names = sorted(groups)
    rng = np.random.default_rng(recipe.seed)
    g = torch.Generator().manual_seed(recipe.seed) if recipe.augment else None
    opt = torch.optim.Adam([p for p in learner.parameters() if p.requires_grad], lr=recipe.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, recipe.iterations))
    t0 = time.perf_counter()
    losses: list[float] = []
    accs: list[float] = []
    for it in range(1, recipe.iterations + 1):
        tasks = []
        for _ in range(recipe.meta_batch):
            names = groups[group_names[int(rng.integers(len(group_names)))]]
            n_way = recipe.ways or int(rng.integers(2, min(recipe.max_ways, len(names)) + 1))
            tasks.append(
                sample_task(pool, names, n_way, int(rng.choice(recipe.shots)), recipe.queries, rng, g)
            )
        learner.train()
        loss, metrics = learner.meta_loss(tasks)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(metrics["loss"])
        accs.append(metrics["accuracy"])
        if it % every == 0 or it == recipe.iterations:
            scores = {name: held_out_accuracy(learner, p, 6, 12, seed=1) for name, p in held_out.items()}
            yield TrainRecord(
                it, float(np.mean(losses)), float(np.mean(accs)), scores, time.perf_counter() - t0
            )
            losses, accs = [], []


def pretrain_label(name: str) -> str:
    """Label for supervised pre-training: a synthetic defect shares one label across product variants (so the
    features must see the defect, not the product); a real class keeps its own label."""
    return name.rsplit("/", 1)[1] if name.startswith("synthetic/") else name


def pretrain(
    recipe: Recipe,
    learner: Any,
    pool: dict[str, torch.Tensor],
    held_out: dict[str, dict[str, torch.Tensor]],
    every: int = 100,
) -> Iterator[TrainRecord]:
    """Supervised pre-training of ``learner.model.features`` with a throw-away linear classifier over
    :func:`pretrain_label` labels, on label-balanced augmented batches (labels drawn uniformly, then an image
    of a random class carrying that label)."""
    labels = sorted({pretrain_label(n) for n in pool})
    members = {lab: [n for n in sorted(pool) if pretrain_label(n) == lab] for lab in labels}
    model = learner.model
    classifier = torch.nn.Linear(model.embedding_dim, len(labels))
    params = list(learner.parameters()) + list(classifier.parameters())
    opt = torch.optim.Adam(params, lr=recipe.lr)
    rng = np.random.default_rng(recipe.seed + 7)
    g = torch.Generator().manual_seed(recipe.seed + 7)
    t0 = time.perf_counter()
    losses: list[float] = []
    accs: list[float] = []
    for it in range(1, recipe.pretrain_iterations + 1):
        ys = rng.integers(len(labels), size=recipe.pretrain_batch)
        xs = []
        for y in ys:
            names = members[labels[y]]
            x = pool[names[int(rng.integers(len(names)))]]
            xs.append(augment(x[int(rng.integers(len(x)))].unsqueeze(0), g))
        model.train()
        logits = classifier(model.features(torch.cat(xs)))
        target = torch.from_numpy(ys).long()
        loss = F.cross_entropy(logits, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        accs.append(float((logits.argmax(1) == target).float().mean()))
        if it % every == 0 or it == recipe.pretrain_iterations:
            scores = {name: held_out_accuracy(learner, p, 6, 12, seed=1) for name, p in held_out.items()}
            yield TrainRecord(
                -it, float(np.mean(losses)), float(np.mean(accs)), scores, time.perf_counter() - t0
            )
            losses, accs = [], []


def git_commit() -> str:
    """Commit of the working tree this model was trained from ("unknown" outside git)."""
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True
        )
    except OSError:
        return "unknown"
    return out.stdout.strip() or "unknown"


def load_pools(recipe: Recipe) -> tuple[dict[str, torch.Tensor], dict[str, dict[str, torch.Tensor]]]:
    """(training pool, held-out pools by name) as the recipe says."""
    pre = recipe.preprocess()
    root = (REPO_ROOT / recipe.datasets_dir).resolve()
    pool: dict[str, torch.Tensor] = {}
    for entry in recipe.data:
        pool.update(folder_classes(root / entry["path"], pre, entry.get("subdir")))
    pool.update(synthetic_classes(recipe.synthetic_variants, recipe.synthetic_per_class, pre, recipe.seed))
    held: dict[str, dict[str, torch.Tensor]] = {}
    if recipe.eval_variant:
        held[f"variant {recipe.eval_variant}"] = synthetic_classes(
            (recipe.eval_variant,), 30, pre, recipe.seed + 1
        )
    if recipe.eval_data:
        held[recipe.eval_data["path"]] = folder_classes(
            root / recipe.eval_data["path"], pre, recipe.eval_data.get("subdir")
        )
    return pool, held


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m core.lab.recipe", description=__doc__)
    ap.add_argument("recipe", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--iterations", type=int, default=None, help="override the recipe's iterations")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    recipe = Recipe.from_file(args.recipe)
    if args.iterations is not None:
        recipe = Recipe(**{**asdict(recipe), "iterations": args.iterations})
    pool, held = load_pools(recipe)
    print(f"{len(pool)} training classes, {sum(len(x) for x in pool.values())} images", flush=True)
    learner = build(recipe)
    stages = itertools.chain(pretrain(recipe, learner, pool, held), train(recipe, learner, pool, held))
    for rec in stages:  # pre-training records carry negative iteration numbers
        scores = "  ".join(f"{k}: {100 * v:.1f}%" for k, v in rec.held_out.items())
        print(f"it {rec.iteration:5d}  loss {rec.loss:.3f}  acc {100 * rec.accuracy:.1f}%  {scores}  "
              f"({rec.seconds:.0f} s)", flush=True)  # fmt: skip
        torch.save(learner.state_dict(), args.out.with_suffix(".state.pt"))
    from core.storage.checkpoint import save_checkpoint

    provenance = {
        "recipe": asdict(recipe),
        "recipe_file": str(args.recipe),
        "training_classes": sorted(pool),
        "iterations": recipe.iterations,
        "pretrain_iterations": recipe.pretrain_iterations,
        "seed": recipe.seed,
        "git_commit": git_commit(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "final_held_out": rec.held_out,
    }
    sha = save_checkpoint(
        args.out, learner, preprocess=recipe.preprocess(), class_names=[], provenance=provenance
    )
    print(f"wrote {args.out} (sha256 {sha[:12]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
