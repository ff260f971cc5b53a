"""Image-folder data sets read from a directory tree or a ``.zip`` archive of one.

A class is a leaf folder of images; nested trees such as Omniglot's ``<split>/<alphabet>/<character>/``
work, and a class is named by its path relative to the data-set root (``"Latin/character01"``). Every image
is decoded once with OpenCV, prepared with the checkpoint's :class:`~core.imaging.Preprocess` and kept in
memory as one float32 tensor per class, so episodes are cheap slices.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from core.imaging.decode import decode_image as decode_checked
from core.imaging.preprocess import Preprocess

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"})
_IGNORED_PARTS = frozenset({"__MACOSX"})


class DataError(ValueError):
    """A data set cannot be used as asked (missing path, empty class, too few images, ...)."""


@dataclass(frozen=True)
class SkippedImage:
    """An image file that could not be decoded and was left out."""

    name: str
    reason: str


@dataclass(frozen=True)
class ImageMember:
    """One image file: its folder (posix, relative to the archive/folder), its name and how to read it."""

    folder: str
    name: str
    read: Callable[[], bytes]


_Member = ImageMember


def content_hash(data: bytes) -> str:
    """SHA-256 (hex) of an image file's bytes: how a model file names the images it was adapted on."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class ImageTree:
    """The image files of a folder or zip, as listed (nothing decoded yet).

    Attributes
    ----------
    source
        The path as given.
    members
        Every image file, sorted by name (for unlabelled data: ``metainspect-lab run``).
    class_names, class_files
        Class folders (named relative to their common root, as :class:`ImageFolderDataset` names them)
        and their image files, sorted by name; empty when the tree has no class folders.
    """

    source: str
    members: list[ImageMember]
    class_names: list[str]
    class_files: list[list[ImageMember]]


def _tree(members: list[ImageMember], folders: set[str], subdir: str | None, source: str) -> ImageTree:
    members, folders, base = _select_subdir(members, folders, subdir, source)
    class_folders = _class_folders(members, folders, base)
    root = _common_root(class_folders)
    by_folder: dict[str, list[ImageMember]] = {f: [] for f in class_folders}
    for m in members:
        if m.folder in by_folder:
            by_folder[m.folder].append(m)
    names = [folder[len(root) + 1 :] if root else folder for folder in class_folders]
    files = [sorted(by_folder[f], key=lambda m: m.name) for f in class_folders]
    return ImageTree(source, sorted(members, key=lambda m: m.name), names, files)


