"""Export to one zip and import back: same classes, examples (same hashes), model versions and files."""

from __future__ import annotations

import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from core.storage import (
    FileIntegrityError,
    NewInspection,
    StorageError,
    Workspace,
    export_archive,
    import_archive,
)
from tests.core.storage.conftest import part_image


def _populate(ws: Workspace, rng: np.random.Generator, tmp_path: Path) -> tuple[int, int]:
    examples = [
        ws.examples.add(part_image(rng), c, roi=(0, 0, 8, 8)) for c in ("ok", "ok", "scratch", "scratch")
    ]
    ws.examples.add(part_image(rng, grey=True), "ok", split="holdout", camera_settings={"gain": 2.5})
    ws.examples.delete(examples[1].id)
    base_file, child_file = tmp_path / "base.pt", tmp_path / "child.pt"
    base_file.write_bytes(b"base weights")
    child_file.write_bytes(b"child weights")
    base = ws.models.register(base_file, algorithm="maml", class_names=["ok", "scratch"], example_ids=[1, 3])
    child = ws.models.register(
        child_file, algorithm="maml", class_names=["ok", "scratch"], example_ids=[1, 3, 4], parent_id=base.id,
        metrics={"accuracy": 0.93}, hyperparameters={"steps": 5}, activate=True,
    )  # fmt: skip
    ws.examples.relabel(examples[0].id, "scratch")  # after adaptation: history keeps "ok"
    ws.inspections.append_many(
        [
            NewInspection("ok", "OK", (0.9, 0.1), time=time.time(), part_id=i, model_id=child.id)
            for i in range(7)
        ]
    )
    return base.id, child.id


def _summary(ws: Workspace) -> dict[str, object]:
    return {
        "classes": [(c.name, c.colour, c.is_defect, c.shortcut, c.position) for c in ws.classes.list()],
        "examples": [
            (e.image_hash, e.class_name, e.roi, e.split, e.camera_settings, e.deleted, e.created_at)
            for e in ws.examples.list(include_deleted=True)
        ],
        "models": [
            (
                m.algorithm,
                m.class_names,
                m.sha256,
                m.metrics,
                m.hyperparameters,
                m.is_active,
                m.parent_id is None,
            )
            for m in ws.models.list()
        ],
        "trained_on": [
            [(t.class_name, t.image_hash) for t in ws.models.training_examples(m.id)]
            for m in ws.models.list()
        ],
        "inspections": ws.inspections.count(),
    }


def test_export_then_import_reproduces_the_workspace(
    ws: Workspace, rng: np.random.Generator, tmp_path: Path
) -> None:
    _populate(ws, rng, tmp_path)
    archive = export_archive(ws, tmp_path / "backup.zip")
    assert not list(tmp_path.glob(".backup.zip.*"))
    with Workspace.open(tmp_path / "copy") as copy:
        report = import_archive(copy, archive)
        assert (report.classes_added, report.examples_added, report.models_added, report.inspections_added) == (
            2, 5, 2, 7,
        )  # fmt: skip
        assert _summary(copy) == _summary(ws)
        for m in copy.models.list():
            copy.models.verified_path(m)
        for e in copy.examples.list(include_deleted=True):
            assert np.array_equal(copy.examples.load_image(e), ws.images.load(e.image_hash))
        again = import_archive(copy, archive)  # importing twice does not duplicate
        assert (again.classes_added, again.examples_added, again.models_added, again.inspections_added) == (
            0,
        ) * 4
        assert len(copy.examples.list(include_deleted=True)) == 5


def test_model_export_carries_only_its_examples(
    ws: Workspace, rng: np.random.Generator, tmp_path: Path
) -> None:
    base_id, _ = _populate(ws, rng, tmp_path)
    archive = export_archive(ws, tmp_path / "model.zip", model_version_id=base_id)
    with zipfile.ZipFile(archive) as zf:
        assert sum(n.startswith("images/") for n in zf.namelist()) == 2
        assert "inspections.jsonl" not in zf.namelist()
    with Workspace.open(tmp_path / "line-pc") as target:
        import_archive(target, archive)
        (mv,) = target.models.list()
        assert [t.class_name for t in target.models.training_examples(mv.id)] == ["ok", "scratch"]
        assert mv.is_active is False and len(target.examples.list()) == 2
    with pytest.raises(StorageError, match="no model version 99"):
        export_archive(ws, tmp_path / "x.zip", model_version_id=99)


def test_damaged_archive_is_refused_before_any_row_is_written(
    ws: Workspace, rng: np.random.Generator, tmp_path: Path
) -> None:
    _populate(ws, rng, tmp_path)
    good = export_archive(ws, tmp_path / "good.zip")
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.startswith("models/"):
                data = data + b" tampered"
            dst.writestr(info, data)
    with Workspace.open(tmp_path / "target") as target:
        with pytest.raises(FileIntegrityError, match="SHA-256"):
            import_archive(target, bad)
        assert target.classes.list() == [] and target.examples.list(include_deleted=True) == []
        (tmp_path / "not.zip").write_bytes(b"plain text")
        with pytest.raises(StorageError, match="not a readable MetaInspect archive"):
            import_archive(target, tmp_path / "not.zip")
