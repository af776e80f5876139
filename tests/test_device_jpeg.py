"""JPEGs decoded in batches where the model runs: which files qualify, and that the crops equal the CPU decode's.

On the CPU, torchvision's ``decode_jpeg`` is libjpeg-turbo, as Pillow's is, so the same code path as
nvJPEG's must give exactly the pixels of ``decode_center``.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from aigdetect.data import device_jpeg, plain_jpeg
from aigdetect.data.crops import center_crop
from aigdetect.data.device_jpeg import Refused, center_crop_chw, decode_centers
from aigdetect.data.images import decode_center
from aigdetect.data.plain_jpeg import JpegFile, device_decodable, frame_components
from aigdetect.engine.reading import FileReader, ReadItem, ReadOptions

CPU = torch.device("cpu")


def photo(width: int, height: int, seed: int = 0) -> np.ndarray:
    """Smooth random colours (JPEG-friendly, chroma that subsampling does not flatten)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(1, height // 8), max(1, width // 8), 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((width, height), Image.BILINEAR))


def jpeg_bytes(array: np.ndarray, mode: str = "RGB", **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).convert(mode).save(buffer, format="JPEG", quality=90, **options)
    return buffer.getvalue()


def read_jpeg(path, max_pixels: int) -> JpegFile | None:
    """What a decode worker hands over for ``path`` with ``gpu_decode``: the bytes, or None (CPU decode)."""
    _, payload = FileReader(ReadOptions(32, max_pixels=max_pixels, jpeg_bytes=True))((0, ReadItem(str(path))))
    return payload if isinstance(payload, JpegFile) else None


def write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def sof_offset(data: bytes) -> int:
    """Where the frame header's marker sits (found independently of the module, by a byte search)."""
    for marker in (b"\xff\xc0", b"\xff\xc1", b"\xff\xc2"):
        if marker in data:
            return data.index(marker)
    raise AssertionError("no SOF marker")


def test_frame_components_read_coding_precision_and_component_ids():
    rgb = jpeg_bytes(photo(40, 30))
    assert frame_components(rgb) == (0xC0, 8, (1, 2, 3))
    assert frame_components(jpeg_bytes(photo(40, 30), progressive=True))[0] == 0xC2
    assert frame_components(jpeg_bytes(photo(40, 30), mode="L")) == (0xC0, 8, (1,))
    assert frame_components(jpeg_bytes(photo(40, 30), mode="CMYK"))[2] == tuple(b"CMYK")
    assert frame_components(b"\x89PNG\r\n") is None
    assert frame_components(rgb[: sof_offset(rgb)]) is None


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        (None, True),
        ("arithmetic", False),
        ("12-bit", False),
        ("rgb-ids", False),
        ("no-eoi", False),
        ("trailing-data", False),
    ],
)
def test_device_decodable_keeps_only_what_both_decoders_read_alike(patch, expected):
    data = bytearray(jpeg_bytes(photo(48, 40)))
    sof = sof_offset(data)
    if patch == "arithmetic":
        data[sof + 1] = 0xC9
    elif patch == "12-bit":
        data[sof + 4] = 12
    elif patch == "rgb-ids":
        for i, component in enumerate(b"RGB"):
            data[sof + 10 + 3 * i] = component
    elif patch == "no-eoi":
        data = data[:-2]
    elif patch == "trailing-data":
        data += b"\x00\x00"
    assert device_decodable(bytes(data), None) is expected


def test_an_adobe_marker_without_transform_means_rgb_components():
    data = jpeg_bytes(photo(48, 40))
    assert device_decodable(data, 1)
    assert not device_decodable(data, 0)
    assert device_decodable(jpeg_bytes(photo(48, 40), mode="L"), 0)


def test_read_jpeg_hands_over_plain_jpegs_and_refuses_the_rest(tmp_path, monkeypatch):
    rgb = write(tmp_path, "rgb.jpg", jpeg_bytes(photo(64, 48)))
    gray = write(tmp_path, "gray.jpg", jpeg_bytes(photo(64, 48), mode="L"))
    cmyk = write(tmp_path, "cmyk.jpg", jpeg_bytes(photo(64, 48), mode="CMYK"))
    png = tmp_path / "a.png"
    Image.fromarray(photo(64, 48)).save(png)
    truncated = write(tmp_path, "cut.jpg", rgb.read_bytes()[:300])
    found = read_jpeg(rgb, max_pixels=10_000)
    assert found == JpegFile(rgb.read_bytes(), 64, 48, "JPEG", "RGB")
    assert read_jpeg(gray, 10_000).mode == "L"
    for path in (cmyk, png, truncated, tmp_path / "missing.jpg", tmp_path):
        assert read_jpeg(path, 10_000) is None, path
    assert read_jpeg(rgb, max_pixels=64 * 48 - 1) is None
    monkeypatch.setattr(plain_jpeg, "MAX_BYTES", len(rgb.read_bytes()) - 1)
    assert read_jpeg(rgb, 10_000) is None


@pytest.mark.parametrize(("height", "width"), [(30, 40), (31, 17), (5, 9), (12, 12), (11, 64)])
def test_center_crop_chw_equals_the_numpy_crop(height, width):
    array = np.random.default_rng(height * width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    for size in (8, 12, 13, 32):
        expected = center_crop(array, size).transpose(2, 0, 1)
        got = center_crop_chw(torch.from_numpy(array).permute(2, 0, 1), size)
        assert np.array_equal(got.numpy(), expected), (height, width, size)


def test_decode_centers_equals_decode_center_and_isolates_a_bad_file(tmp_path):
    arrays = {"big": photo(300, 200, 1), "small": photo(20, 14, 2), "odd": photo(57, 45, 3)}
    files = {
        "big.jpg": jpeg_bytes(arrays["big"]),
        "prog.jpg": jpeg_bytes(arrays["odd"], progressive=True),
        "gray.jpg": jpeg_bytes(arrays["big"], mode="L"),
        "small.jpg": jpeg_bytes(arrays["small"], subsampling=0),
    }
    broken = bytearray(files["big.jpg"])
    sof = sof_offset(broken)
    broken[sof + 5 : sof + 7] = b"\x00\x00"  # a frame of height 0: the decoder refuses it
    paths = [write(tmp_path, name, data) for name, data in files.items()]
    jpegs = [read_jpeg(p, 10**6) for p in paths]
    bad = JpegFile(bytes(broken), 300, 200, "JPEG", "RGB")
    crops = decode_centers([jpegs[0], bad, *jpegs[1:]], 32, CPU)
    assert crops[1] == Refused("Empty JPEG image (DNL not supported)")
    for path, crop in zip(paths, [crops[0], *crops[2:]]):
        assert crop.dtype == torch.uint8 and crop.shape == (3, 32, 32)
        assert np.array_equal(crop.numpy(), decode_center(path, 32).array.transpose(2, 0, 1)), path


def test_decode_centers_splits_batches_by_pixels(tmp_path, monkeypatch):
    data = jpeg_bytes(photo(40, 30))
    files = [JpegFile(data, 40, 30, "JPEG", "RGB")] * 5
    calls: list[int] = []
    real = device_jpeg._decode
    monkeypatch.setattr(device_jpeg, "_decode", lambda datas, device: calls.append(len(datas)) or real(datas, device))
    monkeypatch.setattr(device_jpeg, "DECODE_PIXELS", 2 * 40 * 30)
    crops = decode_centers(files, 16, CPU)
    assert calls == [2, 2, 1]
    assert all(torch.equal(c, crops[0]) for c in crops)