@contextlib.contextmanager
def open_image_tree(path: str | Path, *, subdir: str | None = None) -> Iterator[ImageTree]:
    """List the image files of a folder tree or a ``.zip`` of one; readers work inside the ``with`` block.

    Raises
    ------
    DataError
        Missing path, or neither a folder nor a zip.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"data path not found: {p}")
    if p.is_dir():
        members, folders = _walk_dir(p)
        yield _tree(members, folders, subdir, str(p))
        return
    if not zipfile.is_zipfile(p):
        raise DataError(f"{p} is neither a folder nor a .zip archive of image folders")
    with zipfile.ZipFile(p) as zf:
        members, folders = _walk_zip(zf)
        yield _tree(members, folders, subdir, str(p))


def _is_ignored(parts: Sequence[str]) -> bool:
    return any(p.startswith(".") or p in _IGNORED_PARTS for p in parts)


def _add_with_parents(folders: set[str], folder: str) -> None:
    # plain string work: pathlib per member is ~10x slower on a 30k-file archive
    while folder and folder not in folders:
        folders.add(folder)
        folder = folder.rpartition("/")[0]


def _walk_zip(zf: zipfile.ZipFile) -> tuple[list[_Member], set[str]]:
    members: list[_Member] = []
    folders: set[str] = set()
    for info in zf.infolist():
        name = info.filename.replace("\\", "/").rstrip("/")
        if not name or _is_ignored(name.split("/")):
            continue
        if info.is_dir():
            _add_with_parents(folders, name)
            continue
        folder, _, base = name.rpartition("/")
        _add_with_parents(folders, folder)
        if base[base.rfind(".") :].lower() in IMAGE_SUFFIXES and "." in base:
            members.append(_Member(folder, info.filename, lambda n=info.filename: zf.read(n)))
    return members, folders


def _walk_dir(root: Path) -> tuple[list[_Member], set[str]]:
    members: list[_Member] = []
    folders: set[str] = set()
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if _is_ignored(rel.parts):
            continue
        if path.is_dir():
            folders.add(rel.as_posix())
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            members.append(_Member(rel.parent.as_posix(), rel.as_posix(), path.read_bytes))
    return members, folders


def _select_subdir(
    members: list[_Member], folders: set[str], subdir: str | None, source: str
) -> tuple[list[_Member], set[str], str]:
    """Keep what lies under ``subdir``; also accept it one level down (``background`` in ``omniglot28/``)."""
    if not subdir:
        return members, folders, ""
    want = PurePosixPath(subdir.replace("\\", "/").strip("/")).as_posix()
    candidates = [want, *sorted(f"{top}/{want}" for top in folders if "/" not in top)]
    for cand in candidates:
        if cand in folders:
            prefix = cand + "/"
            kept = [m for m in members if m.folder == cand or m.folder.startswith(prefix)]
            sub = {f for f in folders if f == cand or f.startswith(prefix)}
            return kept, sub, cand
    tops = sorted(f for f in folders if f.count("/") <= 1)[:12]
    raise DataError(f"sub-folder {subdir!r} not found in {source}; folders there include {tops}")


def _class_folders(members: list[_Member], folders: set[str], base: str) -> list[str]:
    """Folders holding images, plus leaf folders without any (empty classes, reported as errors)."""
    # images lying directly in the root (or the selected sub-folder) belong to no class
    with_images = {m.folder for m in members if m.folder not in ("", ".", base)}
    parents = {str(PurePosixPath(f).parent) for f in folders}
    leaves = {f for f in folders if f not in parents and f != base and f != "."}
    return sorted(with_images | leaves)


def _common_root(class_folders: list[str]) -> str:
    """Longest shared folder prefix, never including a class folder itself."""
    if not class_folders:
        return ""
    split = [f.split("/") for f in class_folders]
    common: list[str] = []
    for parts in zip(*[s[:-1] for s in split], strict=False):
        if len(set(parts)) != 1:
            break
        common.append(parts[0])
    return "/".join(common)


def decode_image(data: bytes) -> np.ndarray | None:
    """Encoded image bytes -> OpenCV array (grey, BGR or BGRA; 8 or 16 bit), or ``None`` when unreadable
    (truncated, not an image, a header declaring a huge picture: :func:`core.imaging.decode.decode_image`,
    which says why, for callers that report it)."""
    if not data:
        return None
    try:
        img = decode_checked(data)
    except ValueError:
        return None
    return None if img.size == 0 else img


class ImageFolderDataset:
    """Classes of prepared images held in memory.

    Attributes
    ----------
    class_names : list[str]
        Class folder paths relative to the data-set root, sorted.
    images : list[torch.Tensor]
        One float32 tensor ``(n_i, C, S, S)`` per class, prepared with :attr:`preprocess`.
    image_names : list[list[str]]
        Source file names, in the order of ``images``.
    image_hashes : list[list[str]] | None
        :func:`content_hash` of each source file, in the order of ``images`` (``None`` when built in memory).
    skipped : tuple[SkippedImage, ...]
        Files with an image suffix that could not be decoded (also logged once as a warning).
    """

    def __init__(
        self,
        class_names: Sequence[str],
        images: Sequence[torch.Tensor],
        preprocess: Preprocess,
        *,
        image_names: Sequence[Sequence[str]] | None = None,
        image_hashes: Sequence[Sequence[str]] | None = None,
        skipped: Sequence[SkippedImage] = (),
        source: str = "",
    ) -> None:
        if len(class_names) != len(images):
            raise ValueError(f"{len(class_names)} class names for {len(images)} image tensors")
        if len(set(class_names)) != len(class_names):
            raise ValueError("class names must be unique")
        shape = (preprocess.channels, preprocess.image_size, preprocess.image_size)
        for name, imgs in zip(class_names, images, strict=True):
            if imgs.ndim != 4 or tuple(imgs.shape[1:]) != shape:
                raise ValueError(
                    f"class {name!r}: expected images of shape (n, *{shape}), got {tuple(imgs.shape)}"
                )
            if imgs.shape[0] == 0:
                raise DataError(f"class {name!r} has no readable images; add images or remove the folder")
        self.class_names = list(class_names)
        self.images = list(images)
        self.preprocess = preprocess
        self.image_names = [list(n) for n in image_names] if image_names is not None else None
        self.image_hashes = [list(h) for h in image_hashes] if image_hashes is not None else None
        self.skipped = tuple(skipped)
        self.source = source

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_path(
        cls, path: str | Path, preprocess: Preprocess, *, subdir: str | None = None
    ) -> ImageFolderDataset:
        """Read a folder tree or a ``.zip`` of one.

        Parameters
        ----------
        path
            A directory or a ``.zip`` file.
        preprocess
            How each image becomes a ``(C, S, S)`` float32 array.
        subdir
            Only read below this folder (e.g. ``"omniglot28/background"``, or just ``"background"`` when the
            archive has one top folder).

        Raises
        ------
        DataError
            Missing path, not a folder or zip, no image folders, or a class with no readable images.
        """
        with open_image_tree(path, subdir=subdir) as tree:
            return cls.from_tree(tree, preprocess)

    @classmethod
    def from_arrays(
        cls, examples: Sequence[tuple[np.ndarray, str]], preprocess: Preprocess
    ) -> ImageFolderDataset:
        """Build from in-memory OpenCV images with labels (e.g. a workspace's labelled examples)."""
        by_class: dict[str, list[np.ndarray]] = {}
        for image, label in examples:
            by_class.setdefault(str(label), []).append(image)
        names = sorted(by_class)
        return cls(names, [preprocess.batch(by_class[n]) for n in names], preprocess, source="memory")

    @classmethod
    def from_tree(cls, tree: ImageTree, preprocess: Preprocess) -> ImageFolderDataset:
        """Decode and prepare every image of an open :class:`ImageTree`'s class folders."""
        if not tree.class_names:
            raise DataError(
                f"no image folders found in {tree.source}; expected one sub-folder of images per class"
            )
        tensors: list[torch.Tensor] = []
        file_names: list[list[str]] = []
        hashes: list[list[str]] = []
        skipped: list[SkippedImage] = []
        for name, files in zip(tree.class_names, tree.class_files, strict=True):
            arrays, kept, digests = _decode_all(files, preprocess, skipped)
            if not arrays:
                raise DataError(
                    f"class {name!r} ({tree.source}) has no readable images; add images or remove the folder"
                )
            tensors.append(torch.from_numpy(np.stack(arrays)))
            file_names.append(kept)
            hashes.append(digests)
        if skipped:
            shown = ", ".join(s.name for s in skipped[:5])
            log.warning(
                "skipped %d unreadable image(s) in %s: %s%s",
                len(skipped),
                tree.source,
                shown,
                " ..." if len(skipped) > 5 else "",
            )
        return cls(
            tree.class_names, tensors, preprocess, image_names=file_names, image_hashes=hashes,
            skipped=skipped, source=tree.source,
        )  # fmt: skip

    # ------------------------------------------------------------------ queries
    def __len__(self) -> int:
        return len(self.class_names)

    def __iter__(self) -> Iterator[tuple[str, torch.Tensor]]:
        return iter(zip(self.class_names, self.images, strict=True))

    @property
    def counts(self) -> list[int]:
        """Images per class."""
        return [int(t.shape[0]) for t in self.images]

    @property
    def num_images(self) -> int:
        return sum(self.counts)

    def class_ids_under(self, prefix: str) -> list[int]:
        """Ids of the classes below a sub-folder, e.g. ``"background"`` or ``"evaluation/Tibetan"``."""
        pre = prefix.strip("/") + "/"
        ids = [i for i, n in enumerate(self.class_names) if n.startswith(pre)]
        if not ids:
            tops = sorted({n.split("/")[0] for n in self.class_names})[:12]
            raise DataError(f"no classes under {prefix!r} in {self.source}; top folders: {tops}")
        return ids

    def subset(self, class_ids: Sequence[int]) -> ImageFolderDataset:
        """A data set of only these classes (tensors are shared, not copied)."""
        ids = list(class_ids)
        names, hashes = self.image_names, self.image_hashes
        return ImageFolderDataset(
            [self.class_names[i] for i in ids],
            [self.images[i] for i in ids],
            self.preprocess,
            image_names=[names[i] for i in ids] if names is not None else None,
            image_hashes=[hashes[i] for i in ids] if hashes is not None else None,
            source=self.source,
        )

    def __repr__(self) -> str:
        return (
            f"ImageFolderDataset({self.source!r}, classes={len(self)}, images={self.num_images}, "
            f"skipped={len(self.skipped)})"
        )


def _decode_all(
    members: list[_Member], preprocess: Preprocess, skipped: list[SkippedImage]
) -> tuple[list[np.ndarray], list[str], list[str]]:
    arrays: list[np.ndarray] = []
    kept: list[str] = []
    digests: list[str] = []
    for m in members:
        try:
            data = m.read()
            img = decode_image(data)
        except (OSError, zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
            # A damaged zip entry (CRC, broken deflate stream, cut off, encrypted, unknown compression) is a
            # broken image like any other: left out and reported, not a traceback.
            skipped.append(SkippedImage(m.name, f"cannot read: {type(exc).__name__}: {exc}"))
            continue
        if img is None:
            skipped.append(SkippedImage(m.name, "not a decodable image"))
            continue
        try:
            arrays.append(preprocess.prepare(img))
        except ValueError as exc:
            skipped.append(SkippedImage(m.name, str(exc)))
            continue
        kept.append(m.name)
        digests.append(content_hash(data))
    return arrays, kept, digests


@dataclass(frozen=True)
class RawImageFolders:
    """Image-folder tree read without resizing: each class's images as decoded, at native resolution.

    Attributes
    ----------
    class_names : list[str]
        Class folder paths relative to the data-set root, sorted.
    images : list[list[np.ndarray]]
        OpenCV images (grey ``(H, W)`` or BGR ``(H, W, 3)``), sizes may differ, per class.
    image_names : list[list[str]]
        Source file names, in the order of ``images``.
    skipped : tuple[SkippedImage, ...]
        Files that could not be decoded.
    source : str
        The path that was read.
    """

    class_names: list[str]
    images: list[list[np.ndarray]]
    image_names: list[list[str]]
    skipped: tuple[SkippedImage, ...]
    source: str

    def index(self, class_name: str) -> int:
        """Position of ``class_name``; a clear error listing the classes when it is absent."""
        if class_name not in self.class_names:
            raise DataError(
                f"class {class_name!r} not found in {self.source}; classes: {', '.join(self.class_names)}"
            )
        return self.class_names.index(class_name)


def read_image_folders(path: str | Path, *, subdir: str | None = None) -> RawImageFolders:
    """Read a folder tree or ``.zip`` of class folders at native resolution (no :class:`Preprocess`).

    For scorers that look at parts at their own size (the anomaly scorer: a small crack vanishes when a
    250x620 image is squashed to 224x224). Unreadable files are left out and listed in ``skipped``.

    Raises
    ------
    DataError
        Missing path, not a folder or zip, no image folders, or a class with no readable images.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"data path not found: {p}")
    if p.is_dir():
        members, folders = _walk_dir(p)
        return _build_raw(members, folders, subdir, str(p))
    if not zipfile.is_zipfile(p):
        raise DataError(f"{p} is neither a folder nor a .zip archive of image folders")
    with zipfile.ZipFile(p) as zf:
        members, folders = _walk_zip(zf)
        return _build_raw(members, folders, subdir, str(p))


def _build_raw(members: list[_Member], folders: set[str], subdir: str | None, source: str) -> RawImageFolders:
    members, folders, base = _select_subdir(members, folders, subdir, source)
    class_folders = _class_folders(members, folders, base)
    if not class_folders:
        raise DataError(
            f"no image folders found in {source}{f' under {base!r}' if base else ''}; "
            "expected one sub-folder of images per class"
        )
    root = _common_root(class_folders)
    by_folder: dict[str, list[_Member]] = {f: [] for f in class_folders}
    for m in members:
        if m.folder in by_folder:
            by_folder[m.folder].append(m)
    names: list[str] = []
    images: list[list[np.ndarray]] = []
    file_names: list[list[str]] = []
    skipped: list[SkippedImage] = []
    for folder in class_folders:
        name = folder[len(root) + 1 :] if root else folder
        kept_images: list[np.ndarray] = []
        kept: list[str] = []
        for m in sorted(by_folder[folder], key=lambda m: m.name):
            try:
                img = decode_image(m.read())
            except (
                OSError,
                zipfile.BadZipFile,
                zlib.error,
                EOFError,
                NotImplementedError,
                RuntimeError,
            ) as exc:
                skipped.append(SkippedImage(m.name, f"cannot read: {type(exc).__name__}: {exc}"))
                continue
            if img is None:
                skipped.append(SkippedImage(m.name, "not a decodable image"))
                continue
            kept_images.append(img)
            kept.append(m.name)
        if not kept_images:
            raise DataError(
                f"class {name!r} ({source}: {folder}/) has no readable images; add images or remove the folder"
            )
        names.append(name)
        images.append(kept_images)
        file_names.append(kept)
    if skipped:
        log.warning("skipped %d unreadable image(s) in %s", len(skipped), source)
    return RawImageFolders(names, images, file_names, tuple(skipped), source)
