"""Centre decoding of large JPEGs: the lossless cut must give the full decode's crop, bit for bit."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_sample_images

from aigdetect import score_images
from aigdetect.data import jpeg_crop
from aigdetect.data.crops import center_crop, center_origin
from aigdetect.data.images import decode_center, decode_image
from aigdetect.data.plain_jpeg import frame_components
from aigdetect.data.transforms import eval_tensor
from aigdetect.errors import ImageDecodeError

turbojpeg = pytest.importorskip("turbojpeg")


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A real photo scaled past the cut threshold, with mild noise so every block has detail."""
    china = Image.fromarray(load_sample_images().images[0]).resize((1003, 761), Image.BICUBIC)
    noise = np.random.default_rng(0).integers(-6, 7, (761, 1003, 3))
    return np.clip(np.asarray(china).astype(int) + noise, 0, 255).astype(np.uint8)


@pytest.fixture()
def cuts(monkeypatch) -> list:
    """Record what ``cut_center`` returned, to prove which path a decode took."""
    seen = []
    real = jpeg_crop.cut_center

    def spy(*args):
        seen.append(real(*args))
        return seen[-1]

    monkeypatch.setattr(jpeg_crop, "cut_center", spy)
    return seen


def _pillow(path: Path, array: np.ndarray, **options) -> Path:
    Image.fromarray(array).save(path, "JPEG", **options)
    return path


def _turbo(path: Path, array: np.ndarray, subsamp: str, **options) -> Path:
    pixels = np.ascontiguousarray(array)
    path.write_bytes(turbojpeg.compress(pixels, 90, getattr(turbojpeg.SAMP, subsamp), **options))
    return path


def _mpo(path: Path, array: np.ndarray) -> Path:
    """A two-frame MPO, as cameras write: the first frame is the one scored."""
    second = Image.fromarray(np.ascontiguousarray(array[::-1]))
    Image.fromarray(array).save(path, "MPO", save_all=True, append_images=[second], quality=90)
    return path


VARIANTS = {
    "420": lambda p, a: _pillow(p, a, quality=90),
    "422": lambda p, a: _pillow(p, a, quality=95, subsampling=1),
    "444": lambda p, a: _pillow(p, a, quality=80, subsampling=0),
    "progressive": lambda p, a: _pillow(p, a, quality=90, progressive=True),
    "restart-markers": lambda p, a: _pillow(p, a, quality=90, restart_marker_rows=1),
    "gray": lambda p, a: _pillow(p, np.asarray(Image.fromarray(a).convert("L")), quality=90),
    "411": lambda p, a: _turbo(p, a, "Y411"),
    "440": lambda p, a: _turbo(p, a, "Y440"),
    "mpo": _mpo,
}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("shape", [(761, 1003), (640, 1003), (761, 530)])
def test_cut_equals_the_full_decode(tmp_path, photo, cuts, variant, shape):
    array = photo[: shape[0], : shape[1]]
    path = VARIANTS[variant](tmp_path / "photo.jpg", array)
    full = decode_image(path)
    fast = decode_center(path, 224)
    assert cuts and cuts[-1] is not None, "the lossless cut was not taken"
    assert fast.array.shape == (224, 224, 3)
    np.testing.assert_array_equal(fast.array, center_crop(full.array, 224))
    assert (fast.width, fast.height, fast.format, fast.mode) == (full.width, full.height, full.format, full.mode)


@pytest.mark.parametrize("size", [96, 160, 224])
def test_cut_against_image_edges(tmp_path, photo, cuts, size):
    """Images barely wider than the crop: the window runs into the left and right edges."""
    height = (jpeg_crop.MIN_AREA_FACTOR * size * size) // (size + 3) + 40
    source = np.asarray(Image.fromarray(photo).resize((size + 3, height), Image.BICUBIC))
    path = _pillow(tmp_path / "narrow.jpg", source, quality=90)
    fast = decode_center(path, size)
    assert cuts[-1] is not None and cuts[-1].left == 2  # round(3 / 2) = 2 pixels from the left edge
    np.testing.assert_array_equal(fast.array, center_crop(decode_image(path).array, size))


def test_window_is_aligned_with_margin():
    """Hand-computed: a 4000 x 3000 photo, 224 crop at top 1388, left 1888."""
    assert center_origin(3000, 4000, 224) == (1388, 1888)
    x, y, w, h = jpeg_crop.cut_window(4000, 3000, 224)
    assert (x, y, w, h) == (1856, 1344, 1888 + 224 + 32 - 1856, 1388 + 224 + 32 - 1344)
    assert x % jpeg_crop.ALIGN == 0 and y % jpeg_crop.ALIGN == 0
    assert 1888 - x >= jpeg_crop.MARGIN and 1388 - y >= jpeg_crop.MARGIN
    assert jpeg_crop.cut_window(230, 2000, 224)[::2] == (0, 230)


def test_small_images_and_other_formats_are_decoded_whole(tmp_path, photo, cuts):
    small = _pillow(tmp_path / "small.jpg", photo[:300, :400], quality=90)
    png = tmp_path / "big.png"
    Image.fromarray(photo).save(png)
    cmyk = tmp_path / "cmyk.jpg"
    Image.fromarray(photo).convert("CMYK").save(cmyk, "JPEG", quality=90)
    for path in (small, png, cmyk):
        np.testing.assert_array_equal(decode_center(path, 224).array, center_crop(decode_image(path).array, 224))
    assert cuts == []


