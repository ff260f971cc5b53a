"""Few-shot backbones with a linear head, created by name.

>>> from core.models import create_model, list_models
>>> model = create_model("conv4", in_channels=1, n_way=5, image_size=28)
"""

# Explicit imports register every built-in model: a frozen bundle (PyInstaller) sees exactly these modules,
# so it knows the same names as the source tree (a module found by scanning the folder at run time is not).
from core.models import conv4, efficientnet_lite, fused, resnet12, surface, texture  # noqa: F401
from core.models.base import NORMS, FewShotModel
from core.models.registry import create_model, list_models, register_model

__all__ = ["NORMS", "FewShotModel", "create_model", "list_models", "register_model"]
