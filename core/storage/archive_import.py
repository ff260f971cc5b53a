"""Import a workspace archive (see :mod:`core.storage.archive` for the layout) into an open workspace.

Every member name, declared size and row is checked (:mod:`core.storage.archive_checks`) before anything is
written; files go in first (verified against their SHA-256, fsynced), then every row in one transaction.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sqlite3
import uuid
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.redact import redact_source
from core.storage.archive import FORMAT, FORMAT_VERSION
from core.storage.archive_checks import (
    LOG_MEMBER,
    ArchiveError,
    ArchiveLimits,
    ArchiveMembers,
    check_members,
    check_tables,
    iter_log_lines,
    read_json,
)
from core.storage.errors import FileIntegrityError, StorageError, StorageWriteError
from core.storage.files import TEMP_SUFFIX, fsync_dir, sha256_file
from core.storage.inspections import insert_inspections

if TYPE_CHECKING:
    from core.storage.workspace import Workspace

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImportReport:
    """What an import added; the id maps translate archive ids to ids in the target workspace."""

    classes_added: int
    examples_added: int
    models_added: int
    inspections_added: int
    example_ids: dict[int, int] = field(default_factory=dict, hash=False)
    model_ids: dict[int, int] = field(default_factory=dict, hash=False)


def _read_member(zf: zipfile.ZipFile, name: str, src: Path, expected: str) -> bytes:
    """A member's bytes, verified against the SHA-256 its name carries."""
    data = zf.read(name)
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise FileIntegrityError(src / name, expected, actual)
    return data


def _import_model_file(ws: Workspace, zf: zipfile.ZipFile, sha: str, member: str, src: Path) -> None:
    # The stored name comes from the verified hash, never from the archive: <sha256>.pt in models/.
    target = ws.models_dir / f"{sha}.pt"
    if target.is_file() and sha256_file(target) == sha:
        return
    tmp = ws.models_dir / f".import-{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}"
    digest = hashlib.sha256()
    try:
        with zf.open(member) as fin, open(tmp, "xb") as fout:
            while chunk := fin.read(1 << 20):
                digest.update(chunk)
                fout.write(chunk)
            fout.flush()
            os.fsync(fout.fileno())
        if digest.hexdigest() != sha:
            raise FileIntegrityError(src / member, sha, digest.hexdigest())
        os.replace(tmp, target)
        fsync_dir(target.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StorageWriteError(target, exc) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def import_archive(
    ws: Workspace, path: Path | str, *, who: str | None = None, limits: ArchiveLimits | None = None
) -> ImportReport:
    """Merge an archive into ``ws``: classes are matched by name, identical examples (same image, class and
    creation time) and model versions (same SHA-256) are not duplicated. All rows go in one transaction.

    Every member name, declared size and row is checked before anything is written (see
    :mod:`core.storage.archive_checks`); model files are stored as ``models/<sha256>.pt`` whatever the archive
    calls them.

    Raises
    ------
    FileIntegrityError
        When an image or model file in the archive does not match its recorded SHA-256.
    ArchiveError
        When the archive is malformed, hostile (a name outside the archive, an unexpected member) or larger
        than ``limits``, or lacks a file its rows name.
    StorageError
        When the file is not a MetaInspect archive or is of a newer format.
    """
    src = Path(path)
    limits = limits or ArchiveLimits()
    try:
        zf = zipfile.ZipFile(src)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise StorageError(f"{src} is not a readable MetaInspect archive: {exc}") from exc
    try:
        with zf:
            return _import_open(ws, zf, src, who, limits)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
        # Damage found while decompressing: a CRC mismatch, a broken deflate stream, a cut-off member.
        raise ArchiveError(src, f"it is damaged ({type(exc).__name__}: {str(exc)[:200]})") from None


def _import_open(
    ws: Workspace, zf: zipfile.ZipFile, src: Path, who: str | None, limits: ArchiveLimits
) -> ImportReport:
    members = check_members(zf, src, limits)
    manifest = read_json(zf, "manifest.json", src)
    version = manifest.get("format_version") if isinstance(manifest, dict) else None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or type(version) is not int:
        raise StorageError(f"{src} is not a MetaInspect archive (no valid manifest)")
    if version > FORMAT_VERSION:
        raise StorageError(
            f"{src} is a MetaInspect archive of a newer format (version {version}; this version reads up to "
            f"{FORMAT_VERSION}); update MetaInspect to import it"
        )
    classes, examples, models = check_tables(
        *(read_json(zf, f"{k}.json", src) for k in ("classes", "examples", "models")), members, src
    )
    free = shutil.disk_usage(ws.root).free
    if members.files_bytes > free:
        raise StorageWriteError(
            ws.root, f"the archive's files need {members.files_bytes} bytes but the disk has {free} free"
        )
    if members.has_log:  # a first pass checks every verdict line, so a bad one fails before any write
        with zf.open(LOG_MEMBER) as fh:
            for _ in iter_log_lines(fh, src, limits):
                pass
    written: list[Path] = []
    try:
        return _write_files_then_rows(ws, zf, src, who, limits, members, (classes, examples, models), written)
    except BaseException:
        _remove_unreferenced(ws, written)
        raise


def _write_files_then_rows(
    ws: Workspace,
    zf: zipfile.ZipFile,
    src: Path,
    who: str | None,
    limits: ArchiveLimits,
    members: ArchiveMembers,
    tables: tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]],
    written: list[Path],
) -> ImportReport:
    # Files first (verified, fsynced); rows only after every file is in place.
    for h in sorted(members.images):
        data = _read_member(zf, f"images/{h}.png", src, h)
        if not ws.images.path_for(h).is_file():
            written.append(ws.images.path_for(h))
        try:
            ws.images.put(data)
        except ValueError as exc:  # not a readable 8-bit image
            raise ArchiveError(src, f"images/{h}.png: {exc}") from None
    for sha, member in sorted(members.models.items()):
        if not (ws.models_dir / f"{sha}.pt").is_file():
            written.append(ws.models_dir / f"{sha}.pt")
        _import_model_file(ws, zf, sha, member, src)
    with ws.transaction() as conn:
        if not members.has_log:
            return _insert_rows(ws, conn, *tables, [], src, who, members)
        with zf.open(LOG_MEMBER) as fh:  # streamed line by line
            return _insert_rows(ws, conn, *tables, iter_log_lines(fh, src, limits), src, who, members)


