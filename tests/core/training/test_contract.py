"""The contract every registered learner meets: a short meta-training on Omniglot's background alphabets lifts
5-way 1-shot accuracy on the (unseen) evaluation alphabets clearly above chance and above its own untrained
start, through the same meta_train/evaluate code the app and the CLI use."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import EvalConfig, TrainConfig
from core.data import ImageFolderDataset, split_by_folder
from core.imaging import Preprocess
from core.meta import list_learners
from core.training import build_learner, evaluate, meta_train

# Small enough for CI (2 cores, no GPU), large enough to learn: a narrow Conv-4 on 28 px images.
CONTRACT = TrainConfig(width=32, iterations=30, meta_batch=4, queries=5, outer_lr=0.01, seed=0, device="cpu")
EPISODES = EvalConfig(ways=5, shots=1, queries=5, episodes=50, seed=1, steps=3)
CHANCE = 1 / EPISODES.ways


@pytest.fixture(scope="module")
def omniglot(datasets_dir: Path) -> tuple[ImageFolderDataset, list[int], list[int]]:
    ds = ImageFolderDataset.from_path(datasets_dir / "omniglot28.zip", Preprocess(image_size=28, channels=1))
    background, evaluation = split_by_folder(ds, "background", "evaluation")
    return ds, background, evaluation


@pytest.mark.slow
@pytest.mark.parametrize("algo", list_learners())
def test_short_meta_training_beats_chance_on_unseen_alphabets(
    algo: str, omniglot: tuple[ImageFolderDataset, list[int], list[int]]
) -> None:
    ds, background, evaluation = omniglot
    assert len(background) == 964 and len(evaluation) == 659
    cfg = CONTRACT.replace(algo=algo)
    learner = build_learner(cfg)
    before = evaluate(learner, ds, EPISODES, class_ids=evaluation)
    records = list(meta_train(cfg, ds, train_classes=background, learner=learner))
    after = evaluate(learner, ds, EPISODES, class_ids=evaluation)
    assert records[-1].iteration == cfg.iterations and records[-1].done
    assert after.accuracy > 2 * CHANCE, f"{algo}: {after.accuracy:.3f} after training (chance {CHANCE})"
    assert after.accuracy > before.accuracy + 0.05, f"{algo}: {before.accuracy:.3f} -> {after.accuracy:.3f}"
