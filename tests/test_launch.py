"""The bundle's one entry point (packaging/launch.py) picks the lab CLI or the GUI by how it was called."""

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "launch", Path(__file__).parents[1] / "packaging" / "launch.py"
)
launch = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(launch)

GUI_EXE = "/opt/metainspect/metainspect"


@pytest.mark.parametrize(
    ("argv", "executable", "lab"),
    [
        (["/opt/metainspect/metainspect"], GUI_EXE, False),
        (["metainspect", "--self-test"], GUI_EXE, False),
        (["/home/u/.local/bin/metainspect-lab", "list"], GUI_EXE, True),  # a symlink: argv[0] keeps its name
        (["metainspect-lab"], GUI_EXE, True),
        (["metainspect", "--lab", "list"], GUI_EXE, True),
        (["metainspect", "list", "--lab"], GUI_EXE, False),  # only as the first argument
        ([r"C:\Program Files\MetaInspect\metainspect-lab.exe", "list"], r"C:\x\metainspect-lab.exe", True),
        (["metainspect-lab"], r"C:\x\METAINSPECT-LAB.EXE", True),
        ([r"C:\x\metainspect.exe"], r"C:\x\metainspect.exe", False),
        ([], GUI_EXE, False),
    ],
)
def test_dispatch(argv, executable, lab):
    assert launch.wants_lab(argv, executable) is lab
