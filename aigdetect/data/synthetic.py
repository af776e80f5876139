"""A small, seeded real/fake image set for tests, demos and ablations (no download needed).

Real images are crops of scikit-learn's two bundled photographs (``load_sample_images``), rescaled
by a random factor with an antialiasing filter, and 1/f^a "pink noise" textures, whose power
spectrum follows natural images. Fake images are drawn from the very same content distribution and
then passed through the last stage of a typical generator: the picture is made at half resolution
and upsampled by a stride-2 transposed convolution. Its 3x3 kernel covers the four output phases
unequally, which leaves the period-2 checkerboard that Odena et al. (2016) describe and that
CNNDetection-style detectors pick up. One kernel stands for one generator. Only this last stage
(its loss of the finest detail and its checkerboard) separates the classes, so a detector that
learns has learned to see generator traces, not content.

Files are written as PNG (lossless), so the artifact reaches the detector intact.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.signal import convolve2d

from ..errors import ConfigError
from .config import GENIMAGE_FOLDERS, WANG_FOLDERS

CONTENT_KINDS = ("photo", "texture")
SYNTHETIC_LAYOUTS = ("wang2020", "plain", "genimage", "folders")
_SPLIT_IDS = {"train": 0, "val": 1}
_BILINEAR = np.array([[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]])


@functools.lru_cache(maxsize=1)
def _photos() -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_sample_images

    return tuple(np.asarray(image, dtype=np.uint8) for image in load_sample_images().images)


def photo_crop(size: int, rng: np.random.Generator) -> np.ndarray:
    """A size x size crop of a bundled photograph, taken from a window 1 to 2.5 times larger."""
    photo = _photos()[int(rng.integers(len(_photos())))]
    height, width = photo.shape[:2]
    window = int(min(round(size * rng.uniform(1.0, 2.5)), height, width))
    top = int(rng.integers(0, height - window + 1))
    left = int(rng.integers(0, width - window + 1))
    crop = Image.fromarray(photo[top : top + window, left : left + window])
    if window != size:
        crop = crop.resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(crop, dtype=np.uint8)


def pink_texture(size: int, rng: np.random.Generator) -> np.ndarray:
    """A coloured 1/f^a noise texture (a in [1, 2]); a shared field gives luminance, weaker
    per-channel fields give colour variation."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    radius = np.sqrt(fx**2 + fy**2)
    radius[0, 0] = 1.0 / size
    amplitude = radius ** -rng.uniform(1.0, 2.0)

    def field() -> np.ndarray:
        phase = rng.uniform(0, 2 * np.pi, amplitude.shape)
        values = np.fft.irfft2(amplitude * np.exp(1j * phase), s=(size, size))
        return (values - values.mean()) / (values.std() + 1e-12)

    shared = field()
    base = rng.uniform(60, 190, 3)
    contrast = rng.uniform(20, 50)
    channels = [base[c] + contrast * (shared + 0.35 * field()) for c in range(3)]
    return np.clip(np.rint(np.stack(channels, axis=-1)), 0, 255).astype(np.uint8)


