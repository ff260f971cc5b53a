"""Checkpoints with wrong field types or absurd sizes: one CheckpointError line, nothing allocated first."""

from __future__ import annotations

import resource
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from core.storage.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from tests.core.storage.test_checkpoint import PREP, support_and_query, tiny_learner


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("ck") / "m.pt"
    sx, sy, _ = support_and_query()
    save_checkpoint(
        path, tiny_learner(), preprocess=PREP, class_names=["a", "b", "c"], provenance={}, support=(sx, sy)
    )
    return torch.load(path, weights_only=True)


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(raw: dict[str, Any]) -> None:
        raw[key] = value

    return edit


def _set_in(section: str, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(raw: dict[str, Any]) -> None:
        raw[section] = {**raw[section], key: value}

    return edit


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (_set("model", 5), "the model field is a int, not a dict"),
        (_set("learner", ["maml"]), "the learner field is a list"),
        (_set("preprocess", "grey"), "the preprocess field is a str"),
        (_set("provenance", [1, 2]), "provenance is a list, not a dict"),
        (_set("training_state", "x"), "training_state is a str"),
        (_set("class_names", "abc"), "class_names is not a list of texts"),
        (_set("class_names", [1, 2, 3]), "class_names is not a list of texts"),
        (_set("state_dict", {"w": 3}), "state_dict is not a dict of named tensors"),
        (_set("adapt_steps", "ten"), "adapt_steps is 'ten'"),
        (_set("support_x", torch.zeros(3)), "support set has shapes"),
        (_set("support_y", torch.tensor([0, 0, 1, 1, 2, 9])), "not class indices"),
        (_set_in("model", "width", 10**12), "model.width is 1000000000000, beyond"),
        (_set_in("model", "width", 60_000), "asks for .* weights, beyond"),
        (_set_in("model", "width", float("inf")), "not a finite number"),
        (_set_in("model", "scales", list(range(10_000))), "has 10000 items"),
        (_set_in("model", "image_size", True), "weights do not fit|cannot rebuild"),
        (_set_in("preprocess", "image_size", 10**9), "preprocess.image_size is 1000000000"),
        (_set_in("model", "width", 16), "weights do not fit the stored model config"),
    ],
)
def test_bad_fields_are_one_line_checkpoint_errors(
    saved: dict[str, Any], tmp_path: Path, edit: Callable[[dict[str, Any]], None], match: str
) -> None:
    raw = dict(saved)
    edit(raw)
    path = tmp_path / "bad.pt"
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(path)
    assert len(str(info.value).splitlines()) == 1 and str(path) in str(info.value)


def test_a_width_asking_for_petabytes_is_refused_without_allocating(
    saved: dict[str, Any], tmp_path: Path
) -> None:
    """Under the bound on numbers, the config is still built on the meta device first and counted."""
    raw = {**saved, "model": {**saved["model"], "width": 65_536}}  # conv4: about 10^11 weights, 400+ GB
    path = tmp_path / "huge.pt"
    torch.save(raw, path)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(CheckpointError, match="beyond the"):
        load_checkpoint(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: under 200 MB grew


def test_the_shipped_model_still_loads() -> None:
    ck = load_checkpoint("default")
    assert ck.learner is not None and not ck.is_adapted  # a base model: adapted to each product's classes
