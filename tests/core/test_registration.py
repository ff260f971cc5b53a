"""A frozen bundle knows the same learners, models and camera sources as the source tree.

PyInstaller bundles the modules that the package imports name explicitly; a module that only registers
itself when something scans the folder at run time is missing from the bundle (issue 10). So the names
registered by importing the packages alone must equal those registered after importing every module found
on disk. (packaging/build.sh compares the frozen ``metainspect-lab list`` with the source one as well.)
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.conftest import REPO_ROOT

SCRIPT = textwrap.dedent(
    """
    import importlib, json, pkgutil
    import core.camera, core.meta, core.models

    def names():
        return {
            "learners": core.meta.list_learners(),
            "models": core.models.list_models(),
            "sources": core.camera.list_sources(),
        }

    explicit = names()
    for package in (core.camera, core.meta, core.models):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            importlib.import_module(info.name)
    print(json.dumps({"explicit": explicit, "scanned": names()}))
    """
)


def test_package_imports_register_every_name_a_folder_scan_finds() -> None:
    # A fresh interpreter: in the test process other tests have imported modules already.
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout
    result = json.loads(out)
    assert result["explicit"] == result["scanned"]
    assert "protonet" in result["explicit"]["learners"]
    assert "synthetic" in result["explicit"]["sources"]
