"""Handlers of ``metainspect-lab workspace check | export | import`` (argparse namespaces in, exit codes out).

Errors a user can fix raise :class:`StorageError` (one line, exit 2 through :func:`core.cli.main`); ``check``
returns 1 when it opened the workspace and found damage.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from core.storage.archive import export_archive
from core.storage.archive_import import import_archive
from core.storage.errors import StorageError
from core.storage.workspace import DB_NAME, LOCK_NAME, Workspace

EXIT_DAMAGED = 1


def _existing(path: str) -> Path:
    """A folder that already holds a workspace: never create one where the user meant to read one."""
    root = Path(path)
    if not (root / DB_NAME).is_file():
        raise StorageError(f"{root} is not a MetaInspect workspace (no {DB_NAME} in it); check the path")
    return root


def cmd_workspace_check(args: argparse.Namespace) -> int:
    """Open without cleaning up, run SQLite's full integrity check and verify every file's SHA-256."""
    root = _existing(args.workspace)
    with Workspace.open(root, quick_check=False, cleanup=False) as ws:
        problems = [f"database: {row}" for row in ws.integrity_check() if row != "ok"]
        problems += ws.verify_files()
        counts = {
            "classes": len(ws.classes.list()),
            "examples": len(ws.examples.list(include_deleted=True)),
            "model versions": len(ws.models.list()),
            "verdicts": ws.inspections.count(),
        }
    print(f"workspace {root}: " + ", ".join(f"{n} {what}" for what, n in counts.items()))
    for problem in problems:
        print(f"DAMAGED: {problem}")
    print(f"{len(problems)} problem(s) found" if problems else "ok: database and every file verified")
    return EXIT_DAMAGED if problems else 0


def cmd_workspace_export(args: argparse.Namespace) -> int:
    """Write the workspace (or one model version with ``--model``) to one zip."""
    root = _existing(args.workspace)
    with Workspace.open(root, cleanup=False) as ws:
        out = export_archive(ws, args.out, model_version_id=args.model)
    print(f"exported {root} to {out}")
    return 0


def _is_empty(ws: Workspace) -> bool:
    return not (ws.classes.list() or ws.examples.list(include_deleted=True) or ws.models.list()) and (
        ws.inspections.count() == 0
    )


def cmd_workspace_import(args: argparse.Namespace) -> int:
    """Import an archive into a new or empty workspace (merging into a used one is the app's job)."""
    root = Path(args.workspace)
    if root.is_dir() and not (root / DB_NAME).is_file():
        others = sorted(p.name for p in root.iterdir() if p.name != LOCK_NAME)
        if others:
            held = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
            raise StorageError(
                f"{root} is neither empty nor a workspace (it holds {held}); import into a new folder"
            )
    with Workspace.open(root) as ws:
        if not _is_empty(ws):
            raise StorageError(f"workspace {root} already holds data; import into a new or empty workspace")
        report = import_archive(ws, args.archive)
    print(
        f"imported {args.archive} into {root}: {report.classes_added} classes, {report.examples_added} "
        f"examples, {report.models_added} model versions, {report.inspections_added} verdicts"
    )
    return 0
