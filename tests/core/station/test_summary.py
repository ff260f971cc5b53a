"""The check after each adaptation: every taught example judged leave-one-out, wrong labels flagged."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from core.camera.synthetic import render_part
from core.inference.teach import teach
from core.meta.base import MetaLearner
from core.station.summary import leave_one_out, summarize
from core.storage import Workspace
from core.storage.checkpoint import load_checkpoint
from core.training.progress import CancelToken
from tests.conftest import finish_generator as _finish
from tests.core.station.conftest import part_images


def _workspace(root: Path, pairs: list[tuple[np.ndarray, str]]) -> Workspace:
    ws = Workspace.open(root)
    for name in sorted({n for _, n in pairs}):
        ws.classes.add(name, is_defect=name != "ok")
    for image, name in pairs:
        ws.examples.add(image, name)
    return ws


@pytest.fixture(scope="module")
def shipped() -> Any:
    return load_checkpoint("default")


def test_the_shipped_model_flags_the_one_mislabelled_example(tmp_path: Path, shipped: Any) -> None:
    rng = np.random.default_rng(7)
    pairs = [(render_part(rng, name, size=128)[0], name) for name in ("ok", "spot", "chip") for _ in range(3)]
    wrong_image = render_part(rng, "chip", size=128)[0]
    ws = _workspace(tmp_path / "ws", [*pairs, (wrong_image, "ok")])  # a chipped part labelled OK by mistake
    mislabelled = ws.examples.list()[-1].id
    taught = _finish(teach(ws, shipped, device="cpu"))
    summary = summarize(ws, taught)
    assert summary is not None and summary.split == "train" and summary.unchecked == 0
    assert [(w.example_id, w.label, w.predicted) for w in summary.flagged] == [(mislabelled, "ok", "chip")]
    assert summary.wrong == summary.flagged and summary.examples == 10
    assert 0.0 < summary.flagged[0].confidence <= 1.0
    ws.close()


def test_the_fast_leave_one_out_of_the_shipped_model_matches_adapting_without_each_example(
    shipped: Any,
) -> None:
    images = part_images(2, seed=4)[:6]  # ok, scratch, spot: two of each
    names = sorted({n for _, n in images})
    x = shipped.preprocess.batch([im for im, _ in images])
    y = torch.tensor([names.index(n) for _, n in images])
    # The fast path judges every example with the choices adapt made on the whole set; re-adapting chooses
    # again on each smaller set, where a class of two has one example left and keeps the model's own part
    # weights. So the whole set's part-weight choice is compared separately, the fits with it pinned.
    whole = shipped.learner.embed_views(x, cached=True)
    mask = shipped.learner.feature_mask(whole, y)
    synthetic_part = shipped.learner.model.feature_parts == 1
    assert mask is not None and torch.allclose(mask[synthetic_part], torch.tensor(1.0 / 0.7))  # weighted up
    learner = copy.copy(shipped.learner)
    learner.part_weights = ()
    fast = learner.leave_one_out(x, y, steps=20)
    generic = MetaLearner.leave_one_out(learner, x, y, steps=20)
    assert fast is not None and generic is not None and fast.shape == (6, 3)
    torch.testing.assert_close(fast, generic, atol=2e-3, rtol=0)
    with_choice = shipped.learner.leave_one_out(x, y, steps=20)
    assert with_choice is not None and not torch.allclose(with_choice, fast, atol=1e-3)


def test_an_example_alone_in_its_class_is_not_judged_and_a_cancel_stops(
    tmp_path: Path, small_checkpoint: Path
) -> None:
    pairs = [p for p in part_images(3, seed=1) if p[1] in ("ok", "scratch")] + part_images(1, seed=2)[2:3]
    ws = _workspace(tmp_path / "ws", pairs)  # 3 ok, 3 scratch, 1 spot
    taught = _finish(teach(ws, load_checkpoint(small_checkpoint), device="cpu"))
    judged = leave_one_out(taught)
    assert judged is not None and len(judged) == 6
    assert {j.label for j in judged} == {"ok", "scratch"}
    assert set(taught.example_ids) - {j.example_id for j in judged} == {ws.examples.list("spot")[0].id}
    summary = summarize(ws, taught)
    assert summary is not None and summary.unchecked == 1 and summary.examples == 6
    cancel = CancelToken()
    cancel.cancel()
    assert leave_one_out(taught, cancel) is None and summarize(ws, taught, cancel) is None
    ws.close()


def test_with_hold_out_examples_the_scores_come_from_them_and_the_flags_from_the_training_ones(
    tmp_path: Path, small_checkpoint: Path
) -> None:
    ws = _workspace(tmp_path / "ws", part_images(3, seed=3)[:9])  # ok, scratch, spot
    held = ws.examples.list("ok")[0].id
    ws.examples.set_split(held, "holdout")
    taught = _finish(teach(ws, load_checkpoint(small_checkpoint), device="cpu"))
    assert held not in taught.example_ids and len(taught.example_ids) == 8
    summary = summarize(ws, taught)
    assert summary is not None and summary.split == "holdout" and summary.examples == 1
    loo = leave_one_out(taught)
    assert loo is not None
    assert [w.example_id for w in summary.flagged] == [j.example_id for j in loo if j.predicted != j.label]
    ws.close()