def content(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "photo":
        return photo_crop(size, rng)
    if kind == "texture":
        return pink_texture(size, rng)
    raise ConfigError(f"unknown synthetic content kind {kind!r}; choose one of {', '.join(CONTENT_KINDS)}")


def generator_kernel(strength: float = 0.3, seed: int = 0) -> np.ndarray:
    """The 3x3 kernel of one simulated generator's stride-2 transposed convolution.

    It is the bilinear kernel, which covers the four output phases equally, with each phase's taps
    scaled by its own gain; every gain departs from 1 by ``strength / 2`` to ``strength``, with a
    seeded sign. One kernel stands for one generator, the way all of ProGAN's images share its weights.
    """
    rng = np.random.default_rng([seed, 0x6E4])
    gains = 1.0 + strength * rng.uniform(0.5, 1.0, 4) * rng.choice([-1.0, 1.0], 4)
    kernel = _BILINEAR.copy()
    kernel[1, 1] *= gains[0]
    kernel[1, ::2] *= gains[1]
    kernel[::2, 1] *= gains[2]
    kernel[::2, ::2] *= gains[3]
    return kernel


def transposed_conv_upsample(array: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Halve the resolution (2x2 means), then upsample x2 by zero insertion and ``kernel``.

    With an unbalanced ``kernel`` the output is smooth content times a period-2 pattern of gains.
    """
    height, width = array.shape[:2]
    if height % 2 or width % 2:
        raise ConfigError(f"the synthetic generator needs even image sides, got {width}x{height}")
    low = array.astype(np.float64).reshape(height // 2, 2, width // 2, 2, 3).mean(axis=(1, 3))
    # One low-resolution pixel of edge padding keeps the borders free of a darkened half-phase.
    low = np.pad(low, ((1, 1), (1, 1), (0, 0)), mode="edge")
    out = np.empty((height, width, 3))
    for channel in range(3):
        sparse = np.zeros((height + 4, width + 4))
        sparse[::2, ::2] = low[:, :, channel]
        out[:, :, channel] = convolve2d(sparse, kernel, mode="same")[2 : 2 + height, 2 : 2 + width]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def synthetic_image(label: int, kind: str, size: int, rng: np.random.Generator, kernel: np.ndarray) -> np.ndarray:
    """One image: content of ``kind``; for label 1 (fake) passed through the generator's upsampling."""
    array = content(kind, size, rng)
    return transposed_conv_upsample(array, kernel) if label == 1 else array


def synthetic_images(
    count: int,
    label: int,
    size: int = 64,
    seed: int = 0,
    *,
    kinds: tuple[str, ...] = CONTENT_KINDS,
    strength: float = 0.3,
    generator_seed: int = 0,
) -> list[np.ndarray]:
    """``count`` images of one class in memory, cycling through ``kinds``; seeded per image."""
    kernel = generator_kernel(strength, generator_seed)
    return [
        synthetic_image(label, kinds[i % len(kinds)], size, np.random.default_rng([seed, 9, label, i]), kernel)
        for i in range(count)
    ]


@dataclass(frozen=True)
class SyntheticFile:
    path: Path
    label: int
    split: str
    category: str


@dataclass
class SyntheticDataset:
    """What ``write_synthetic_dataset`` wrote: the root, its layout, and every file with its label."""

    root: Path
    layout: str
    files: list[SyntheticFile]

    def paths(self, split: str = "train") -> list[Path]:
        return [f.path for f in self.files if f.split == split]

    def labels(self, split: str = "train") -> np.ndarray:
        return np.array([f.label for f in self.files if f.split == split], dtype=np.int64)


def _folder(root: Path, layout: str, split: str, category: str, label: int) -> Path:
    if layout == "wang2020":
        return root / split / category / WANG_FOLDERS[label]
    if layout == "genimage":
        return root / split / GENIMAGE_FOLDERS[label]
    if layout == "plain":
        return root / WANG_FOLDERS[label]
    return root / ("fake" if label else "real")


def write_synthetic_dataset(
    root: str | os.PathLike[str],
    layout: str = "wang2020",
    per_class: int = 32,
    size: int = 64,
    seed: int = 0,
    val_per_class: int | None = None,
    strength: float = 0.3,
    generator_seed: int = 0,
) -> SyntheticDataset:
    """Write a seeded real/fake PNG set in one of the training layouts.

    Args:
        root: folder to write into (created).
        layout: ``wang2020`` (``train``/``val`` splits, categories ``photo`` and ``texture``),
            ``genimage`` (``train``/``val`` with ``ai``/``nature``), ``plain`` (``0_real``/``1_fake``,
            no split) or ``folders`` (``real``/``fake``, for ``--real``/``--fake``).
        per_class: training images per class.
        size: side of the square images (even).
        seed: the same seed writes the same pixels.
        val_per_class: validation images per class for layouts with a val split (default per_class // 4, at least 2).
        strength: how far each upsampling phase's gain departs from 1 (the artifact's contrast).
        generator_seed: which simulated generator makes the fakes; sets written with other ``seed``
            values but the same generator are held-out images of the same task.

    Returns:
        Every written file with its label, split and category.
    """
    if layout not in SYNTHETIC_LAYOUTS:
        raise ConfigError(f"unknown layout {layout!r}; choose one of {', '.join(SYNTHETIC_LAYOUTS)}")
    if per_class < 1 or size < 2 or size % 2:
        raise ConfigError("per_class must be >= 1 and size an even number >= 2")
    root = Path(root)
    splits = {"train": per_class}
    if layout in ("wang2020", "genimage"):
        splits["val"] = val_per_class if val_per_class is not None else max(2, per_class // 4)
    kernel = generator_kernel(strength, generator_seed)
    files: list[SyntheticFile] = []
    for split, count in splits.items():
        for label in (0, 1):
            for i in range(count):
                kind = CONTENT_KINDS[i % len(CONTENT_KINDS)]
                rng = np.random.default_rng([seed, _SPLIT_IDS[split], label, i])
                folder = _folder(root, layout, split, kind, label)
                folder.mkdir(parents=True, exist_ok=True)
                path = folder / f"{kind}_{i:05d}.png"
                Image.fromarray(synthetic_image(label, kind, size, rng, kernel)).save(path)
                files.append(SyntheticFile(path, label, split, kind if layout == "wang2020" else ""))
    return SyntheticDataset(root=root, layout=layout, files=files)
