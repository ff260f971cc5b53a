"""Errors raised by the workspace: each names the file or folder involved and what the user can do."""

from __future__ import annotations

from pathlib import Path


class StorageError(Exception):
    """Base class of every workspace error; catch this to show the message to the user."""


class WorkspaceLockedError(StorageError):
    """Another MetaInspect instance has the workspace open for writing."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            f"workspace {path.parent} is open in another MetaInspect instance (lock file {path}); "
            "close that instance or open another workspace folder"
        )
        self.path = path


class WorkspaceCorruptError(StorageError):
    """The database file is damaged or is not a MetaInspect workspace; it is never overwritten."""

    def __init__(self, path: Path, cause: str) -> None:
        super().__init__(
            f"workspace database {path} cannot be used: {cause}. The file was left untouched; restore it "
            "from a backup or an exported archive, or open another workspace folder"
        )
        self.path = path
        self.cause = cause


class SchemaVersionError(StorageError):
    """The database was written by a newer MetaInspect; it is refused rather than downgraded."""

    def __init__(self, path: Path, found: int, supported: int) -> None:
        super().__init__(
            f"workspace database {path} has schema version {found}, but this MetaInspect understands "
            f"versions up to {supported}; update MetaInspect to open it (the file was left untouched)"
        )
        self.path = path
        self.found = found
        self.supported = supported


class StorageWriteError(StorageError):
    """A write failed (disk full, read-only folder, permissions); nothing half-written was left behind."""

    def __init__(self, path: Path, cause: BaseException | str, hint: str | None = None) -> None:
        reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else str(cause)
        hint = hint or (
            "Nothing was saved for this change; free disk space or check that the folder is writable, "
            "then try again"
        )
        super().__init__(f"could not write {path}: {reason}. {hint}")
        self.path = path
        self.cause = cause


class FileIntegrityError(StorageError):
    """A stored image or model file is missing, truncated or changed: its SHA-256 differs from its row."""

    def __init__(self, path: Path, expected: str, actual: str | None) -> None:
        found = "the file is missing" if actual is None else f"its SHA-256 is {actual}"
        super().__init__(
            f"refusing {path}: the workspace recorded SHA-256 {expected}, but {found}. The file was changed "
            "or damaged outside MetaInspect; restore it from an exported archive or choose another one"
        )
        self.path = path
        self.expected = expected
        self.actual = actual


class RecordNotFoundError(StorageError, LookupError):
    """A class, example, model version or inspection id that the workspace does not hold."""
