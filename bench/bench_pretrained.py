"""Leave-one-data-set-out table for the pretrained pipeline, every contender on the very same episodes.

For every real set under ``--datasets`` (and the synthetic line's unseen product variants), N-way K-shot
episodes from :class:`core.data.EpisodeSampler` (the sampler ``metainspect-lab evaluate`` uses, same seed) are
handed to:

- raw-pixel NCM and texture-histogram NCM (``core.lab.baselines``, on the old model's 64 px preprocessing);
- the old shipped model (``--old``: the surface_fused ProtoNet checkpoint shipped until 2026-12-01);
- frozen pretrained NCM, the floor: EfficientNet-Lite0 head features, global average pooled, Euclidean NCM;
- the new default checkpoint, prototype-only (``inner_steps=0``) and fine-tuned (its own defaults): the
  learner's ``embed_views`` + ``fit_head``, exactly what ``adapt`` runs.

Each image is represented once per contender and episodes draw indices, so 600 episodes cost seconds.

    nice -n 5 .venv/bin/python bench/bench_pretrained.py --episodes 600 > /tmp/pretrained.md

Prints a markdown table (mean ± 95% half-width, ``1.96 * sd / sqrt(n)``), and JSON rows with ``--jsonl FILE``;
``--contenders`` computes a subset of the columns (same seed, same episodes), ``--table A.jsonl B.jsonl`` merges
the rows of several runs into one table; ``--image-size S`` feeds the new model S px inputs (its checkpoint says
224). magnetic_tile is read from its ``images/`` folder (not ``masks/``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.camera.synthetic import DEFECT_CLASSES, render_part
from core.data import EpisodeSampler, ImageFolderDataset
from core.lab.baselines import nearest_class_mean, summarise, tensors_to_images
from core.lab.texture_features import TextureFeatureConfig, hellinger, texture_features_batch
from core.meta import create_learner
from core.models import create_model
from core.runtime import keep_freed_memory
from core.storage.checkpoint import load_checkpoint
from core.training.evaluate import EmbeddedDataset

Classify = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""(support indices, support labels 0..N-1, query indices) -> predicted labels."""
REAL_SETS = ("x_sdd", "magnetic_tile:images", "kolektorsdd", "elpv", "aitex_fabric_textures")
OLD_MODEL = Path(__file__).resolve().parents[1] / "resources" / "recipes" / "surface_fused-2026-11-27.pt"
NAMES = (
    "raw-pixel NCM",
    "texture NCM",
    "old shipped",
    "frozen pretrained NCM",
    "new (prototypes)",
    "new (fine-tuned)",
)


def synthetic_examples(variant: str, per_class: int, seed: int) -> list[tuple[np.ndarray, str]]:
    """Part crops of one product variant (128 px, as the synthetic line cuts them), ``per_class`` per class."""
    rng = np.random.default_rng(seed)
    return [
        (render_part(rng, c, variant=variant, size=128)[0], c)
        for c in DEFECT_CLASSES
        for _ in range(per_class)
    ]


def load_set(spec: str, datasets: Path, preprocess: object, per_class: int) -> ImageFolderDataset:
    if spec.startswith("synthetic:"):
        return ImageFolderDataset.from_arrays(
            synthetic_examples(spec.split(":", 1)[1], per_class, 123), preprocess
        )
    name, _, subdir = spec.partition(":")  # magnetic_tile:images skips its masks/ folder
    return ImageFolderDataset.from_path(datasets / f"{name}.zip", preprocess, subdir=subdir or None)


def ncm_on(features: torch.Tensor) -> Classify:
    def classify(si: np.ndarray, sy: np.ndarray, qi: np.ndarray) -> np.ndarray:
        logits = nearest_class_mean(features[si], torch.from_numpy(sy), features[qi])
        return logits.argmax(1).numpy()

    return classify


def head_on(learner: torch.nn.Module, views: torch.Tensor, steps: int | None) -> Classify:
    def classify(si: np.ndarray, sy: np.ndarray, qi: np.ndarray) -> np.ndarray:
        head = learner.adapt_embedded(views[:, si], torch.from_numpy(sy), steps=steps)
        return head.logits(views[0, qi]).argmax(1).numpy()

    return classify


def embed(model: torch.nn.Module, images: torch.Tensor, chunk: int = 32) -> torch.Tensor:
    with torch.inference_mode():
        return torch.cat([model.features(c) for c in images.split(chunk)])


