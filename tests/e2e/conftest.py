from __future__ import annotations

from tests.app.conftest import (  # noqa: F401  (as in the app tests)
    _isolated_qsettings,
    _no_modal_quit_question,
    _refcount_guard,
)
