"""Checks on a workspace archive before anything is written: member names, sizes and row types.

An archive comes from outside (a USB stick, an e-mail): it must never choose where a file lands, make the
import read or write without bound, or reach the database with a wrong type. Every check here raises
:class:`ArchiveError`, one line naming the archive and what is wrong with it.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from core.storage.errors import StorageError

HEX64 = re.compile(r"[0-9a-f]{64}")
JSON_MEMBERS = ("manifest.json", "classes.json", "examples.json", "models.json")
LOG_MEMBER = "inspections.jsonl"
_IMAGE_MEMBER = re.compile(r"images/([0-9a-f]{64})\.png")
# Older exports kept the registered file's suffix; the file is always stored as <sha256>.pt on import.
_MODEL_MEMBER = re.compile(r"models/([0-9a-f]{64})\.[A-Za-z0-9]{1,8}")
_MiB = 1 << 20


class ArchiveError(StorageError):
    """The archive is malformed, hostile or too large; nothing was written to the workspace."""

    def __init__(self, src: Path, problem: str) -> None:
        super().__init__(f"archive {src} is refused: {problem}; nothing was imported")
        self.src = src
        self.problem = problem


@dataclass(frozen=True)
class ArchiveLimits:
    """Upper bounds on what an import may read (uncompressed sizes, as declared and as actually read)."""

    max_members: int = 2_000_000
    max_json_bytes: int = 512 * _MiB
    max_image_bytes: int = 64 * _MiB
    max_model_bytes: int = 4096 * _MiB
    max_log_bytes: int = 16384 * _MiB
    max_log_line_bytes: int = _MiB
    max_total_bytes: int = 32768 * _MiB


@dataclass(frozen=True)
class ArchiveMembers:
    """The validated members: image hashes and model hashes (mapped to their member names)."""

    images: frozenset[str]
    models: dict[str, str]
    has_log: bool
    files_bytes: int  # images + models, uncompressed: what the import writes to disk


def check_members(zf: zipfile.ZipFile, src: Path, limits: ArchiveLimits) -> ArchiveMembers:
    """Validate every member name and declared size; refuse anything the exporter does not write."""
    infos = zf.infolist()
    if len(infos) > limits.max_members:
        raise ArchiveError(src, f"it holds {len(infos)} members, more than the {limits.max_members} allowed")
    seen: set[str] = set()
    images: set[str] = set()
    models: dict[str, str] = {}
    total = files = 0
    for info in infos:
        name = info.filename
        shown = ascii(name)[:120]
        if name in seen:
            raise ArchiveError(src, f"member {shown} appears twice")
        seen.add(name)
        # The patterns below admit only fixed names and hex digests, so no absolute path, drive letter,
        # backslash or ".." can pass; this message names the escape for whoever reads the log.
        if name.startswith(("/", "\\")) or ".." in name.split("/") or re.match(r"[A-Za-z]:", name):
            raise ArchiveError(src, f"member {shown} points outside the archive (absolute path or '..')")
        if info.flag_bits & 0x1:
            raise ArchiveError(src, f"member {shown} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ArchiveError(src, f"member {shown} uses an unsupported compression ({info.compress_type})")
        size = info.file_size
        if name in JSON_MEMBERS:
            cap = limits.max_json_bytes
        elif name == LOG_MEMBER:
            cap = limits.max_log_bytes
        elif m := _IMAGE_MEMBER.fullmatch(name):
            cap = limits.max_image_bytes
            images.add(m.group(1))
            files += size
        elif m := _MODEL_MEMBER.fullmatch(name):
            cap = limits.max_model_bytes
            if m.group(1) in models:
                raise ArchiveError(src, f"model {m.group(1)} is stored twice")
            models[m.group(1)] = name
            files += size
        else:
            raise ArchiveError(
                src, f"unexpected member {shown} (only the files an export writes are allowed)"
            )
        if size > cap:
            raise ArchiveError(src, f"member {shown} declares {size} bytes, more than the {cap} allowed")
        total += size
    if total > limits.max_total_bytes:
        raise ArchiveError(
            src, f"its members add up to {total} bytes, more than the {limits.max_total_bytes} allowed"
        )
    return ArchiveMembers(frozenset(images), models, LOG_MEMBER in seen, files)


def read_json(zf: zipfile.ZipFile, name: str, src: Path) -> Any:
    """One JSON member (sizes were checked by :func:`check_members`)."""
    try:
        return json.loads(zf.read(name))
    except KeyError:
        raise ArchiveError(src, f"it lacks {name}; it is not a complete MetaInspect archive") from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, absurd nesting
        raise ArchiveError(src, f"{name} is not valid JSON ({exc})") from None


def iter_log_lines(fh: IO[bytes], src: Path, limits: ArchiveLimits) -> Iterator[dict[str, Any]]:
    """The verdict rows of ``inspections.jsonl``, each checked; a line longer than the limit is refused."""
    number = 0
    while line := fh.readline(limits.max_log_line_bytes + 1):
        number += 1
        if len(line) > limits.max_log_line_bytes:
            raise ArchiveError(
                src, f"{LOG_MEMBER} line {number} is longer than {limits.max_log_line_bytes} bytes"
            )
        where = f"{LOG_MEMBER} line {number}"
        try:
            row = check_row(json.loads(line), _INSPECTION, where, src)
            probs = json.loads(row["probabilities"])
        except (ValueError, RecursionError) as exc:
            raise ArchiveError(src, f"{where} is not valid JSON ({exc})") from None
        if not isinstance(probs, list) or not all(type(p) in (int, float) for p in probs):
            raise ArchiveError(src, f"{where} probabilities are not a list of numbers")
        if row["low_confidence"] not in (0, 1) or not row["predicted"] or not row["verdict"]:
            raise ArchiveError(src, f"{where} has an empty class or verdict or a bad low_confidence flag")
        yield row


# ---- row types ------------------------------------------------------------------------------------------
_NUM = (int, float)
_OPT_INT = (int, type(None))
_OPT_STR = (str, type(None))
_OPT_NUM = (int, float, type(None))
_CLASS = {
    "name": str, "colour": str, "is_defect": (bool, int), "shortcut": _OPT_STR, "position": int,
    "created_at": _NUM,
}  # fmt: skip
_EXAMPLE = {
    "id": int, "image_hash": str, "class_name": str, "source": str, "camera_settings": dict,
    "roi": (list, type(None)), "created_at": _NUM, "created_by": str, "split": str, "deleted_at": _OPT_NUM,
}  # fmt: skip
_MODEL = {
    "id": int, "name": str, "algorithm": str, "hyperparameters": dict, "backbone": str, "class_names": list,
    "metrics": dict, "file_name": str, "sha256": str, "parent_id": _OPT_INT, "created_at": _NUM,
    "created_by": str, "is_active": (bool, int), "training_examples": list,
}  # fmt: skip
_INSPECTION = {
    "time": _NUM, "part_id": _OPT_INT, "frame_id": _OPT_INT, "model_id": _OPT_INT, "predicted": str,
    "probabilities": str, "verdict": str, "low_confidence": (bool, int), "override": _OPT_STR,
    "image_hash": _OPT_STR,
}  # fmt: skip


def check_row(row: Any, spec: dict[str, Any], where: str, src: Path) -> dict[str, Any]:
    """``row`` must be an object holding every field of ``spec`` with one of its types."""
    if not isinstance(row, dict):
        raise ArchiveError(src, f"{where} is a {type(row).__name__}, not an object")
    for key, types in spec.items():
        if key not in row:
            raise ArchiveError(src, f"{where} lacks the field {key!r}")
        value = row[key]
        bad_bool = isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,))
        if not isinstance(value, types) or bad_bool:
            raise ArchiveError(src, f"{where} field {key!r} has the wrong type ({type(value).__name__})")
    return row


def _rows(value: Any, name: str, src: Path) -> list[Any]:
    if not isinstance(value, list):
        raise ArchiveError(src, f"{name} holds a {type(value).__name__}, not a list")
    return value


def _row(row: Any, spec: dict[str, Any], name: str, i: int, src: Path) -> dict[str, Any]:
    return check_row(row, spec, f"{name} row {i}", src)


def _hash(value: Any, where: str, src: Path) -> str:
    if not isinstance(value, str) or not HEX64.fullmatch(value):
        raise ArchiveError(src, f"{where} is not a SHA-256 hex digest: {ascii(value)[:80]}")
    return value


def check_tables(
    classes: Any, examples: Any, models: Any, members: ArchiveMembers, src: Path
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Check the rows of classes.json, examples.json and models.json against each other and the members."""
    classes = [
        _row(c, _CLASS, "classes.json", i, src) for i, c in enumerate(_rows(classes, "classes.json", src))
    ]
    names = {c["name"] for c in classes}
    if len(names) != len(classes) or not all(n.strip() for n in names):
        raise ArchiveError(src, "classes.json has an empty or repeated class name")
    if any(c["is_defect"] not in (0, 1) for c in classes):
        raise ArchiveError(src, "classes.json has a bad is_defect flag")
    examples = [
        _row(e, _EXAMPLE, "examples.json", i, src)
        for i, e in enumerate(_rows(examples, "examples.json", src))
    ]
    for i, e in enumerate(examples):
        where = f"examples.json row {i}"
        if _hash(e["image_hash"], f"{where} image_hash", src) not in members.images:
            raise ArchiveError(src, f"it lacks image {e['image_hash']} ({where})")
        if e["class_name"] not in names:
            raise ArchiveError(
                src, f"{where} names class {ascii(e['class_name'])[:80]}, which classes.json lacks"
            )
        if e["split"] not in ("train", "holdout"):
            raise ArchiveError(src, f"{where} split is {ascii(e['split'])[:40]}, not 'train' or 'holdout'")
        roi = e["roi"]
        if roi is not None and (len(roi) != 4 or not all(type(v) is int for v in roi)):
            raise ArchiveError(src, f"{where} roi is not four whole numbers")
    models = [_row(m, _MODEL, "models.json", i, src) for i, m in enumerate(_rows(models, "models.json", src))]
    for i, m in enumerate(models):
        where = f"models.json row {i}"
        sha = _hash(m["sha256"], f"{where} sha256", src)
        if sha not in members.models:
            raise ArchiveError(src, f"it lacks the file of model version {m['id']} ({sha}.pt)")
        if not all(isinstance(n, str) for n in m["class_names"]):
            raise ArchiveError(src, f"{where} class_names are not all text")
        for t in m["training_examples"]:
            if not (isinstance(t, list) and len(t) == 3 and type(t[0]) is int and isinstance(t[1], str)):
                raise ArchiveError(src, f"{where} has a malformed training example {ascii(t)[:80]}")
            _hash(t[2], f"{where} training example image", src)
    return classes, examples, models