def contenders(spec: str, args: argparse.Namespace) -> tuple[dict[str, Classify], list[int], float]:
    t0 = time.perf_counter()
    wanted = set(args.contenders.split(","))
    new = load_checkpoint(args.checkpoint)
    if args.image_size:  # the same model fed another input size (what a cheaper preprocessing would cost)
        new = dataclasses.replace(
            new, preprocess=dataclasses.replace(new.preprocess, image_size=args.image_size)
        )
    data = load_set(spec, args.datasets, new.preprocess, args.per_class)
    out: dict[str, Classify] = {}
    old = load_checkpoint(args.old) if wanted & set(NAMES[:3]) else None
    if old is not None:
        old_data = load_set(spec, args.datasets, old.preprocess, args.per_class)
        if old_data.counts != data.counts:
            raise SystemExit(
                f"{spec}: image counts differ between preprocessings ({old_data.counts} vs {data.counts})"
            )
        x_old = torch.cat(old_data.images)
        out["raw-pixel NCM"] = ncm_on(x_old.flatten(1).double())
        cfg = TextureFeatureConfig(size=old.preprocess.image_size)
        tex = hellinger(texture_features_batch(tensors_to_images(x_old, old.preprocess), cfg))
        out["texture NCM"] = ncm_on(torch.from_numpy(tex).double())
        out["old shipped"] = ncm_on(embed(old.learner.model.eval(), x_old).double())
    if wanted & set(NAMES[3:]):
        x_new = torch.cat(data.images)
        floor_model = create_model("efficientnet_lite0", in_channels=3, stages=[8], pooling=["mean"]).eval()
        out["frozen pretrained NCM"] = ncm_on(embed(floor_model, x_new).double())
        views = new.learner.embed_views(x_new).cpu()  # (V, n, D)
        learner = new.learner.eval()
        proto = create_learner("finetune", learner.model, **{**learner.hyper(), "inner_steps": 0}).eval()
        out["new (prototypes)"] = head_on(proto, views, 0)
        out["new (fine-tuned)"] = head_on(learner, views, None)
    return {k: v for k, v in out.items() if k in wanted}, data.counts, time.perf_counter() - t0


def add_episode_args(ap: argparse.ArgumentParser) -> None:
    """The options that choose the sets and the episodes (shared with ``bench_feature_variants.py``)."""
    ap.add_argument(
        "--datasets", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "datasets"
    )
    ap.add_argument("--sets", default=",".join([*REAL_SETS, "synthetic:copper_disc", "synthetic:cast_hex"]))
    ap.add_argument("--checkpoint", default="default")
    ap.add_argument("--episodes", type=int, default=600)
    ap.add_argument("--queries", type=int, default=15)
    ap.add_argument("--shots", default="1,5")
    ap.add_argument("--per-class", type=int, default=60, help="synthetic crops per class")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--jsonl", type=Path, default=None)


def episode_samplers(
    counts: list[int], args: argparse.Namespace
) -> Iterator[tuple[int, int, EpisodeSampler]]:
    """``(ways, shots, sampler)`` for 5-way and all-way tasks at each shot count, over image indices: every
    contender of every bench sees the same episodes for the same seed."""
    index = EmbeddedDataset(
        [str(i) for i in range(len(counts))],
        [torch.arange(sum(counts[:i]), sum(counts[: i + 1])).view(-1, 1, 1, 1) for i in range(len(counts))],
    )
    for ways in sorted({min(5, len(counts)), len(counts)}):
        for shots in (int(s) for s in args.shots.split(",")):
            yield (
                ways,
                shots,
                EpisodeSampler(index, ways, shots, args.queries, args.seed, partial_queries=True),
            )  # type: ignore[arg-type]


def print_table(files: list[Path]) -> None:
    """One markdown table from the JSON rows of several runs (same episodes, different columns)."""
    merged: dict[tuple[str, int, int], dict[str, dict[str, float]]] = {}
    for f in files:
        for line in f.read_text().splitlines():
            row = json.loads(line)
            key = (row.pop("set"), row.pop("ways"), row.pop("shots"))
            merged.setdefault(key, {}).update(row)
    print(f"| set | task | {' | '.join(NAMES)} |")
    print("|---|---|" + "---|" * len(NAMES))
    for (spec, ways, shots), cols in merged.items():
        cells = [
            f"{100 * c['mean']:.1f} ± {100 * c['ci95']:.1f}" if (c := cols.get(n)) else "n/a" for n in NAMES
        ]
        print(f"| {spec} | {ways}-way {shots}-shot | {' | '.join(cells)} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_episode_args(ap)
    ap.add_argument("--old", type=Path, default=OLD_MODEL)
    ap.add_argument(
        "--image-size", type=int, default=0, help="feed the new model this input size instead of its own"
    )
    ap.add_argument(
        "--contenders",
        default=",".join(NAMES),
        help="comma-separated subset of the columns (the same seed draws the same episodes in every run)",
    )
    ap.add_argument(
        "--table", type=Path, nargs="+", default=None, help="print the table of these JSON-row files"
    )
    args = ap.parse_args(argv)
    if args.table:
        print_table(args.table)
        return 0
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as the app and the CLI do (ADR 0008)
    names = list(NAMES)
    print(f"| set | task | {' | '.join(names)} |")
    print("|---|---|" + "---|" * len(names))
    for spec in args.sets.split(","):
        classify, counts, setup = contenders(spec, args)
        for ways, shots, sampler in episode_samplers(counts, args):
            accs: dict[str, list[float]] = {k: [] for k in classify}
            for _ in range(args.episodes):
                task = sampler.sample()
                si, qi = task.support_x.flatten().numpy(), task.query_x.flatten().numpy()
                sy, qy = task.support_y.numpy(), task.query_y.numpy()
                for key, fn in classify.items():
                    accs[key].append(float((fn(si, sy, qi) == qy).mean()))
            res = {k: summarise(v) for k, v in accs.items()}
            cells = " | ".join(str(res[k]) if k in res else "n/a" for k in names)
            print(f"| {spec} | {ways}-way {shots}-shot | {cells} |", flush=True)
            if args.jsonl:
                with args.jsonl.open("a") as fh:
                    row = {
                        "set": spec,
                        "ways": ways,
                        "shots": shots,
                        **{k: r.to_dict() for k, r in res.items()},
                    }
                    fh.write(json.dumps(row) + "\n")
        print(
            f"<!-- {spec}: {sum(counts)} images in {len(counts)} classes, representations {setup:.0f} s -->",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
