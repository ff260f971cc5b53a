"""Frozen-app entry point: PyInstaller starts here (see metainspect.spec)."""

import multiprocessing
import sys

if __name__ == "__main__":
    # torch and the data loaders may start worker processes; a frozen Windows build needs this first.
    multiprocessing.freeze_support()
    from app.main import main

    sys.exit(main())
