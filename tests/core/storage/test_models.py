"""Model versions: registering real checkpoint files, activation, rollback, traceability, tampering."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.storage import FileIntegrityError, RecordNotFoundError, StorageError, Workspace
from tests.core.storage.conftest import part_image


def _save_tiny_checkpoint(path: Path, class_names: list[str]) -> str:
    """A real (tiny) ProtoNet checkpoint written by the training side's save_checkpoint."""
    try:
        from core.imaging.preprocess import Preprocess
        from core.meta import create_learner
        from core.models import create_model
        from core.storage.checkpoint import save_checkpoint
    except ImportError as exc:  # the engine lives in other modules; say why this test cannot run
        pytest.skip(f"model engine not importable: {exc}")
    model = create_model("conv4", in_channels=1, n_way=len(class_names), image_size=28, width=8)
    learner = create_learner("protonet", model, n_way=len(class_names))
    pre = Preprocess(image_size=28, channels=1, mean=(0.5,), std=(0.5,))
    return save_checkpoint(path, learner, preprocess=pre, class_names=class_names, provenance={"test": True})


@pytest.fixture
def checkpoint(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "out" / "adapted.pt"
    return path, _save_tiny_checkpoint(path, ["ok", "scratch"])


def test_register_copies_file_records_hash_and_example_set(
    ws: Workspace, rng: np.random.Generator, checkpoint: tuple[Path, str]
) -> None:
    path, digest = checkpoint
    examples = [ws.examples.add(part_image(rng), c) for c in ("ok", "ok", "scratch")]
    mv = ws.models.register(
        path, algorithm="protonet", class_names=["ok", "scratch"], hyperparameters={"width": 8},
        backbone="default.pt", example_ids=[e.id for e in examples], metrics={"holdout_accuracy": 0.9},
        sha256=digest, activate=True,
    )  # fmt: skip
    assert mv.sha256 == digest and mv.is_active and mv.class_names == ("ok", "scratch")
    assert (ws.models_dir / mv.file_name).read_bytes() == path.read_bytes()
    path.unlink()  # the workspace holds its own copy
    ws.examples.relabel(examples[0].id, "scratch")  # history must not change with later relabels
    assert [(t.example_id, t.class_name) for t in ws.models.training_examples(mv.id)] == [
        (examples[0].id, "ok"), (examples[1].id, "ok"), (examples[2].id, "scratch"),
    ]  # fmt: skip
    loaded = ws.models.load(mv.id)
    assert loaded.class_names == ["ok", "scratch"] and loaded.sha256 == digest
    assert ws.audit.entries(entity="model", entity_id=mv.id)[0].action == "model.activate"


def test_activate_and_roll_back_keep_one_active_version(ws: Workspace, checkpoint: tuple[Path, str]) -> None:
    path, _ = checkpoint
    first = ws.models.register(path, algorithm="protonet", class_names=["ok", "scratch"], activate=True)
    second_file = path.with_name("second.pt")
    _save_tiny_checkpoint(second_file, ["ok", "scratch", "dent"])
    second = ws.models.register(
        second_file, algorithm="protonet", class_names=["ok", "scratch", "dent"], parent_id=first.id
    )
    assert ws.models.active() == ws.models.get(first.id)
    ws.models.activate(second.id)
    assert [m.is_active for m in ws.models.list()] == [False, True]
    assert ws.models.rollback().id == first.id
    assert [m.is_active for m in ws.models.list()] == [True, False]
    with pytest.raises(StorageError, match="no parent"):
        ws.models.rollback()


def test_tampered_model_file_is_refused(ws: Workspace, checkpoint: tuple[Path, str]) -> None:
    path, _ = checkpoint
    mv = ws.models.register(path, algorithm="protonet", class_names=["ok", "scratch"])
    stored = ws.models_dir / mv.file_name
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))
    with pytest.raises(FileIntegrityError, match="changed or damaged outside MetaInspect"):
        ws.models.load(mv.id)
    stored.unlink()
    with pytest.raises(FileIntegrityError, match="missing"):
        ws.models.verified_path(mv)


def test_register_refuses_a_file_that_differs_from_its_reported_hash(
    ws: Workspace, checkpoint: tuple[Path, str]
) -> None:
    path, digest = checkpoint
    with path.open("ab") as fh:
        fh.write(b"appended after saving")
    with pytest.raises(FileIntegrityError, match=digest):
        ws.models.register(path, algorithm="protonet", class_names=["ok", "scratch"], sha256=digest)
    assert ws.models.list() == [] and list(ws.models_dir.iterdir()) == []
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ws.models.register(path.with_name("nope.pt"), algorithm="protonet", class_names=["ok"])


def test_a_version_keeps_its_summary_as_written_and_a_later_one_replaces_it(
    ws: Workspace, checkpoint: tuple[Path, str]
) -> None:
    path, _ = checkpoint
    mv = ws.models.register(path, algorithm="protonet", class_names=["ok", "scratch"], activate=True)
    assert ws.models.summary(mv.id) is None  # never checked
    ws.models.record_summary(mv.id, {"flagged": [[3, "ok", "scratch"]], "accuracy": 0.75})
    assert ws.models.summary(mv.id) == {"flagged": [[3, "ok", "scratch"]], "accuracy": 0.75}
    ws.models.record_summary(mv.id, {"flagged": []})
    assert ws.models.summary(mv.id) == {"flagged": []}
    with pytest.raises(ValueError, match="cannot be stored"):
        ws.models.record_summary(mv.id, {"accuracy": float("nan")})  # not JSON
    with pytest.raises(RecordNotFoundError, match="no model version 99"):
        ws.models.record_summary(99, {})
    assert ws.models.summary(mv.id) == {"flagged": []}


def test_a_damaged_stored_summary_is_a_storage_error_naming_the_version(
    ws: Workspace, checkpoint: tuple[Path, str]
) -> None:
    path, _ = checkpoint
    mv = ws.models.register(path, algorithm="protonet", class_names=["ok", "scratch"])
    ws.models.record_summary(mv.id, {"flagged": []})
    with ws.transaction() as conn:
        conn.execute("UPDATE model_summaries SET summary = '{\"flagg' WHERE model_id = ?", (mv.id,))
    with pytest.raises(StorageError, match=f"summary of model version {mv.id} is not valid JSON"):
        ws.models.summary(mv.id)


def test_register_can_move_the_file_in_instead_of_copying_it(
    ws: Workspace, checkpoint: tuple[Path, str]
) -> None:
    """What teaching does with the adapted model it just wrote: the file is renamed into the store (no second
    write), still checked against the reported hash; a mismatch leaves nothing stored."""
    path, digest = checkpoint
    original = path.read_bytes()
    mv = ws.models.register(
        path, algorithm="protonet", class_names=["ok", "scratch"], sha256=digest, move=True
    )
    assert not path.exists(), "moved, not copied"
    assert (ws.models_dir / mv.file_name).read_bytes() == original and mv.sha256 == digest
    assert ws.models.load(mv.id).sha256 == digest
    other = path.with_name("other.pt")
    _save_tiny_checkpoint(other, ["ok", "dent"])
    with pytest.raises(FileIntegrityError):
        ws.models.register(other, algorithm="protonet", class_names=["ok", "dent"], sha256=digest, move=True)
    assert sorted(p.name for p in ws.models_dir.iterdir()) == [mv.file_name]
