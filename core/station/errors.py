"""One-line messages for errors a person can act on (never a traceback, never a camera password)."""

from __future__ import annotations

from core.camera import SourceError
from core.redact import redact_source
from core.storage import StorageError
from core.storage.checkpoint import CheckpointError

USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    StorageError,
    CheckpointError,
    SourceError,
    OSError,
)
"""Errors caused by input or the machine's state (bad source, corrupt file, full disk), not by a bug."""


class StationError(ValueError):
    """The station cannot do what was asked; the message says why in one line."""


def describe_error(exc: BaseException) -> str:
    """One line for a person: the message of a user error, or the type and message of anything else."""
    text = redact_source(" ".join(str(exc).split())) or type(exc).__name__
    return text if isinstance(exc, USER_ERRORS) else f"{type(exc).__name__}: {text}"
