"""Crops of (H, W, 3) uint8 arrays at native resolution, as the evaluation protocol takes them.

Plain numpy, rounded and padded exactly as torchvision's CenterCrop does, so that the decode
workers and the JPEG cut need nothing heavier.
"""

from __future__ import annotations

import numpy as np


def pad_to(array: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad to at least size x size, split as torchvision's CenterCrop splits its padding."""
    height, width = array.shape[:2]
    pad_h, pad_w = max(size - height, 0), max(size - width, 0)
    if not pad_h and not pad_w:
        return array
    return np.pad(array, ((pad_h // 2, (pad_h + 1) // 2), (pad_w // 2, (pad_w + 1) // 2), (0, 0)))


def center_origin(height: int, width: int, size: int) -> tuple[int, int]:
    """(top, left) of the size x size centre crop, rounded as torchvision's CenterCrop rounds."""
    return round((height - size) / 2.0), round((width - size) / 2.0)


def center_crop(array: np.ndarray, size: int) -> np.ndarray:
    """size x size centre crop at native resolution, zero-padded when smaller (torchvision semantics)."""
    array = pad_to(array, size)
    top, left = center_origin(*array.shape[:2], size)
    return array[top : top + size, left : left + size]


def crop_grid(array: np.ndarray, size: int, count: int) -> list[np.ndarray]:
    """``count`` size x size crops spread evenly over the image (row-major), for multi-crop scoring."""
    array = pad_to(array, size)
    height, width = array.shape[:2]
    rows = int(np.floor(np.sqrt(count)))
    cols = int(np.ceil(count / rows))
    tops = np.linspace(0, height - size, rows).round().astype(int)
    lefts = np.linspace(0, width - size, cols).round().astype(int)
    crops = [array[t : t + size, l : l + size] for t in tops for l in lefts]
    return crops[:count]
