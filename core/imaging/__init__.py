"""Image preparation shared by capture, training and inference (numpy/OpenCV only)."""

from core.imaging.preprocess import Preprocess, to_channels, to_unit_float
from core.imaging.roi import Roi, crop, resize_to, square_crop

__all__ = ["Preprocess", "Roi", "crop", "resize_to", "square_crop", "to_channels", "to_unit_float"]
