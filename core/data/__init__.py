"""Image-folder and zip data sets, the episodic N-way K-shot sampler and class-disjoint splits."""

from core.data.episodes import Augment, EpisodeSampler, split_by_folder, split_classes
from core.data.folder import (
    IMAGE_SUFFIXES,
    DataError,
    ImageFolderDataset,
    ImageMember,
    ImageTree,
    SkippedImage,
    content_hash,
    decode_image,
    open_image_tree,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "Augment",
    "DataError",
    "EpisodeSampler",
    "ImageFolderDataset",
    "ImageMember",
    "ImageTree",
    "SkippedImage",
    "content_hash",
    "decode_image",
    "open_image_tree",
    "split_by_folder",
    "split_classes",
]
