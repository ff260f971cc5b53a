"""Image-folder and zip data sets, the episodic N-way K-shot sampler and class-disjoint splits."""

from core.data.episodes import Augment, EpisodeSampler, split_by_folder, split_classes
from core.data.folder import IMAGE_SUFFIXES, DataError, ImageFolderDataset, SkippedImage, decode_image

__all__ = [
    "IMAGE_SUFFIXES",
    "Augment",
    "DataError",
    "EpisodeSampler",
    "ImageFolderDataset",
    "SkippedImage",
    "decode_image",
    "split_by_folder",
    "split_classes",
]
