"""Small real image trees and zips written with OpenCV, shared by the data, training and CLI tests."""

from __future__ import annotations

import zipfile
from pathlib import Path

import cv2
import numpy as np


def write_image_tree(
    root: Path,
    classes: dict[str, int],
    *,
    size: int = 28,
    channels: int = 1,
    seed: int = 0,
    ext: str = ".png",
) -> Path:
    """Write ``count`` images per class folder (``"a/b"`` nests); each class is a distinct noisy pattern."""
    rng = np.random.default_rng(seed)
    for name, count in classes.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        shape = (size, size) if channels == 1 else (size, size, 3)
        pattern = rng.integers(0, 256, size=shape).astype(np.float32)
        for i in range(count):
            noise = rng.normal(0.0, 20.0, size=shape)
            img = np.clip(pattern + noise, 0, 255).astype(np.uint8)
            assert cv2.imwrite(str(folder / f"img{i:03d}{ext}"), img)
    return root


def zip_tree(root: Path, zip_path: Path, *, prefix: str = "") -> Path:
    """Pack every file below ``root`` into ``zip_path`` (under ``prefix/`` when given)."""
    with zipfile.ZipFile(zip_path, "w") as zf:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                arc = path.relative_to(root).as_posix()
                zf.write(path, f"{prefix}/{arc}" if prefix else arc)
    return zip_path
