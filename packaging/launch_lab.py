"""Frozen entry point of the headless metainspect-lab command."""

import multiprocessing
import sys
import warnings

# The bundle leaves out torch's Python sources (see metainspect.spec); TorchScript then says, once per overload
# at import, that it cannot read them. Nothing here scripts, so that is noise.
warnings.filterwarnings("ignore", message="Unable to retrieve source for @torch.jit._overload")

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from core.cli import main

    sys.exit(main())