def test_images_smaller_than_the_crop_are_padded(tmp_path, photo):
    path = _pillow(tmp_path / "tiny.jpg", photo[:100, :150], quality=90)
    fast = decode_center(path, 224)
    np.testing.assert_array_equal(fast.array, center_crop(decode_image(path).array, 224))
    assert (fast.width, fast.height) == (150, 100)


def test_without_turbojpeg_the_result_is_the_same(tmp_path, photo, monkeypatch, cuts):
    path = _pillow(tmp_path / "photo.jpg", photo, quality=90)
    with_cut = decode_center(path, 224).array
    monkeypatch.setattr(jpeg_crop, "AVAILABLE", False)
    without = decode_center(path, 224).array
    np.testing.assert_array_equal(with_cut, without)
    assert len(cuts) == 1 and cuts[0] is not None


def _jpeg_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def test_damaged_files_fail_exactly_as_a_full_decode(tmp_path, photo, cuts):
    data = _jpeg_bytes(photo)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ImageDecodeError) as full_error:
        decode_image(truncated)
    with pytest.raises(ImageDecodeError) as fast_error:
        decode_center(truncated, 224)
    assert (fast_error.value.reason, fast_error.value.detail) == (full_error.value.reason, full_error.value.detail)
    assert full_error.value.reason == "truncated"


@pytest.mark.parametrize("coding", ["arithmetic", "lossless"])
def test_codings_other_than_huffman_are_decoded_whole(tmp_path, photo, cuts, coding):
    """The cut is written Huffman-coded: cutting an arithmetic-coded file, which Pillow cannot
    decode, would turn a failure into a score. Such files must reach Pillow whole."""
    path = _turbo(tmp_path / f"{coding}.jpg", photo, "Y420" if coding == "arithmetic" else "Y444", **{coding: True})
    try:
        expected = center_crop(decode_image(path).array, 224)
    except ImageDecodeError as error:
        with pytest.raises(ImageDecodeError) as fast_error:
            decode_center(path, 224)
        assert fast_error.value.reason == error.reason
    else:
        np.testing.assert_array_equal(decode_center(path, 224).array, expected)
    assert cuts == [None]


def test_frame_header_walks_the_markers(photo):
    data = _jpeg_bytes(photo)
    assert frame_components(data) == (0xC0, 8, (1, 2, 3))
    arithmetic = turbojpeg.compress(np.ascontiguousarray(photo), 90, turbojpeg.SAMP.Y420, arithmetic=True)
    assert frame_components(arithmetic)[:2] == (0xC9, 8)
    assert frame_components(b"\x89PNG\r\n") is None
    assert frame_components(data[:20]) is None


def test_files_libjpeg_warns_about_fall_back_to_the_full_decode(tmp_path, photo, cuts):
    """Pillow tolerates some corrupt entropy data that the cut refuses; the full decode then decides."""
    data = bytearray(_jpeg_bytes(photo))
    middle = len(data) // 2
    data[middle : middle + 2] = b"\xff\xd9"
    path = tmp_path / "damaged.jpg"
    path.write_bytes(bytes(data))
    full = decode_image(path)
    fast = decode_center(path, 224)
    assert cuts == [None]
    np.testing.assert_array_equal(fast.array, center_crop(full.array, 224))


def test_pixel_cap_applies_before_the_cut(tmp_path, photo, cuts):
    path = _pillow(tmp_path / "photo.jpg", photo, quality=90)
    with pytest.raises(ImageDecodeError) as error:
        decode_center(path, 224, max_pixels=1003 * 761 - 1)
    assert error.value.reason == "too-large" and cuts == []


def test_scores_use_the_cut_and_match_the_array_path(tmp_path, photo, cuts, tiny_detector):
    import torch

    path = _pillow(tmp_path / "photo.jpg", photo, quality=90)
    from_path = score_images(tiny_detector, [path])
    assert cuts and cuts[-1] is not None
    with torch.inference_mode():
        pixels = eval_tensor(decode_image(path).array, tiny_detector.preprocess)[None]
        expected = torch.sigmoid(tiny_detector(pixels).logits.float()).numpy()
    np.testing.assert_array_equal(from_path, expected)


def test_scan_scores_match_the_full_decode(tmp_path, photo, tiny_detector):
    """A scan decodes in worker processes, where the cut runs unobserved; its scores must still be
    those of a full decode, bit for bit."""
    import torch

    from aigdetect.engine.infer import score_files

    paths = [_pillow(tmp_path / f"photo{q}.jpg", photo, quality=q) for q in (80, 95)]
    records = [r for batch in score_files(tiny_detector, paths, device=torch.device("cpu"), workers=1) for r in batch]
    with torch.inference_mode():
        pixels = torch.stack([eval_tensor(decode_image(p).array, tiny_detector.preprocess) for p in paths])
        expected = torch.sigmoid(tiny_detector(pixels).logits.float()).numpy()
    assert [r.score for r in records] == expected.tolist()
    assert [(r.width, r.height) for r in records] == [(1003, 761)] * 2
