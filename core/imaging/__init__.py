"""Image preparation shared by capture, training and inference (numpy/OpenCV only)."""

from core.imaging.augment import augment, augment_support, standardise
from core.imaging.preprocess import Preprocess, to_channels, to_unit_float
from core.imaging.roi import Roi, crop, resize_to, square_crop

__all__ = [
    "Preprocess",
    "Roi",
    "augment",
    "augment_support",
    "crop",
    "resize_to",
    "square_crop",
    "standardise",
    "to_channels",
    "to_unit_float",
]
