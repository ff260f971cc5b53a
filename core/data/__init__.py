"""Image-folder and zip data sets, the episodic N-way K-shot samplers (one data set, or a pool of sources)
and class-disjoint splits."""

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
from core.data.pooled import PooledEpisodeSampler, source_groups

__all__ = [
    "IMAGE_SUFFIXES",
    "Augment",
    "DataError",
    "EpisodeSampler",
    "ImageFolderDataset",
    "ImageMember",
    "ImageTree",
    "PooledEpisodeSampler",
    "SkippedImage",
    "content_hash",
    "decode_image",
    "open_image_tree",
    "source_groups",
    "split_by_folder",
    "split_classes",
]
