"""The evaluation crop is bit-identical to torchvision's CenterCrop -> ToTensor -> Normalize."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from PIL import Image
from torchvision import transforms as T

from aigdetect.data.config import AugmentConfig
from aigdetect.data.crops import crop_grid
from aigdetect.data.preprocess import PreprocessConfig
from aigdetect.data.transforms import (
    eval_tensor,
    normalize,
    normalize_pixels,
    to_chw,
    train_view,
)
from aigdetect.errors import ConfigError


@pytest.mark.parametrize("shape", [(300, 257), (224, 224), (100, 301), (17, 18), (225, 226)])
def test_eval_tensor_matches_torchvision(shape):
    rng = np.random.default_rng(sum(shape))
    array = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    reference = T.Compose(
        [T.CenterCrop(224), T.ToTensor(), T.Normalize(mean=OPENAI_DATASET_MEAN, std=OPENAI_DATASET_STD)]
    )(Image.fromarray(array))
    assert torch.equal(eval_tensor(array, PreprocessConfig()), reference)


def test_crop_grid_covers_the_corners():
    array = np.arange(100 * 120 * 3, dtype=np.int64).reshape(100, 120, 3).astype(np.uint8)
    crops = crop_grid(array, 32, 4)
    assert len(crops) == 4
    assert np.array_equal(crops[0], array[:32, :32]) and np.array_equal(crops[3], array[-32:, -32:])


def test_train_view_is_reproducible_and_flips():
    array = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    config = AugmentConfig(blur_prob=1.0, jpeg_prob=1.0)
    first = train_view(array, 32, config, np.random.default_rng(5))
    again = train_view(array, 32, config, np.random.default_rng(5))
    assert np.array_equal(first, again) and first.shape == (32, 32, 3)
    square = array[:32, :32]
    plain = AugmentConfig(blur_prob=0, jpeg_prob=0, flip=False)
    assert np.array_equal(train_view(square, 32, plain, np.random.default_rng(1)), square)
    flipping = AugmentConfig(blur_prob=0, jpeg_prob=0, flip=True)
    views = [train_view(square, 32, flipping, np.random.default_rng(seed)) for seed in range(16)]
    mirrored = [np.array_equal(v, square[:, ::-1]) for v in views]
    assert all(m or np.array_equal(v, square) for m, v in zip(mirrored, views))
    assert 0 < sum(mirrored) < len(views)


def test_batch_normalisation_equals_per_image_normalisation():
    """Workers send uint8 and the device normalises the batch: the result must not change a bit."""
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (24, 24, 3), dtype=np.uint8) for _ in range(5)]
    batch = torch.stack([to_chw(image) for image in images])
    assert batch.dtype == torch.uint8 and batch.shape == (5, 3, 24, 24)
    assert torch.equal(batch[2], torch.from_numpy(images[2]).permute(2, 0, 1))
    clip = PreprocessConfig(size=24)
    expected = torch.stack([normalize(image, clip) for image in images])
    assert torch.equal(normalize_pixels(batch, clip), expected)
    mean, std = torch.tensor(OPENAI_DATASET_MEAN), torch.tensor(OPENAI_DATASET_STD)
    pixel = (images[1][4, 7].astype(np.float32) / 255 - mean.numpy()) / std.numpy()
    assert torch.allclose(normalize_pixels(batch, clip)[1, :, 4, 7], torch.from_numpy(pixel), atol=1e-6)


@pytest.mark.parametrize(
    "kwargs", [{"blur_prob": 1.5}, {"blur_sigma": (2.0, 1.0)}, {"jpeg_quality": (0, 90)}, {"jpeg_quality": (90, 101)}]
)
def test_augment_config_validates(kwargs):
    with pytest.raises(ConfigError):
        AugmentConfig(**kwargs)


def test_another_backbones_statistics_match_torchvision():
    """A SigLIP-style config (mean and std 0.5) normalises as torchvision does with those values."""
    array = np.random.default_rng(9).integers(0, 256, (40, 37, 3), dtype=np.uint8)
    config = PreprocessConfig(size=32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), interpolation="bilinear")
    reference = T.Compose([T.CenterCrop(32), T.ToTensor(), T.Normalize(mean=config.mean, std=config.std)])(Image.fromarray(array))
    assert torch.equal(eval_tensor(array, config), reference)
    assert not torch.equal(eval_tensor(array, PreprocessConfig(size=32)), reference)


@pytest.mark.parametrize(
    "values",
    [
        {"size": 0},
        {"size": True},
        {"size": 4096},
        {"mean": (0.5, 0.5)},
        {"std": (0.5, 0.0, 0.5)},
        {"std": (0.5, float("nan"), 0.5)},
        {"mean": ("a", 0.5, 0.5)},
        {"resize_mode": "squash"},
        {"interpolation": "lanczos9"},
    ],
)
def test_preprocess_config_refuses_bad_values(values):
    with pytest.raises(ConfigError):
        PreprocessConfig(**values)


def test_preprocess_config_round_trips_and_refuses_unknown_keys():
    config = PreprocessConfig(size=256, mean=[0.5, 0.5, 0.5], std=(0.25, 0.25, 0.25))
    assert config.mean == (0.5, 0.5, 0.5)
    assert PreprocessConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="unknown preprocessing keys: crop"):
        PreprocessConfig.from_dict({**config.to_dict(), "crop": 3})
    with pytest.raises(ConfigError):
        PreprocessConfig.from_dict([224])
