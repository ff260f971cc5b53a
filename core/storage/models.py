"""Model versions: register a model file (copied into ``models/`` with its SHA-256), activate, roll back,
and hand out the file only after its hash has been verified."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.storage.errors import FileIntegrityError, RecordNotFoundError, StorageError
from core.storage.files import atomic_copy_file, fsync_dir, sha256_file
from core.storage.records import ModelVersion, TrainingExample

if TYPE_CHECKING:
    from core.storage.workspace import Workspace

_COLUMNS = (
    "id, name, algorithm, hyperparameters, backbone, class_names, metrics, file_name, sha256, parent_id, "
    "created_at, created_by, is_active"
)


def _row(r: tuple[Any, ...]) -> ModelVersion:
    return ModelVersion(
        r[0], r[1], r[2], json.loads(r[3]), r[4], tuple(json.loads(r[5])), json.loads(r[6]), r[7], r[8], r[9],
        r[10], r[11], bool(r[12]),
    )  # fmt: skip


class ModelStore:
    """The ``model_versions`` table and the files in ``models/``."""

    def __init__(self, ws: Workspace) -> None:
        self._ws = ws

    @staticmethod
    def _stage(src: Path, staging: Path, move: bool) -> str:
        """Put ``src``'s bytes at ``staging`` (moved or copied) and return their SHA-256."""
        if move:
            try:
                os.replace(src, staging)
            except OSError:  # another file system, or the source cannot be renamed: copy instead
                pass
            else:
                fsync_dir(staging.parent)
                return sha256_file(staging)
        return atomic_copy_file(src, staging)

    def register(
        self,
        file: Path | str,
        *,
        algorithm: str,
        class_names: Sequence[str],
        hyperparameters: Mapping[str, Any] | None = None,
        backbone: str = "",
        example_ids: Sequence[int] = (),
        metrics: Mapping[str, Any] | None = None,
        parent_id: int | None = None,
        name: str = "",
        sha256: str | None = None,
        activate: bool = False,
        who: str | None = None,
        move: bool = False,
    ) -> ModelVersion:
        """Copy a model file (e.g. written by ``save_checkpoint``) into the workspace and record it.

        Parameters
        ----------
        sha256
            The hash the producer reported; when given, the copy must match it (guards against a file
            changed between saving and registering).
        move
            Move the file in instead of copying it: for a file the caller wrote (atomically, synced) in a
            temp folder inside the workspace, which it then gives up. Its bytes are hashed where they lie and
            renamed into place, instead of read, written and synced a second time (an adapted model is
            ~25 MB; the copy was the app's largest write per adaptation). Falls back to copying when the
            rename fails (another file system).
        example_ids
            The examples the model was adapted on; their current class and image are recorded with it.
        """
        src = Path(file)
        if not src.is_file():
            raise FileNotFoundError(f"model file {src} does not exist; save the model before registering it")
        if len(class_names) < 1:
            raise ValueError("a model version needs its class names (in output order)")
        if parent_id is not None:
            self.get(parent_id)
        # Copy under a temp name, hash what was copied, then rename to the content address.
        staging = self._ws.models_dir / f".incoming-{time.time_ns()}.tmp"
        digest = self._stage(src, staging, move)
        if sha256 is not None and digest != sha256.lower():
            staging.unlink(missing_ok=True)
            raise FileIntegrityError(src, sha256.lower(), digest)
        file_name = f"{digest}.pt"  # the content address alone: no suffix a file name could smuggle in
        target = self._ws.models_dir / file_name
        try:
            staging.replace(target)
        except OSError as exc:
            staging.unlink(missing_ok=True)
            raise StorageError(f"could not move model file into {target}: {exc}") from exc
        examples = [self._ws.examples.get(i, include_deleted=True) for i in example_ids]
        with self._ws.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO model_versions (name, algorithm, hyperparameters, backbone, class_names, metrics, "
                "file_name, sha256, parent_id, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    algorithm,
                    json.dumps(dict(hyperparameters or {}), sort_keys=True),
                    backbone,
                    json.dumps([str(c) for c in class_names]),
                    json.dumps(dict(metrics or {}), sort_keys=True),
                    file_name,
                    digest,
                    parent_id,
                    time.time(),
                    who or self._ws.user,
                ),
            )
            version_id = int(cur.lastrowid or 0)
            conn.executemany(
                "INSERT INTO model_examples (model_id, example_id, class_name, image_hash) VALUES (?, ?, ?, ?)",
                [(version_id, e.id, e.class_name, e.image_hash) for e in examples],
            )
            self._ws.audit.record(
                conn,
                "model.register",
                "model",
                version_id,
                {"algorithm": algorithm, "sha256": digest, "parent": parent_id, "examples": len(examples)},
                who=who,
            )
            if activate:
                self._activate(conn, version_id, who)
        return self.get(version_id)

    def _activate(self, conn: Any, version_id: int, who: str | None) -> None:
        previous = conn.execute("SELECT id FROM model_versions WHERE is_active = 1").fetchone()
        conn.execute("UPDATE model_versions SET is_active = 0 WHERE is_active = 1")
        conn.execute("UPDATE model_versions SET is_active = 1 WHERE id = ?", (version_id,))
        self._ws.audit.record(
            conn,
            "model.activate",
            "model",
            version_id,
            {"previous": previous[0] if previous else None},
            who=who,
        )

    def activate(self, version_id: int, *, who: str | None = None) -> ModelVersion:
        """Make ``version_id`` the one the line uses (only one is active at a time)."""
        self.get(version_id)
        with self._ws.transaction() as conn:
            self._activate(conn, version_id, who)
        return self.get(version_id)

    def rollback(self, *, who: str | None = None) -> ModelVersion:
        """Activate the parent of the active version (the version it was adapted from)."""
        current = self.active()
        if current is None:
            raise StorageError("no model version is active, so there is nothing to roll back")
        if current.parent_id is None:
            raise StorageError(f"model version {current.id} has no parent version to roll back to")
        return self.activate(current.parent_id, who=who)

    def active(self) -> ModelVersion | None:
        rows = self._ws.query(f"SELECT {_COLUMNS} FROM model_versions WHERE is_active = 1")
        return _row(rows[0]) if rows else None

    def get(self, version_id: int) -> ModelVersion:
        rows = self._ws.query(f"SELECT {_COLUMNS} FROM model_versions WHERE id = ?", (version_id,))
        if not rows:
            raise RecordNotFoundError(f"no model version {version_id} in workspace {self._ws.root}")
        return _row(rows[0])

    def list(self) -> list[ModelVersion]:
        """All versions, oldest first."""
        return [_row(r) for r in self._ws.query(f"SELECT {_COLUMNS} FROM model_versions ORDER BY id")]

    def training_examples(self, version_id: int) -> list[TrainingExample]:
        """The examples a version was adapted on, with the class and image they had then."""
        rows = self._ws.query(
            "SELECT example_id, class_name, image_hash FROM model_examples WHERE model_id = ? ORDER BY example_id",
            (version_id,),
        )
        return [TrainingExample(*r) for r in rows]

    def record_summary(self, version_id: int, summary: Mapping[str, Any]) -> None:
        """Keep what the check after adapting ``version_id`` found (a JSON object), replacing an earlier one.

        Raises
        ------
        RecordNotFoundError
            There is no such version.
        ValueError
            ``summary`` cannot be written as JSON.
        """
        self.get(version_id)
        try:
            text = json.dumps(dict(summary), sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"the summary of model version {version_id} cannot be stored: {exc}") from exc
        with self._ws.transaction() as conn:
            conn.execute(
                "INSERT INTO model_summaries (model_id, summary, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT(model_id) DO UPDATE SET summary = excluded.summary, created_at = excluded.created_at",
                (version_id, text, time.time()),
            )

    def summary(self, version_id: int) -> Any | None:
        """The summary stored for ``version_id`` as it was written; ``None`` when it has none.

        Raises
        ------
        StorageError
            The stored text is not valid JSON (a damaged row).
        """
        rows = self._ws.query("SELECT summary FROM model_summaries WHERE model_id = ?", (version_id,))
        if not rows:
            return None
        try:
            return json.loads(rows[0][0])
        except (TypeError, json.JSONDecodeError) as exc:
            raise StorageError(
                f"the stored summary of model version {version_id} is not valid JSON: {exc}"
            ) from exc

    def verified_path(self, version: ModelVersion | int) -> Path:
        """The version's file, after checking its SHA-256 against the row.

        Raises
        ------
        FileIntegrityError
            When the file is missing or its content changed (tampered, truncated): it must not be loaded.
        """
        mv = version if isinstance(version, ModelVersion) else self.get(version)
        path = self._ws.models_dir / mv.file_name
        actual = sha256_file(path) if path.is_file() else None
        if actual != mv.sha256:
            raise FileIntegrityError(path, mv.sha256, actual)
        return path

    def load(self, version: ModelVersion | int) -> Any:
        """Verify the file, then load it with ``core.storage.checkpoint.load_checkpoint``."""
        path = self.verified_path(version)
        from core.storage.checkpoint import load_checkpoint  # written by the training side; imported on use

        return load_checkpoint(path)
