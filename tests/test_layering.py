"""The layering rule: core is headless and importable without Qt."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.conftest import REPO_ROOT


def test_import_linter_contract_holds() -> None:
    lint = REPO_ROOT / ".venv" / "bin" / "lint-imports"
    exe = str(lint) if lint.exists() else "lint-imports"
    result = subprocess.run([exe], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "core is headless" in result.stdout


def test_core_cli_imports_with_qt_blocked() -> None:
    """Importing core (every subpackage and the CLI) works when PySide6 and pyqtgraph cannot be imported."""
    script = textwrap.dedent(
        """
        import importlib, pkgutil, sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {"PySide6", "pyqtgraph", "shiboken6", "superqt", "app"}:
                    raise ImportError(f"blocked: {name}")
                return None

        sys.meta_path.insert(0, Block())
        import core
        for mod in pkgutil.walk_packages(core.__path__, "core."):
            importlib.import_module(mod.name)
        import core.cli
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")
