"""Leave-one-data-set-out comparison, side by side on the same episodes.

For each ``--run SET=CHECKPOINT`` (the checkpoint meta-trained WITHOUT that set), scores on SET's classes:
raw-pixel nearest class mean, texture-histogram nearest class mean, the checkpoint's backbone with fresh
(random) weights adapted by the same learner, and the meta-trained checkpoint; 5-way and all-classes-way,
1-shot and 5-shot, mean and 95% CI over ``--episodes`` episodes.

    nice -n 10 .venv/bin/python bench/bench_loo.py --episodes 600 \
        --run x_sdd.zip=default --run magnetic_tile.zip:images=/tmp/loo_mt.pt

SET is a zip/folder under ``--datasets`` (``name.zip:subdir`` picks a sub-folder); CHECKPOINT is a path or
``default`` (resources/models/default.pt).

Speed: for ProtoNet checkpoints (and the NCM baselines) adaptation is nearest class mean on per-image
embeddings, so every image is embedded once and the episodes are index draws on the embeddings: the same
numbers as calling ``adapt``/``predict`` per episode, hundreds of times faster on a CPU. Other learners are
adapted per episode.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from recipes import folder_classes

from core.imaging.preprocess import Preprocess
from core.lab.baselines import AccuracySummary, nearest_class_mean, summarise, tensors_to_images
from core.lab.texture_features import TextureFeatureConfig, hellinger, texture_features_batch
from core.meta import learner_from_config
from core.models import create_model
from core.storage.checkpoint import load_checkpoint

Scorer = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], float]
"""(support indices, support labels, query indices, query labels) -> accuracy."""


def random_twin(learner: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """The same backbone and learner, freshly initialised (untrained)."""
    torch.manual_seed(seed)
    model = create_model(**learner.model.config())
    return learner_from_config(learner.config(), model).eval()


def ncm_scorer(features: torch.Tensor) -> Scorer:
    """Nearest class mean on precomputed per-image features ``(n, D)``."""
    f = features.double()

    def score(si: np.ndarray, sy: np.ndarray, qi: np.ndarray, qy: np.ndarray) -> float:
        logits = nearest_class_mean(f[si], torch.from_numpy(sy), f[qi])
        return float((logits.argmax(1).numpy() == qy).mean())

    return score


def learner_scorer(learner: torch.nn.Module, x: torch.Tensor) -> Scorer:
    """Embed-once for ProtoNet; per-episode ``adapt`` + ``predict`` for any other learner."""
    if learner.config()["name"] == "protonet":
        with torch.inference_mode():
            return ncm_scorer(torch.cat([learner.model.features(c) for c in x.split(128)]))

    def score(si: np.ndarray, sy: np.ndarray, qi: np.ndarray, qy: np.ndarray) -> float:
        pred = learner.adapt(x[si], torch.from_numpy(sy)).predict(x[qi])
        return float((pred.numpy() == qy).mean())

    return score


def draw_episodes(
    labels: np.ndarray, n_way: int, k: int, q: int, count: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Index episodes; a class with fewer than K+Q images gives K support and the rest as queries."""
    rng = np.random.default_rng(seed)
    classes = [np.flatnonzero(labels == c) for c in range(int(labels.max()) + 1)]
    out = []
    for _ in range(count):
        chosen = rng.choice(len(classes), n_way, replace=False)
        si, sy, qi, qy = [], [], [], []
        for new, c in enumerate(chosen):
            order = rng.permutation(classes[c])
            nq = min(q, len(order) - k)
            si.append(order[:k])
            qi.append(order[k : k + nq])
            sy += [new] * k
            qy += [new] * nq
        out.append((np.concatenate(si), np.array(sy), np.concatenate(qi), np.array(qy)))
    return out


def texture_features_of(x: torch.Tensor, pre: Preprocess) -> torch.Tensor:
    cfg = TextureFeatureConfig(size=pre.image_size)
    return torch.from_numpy(hellinger(texture_features_batch(tensors_to_images(x, pre), cfg)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", action="append", required=True, help="SET=CHECKPOINT (repeatable)")
    ap.add_argument(
        "--datasets", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "datasets"
    )
    ap.add_argument("--episodes", type=int, default=600)
    ap.add_argument("--queries", type=int, default=15)
    ap.add_argument("--shots", default="1,5")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    print(
        "| left-out set | task | raw-pixel NCM | texture NCM | same backbone, random weights | meta-trained |"
    )
    print("|---|---|---|---|---|---|")
    for run in args.run:
        spec, _, ckpt = run.partition("=")
        name, _, subdir = spec.partition(":")
        loaded = load_checkpoint(ckpt or "default")
        pre = loaded.preprocess
        pool = folder_classes(args.datasets / name, pre, subdir or None)
        x = torch.cat([v.float() / 255.0 for v in pool.values()])
        x = (x - torch.tensor(pre.mean).view(1, -1, 1, 1)) / torch.tensor(pre.std).view(1, -1, 1, 1)
        labels = np.concatenate([np.full(len(v), i) for i, v in enumerate(pool.values())])
        t0 = time.perf_counter()
        scorers = {
            "raw": ncm_scorer(x.flatten(1)),
            "texture": ncm_scorer(texture_features_of(x, pre)),
            "random": learner_scorer(random_twin(loaded.learner), x),
            "trained": learner_scorer(loaded.learner.eval(), x),
        }
        setup = time.perf_counter() - t0
        for n_way in sorted({min(5, len(pool)), len(pool)}):
            for k in (int(s) for s in args.shots.split(",")):
                eps = draw_episodes(labels, n_way, k, args.queries, args.episodes, args.seed)
                res: dict[str, AccuracySummary] = {
                    key: summarise(score(*e) for e in eps) for key, score in scorers.items()
                }
                cells = " | ".join(str(res[c]) for c in ("raw", "texture", "random", "trained"))
                print(f"| {spec} | {n_way}-way {k}-shot | {cells} |", flush=True)
        print(f"<!-- {spec}: {len(x)} images, embedding {setup:.0f} s -->", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
