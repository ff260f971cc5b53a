"""Export a workspace (or one model version with its examples) to one zip, and import it back.

Archive layout (format 1)::

    manifest.json       format, kind ("workspace" | "model"), schema version, counts
    classes.json        list of classes
    examples.json       list of examples (image hash, class name, provenance, split, deleted flag)
    models.json         model versions, each with the examples (id, class, image) it was adapted on
    inspections.jsonl   one verdict per line (workspace exports only)
    images/<sha256>.png
    models/<file_name>

Every image and model file is verified against its SHA-256 on import; a damaged archive is refused before
anything is written to the database.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
import uuid
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.storage.errors import FileIntegrityError, StorageError, StorageWriteError
from core.storage.files import fsync_dir
from core.storage.inspections import insert_inspections
from core.storage.records import Example

if TYPE_CHECKING:
    from core.storage.workspace import Workspace

FORMAT = "metainspect-workspace-archive"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ImportReport:
    """What an import added; the id maps translate archive ids to ids in the target workspace."""

    classes_added: int
    examples_added: int
    models_added: int
    inspections_added: int
    example_ids: dict[int, int] = field(default_factory=dict, hash=False)
    model_ids: dict[int, int] = field(default_factory=dict, hash=False)


def _example_dict(e: Example) -> dict[str, Any]:
    row = {k: getattr(e, k) for k in e.__dataclass_fields__}
    row["roi"] = list(e.roi) if e.roi else None
    return row


@contextmanager
def _read_transaction(ws: Workspace) -> Iterator[sqlite3.Connection]:
    """A read transaction on this thread's connection: every query inside sees one consistent snapshot
    (WAL readers never block the writers meanwhile)."""
    conn = ws.connection()
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        conn.execute("COMMIT")


def _snapshot(ws: Workspace, conn: sqlite3.Connection, model_version_id: int | None) -> dict[str, Any]:
    """Classes, model versions and examples to export (small tables; the log is streamed separately)."""
    fields = ("id", "name", "colour", "is_defect", "shortcut", "position", "created_at")
    classes = [
        dict(zip(fields, r, strict=True))
        for r in conn.execute(f"SELECT {', '.join(fields)} FROM classes ORDER BY id")
    ]
    if model_version_id is None:
        model_ids = [r[0] for r in conn.execute("SELECT id FROM model_versions ORDER BY id")]
    else:
        ws.models.get(model_version_id)  # clear error for an unknown id
        model_ids = [model_version_id]
    models = []
    for mid in model_ids:
        mv = ws.models.get(mid)
        row = {k: getattr(mv, k) for k in mv.__dataclass_fields__}
        row["class_names"] = list(mv.class_names)
        # As adapted on: a later relabel must not rewrite what the model was trained with.
        row["training_examples"] = [
            [t.example_id, t.class_name, t.image_hash] for t in ws.models.training_examples(mid)
        ]
        models.append(row)
    wanted = None if model_version_id is None else {t[0] for m in models for t in m["training_examples"]}
    examples = [
        _example_dict(e) for e in ws.examples.list(include_deleted=True) if wanted is None or e.id in wanted
    ]
    return {"classes": classes, "models": models, "examples": examples}


def _write_zip(
    ws: Workspace, conn: sqlite3.Connection, tmp: Path, snap: dict[str, Any], manifest: dict[str, Any]
) -> None:
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(manifest, indent=1))
        for key in ("classes", "examples", "models"):
            zf.writestr(f"{key}.json", json.dumps(snap[key], indent=1))
        if manifest["kind"] == "workspace":
            cur = conn.execute("SELECT * FROM inspections ORDER BY id")
            names = [d[0] for d in cur.description]
            with zf.open("inspections.jsonl", "w") as fh:
                for row in cur:  # streamed: a million-row log never sits in memory
                    fh.write(json.dumps(dict(zip(names, row, strict=True))).encode() + b"\n")
        for h in sorted({e["image_hash"] for e in snap["examples"]}):
            # PNG is already compressed: store it as is.
            zf.writestr(zipfile.ZipInfo(f"images/{h}.png"), ws.images.read_bytes(h))
        for m in snap["models"]:
            zf.write(ws.models.verified_path(m["id"]), f"models/{m['file_name']}")


def export_archive(ws: Workspace, path: Path | str, *, model_version_id: int | None = None) -> Path:
    """Write the workspace (or one model version, its file and the examples it was adapted on) to ``path``.

    Every file is verified against its SHA-256 on the way out. The zip is written under a temp name and
    renamed when complete, so ``path`` is never half a file.
    """
    dest = Path(path)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with _read_transaction(ws) as conn:
            snap = _snapshot(ws, conn, model_version_id)
            manifest = {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "kind": "workspace" if model_version_id is None else "model",
                "model_version_id": model_version_id,
                "created_at": time.time(),
                "source_workspace": str(ws.root),
                "counts": {k: len(v) for k, v in snap.items()},
            }
            _write_zip(ws, conn, tmp, snap, manifest)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
        fsync_dir(dest.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StorageWriteError(dest, exc) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


def _read_json(zf: zipfile.ZipFile, name: str, src: Path) -> Any:
    try:
        return json.loads(zf.read(name))
    except KeyError:
        raise StorageError(f"archive {src} lacks {name}; it is not a complete MetaInspect archive") from None


def _import_model_file(ws: Workspace, zf: zipfile.ZipFile, m: dict[str, Any], src: Path) -> None:
    target = ws.models_dir / m["file_name"]
    if target.is_file():
        return
    tmp = ws.models_dir / f".import-{uuid.uuid4().hex[:8]}.tmp"
    digest = hashlib.sha256()
    try:
        with zf.open(f"models/{m['file_name']}") as fin, open(tmp, "xb") as fout:
            while chunk := fin.read(1 << 20):
                digest.update(chunk)
                fout.write(chunk)
            fout.flush()
            os.fsync(fout.fileno())
        if digest.hexdigest() != m["sha256"]:
            raise FileIntegrityError(src / "models" / m["file_name"], m["sha256"], digest.hexdigest())
        os.replace(tmp, target)
        fsync_dir(target.parent)
    except KeyError:
        tmp.unlink(missing_ok=True)
        raise StorageError(f"archive {src} lacks the file of model version {m['id']}") from None
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StorageWriteError(target, exc) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def import_archive(ws: Workspace, path: Path | str, *, who: str | None = None) -> ImportReport:
    """Merge an archive into ``ws``: classes are matched by name, identical examples (same image, class and
    creation time) and model versions (same SHA-256) are not duplicated. All rows go in one transaction.

    Raises
    ------
    FileIntegrityError
        When an image or model file in the archive does not match its recorded SHA-256.
    StorageError
        When the file is not a MetaInspect archive or is of a newer format.
    """
    src = Path(path)
    try:
        zf = zipfile.ZipFile(src)
    except (zipfile.BadZipFile, OSError) as exc:
        raise StorageError(f"{src} is not a readable MetaInspect archive: {exc}") from exc
    with zf:
        manifest = _read_json(zf, "manifest.json", src)
        if manifest.get("format") != FORMAT or int(manifest.get("format_version", 0)) > FORMAT_VERSION:
            raise StorageError(
                f"{src} is not a MetaInspect archive this version can read "
                f"(format {manifest.get('format')!r} version {manifest.get('format_version')})"
            )
        classes, examples, models = (
            _read_json(zf, f"{k}.json", src) for k in ("classes", "examples", "models")
        )
        # Files first (verified, fsynced); rows only after every file is in place.
        for h in sorted({e["image_hash"] for e in examples}):
            try:
                data = zf.read(f"images/{h}.png")
            except KeyError:
                raise StorageError(f"archive {src} lacks image {h}") from None
            if hashlib.sha256(data).hexdigest() != h:
                raise FileIntegrityError(src / "images" / f"{h}.png", h, hashlib.sha256(data).hexdigest())
            ws.images.put(data)
        for m in models:
            _import_model_file(ws, zf, m, src)
        with ws.transaction() as conn:
            if "inspections.jsonl" not in zf.namelist():
                return _insert_rows(ws, conn, classes, examples, models, [], src, who)
            with zf.open("inspections.jsonl") as lines:  # streamed line by line
                return _insert_rows(ws, conn, classes, examples, models, lines, src, who)


def _insert_rows(
    ws: Workspace,
    conn: sqlite3.Connection,
    classes: list[dict[str, Any]],
    examples: list[dict[str, Any]],
    models: list[dict[str, Any]],
    lines: Iterable[bytes],
    src: Path,
    who: str | None,
) -> ImportReport:
    class_ids: dict[str, int] = {name: cid for cid, name in conn.execute("SELECT id, name FROM classes")}
    added_classes = 0
    for c in classes:
        if c["name"] in class_ids:
            continue
        taken = conn.execute("SELECT 1 FROM classes WHERE shortcut = ?", (c["shortcut"],)).fetchone()
        cur = conn.execute(
            "INSERT INTO classes (name, colour, is_defect, shortcut, position, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (
                c["name"],
                c["colour"],
                c["is_defect"],
                None if taken else c["shortcut"],
                c["position"],
                c["created_at"],
            ),
        )
        class_ids[c["name"]] = int(cur.lastrowid or 0)
        added_classes += 1
    example_ids: dict[int, int] = {}
    added_examples = added_models = 0
    for e in examples:
        cid = class_ids[e["class_name"]]
        same = conn.execute(
            "SELECT id FROM examples WHERE image_hash = ? AND class_id = ? AND created_at = ?",
            (e["image_hash"], cid, e["created_at"]),
        ).fetchone()
        if same:
            example_ids[e["id"]] = same[0]
            continue
        cur = conn.execute(
            "INSERT INTO examples (image_hash, class_id, source, camera_settings, roi, created_at, created_by, "
            "split, deleted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                e["image_hash"], cid, e["source"], json.dumps(e["camera_settings"], sort_keys=True),
                json.dumps(e["roi"]) if e["roi"] else None, e["created_at"], e["created_by"], e["split"],
                e["deleted_at"],
            ),
        )  # fmt: skip
        example_ids[e["id"]] = int(cur.lastrowid or 0)
        added_examples += 1
    model_ids: dict[int, int] = {}
    has_active = conn.execute("SELECT 1 FROM model_versions WHERE is_active = 1").fetchone() is not None
    for m in sorted(models, key=lambda m: m["id"]):
        same = conn.execute("SELECT id FROM model_versions WHERE sha256 = ?", (m["sha256"],)).fetchone()
        if same:
            model_ids[m["id"]] = same[0]
            continue
        activate = bool(m["is_active"]) and not has_active
        cur = conn.execute(
            "INSERT INTO model_versions (name, algorithm, hyperparameters, backbone, class_names, metrics, "
            "file_name, sha256, parent_id, created_at, created_by, is_active) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                m["name"], m["algorithm"], json.dumps(m["hyperparameters"], sort_keys=True), m["backbone"],
                json.dumps(m["class_names"]), json.dumps(m["metrics"], sort_keys=True), m["file_name"], m["sha256"],
                model_ids.get(m["parent_id"]) if m["parent_id"] is not None else None, m["created_at"],
                m["created_by"], int(activate),
            ),
        )  # fmt: skip
        new_id = int(cur.lastrowid or 0)
        model_ids[m["id"]] = new_id
        added_models += 1
        conn.executemany(
            "INSERT INTO model_examples (model_id, example_id, class_name, image_hash) VALUES (?, ?, ?, ?)",
            [(new_id, example_ids[i], name, h) for i, name, h in m["training_examples"] if i in example_ids],
        )
    added_inspections = 0
    chunk: list[tuple[Any, ...]] = []
    for line in lines:
        r = json.loads(line)
        # The same verdict imported twice (same time, part, frame and class) is kept once.
        if conn.execute(
            "SELECT 1 FROM inspections WHERE time = ? AND predicted = ? AND part_id IS ? AND frame_id IS ?",
            (r["time"], r["predicted"], r["part_id"], r["frame_id"]),
        ).fetchone():
            continue
        chunk.append(
            (
                r["time"], r["part_id"], r["frame_id"], model_ids.get(r["model_id"]) if r["model_id"] else None,
                r["predicted"], r["probabilities"], r["verdict"], r["low_confidence"], r["override"], r["image_hash"],
            )
        )  # fmt: skip
        if len(chunk) >= 10_000:
            insert_inspections(conn, chunk)
            added_inspections += len(chunk)
            chunk = []
    if chunk:
        insert_inspections(conn, chunk)
        added_inspections += len(chunk)
    ws.audit.record(
        conn,
        "archive.import",
        "workspace",
        None,
        {
            "archive": str(src),
            "classes": added_classes,
            "examples": added_examples,
            "models": added_models,
            "inspections": added_inspections,
        },
        who=who,
    )
    return ImportReport(
        added_classes, added_examples, added_models, added_inspections, example_ids, model_ids
    )
