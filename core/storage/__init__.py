"""core.storage: the workspace (SQLite + content-addressed image and model files).

Open one with :meth:`Workspace.open`; its attributes ``classes``, ``examples``, ``models``, ``inspections``
and ``audit`` are the table APIs. ``export_archive``/``import_archive`` move a workspace (or one model
version with its examples) through a single zip. ``checkpoint`` (model files) is its own module.
"""

from core.storage.archive import export_archive
from core.storage.archive_checks import ArchiveError, ArchiveLimits
from core.storage.archive_import import ImportReport, import_archive
from core.storage.errors import (
    FileIntegrityError,
    RecordNotFoundError,
    SchemaVersionError,
    StorageError,
    StorageWriteError,
    WorkspaceCorruptError,
    WorkspaceLockedError,
)
from core.storage.inspections import BufferedInspectionWriter
from core.storage.records import (
    AuditEntry,
    ClassRecord,
    Example,
    Inspection,
    LabelChange,
    ModelVersion,
    NewInspection,
    RecoveryReport,
    TrainingExample,
)
from core.storage.workspace import Workspace, default_workspace_path

__all__ = [
    "ArchiveError",
    "ArchiveLimits",
    "AuditEntry",
    "BufferedInspectionWriter",
    "ClassRecord",
    "Example",
    "FileIntegrityError",
    "ImportReport",
    "Inspection",
    "LabelChange",
    "ModelVersion",
    "NewInspection",
    "RecordNotFoundError",
    "RecoveryReport",
    "SchemaVersionError",
    "StorageError",
    "StorageWriteError",
    "TrainingExample",
    "Workspace",
    "WorkspaceCorruptError",
    "WorkspaceLockedError",
    "default_workspace_path",
    "export_archive",
    "import_archive",
]
