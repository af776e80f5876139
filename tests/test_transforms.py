"""The evaluation crop is bit-identical to torchvision's CenterCrop -> ToTensor -> Normalize."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from PIL import Image
from torchvision import transforms as T

from aigdetect.data.transforms import AugmentConfig, crop_grid, eval_tensor, train_tensor
from aigdetect.errors import ConfigError


@pytest.mark.parametrize("shape", [(300, 257), (224, 224), (100, 301), (17, 18), (225, 226)])
def test_eval_tensor_matches_torchvision(shape):
    rng = np.random.default_rng(sum(shape))
    array = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    reference = T.Compose(
        [T.CenterCrop(224), T.ToTensor(), T.Normalize(mean=OPENAI_DATASET_MEAN, std=OPENAI_DATASET_STD)]
    )(Image.fromarray(array))
    assert torch.equal(eval_tensor(array, 224), reference)


def test_crop_grid_covers_the_corners():
    array = np.arange(100 * 120 * 3, dtype=np.int64).reshape(100, 120, 3).astype(np.uint8)
    crops = crop_grid(array, 32, 4)
    assert len(crops) == 4
    assert np.array_equal(crops[0], array[:32, :32]) and np.array_equal(crops[3], array[-32:, -32:])


def test_train_tensor_is_reproducible_and_flips():
    array = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    config = AugmentConfig(blur_prob=1.0, jpeg_prob=1.0)
    first = train_tensor(array, 32, config, np.random.default_rng(5))
    again = train_tensor(array, 32, config, np.random.default_rng(5))
    assert torch.equal(first, again) and first.shape == (3, 32, 32)
    plain = AugmentConfig(blur_prob=0, jpeg_prob=0, flip=False)
    crop = train_tensor(array[:32, :32], 32, plain, np.random.default_rng(1))
    assert torch.equal(crop, eval_tensor(array[:32, :32], 32))


@pytest.mark.parametrize(
    "kwargs", [{"blur_prob": 1.5}, {"blur_sigma": (2.0, 1.0)}, {"jpeg_quality": (0, 90)}, {"jpeg_quality": (90, 101)}]
)
def test_augment_config_validates(kwargs):
    with pytest.raises(ConfigError):
        AugmentConfig(**kwargs)
