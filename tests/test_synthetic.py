"""The synthetic real/fake generator: determinism, layouts, and the artifact it plants."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from aigdetect.data.layouts import detect_layout, folders_layout
from aigdetect.data.synthetic import (
    CONTENT_KINDS,
    SYNTHETIC_LAYOUTS,
    generator_kernel,
    photo_crop,
    synthetic_images,
    transposed_conv_upsample,
    write_synthetic_dataset,
)
from aigdetect.errors import ConfigError


def _nyquist_share(image: np.ndarray) -> float:
    """Share of the (mean-removed) spectral power on the period-2 rows and columns of the spectrum."""
    gray = image.astype(np.float64).mean(axis=2)
    power = np.abs(np.fft.fft2(gray - gray.mean())) ** 2
    half = gray.shape[0] // 2
    return float((power[half, :].sum() + power[:, half].sum() - power[half, half]) / power.sum())


def test_constant_image_shows_each_phase_gain():
    kernel = generator_kernel(strength=0.3, seed=4)
    out = transposed_conv_upsample(np.full((8, 8, 3), 100, np.uint8), kernel)
    # A constant low-resolution image reaches each output phase through exactly its own taps.
    expected = {
        (0, 0): kernel[1, 1],
        (0, 1): kernel[1, 0] + kernel[1, 2],
        (1, 0): kernel[0, 1] + kernel[2, 1],
        (1, 1): kernel[0, 0] + kernel[0, 2] + kernel[2, 0] + kernel[2, 2],
    }
    for (dy, dx), gain in expected.items():
        assert np.all(out[dy::2, dx::2] == np.clip(np.rint(100 * gain), 0, 255))
    assert len({round(float(g), 6) for g in expected.values()}) > 1


def test_balanced_kernel_leaves_constant_image_unchanged():
    out = transposed_conv_upsample(np.full((6, 10, 3), 77, np.uint8), generator_kernel(strength=0.0))
    assert np.all(out == 77)


@pytest.mark.parametrize("strength", [0.1, 0.3])
def test_gains_depart_from_one_by_half_to_full_strength(strength):
    kernel = generator_kernel(strength=strength, seed=1)
    bilinear = np.array([[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]])
    departure = np.abs(kernel / bilinear - 1)
    assert np.all(departure >= strength / 2 - 1e-12) and np.all(departure <= strength + 1e-12)


def test_fakes_carry_period_two_energy_and_reals_do_not():
    reals = synthetic_images(16, 0, size=64, seed=3)
    fakes = synthetic_images(16, 1, size=64, seed=3)
    real_share = np.mean([_nyquist_share(a) for a in reals])
    fake_share = np.mean([_nyquist_share(a) for a in fakes])
    assert fake_share > 5 * real_share


def test_same_seed_same_pixels_other_seed_other_pixels():
    first = synthetic_images(4, 1, size=32, seed=7)
    again = synthetic_images(4, 1, size=32, seed=7)
    other = synthetic_images(4, 1, size=32, seed=8)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not any(np.array_equal(a, b) for a, b in zip(first, other))


def test_photo_crops_come_from_the_bundled_photographs():
    from sklearn.datasets import load_sample_images

    crop = photo_crop(48, np.random.default_rng(0))
    assert crop.shape == (48, 48, 3) and crop.dtype == np.uint8
    photos = [np.asarray(p, dtype=np.float64) for p in load_sample_images().images]
    # The crop's mean colour lies within the colour range of one of the photographs.
    mean = crop.reshape(-1, 3).mean(axis=0)
    assert any(np.all(mean >= p.reshape(-1, 3).min(0)) and np.all(mean <= p.reshape(-1, 3).max(0)) for p in photos)


def test_unknown_content_kind_is_refused():
    with pytest.raises(ConfigError, match="noise"):
        synthetic_images(1, 0, size=32, kinds=("noise",))


@pytest.mark.parametrize("layout", SYNTHETIC_LAYOUTS)
def test_written_layout_is_detected_with_its_counts(tmp_path, layout):
    dataset = write_synthetic_dataset(tmp_path, layout, per_class=4, size=32, seed=1, val_per_class=2)
    if layout == "folders":
        found = folders_layout(tmp_path / "real", tmp_path / "fake")
    else:
        found = detect_layout(tmp_path)
    assert found.kind == layout
    for split, samples in found.splits.items():
        assert sorted(s.path for s in samples) == sorted(dataset.paths(split))
        labels = {s.path: s.label for s in samples}
        assert [labels[p] for p in dataset.paths(split)] == dataset.labels(split).tolist()
    assert set(found.splits) == ({"train", "val"} if layout in ("wang2020", "genimage") else {"train"})
    if layout == "wang2020":
        assert found.counts()["train"] == {kind: {"real": 2, "fake": 2} for kind in CONTENT_KINDS}
        assert found.counts()["val"] == {kind: {"real": 1, "fake": 1} for kind in CONTENT_KINDS}


def test_files_are_lossless_pngs_of_the_generated_pixels(tmp_path):
    dataset = write_synthetic_dataset(tmp_path, "plain", per_class=2, size=32, seed=5)
    path = dataset.paths()[0]
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (32, 32)


def test_write_is_reproducible(tmp_path):
    first = write_synthetic_dataset(tmp_path / "a", "plain", per_class=3, size=32, seed=2)
    second = write_synthetic_dataset(tmp_path / "b", "plain", per_class=3, size=32, seed=2)
    for a, b in zip(first.paths(), second.paths()):
        assert a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize(
    "kwargs",
    [{"layout": "imagenet"}, {"size": 33}, {"per_class": 0}],
)
def test_bad_arguments_are_refused(tmp_path, kwargs):
    with pytest.raises(ConfigError):
        write_synthetic_dataset(tmp_path, **{"layout": "plain", "per_class": 2, "size": 32, **kwargs})
