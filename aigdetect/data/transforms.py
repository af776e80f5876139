"""Pixel transforms: evaluation crop, training augmentation, and the robustness perturbations.

Everything works on (H, W, 3) uint8 arrays and crops before converting to float, which is both the
cheapest order and bit-identical to torchvision's CenterCrop -> ToTensor -> Normalize on PIL images.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter

from .config import AugmentConfig
from .crops import center_crop, pad_to
from .preprocess import PreprocessConfig


def to_chw(array: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> uint8 (3, H, W): what decode workers hand over, a quarter of the bytes of
    normalised floats, so that normalisation can run where the model runs."""
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).contiguous()


_STATS: dict[tuple[torch.device, tuple[float, ...], tuple[float, ...]], tuple[torch.Tensor, torch.Tensor]] = {}


def _mean_std(device: torch.device, config: PreprocessConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The config's mean and std on ``device``, copied there once: a blocking copy per batch would
    make the host wait for the GPU to finish the previous batch before it could queue the next one."""
    key = (device, config.mean, config.std)
    if key not in _STATS:
        _STATS[key] = (torch.tensor(config.mean).view(3, 1, 1).to(device), torch.tensor(config.std).view(3, 1, 1).to(device))
    return _STATS[key]


def normalize_pixels(pixels: torch.Tensor, config: PreprocessConfig) -> torch.Tensor:
    """uint8 (..., 3, H, W) on any device -> float32 with the config's mean and std, in
    ToTensor/Normalize's op order; elementwise IEEE operations, so a batch on the GPU equals
    ``normalize`` bit for bit."""
    mean, std = _mean_std(pixels.device, config)
    return pixels.float().div_(255).sub_(mean).div_(std)


def normalize(array: np.ndarray, config: PreprocessConfig) -> torch.Tensor:
    """uint8 (H, W, 3) -> float32 (3, H, W) with the config's mean and std."""
    return normalize_pixels(to_chw(array), config)


def eval_tensor(array: np.ndarray, config: PreprocessConfig) -> torch.Tensor:
    """The evaluation protocol: centre crop at native resolution, then the config's normalisation."""
    return normalize(center_crop(array, config.size), config)


def gaussian_blur(array: np.ndarray, sigma: float) -> np.ndarray:
    """Per-channel scipy Gaussian filter written back into uint8, exactly as UnivFD's validate.py does."""
    out = np.array(array, dtype=np.uint8, copy=True)
    for channel in range(3):
        gaussian_filter(out[:, :, channel], output=out[:, :, channel], sigma=sigma)
    return out


def jpeg(array: np.ndarray, quality: int) -> np.ndarray:
    """Encode with Pillow's JPEG encoder at ``quality`` and decode again (UnivFD's png2jpg)."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="jpeg", quality=int(quality))
    buffer.seek(0)
    with Image.open(buffer) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def png_roundtrip(array: np.ndarray) -> np.ndarray:
    """Lossless PNG re-encode; pixels are unchanged, only the container format is equalised."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="png")
    buffer.seek(0)
    with Image.open(buffer) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def random_crop(array: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    array = pad_to(array, size)
    height, width = array.shape[:2]
    top = int(rng.integers(0, height - size + 1))
    left = int(rng.integers(0, width - size + 1))
    return array[top : top + size, left : left + size]


def train_view(array: np.ndarray, size: int, config: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Augment one training image: blur and JPEG on the full image, then random crop and flip."""
    if config.blur_prob and rng.random() < config.blur_prob:
        array = gaussian_blur(array, float(rng.uniform(*config.blur_sigma)))
    if config.jpeg_prob and rng.random() < config.jpeg_prob:
        array = jpeg(array, int(rng.integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1)))
    array = random_crop(array, size, rng)
    if config.flip and rng.random() < 0.5:
        array = array[:, ::-1]
    return array


PEERS_LOAD_SIZE, PEERS_CROP_SIZE = 256, 224
"""CNNDetection and UnivFD resize to 256 (the shorter side) before their 224 crop."""


def resize_shorter(array: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize so that the shorter side is ``size``, as torchvision's ``resize(img, size)``
    does on a PIL image: the longer side is truncated to an integer, and a match is left untouched."""
    height, width = array.shape[:2]
    short, long = (width, height) if width <= height else (height, width)
    new_long = int(size * long / short)
    new_width, new_height = (size, new_long) if width <= height else (new_long, size)
    if (new_width, new_height) == (width, height):
        return array
    resized = Image.fromarray(array).resize((new_width, new_height), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8).copy()


@dataclass(frozen=True)
class PeersValidation:
    """The validation view of CNNDetection and UnivFD (their ``get_val_opt``): resize the shorter
    side to 256, blur at the middle of the training sigma range and JPEG at the middle of its quality
    range, each with its training probability, then the centre crop.

    For another input size than 224 the resize keeps their ratio, 256/224. Draws come from the
    generator the caller passes, so a seeded one gives the same view at every validation (theirs
    draws anew each time).
    """

    crop: int
    blur_prob: float
    blur_sigma: float
    jpeg_prob: float
    jpeg_quality: int

    @classmethod
    def from_augment(cls, augment: AugmentConfig, crop: int) -> PeersValidation:
        low, high = augment.blur_sigma
        qlow, qhigh = augment.jpeg_quality
        return cls(crop, augment.blur_prob, (low + high) / 2, augment.jpeg_prob, int((qlow + qhigh) / 2))

    @property
    def load_size(self) -> int:
        return round(self.crop * PEERS_LOAD_SIZE / PEERS_CROP_SIZE)

    def __call__(self, array: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        array = resize_shorter(array, self.load_size)
        if rng.random() < self.blur_prob:
            array = gaussian_blur(array, self.blur_sigma)
        if rng.random() < self.jpeg_prob:
            array = jpeg(array, self.jpeg_quality)
        return center_crop(array, self.crop)
