"""Export a workspace (or one model version with its examples) to one zip (imported by
:mod:`core.storage.archive_import`).

Archive layout (format 1)::

    manifest.json       format, kind ("workspace" | "model"), schema version, counts
    classes.json        list of classes
    examples.json       list of examples (image hash, class name, provenance, split, deleted flag)
    models.json         model versions, each with the examples (id, class, image) it was adapted on
    inspections.jsonl   one verdict per line (workspace exports only)
    images/<sha256>.png  the examples' pictures (and, in workspace exports, those of logged verdicts)
    models/<sha256>.pt

Every image and model file is verified against its SHA-256 on import; a damaged, malformed or oversized
archive is refused before anything is written to the database (checks in
:mod:`core.storage.archive_checks`).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.redact import redact_source
from core.storage.errors import StorageWriteError
from core.storage.files import fsync_dir
from core.storage.records import Example

if TYPE_CHECKING:
    from core.storage.workspace import Workspace

FORMAT = "metainspect-workspace-archive"
FORMAT_VERSION = 1


def _example_dict(e: Example) -> dict[str, Any]:
    row = {k: getattr(e, k) for k in e.__dataclass_fields__}
    row["roi"] = list(e.roi) if e.roi else None
    row["source"] = redact_source(e.source)  # rows written before redaction may still hold a password
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
        hashes = {e["image_hash"] for e in snap["examples"]}
        if manifest["kind"] == "workspace":  # the pictures of logged verdicts travel with their rows
            hashes |= {
                r[0]
                for r in conn.execute(
                    "SELECT DISTINCT image_hash FROM inspections WHERE image_hash IS NOT NULL"
                )
            }
        for h in sorted(hashes):
            # PNG is already compressed: store it as is.
            zf.writestr(zipfile.ZipInfo(f"images/{h}.png"), ws.images.read_bytes(h))
        for m in snap["models"]:
            zf.write(ws.models.verified_path(m["id"]), f"models/{m['sha256']}.pt")


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