def _remove_unreferenced(ws: Workspace, paths: list[Path]) -> None:
    """After a failed import, remove the files it added that no committed row names (best effort: whatever
    stays is an orphan that the next open removes)."""
    for p in paths:
        table, column = ("model_versions", "sha256") if p.suffix == ".pt" else ("examples", "image_hash")
        try:
            named = ws.query(f"SELECT 1 FROM {table} WHERE {column} = ? LIMIT 1", (p.stem,))
            for other in ("inspections", "model_examples") if p.suffix != ".pt" else ():
                named += ws.query(f"SELECT 1 FROM {other} WHERE image_hash = ? LIMIT 1", (p.stem,))
            if not named:
                p.unlink(missing_ok=True)
        except (OSError, StorageError) as exc:
            log.warning("could not remove %s after a failed import: %s", p, exc)


def _insert_rows(
    ws: Workspace,
    conn: sqlite3.Connection,
    classes: list[dict[str, Any]],
    examples: list[dict[str, Any]],
    models: list[dict[str, Any]],
    lines: Iterable[dict[str, Any]],
    src: Path,
    who: str | None,
    members: ArchiveMembers,
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
                e["image_hash"], cid, redact_source(e["source"]), json.dumps(e["camera_settings"], sort_keys=True),
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
                json.dumps(m["class_names"]), json.dumps(m["metrics"], sort_keys=True), f"{m['sha256']}.pt", m["sha256"],
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
    for r in lines:
        # The same verdict imported twice (same time, part, frame and class) is kept once.
        if conn.execute(
            "SELECT 1 FROM inspections WHERE time = ? AND predicted = ? AND part_id IS ? AND frame_id IS ?",
            (r["time"], r["predicted"], r["part_id"], r["frame_id"]),
        ).fetchone():
            continue
        chunk.append(
            (
                r["time"], r["part_id"], r["frame_id"], model_ids.get(r["model_id"]) if r["model_id"] else None,
                r["predicted"], r["probabilities"], r["verdict"], r["low_confidence"], r["override"],
                r["image_hash"] if r["image_hash"] in members.images else None,
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
