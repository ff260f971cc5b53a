"""Few-shot baselines side by side on the same episodes: raw-pixel NCM, texture NCM, random-weight backbone.

    nice -n 10 .venv/bin/python bench/bench_baselines.py --data ../shared/datasets/x_sdd.zip \
        --ways 5 --shots 5 --episodes 600 --image-size 64

``--data`` is any image-folder tree or zip (one leaf folder per class); ``--subdir`` picks a folder inside it
(e.g. ``images`` for magnetic_tile.zip, whose masks must not count as classes). ``--ways 0`` means all classes.
Prints one table row per classifier: mean accuracy and 95% confidence half-width over the episodes.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.imaging.preprocess import Preprocess
from core.lab.baselines import (
    FewShotClassifier,
    compare_on_episodes,
    raw_pixel_ncm,
    texture_ncm,
)


@dataclass(frozen=True)
class Episode:
    """Same fields as ``core.meta.Task``."""

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor


def load_classes(path: Path, preprocess: Preprocess, subdir: str | None = None) -> dict[str, torch.Tensor]:
    """Image-folder tree or zip (read by core.data) -> {class: prepared images (n, C, S, S)}."""
    from core.data import ImageFolderDataset

    ds = ImageFolderDataset.from_path(path, preprocess, subdir=subdir)
    return dict(zip(ds.class_names, ds.images, strict=True))


def episodes(
    classes: dict[str, torch.Tensor], n_way: int, k_shot: int, q_query: int, count: int, seed: int
) -> Iterator[Episode]:
    """N-way K-shot episodes; a class with fewer than K+Q images gives K support and the rest as queries."""
    rng = np.random.default_rng(seed)
    names = [n for n, x in classes.items() if len(x) > k_shot]
    if n_way > len(names):
        raise ValueError(
            f"{n_way}-way needs {n_way} classes with more than {k_shot} images; have {len(names)}"
        )
    for _ in range(count):
        chosen = rng.choice(len(names), n_way, replace=False)
        sx, sy, qx, qy = [], [], [], []
        for label, ci in enumerate(chosen):
            x = classes[names[ci]]
            order = rng.permutation(len(x))
            q = min(q_query, len(x) - k_shot)
            sx.append(x[order[:k_shot]])
            qx.append(x[order[k_shot : k_shot + q]])
            sy += [label] * k_shot
            qy += [label] * q
        yield Episode(torch.cat(sx), torch.tensor(sy), torch.cat(qx), torch.tensor(qy))


def random_backbone(preprocess: Preprocess, name: str) -> FewShotClassifier | None:
    """ProtoNet adaptation on a backbone with random weights (None until core.models/core.meta exist)."""
    try:
        from core.lab.baselines import learner_classifier
        from core.meta import create_learner
        from core.models import create_model
    except ImportError as exc:
        print(f"random-weight backbone skipped: {exc}", file=sys.stderr)
        return None
    torch.manual_seed(0)
    model = create_model(name, in_channels=preprocess.channels, image_size=preprocess.image_size).eval()
    return learner_classifier(create_learner("protonet", model))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--subdir", default=None)
    ap.add_argument("--ways", type=int, default=5, help="0 = all classes")
    ap.add_argument("--shots", type=int, default=5)
    ap.add_argument("--queries", type=int, default=15)
    ap.add_argument("--episodes", type=int, default=600)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--backbone", default="conv4", help="backbone for the random-weights row ('' to skip)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(2)

    pre = Preprocess(args.image_size, args.channels, (0.0,) * args.channels, (1.0,) * args.channels)
    t0 = time.perf_counter()
    classes = load_classes(args.data, pre, args.subdir)
    n_way = args.ways or len(classes)
    print(
        f"{args.data.name}: {len(classes)} classes, {sum(len(x) for x in classes.values())} images "
        f"({time.perf_counter() - t0:.1f} s to load)"
    )
    contenders: dict[str, FewShotClassifier] = {
        "raw-pixel NCM": raw_pixel_ncm,
        "texture NCM": texture_ncm(pre),
    }
    if args.backbone:
        rb = random_backbone(pre, args.backbone)
        if rb is not None:
            contenders[f"{args.backbone} random weights (protonet)"] = rb
    t0 = time.perf_counter()
    tasks = episodes(classes, n_way, args.shots, args.queries, args.episodes, args.seed)
    results = compare_on_episodes(contenders, tasks)
    print(
        f"\n{n_way}-way {args.shots}-shot, {args.episodes} episodes, {args.image_size}px x{args.channels} "
        f"({time.perf_counter() - t0:.0f} s)\n"
    )
    print("| classifier | accuracy % (95% CI) |\n|---|---|")
    for name, summary in results.items():
        print(f"| {name} | {summary} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
