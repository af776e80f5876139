"""Finding image files in labelled dataset folders (train and bench; scan has its own walker)."""

from __future__ import annotations

import os
from pathlib import Path

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".jpe", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm", ".pgm", ".pbm", ".jfif"}
)


def is_image_name(path: str | os.PathLike[str]) -> bool:
    return os.path.splitext(os.fsdecode(path))[1].lower() in IMAGE_EXTENSIONS


def list_images(folder: str | os.PathLike[str], recursive: bool = True) -> list[Path]:
    """Image files under ``folder`` by extension, sorted for reproducibility; symlinked folders are not entered."""
    folder = Path(folder)
    found: list[Path] = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs.sort()
        found.extend(Path(root) / name for name in sorted(files) if is_image_name(name))
        if not recursive:
            break
    return found
