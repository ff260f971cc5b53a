"""The one training engine: both objectives really learn, cancel stops, resume continues, early stop ends."""

from __future__ import annotations

import copy
import math

import numpy as np
import torch

from core.data import EpisodeSampler, ImageFolderDataset
from core.imaging import Preprocess
from core.meta import create_learner
from core.models import create_model
from core.training import CancelToken
from core.training.engine import Checkpoint, EarlyStop, EngineState, Validation, cosine_schedule, run_engine
from core.training.objectives import EpisodicObjective, LabelledClasses, SupervisedObjective


def _data() -> ImageFolderDataset:
    """8 classes of 10 noisy 16x16 patterns each: small, real, learnable."""
    g = torch.Generator().manual_seed(0)
    patterns = torch.rand(8, 1, 1, 16, 16, generator=g)
    images = [(p + 0.15 * torch.randn(10, 1, 16, 16, generator=g)).clamp(0, 1) for p in patterns]
    return ImageFolderDataset([f"s/c{i}" for i in range(8)], images, Preprocess(16, 1))


def _model(n_way: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("conv4", in_channels=1, n_way=n_way, image_size=16, width=8)


def _episodic(seed: int = 0) -> tuple[torch.nn.Module, EpisodicObjective, torch.optim.Optimizer]:
    learner = create_learner("protonet", _model(4), n_way=4)
    objective = EpisodicObjective(learner, EpisodeSampler(_data(), 4, 2, 3, seed=seed), meta_batch=2)
    return learner, objective, torch.optim.Adam(learner.parameters(), lr=3e-3)


def _supervised(balanced: bool = False) -> tuple[torch.nn.Module, SupervisedObjective, torch.optim.Optimizer]:
    ds = _data()
    model = _model(8)
    data = LabelledClasses(list(ds.images), list(range(8)), ds.class_names)
    objective = SupervisedObjective(model, data, batch_size=16, seed=0, balanced=balanced)
    return model, objective, torch.optim.Adam(model.parameters(), lr=3e-3)


def _mean(values: list[float]) -> float:
    return float(np.mean(values))


def test_episodic_objective_learns_on_real_episodes() -> None:
    _, objective, opt = _episodic()
    losses = [r.meta_loss for r in run_engine(objective, opt, steps=40)]
    assert len(losses) == 40 and _mean(losses[-8:]) < 0.7 * _mean(losses[:8])


def test_supervised_objective_learns_and_reports_per_window() -> None:
    _, objective, opt = _supervised()
    assert objective.steps_per_epoch == 5  # 80 images, batches of 16
    records = list(run_engine(objective, opt, steps=60, every=5, scheduler=cosine_schedule(opt, 60, 0.05)))
    assert [r.iteration for r in records] == list(range(5, 61, 5)) and records[-1].done
    assert records[-1].meta_loss < 0.5 * records[0].meta_loss
    assert records[-1].tasks_per_s > 0 and 0.0 <= records[-1].accuracy <= 1.0
    assert math.isclose(opt.param_groups[0]["lr"], 3e-3 * 0.05, rel_tol=1e-6)


def test_label_balanced_supervised_batches_learn_too() -> None:
    _, objective, opt = _supervised(balanced=True)
    losses = [r.meta_loss for r in run_engine(objective, opt, steps=40)]
    assert _mean(losses[-8:]) < 0.7 * _mean(losses[:8])


def test_cancel_stops_between_steps_and_the_last_record_says_so() -> None:
    _, objective, opt = _episodic()
    token = CancelToken()
    gen = run_engine(objective, opt, steps=10_000, cancel=token)
    first = next(gen)
    token.cancel()
    rest = list(gen)
    assert first.iteration == 1 and len(rest) == 1
    assert rest[0].cancelled and rest[0].done and rest[0].iteration == 1 and math.isnan(rest[0].meta_loss)


def _resume_matches(make: object) -> None:
    full_model, objective, opt = make()  # type: ignore[operator]
    list(run_engine(objective, opt, steps=6))
    saved: dict[str, object] = {}

    def save(state: EngineState) -> str:
        saved["state"] = copy.deepcopy(state.training_state())
        saved["weights"] = copy.deepcopy(half_model.state_dict())
        return "memory"

    half_model, objective, opt = make()  # type: ignore[operator]
    written = [r.checkpoint for r in run_engine(objective, opt, steps=3, callbacks=[Checkpoint(0, save)])]
    assert written == [None, None, "memory"]
    resumed, objective, opt = make()  # type: ignore[operator]
    resumed.load_state_dict(saved["weights"])  # type: ignore[arg-type]
    state = saved["state"]
    opt.load_state_dict(state["optimizer"])  # type: ignore[index]
    objective.set_state(state["sampler_state"])  # type: ignore[index]
    records = list(run_engine(objective, opt, steps=6, start=state["iteration"]))  # type: ignore[index]
    assert [r.iteration for r in records] == [4, 5, 6]
    for a, b in zip(full_model.parameters(), resumed.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_resume_continues_exactly_for_both_objectives() -> None:
    _resume_matches(_episodic)
    _resume_matches(_supervised)


def test_validation_and_early_stop_end_the_run_and_save_it() -> None:
    _, objective, opt = _episodic()
    scores = iter([0.5, 0.6, 0.55, 0.52, 0.9])
    saved: list[int] = []
    callbacks = [
        Validation(2, lambda: next(scores)),
        EarlyStop(patience=2),
        Checkpoint(0, lambda s: saved.append(s.step) or f"at {s.step}"),
    ]
    records = list(run_engine(objective, opt, steps=100, callbacks=callbacks))
    assert [r.val_accuracy for r in records if r.val_accuracy is not None] == [0.5, 0.6, 0.55, 0.52]
    assert records[-1].iteration == 8 and records[-1].done and not records[-1].cancelled
    assert saved == [8] and records[-1].checkpoint == "at 8"


def test_validation_by_set_reports_each_score_and_their_mean() -> None:
    _, objective, opt = _episodic()
    callbacks = [Validation(0, lambda: {"a": 0.5, "b": 1.0}, at_end=True)]
    records = list(run_engine(objective, opt, steps=2, callbacks=callbacks))
    assert records[0].val_scores == {} and records[-1].val_scores == {"a": 0.5, "b": 1.0}
    assert records[-1].val_accuracy == 0.75
