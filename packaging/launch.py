"""Frozen-app entry point: PyInstaller starts here (see metainspect.spec)."""

import multiprocessing
import sys
import warnings

# The bundle leaves out torch's Python sources (see metainspect.spec); TorchScript then says, once per overload
# at import, that it cannot read them. Nothing here scripts, so that is noise.
warnings.filterwarnings("ignore", message="Unable to retrieve source for @torch.jit._overload")

if __name__ == "__main__":
    # torch and the data loaders may start worker processes; a frozen Windows build needs this first.
    multiprocessing.freeze_support()
    from app.main import main

    sys.exit(main())
