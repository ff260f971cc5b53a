"""Frozen-app entry point of both programs: PyInstaller starts here (see metainspect.spec).

The bundle holds one real executable, ``metainspect``, and one compiled Python archive. It runs the headless lab
command (``core.cli``) when it is called as ``metainspect-lab`` (on Linux a symbolic link beside it; on Windows a
second console executable built from the same Analysis) or with ``--lab`` as its first argument, and the GUI
(``app.main``) otherwise. The lab path never imports Qt.
"""

import multiprocessing
import os
import sys
import warnings

# The bundle leaves out torch's Python sources (see metainspect.spec); TorchScript then says, once per overload
# at import, that it cannot read them. Nothing here scripts, so that is noise.
warnings.filterwarnings("ignore", message="Unable to retrieve source for @torch.jit._overload")

LAB_NAME = "metainspect-lab"


def program_name(path: str) -> str:
    """``metainspect-lab`` for ``/opt/x/metainspect-lab``, ``C:\\x\\metainspect-lab.exe``, ``METAINSPECT-LAB.EXE``."""
    name = os.path.basename(path.replace("\\", "/")).lower()
    return name[:-4] if name.endswith(".exe") else name


def wants_lab(argv: list[str], executable: str) -> bool:
    """The lab command when called by that name (argv[0] keeps a symlink's name) or as ``metainspect --lab``."""
    called_as = {program_name(argv[0] if argv else ""), program_name(executable)}
    return LAB_NAME in called_as or argv[1:2] == ["--lab"]


if __name__ == "__main__":
    # torch and the data loaders may start worker processes; a frozen Windows build needs this first.
    multiprocessing.freeze_support()
    if wants_lab(sys.argv, sys.executable):
        if sys.argv[1:2] == ["--lab"]:
            del sys.argv[1]
        from core.cli import main as lab_main

        sys.exit(lab_main())
    from app.main import main

    sys.exit(main())
