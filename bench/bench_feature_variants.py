"""Issue 9: what the covariance groups and the support views buy, every column on the same episodes.

The shipped model's embedding (``resources/models/default.pt``) has optional dimensions: the channel
covariance of EfficientNet-Lite0's stages 4 and 5 (``core.models.efficientnet_lite.channel_covariance``).
Its learner uses them on a task when the support set's leave-one-out says they help, or, when a class has a
single example, when they set the classes clearly further apart than the core dimensions do
(``core.meta.finetune.use_optional``). This bench measures that choice against both fixed alternatives, on
the episodes of ``bench/bench_pretrained.py`` (same sampler and seed):

- ``without covariance``: the optional dimensions always left out (the model shipped until 2026-12-02 17:50;
  at one shot, the choice shipped until 2026-12-03);
- ``covariance always``: every dimension, on every task;
- ``shipped (chosen per task)``: the learner's own choice on its own support views (since 2026-12-03:
  identity, horizontal flip, vertical flip, half turn; quarter turns left out, many surface defects have a
  direction); what ``adapt`` and ``metainspect-lab evaluate`` do;
- ``2 views, chosen per task``: the same choice on the two views shipped until 2026-12-03 (identity,
  horizontal flip).

Every column is fine-tuned with the shipped learner's settings (prototypes, then its Adam steps with early
stopping), on the shipped views unless named; the two fixed columns keep the model's own part weights, the
"chosen per task" ones also choose those (the learner's ``part_weights``, since 2026-12-03 09:15 UTC). Each
image is embedded once per view; episodes draw indices.

    nice -n 5 .venv/bin/python bench/bench_feature_variants.py --episodes 300 --sets x_sdd,synthetic:copper_disc

Prints a markdown table (mean ± 95% half-width) with the share of tasks on which the learner chose the
covariance; ``--jsonl FILE`` appends JSON rows.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pretrained import add_episode_args, episode_samplers, load_set

from core.imaging.augment import tensor_views
from core.lab.baselines import summarise
from core.meta.base import Task
from core.meta.finetune import CosineHead, FineTuneHead, fit_head
from core.runtime import keep_freed_memory
from core.storage.checkpoint import load_checkpoint

NAMES = (
    "without covariance",
    "covariance always",
    "shipped (chosen per task)",
    "2 views, chosen per task",
)
VIEWS = ("identity", "hflip", "vflip", "rot180")


def embed_all(spec: str, args: argparse.Namespace) -> tuple[FineTuneHead, torch.Tensor, list[int]]:
    """The checkpoint's learner and every image's embeddings ``(4, n, D)`` under :data:`VIEWS`."""
    ck = load_checkpoint(args.checkpoint)
    learner = ck.learner.eval()
    if getattr(learner.model, "optional_features", None) is None:
        raise SystemExit(f"{args.checkpoint}: the model has no optional (covariance) dimensions to compare")
    if tuple(learner.views) != VIEWS[: len(learner.views)]:
        raise SystemExit(f"{args.checkpoint}: its support views {learner.views} are not a prefix of {VIEWS}")
    data = load_set(spec, args.datasets, ck.preprocess, args.per_class)
    x = torch.cat(data.images)
    with torch.inference_mode():
        views = torch.stack([learner.embed(tensor_views(x, [v])[0]) for v in VIEWS])
    return learner, views, data.counts


def episode(learner: FineTuneHead, views: torch.Tensor, task: Task) -> tuple[dict[str, float], bool]:
    """Every column's query accuracy on one episode, and whether the learner chose the covariance."""
    si, qi = task.support_x.flatten().numpy(), task.query_x.flatten().numpy()
    sy, qy = task.support_y, task.query_y.numpy()
    without = (~learner.model.optional_features).to(views.dtype)

    def acc(head: CosineHead) -> float:
        return float((head.logits(views[0, qi]).argmax(1).numpy() == qy).mean())

    def fit(n_views: int, mask: torch.Tensor | None) -> CosineHead:
        return fit_head(views[:n_views, si], sy, int(sy.max()) + 1, steps=learner.inner_steps,
                        lr=learner.inner_lr, scale=learner.scale, patience=learner.patience, mask=mask)  # fmt: skip

    n_views = len(learner.views)
    shipped = learner.adapt_embedded(views[:n_views, si], sy)
    row = {
        "without covariance": acc(fit(n_views, without)),
        "covariance always": acc(fit(n_views, None)),
        "shipped (chosen per task)": acc(shipped),
        "2 views, chosen per task": acc(learner.adapt_embedded(views[:2, si], sy)),
    }
    # a mask may also scale the parts (part_weights): the covariance was used unless it zeroed its dimensions
    optional = learner.model.optional_features
    return row, shipped.mask is None or bool((shipped.mask[optional] != 0).all())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_episode_args(ap)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    print(f"| set | task | {' | '.join(NAMES)} | covariance chosen |")
    print("|---|---|" + "---|" * (len(NAMES) + 1))
    for spec in args.sets.split(","):
        t0 = time.perf_counter()
        learner, views, counts = embed_all(spec, args)
        for ways, shots, sampler in episode_samplers(counts, args):
            accs: dict[str, list[float]] = {k: [] for k in NAMES}
            chosen = 0
            for _ in range(args.episodes):
                row, used = episode(learner, views, sampler.sample())
                for key, value in row.items():
                    accs[key].append(value)
                chosen += used
            res = {k: summarise(v) for k, v in accs.items()}
            cells = " | ".join(str(res[k]) for k in NAMES)
            share = f"{100 * chosen / args.episodes:.0f}%"
            print(f"| {spec} | {ways}-way {shots}-shot | {cells} | {share} |", flush=True)
            if args.jsonl:
                with args.jsonl.open("a") as fh:
                    row = {"set": spec, "ways": ways, "shots": shots, "chosen": chosen / args.episodes}
                    fh.write(json.dumps({**row, **{k: r.to_dict() for k, r in res.items()}}) + "\n")
        print(f"<!-- {spec}: {sum(counts)} images, {time.perf_counter() - t0:.0f} s -->", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
