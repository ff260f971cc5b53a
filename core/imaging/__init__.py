"""Image preparation shared by capture, training and inference (numpy/OpenCV only)."""

from core.imaging.preprocess import Preprocess, to_channels, to_unit_float

__all__ = ["Preprocess", "to_channels", "to_unit_float"]
