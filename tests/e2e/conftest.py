from __future__ import annotations

from tests.app.conftest import _isolated_qsettings, _refcount_guard  # noqa: F401  (as in the app tests)
