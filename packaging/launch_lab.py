"""Frozen entry point of the headless metainspect-lab command."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from core.cli import main

    sys.exit(main())
