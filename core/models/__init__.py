"""Few-shot backbones with a linear head, created by name.

>>> from core.models import create_model, list_models
>>> model = create_model("conv4", in_channels=1, n_way=5, image_size=28)
"""

import importlib
import pkgutil

from core.models import conv4, resnet12  # noqa: F401  (importing registers the built-in models)
from core.models.base import NORMS, FewShotModel
from core.models.registry import create_model, list_models, register_model

# Backbones contributed in their own modules (core/models/texture*.py, surface.py) register themselves on import.
for _info in pkgutil.iter_modules(__path__):
    if _info.name.startswith(("texture", "surface")):
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["NORMS", "FewShotModel", "create_model", "list_models", "register_model"]
