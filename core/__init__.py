"""MetaInspect core: the headless engine (capture, imaging, data, meta-learning, inference, storage, lab).

Nothing under ``core`` imports Qt, pyqtgraph or ``app``; an import-linter contract in the tests enforces it.
"""

__version__ = "0.1.0"
