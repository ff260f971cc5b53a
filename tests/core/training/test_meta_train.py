"""meta_train: progress records, validation, checkpoints, cancel, close, resume; config validation."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest
import torch

from core.config import TrainConfig
from core.data import ImageFolderDataset
from core.imaging import Preprocess
from core.storage.checkpoint import load_checkpoint
from core.training import CancelToken, TrainProgress, build_learner, meta_train


@pytest.fixture(scope="module")
def tiny_data() -> ImageFolderDataset:
    """12 classes of 6 noisy 28x28 patterns each (in memory: fast, still real training)."""
    g = torch.Generator().manual_seed(0)
    patterns = torch.rand(12, 1, 1, 28, 28, generator=g)
    images = [(p + 0.2 * torch.randn(6, 1, 28, 28, generator=g)).clamp(0, 1) for p in patterns]
    return ImageFolderDataset([f"c{i:02d}" for i in range(12)], images, Preprocess(28, 1))


def tiny_config(**changes: object) -> TrainConfig:
    base = {"algo": "maml", "width": 8, "ways": 3, "shots": 1, "queries": 2, "meta_batch": 2, "iterations": 4}
    base.update(changes)
    return TrainConfig(device="cpu", **base)  # type: ignore[arg-type]


def test_yields_one_frozen_record_per_iteration_with_validation_every_n(
    tiny_data: ImageFolderDataset,
) -> None:
    cfg = tiny_config(iterations=4, val_every=2, val_episodes=3)
    records = list(meta_train(cfg, tiny_data, train_classes=range(8), val_classes=range(8, 12)))
    assert [r.iteration for r in records] == [1, 2, 3, 4]
    assert all(isinstance(r, TrainProgress) and r.iterations == 4 for r in records)
    assert [r.val_accuracy is not None for r in records] == [False, True, False, True]
    assert all(0.0 <= r.accuracy <= 1.0 and r.meta_loss > 0 and r.tasks_per_s > 0 for r in records)
    assert records[-1].done and not records[-1].cancelled
    assert records[1].elapsed <= records[3].elapsed
    with pytest.raises(AttributeError):
        records[0].iteration = 9  # type: ignore[misc]


def test_periodic_and_final_checkpoints_carry_config_and_provenance(
    tiny_data: ImageFolderDataset, tmp_path: Path
) -> None:
    out = tmp_path / "run.pt"
    cfg = tiny_config(iterations=4, checkpoint_every=2)
    written = [r.checkpoint for r in meta_train(cfg, tiny_data, out=out, provenance={"note": "t"})]
    assert written == [None, str(out), None, str(out)]
    ck = load_checkpoint(out)
    assert ck.provenance["iterations"] == 4 and ck.provenance["note"] == "t"
    assert ck.provenance["config"]["algo"] == "maml" and ck.training_state["iteration"] == 4
    assert ck.learner.config()["name"] == "maml" and ck.preprocess == tiny_data.preprocess


def test_cancel_token_stops_promptly_and_saves_the_state(
    tiny_data: ImageFolderDataset, tmp_path: Path
) -> None:
    cancel = CancelToken()
    out = tmp_path / "c.pt"
    gen = meta_train(tiny_config(iterations=10_000), tiny_data, out=out, cancel=cancel)
    first = next(gen)
    cancel.cancel()
    t0 = time.perf_counter()
    rest = list(gen)
    assert time.perf_counter() - t0 < 10
    assert first.iteration == 1 and len(rest) == 1
    assert rest[0].done and rest[0].cancelled and rest[0].iteration == 1 and math.isnan(rest[0].meta_loss)
    assert load_checkpoint(out).training_state["iteration"] == 1


def test_closing_the_generator_stops_training(tiny_data: ImageFolderDataset) -> None:
    learner = build_learner(tiny_config())
    gen = meta_train(tiny_config(iterations=10_000), tiny_data, learner=learner)
    next(gen)
    gen.close()
    weights = [p.detach().clone() for p in learner.parameters()]
    with pytest.raises(StopIteration):
        next(gen)
    assert all(torch.equal(a, b) for a, b in zip(weights, learner.parameters(), strict=True))


def test_resume_continues_the_iteration_count_and_matches_an_uninterrupted_run(
    tiny_data: ImageFolderDataset, tmp_path: Path
) -> None:
    full = build_learner(tiny_config())
    for _ in meta_train(tiny_config(iterations=4), tiny_data, learner=full):
        pass
    out = tmp_path / "half.pt"
    for _ in meta_train(tiny_config(iterations=2), tiny_data, out=out):
        pass
    resumed = build_learner(tiny_config())
    records = list(meta_train(tiny_config(iterations=4), tiny_data, learner=resumed, resume=out))
    assert [r.iteration for r in records] == [3, 4]
    for a, b in zip(full.parameters(), resumed.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_resume_with_another_algorithm_is_a_clear_error(
    tiny_data: ImageFolderDataset, tmp_path: Path
) -> None:
    out = tmp_path / "m.pt"
    for _ in meta_train(tiny_config(iterations=1), tiny_data, out=out):
        pass
    with pytest.raises(ValueError, match="trained with 'maml', not 'protonet'"):
        next(meta_train(tiny_config(algo="protonet", iterations=2), tiny_data, resume=out))


def test_unknown_algorithm_and_mismatched_data_are_clear_errors(tiny_data: ImageFolderDataset) -> None:
    with pytest.raises(ValueError, match=r"unknown learner 'mamal'.*maml"):
        next(meta_train(tiny_config(algo="mamal"), tiny_data))
    with pytest.raises(ValueError, match="3-channel 28px"):
        next(meta_train(tiny_config(channels=3), tiny_data))
    with pytest.raises(ValueError, match="no validation classes"):
        next(meta_train(tiny_config(val_every=1), tiny_data))


def test_train_config_validates_and_reads_json(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ways must be at least 2"):
        TrainConfig(ways=1)
    with pytest.raises(ValueError, match="unknown device"):
        TrainConfig(device="tpu")
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"algo": "anil", "ways": 20}))
    assert TrainConfig.from_json(path) == TrainConfig(algo="anil", ways=20)
    path.write_text(json.dumps({"wayz": 20}))
    with pytest.raises(ValueError, match=r"unknown TrainConfig field\(s\) \['wayz'\]"):
        TrainConfig.from_json(path)
