"""What a crash can leave in a workspace, recognised by name and place only, and nothing else.

A workspace folder may be chosen anywhere (``--workspace ~``), so recovery removes only names MetaInspect
itself writes, only where it writes them:

``images/<hh>/``
    ``.<sha256>.png.<12 hex>.tmp`` (atomic image writes) and ``<sha256>.png`` files that no row names,
    where ``<hh>`` is the hash's first two digits.
``models/``
    ``.<sha256>.pt.<12 hex>.tmp``, ``.incoming-<ns>.tmp`` and its copy temp (``ModelStore.register``),
    ``.import-<8 hex>.tmp`` (archive import), and ``<sha256>.<ext>`` files that no model version names.
``<root>/tmp<8 chars>/`` (teaching)
    the folder ``tempfile.TemporaryDirectory(dir=root)`` made for an adapted model file, when it holds
    only ``adapted.pt`` and its atomic-write temp (a SIGKILL while teaching leaves it behind).

Anything else, including other hidden ``*.tmp`` files anywhere in or under the folder, is left alone.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from core.storage.errors import StorageWriteError
from core.storage.records import RecoveryReport

if TYPE_CHECKING:
    from core.storage.workspace import Workspace

_HEX64 = r"[0-9a-f]{64}"
_ATOMIC = r"\.[0-9a-f]{12}\.tmp"  # what files._temp_name appends
IMAGE_TEMP = re.compile(rf"\.{_HEX64}\.png{_ATOMIC}")
IMAGE_FILE = re.compile(rf"{_HEX64}\.png")
MODEL_TEMP = re.compile(
    rf"\.{_HEX64}\.[A-Za-z0-9]{{1,8}}{_ATOMIC}|\.incoming-\d+\.tmp|\.\.incoming-\d+\.tmp{_ATOMIC}"
    r"|\.import-[0-9a-f]{8}\.tmp"
)
MODEL_FILE = re.compile(rf"{_HEX64}\.[A-Za-z0-9]{{1,8}}")
TEACH_DIR = re.compile(r"tmp[a-z0-9_]{8}")
TEACH_FILE = re.compile(rf"adapted\.pt|\.adapted\.pt{_ATOMIC}")


def _files(folder: Path) -> list[Path]:
    return (
        sorted(p for p in folder.iterdir() if p.is_file() and not p.is_symlink()) if folder.is_dir() else []
    )


def _image_dirs(ws: Workspace) -> list[Path]:
    if not ws.images_dir.is_dir():
        return []
    return sorted(p for p in ws.images_dir.iterdir() if re.fullmatch(r"[0-9a-f]{2}", p.name) and p.is_dir())


def count_stored_files(ws: Workspace) -> int:
    """How many image and model files under MetaInspect's own names the folder holds (other files, e.g. a
    ``models/`` folder of another program in a folder chosen as workspace, do not count)."""
    images = sum(
        1 for d in _image_dirs(ws) for p in _files(d) if IMAGE_FILE.fullmatch(p.name) and p.name[:2] == d.name
    )
    return images + sum(1 for p in _files(ws.models_dir) if MODEL_FILE.fullmatch(p.name))


def _teaching_leftovers(root: Path) -> list[Path]:
    found = []
    for d in sorted(root.iterdir()):
        if not (TEACH_DIR.fullmatch(d.name) and d.is_dir() and not d.is_symlink()):
            continue
        entries = list(d.iterdir())
        if all(p.is_file() and not p.is_symlink() and TEACH_FILE.fullmatch(p.name) for p in entries):
            found.append(d)
    return found


def find_and_remove_leftovers(ws: Workspace) -> RecoveryReport:
    """Remove crash leftovers of ``ws`` (see the module docstring for exactly which names and places).

    Safe only while holding the lock and before this instance writes (which ``Workspace.open`` guarantees):
    a file written for a row that never committed is exactly such an orphan.
    """
    temps: list[Path] = []
    images: list[Path] = []
    for sub in sorted(
        p for p in ws.images_dir.iterdir() if re.fullmatch(r"[0-9a-f]{2}", p.name) and p.is_dir()
    ):
        for p in _files(sub):
            if IMAGE_TEMP.fullmatch(p.name) and p.name[1:3] == sub.name:
                temps.append(p)
            elif IMAGE_FILE.fullmatch(p.name) and p.name[:2] == sub.name and not _image_named(ws, p.stem):
                images.append(p)
    known = {r[0] for r in ws.query("SELECT file_name FROM model_versions")}
    models: list[Path] = []
    for p in _files(ws.models_dir):
        if MODEL_TEMP.fullmatch(p.name):
            temps.append(p)
        elif MODEL_FILE.fullmatch(p.name) and p.name not in known:
            models.append(p)
    teaching = _teaching_leftovers(ws.root)
    for p in (*temps, *images, *models, *(f for d in teaching for f in d.iterdir()), *teaching):
        try:
            p.rmdir() if p.is_dir() else p.unlink(missing_ok=True)
        except OSError as exc:
            raise StorageWriteError(p, exc) from exc
    return RecoveryReport(
        temp_files_removed=tuple(str(p.relative_to(ws.root)) for p in (*temps, *teaching)),
        orphan_images_removed=tuple(p.name for p in images),
        orphan_models_removed=tuple(p.name for p in models),
    )


def _image_named(ws: Workspace, image_hash: str) -> bool:
    return bool(
        ws.query(
            "SELECT 1 FROM examples WHERE image_hash = ?1 UNION ALL "
            "SELECT 1 FROM inspections WHERE image_hash = ?1 UNION ALL "
            "SELECT 1 FROM model_examples WHERE image_hash = ?1 LIMIT 1",
            (image_hash,),
        )
    )
