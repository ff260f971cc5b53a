"""Classes and labelled examples: adding, relabelling, deleting, undo/redo, the audit trail, bad input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from core.storage import FileIntegrityError, RecordNotFoundError, Workspace
from tests.core.storage.conftest import part_image


def test_added_example_keeps_image_provenance_and_lists_by_class(
    ws: Workspace, rng: np.random.Generator
) -> None:
    img = part_image(rng)
    ex = ws.examples.add(
        img, "scratch", source="camera:0", camera_settings={"exposure": 8}, roi=(4, 5, 20, 30)
    )
    ws.examples.add(part_image(rng, grey=True), "ok", split="holdout")
    assert (ex.class_name, ex.source, ex.roi, ex.created_by, ex.split) == (
        "scratch", "camera:0", (4, 5, 20, 30), "tester", "train",
    )  # fmt: skip
    assert ex.camera_settings == {"exposure": 8}
    assert np.array_equal(ws.examples.load_image(ex), img)
    path = ws.images.path_for(ex.image_hash)
    assert path == ws.images_dir / ex.image_hash[:2] / f"{ex.image_hash}.png" and path.is_file()
    assert [e.id for e in ws.examples.list("scratch")] == [ex.id]
    assert [e.split for e in ws.examples.list(split="holdout")] == ["holdout"]
    assert ws.examples.counts() == {"ok": 1, "scratch": 1}


def test_same_image_twice_is_stored_once(ws: Workspace, rng: np.random.Generator) -> None:
    img = part_image(rng)
    a, b = ws.examples.add(img, "ok"), ws.examples.add(img.copy(), "scratch")
    assert a.image_hash == b.image_hash and a.id != b.id
    assert len(list(ws.images_dir.glob("??/*.png"))) == 1


def test_encoded_bytes_are_accepted_and_stored_as_png(ws: Workspace, rng: np.random.Generator) -> None:
    img = part_image(rng)
    ok, jpg = cv2.imencode(".jpg", img)
    assert ok
    ex = ws.examples.add(jpg.tobytes(), "ok")
    stored = ws.images.path_for(ex.image_hash).read_bytes()
    assert stored.startswith(b"\x89PNG")
    assert ws.examples.load_image(ex).shape == img.shape


def test_relabel_delete_undo_redo_round_trip(ws: Workspace, rng: np.random.Generator) -> None:
    ex = ws.examples.add(part_image(rng), "ok")
    ws.examples.relabel(ex.id, "scratch")
    ws.examples.delete(ex.id)
    assert ws.examples.counts() == {"ok": 0, "scratch": 0}
    with pytest.raises(RecordNotFoundError, match="was deleted"):
        ws.examples.get(ex.id)
    assert ws.examples.get(ex.id, include_deleted=True).deleted  # soft delete: the row stays

    assert ws.examples.undo().kind == "delete"  # type: ignore[union-attr]
    assert ws.examples.get(ex.id).class_name == "scratch"
    assert ws.examples.undo().kind == "relabel"  # type: ignore[union-attr]
    assert ws.examples.get(ex.id).class_name == "ok"
    assert ws.examples.undo().kind == "add"  # type: ignore[union-attr]
    assert ws.examples.counts() == {"ok": 0, "scratch": 0}
    assert ws.examples.undo() is None and not ws.examples.can_undo

    for _ in range(3):
        assert ws.examples.redo() is not None
    assert ws.examples.get(ex.id, include_deleted=True).deleted
    assert ws.examples.redo() is None
    ws.examples.undo()
    assert ws.examples.get(ex.id).class_name == "scratch"

    actions = [a.action for a in reversed(ws.audit.entries(entity="example", entity_id=ex.id))]
    assert actions == [
        "example.add", "example.relabel", "example.delete",
        "example.restore.undo", "example.relabel.undo", "example.delete.undo",
        "example.restore.redo", "example.relabel.redo", "example.delete.redo",
        "example.restore.undo",
    ]  # fmt: skip
    relabel = next(a for a in ws.audit.entries(entity="example") if a.action == "example.relabel")
    assert relabel.details == {"from": "ok", "to": "scratch"} and relabel.actor == "tester"


def test_a_new_change_clears_the_redo_history(ws: Workspace, rng: np.random.Generator) -> None:
    ex = ws.examples.add(part_image(rng), "ok")
    ws.examples.relabel(ex.id, "scratch")
    ws.examples.undo()
    assert ws.examples.can_redo
    ws.examples.add(part_image(rng), "ok")
    assert not ws.examples.can_redo


def test_bad_input_gets_clear_errors_and_writes_nothing(ws: Workspace, rng: np.random.Generator) -> None:
    with pytest.raises(RecordNotFoundError, match="known classes"):
        ws.examples.add(part_image(rng), "dent")
    with pytest.raises(ValueError, match="uint8"):
        ws.examples.add(part_image(rng).astype(np.float32), "ok")
    with pytest.raises(ValueError, match="shape"):
        ws.examples.add(np.zeros((4, 4, 2), np.uint8), "ok")
    with pytest.raises(ValueError, match="roi"):
        ws.examples.add(part_image(rng), "ok", roi=(0, 0, -3, 5))
    with pytest.raises(ValueError, match="split"):
        ws.examples.add(part_image(rng), "ok", split="test")  # type: ignore[arg-type]
    _, png = cv2.imencode(".png", part_image(rng, size=64))
    with pytest.raises(ValueError, match="truncated"):
        ws.examples.add(png.tobytes()[: len(png) // 2], "ok")
    _, png16 = cv2.imencode(".png", np.zeros((4, 4), np.uint16))
    with pytest.raises(ValueError, match="8-bit"):
        ws.examples.add(png16.tobytes(), "ok")
    with pytest.raises(ValueError, match="not a readable image"):
        ws.examples.add(b"GIF89a-not-really", "ok")
    assert ws.examples.list(include_deleted=True) == []
    assert list(ws.images_dir.rglob("*.png")) == []


def test_truncated_image_file_is_reported_not_decoded(ws: Workspace, rng: np.random.Generator) -> None:
    ex = ws.examples.add(part_image(rng, size=48), "ok")
    path = ws.images.path_for(ex.image_hash)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(FileIntegrityError, match=ex.image_hash) as info:
        ws.examples.load_image(ex.id)
    assert info.value.path == path
    assert ws.examples.get(ex.id).image_hash == ex.image_hash  # the label itself is intact
    (problem,) = ws.verify_files()
    assert str(path) in problem


def test_class_names_and_shortcuts_are_unique_and_validated(ws: Workspace) -> None:
    with pytest.raises(ValueError, match="already used"):
        ws.classes.add("ok")
    with pytest.raises(ValueError, match="already used"):
        ws.classes.add("dent", shortcut="1")
    with pytest.raises(ValueError, match="#RRGGBB"):
        ws.classes.add("dent", colour="red")
    with pytest.raises(ValueError, match="empty"):
        ws.classes.add("  ")
    dent = ws.classes.add("dent", shortcut="3")
    assert [c.name for c in ws.classes.list()] == ["ok", "scratch", "dent"]
    moved = ws.classes.update(dent.id, position=-1, colour="#123456")
    assert (moved.colour, ws.classes.list()[0].name) == ("#123456", "dent")
    assert ws.audit.entries(entity="class", entity_id=dent.id)[0].details["to"] == {
        "position": -1, "colour": "#123456",
    }  # fmt: skip
    assert ws.classes.ensure("dent").id == dent.id
