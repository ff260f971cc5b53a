"""Checkpoints: exact round trip, weights_only, atomic writes, SHA-256, and clear errors for bad files."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest
import torch

from core.imaging import Preprocess
from core.meta import create_learner
from core.models import create_model
from core.storage.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    load_checkpoint,
    resolve_checkpoint_path,
    save_checkpoint,
)

PREP = Preprocess(image_size=28, channels=1)


def tiny_learner(algo: str = "metasgd", seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = create_model("conv4", in_channels=1, n_way=3, image_size=28, width=8)
    return create_learner(algo, model, n_way=3, inner_lr=0.3, inner_steps=2)


def support_and_query(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (
        torch.rand(6, 1, 28, 28, generator=g),
        torch.tensor([0, 0, 1, 1, 2, 2]),
        torch.rand(5, 1, 28, 28, generator=g),
    )


@pytest.mark.parametrize("algo", ["metasgd", "protonet"])
def test_round_trip_gives_identical_predictions_and_metadata(tmp_path: Path, algo: str) -> None:
    learner = tiny_learner(algo)
    sx, sy, qx = support_and_query()
    path = tmp_path / "models" / "m.pt"
    sha = save_checkpoint(path, learner, preprocess=PREP, class_names=["a", "b", "c"], provenance={"seed": 3})
    assert sha == hashlib.sha256(path.read_bytes()).hexdigest()
    ck = load_checkpoint(path)
    assert ck.sha256 == sha and ck.class_names == ["a", "b", "c"] and ck.preprocess == PREP
    assert ck.provenance["seed"] == 3 and "date" in ck.provenance and "git_commit" in ck.provenance
    assert ck.learner.config() == learner.config()
    before = learner.adapt(sx, sy).predict_proba(qx)
    after = ck.learner.adapt(sx, sy).predict_proba(qx)
    assert torch.equal(before, after)


def test_file_is_a_plain_dict_loadable_with_weights_only(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    save_checkpoint(path, tiny_learner(), preprocess=PREP, class_names=[], provenance={})
    raw = torch.load(path, weights_only=True)
    assert raw["format_version"] == 1 <= FORMAT_VERSION  # no pixel support set: readable by version-1 readers
    assert raw["preprocess"] == PREP.to_dict() and raw["learner"]["name"] == "metasgd"
    assert all(isinstance(v, torch.Tensor) for v in raw["state_dict"].values())


def test_adapted_classifier_with_support_set_round_trips(tmp_path: Path) -> None:
    learner = tiny_learner("maml")
    sx, sy, qx = support_and_query()
    path = tmp_path / "adapted.pt"
    save_checkpoint(
        path,
        learner,
        preprocess=PREP,
        class_names=["x", "y", "z"],
        provenance={},
        support=(sx, sy),
        adapt_steps=3,
    )
    ck = load_checkpoint(path)
    assert ck.is_adapted and ck.adapt_steps == 3
    assert torch.equal(ck.adapted().predict_proba(qx), learner.adapt(sx, sy, steps=3).predict_proba(qx))
    plain = tmp_path / "plain.pt"
    save_checkpoint(plain, learner, preprocess=PREP, class_names=[], provenance={})
    with pytest.raises(CheckpointError, match="without a support set"):
        load_checkpoint(plain).adapted()


def test_overwrite_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    first = save_checkpoint(
        path, tiny_learner(seed=0), preprocess=PREP, class_names=[], provenance={"run": 1}
    )
    second = save_checkpoint(
        path, tiny_learner(seed=1), preprocess=PREP, class_names=[], provenance={"run": 2}
    )
    assert first != second
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]
    assert load_checkpoint(path).provenance["run"] == 2


def test_truncated_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    save_checkpoint(path, tiny_learner(), preprocess=PREP, class_names=[], provenance={})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt, truncated"):
        load_checkpoint(path)


def test_garbage_bytes_are_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.pt"
    path.write_bytes(b"definitely not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(path)


def test_other_torch_file_is_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match="not a MetaInspect checkpoint"):
        load_checkpoint(path)


def test_file_from_a_newer_format_asks_for_an_update(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    save_checkpoint(path, tiny_learner(), preprocess=PREP, class_names=[], provenance={})
    raw = torch.load(path, weights_only=True)
    raw["format_version"] = FORMAT_VERSION + 1
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match="newer MetaInspect"):
        load_checkpoint(path)


def test_unknown_learner_or_mismatched_weights_are_clear_errors(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    save_checkpoint(path, tiny_learner(), preprocess=PREP, class_names=[], provenance={})
    raw = torch.load(path, weights_only=True)
    raw["learner"]["name"] = "nonsense"
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match=r"cannot rebuild.*unknown learner 'nonsense'"):
        load_checkpoint(path)
    raw["learner"]["name"] = "metasgd"
    raw["model"]["width"] = 16
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match="weights do not fit"):
        load_checkpoint(path)


def test_missing_file_and_missing_default_model_are_clear_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pt")
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert resolve_checkpoint_path("default") == tmp_path / "resources" / "models" / "default.pt"
    with pytest.raises(CheckpointError, match=r"default model .* is not there yet"):
        load_checkpoint("default")
