"""Decoding costs what the header promises: 16-bit samples keep both bytes, memory is capped by mode,
our pixel cap (not Pillow's) applies, and a fast JPEG cut never reads past the image it needs."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from aigdetect.data import jpeg_crop
from aigdetect.data.config import DEFAULT_MAX_BYTES
from aigdetect.data.images import decode_bytes, decode_center, decode_image, to_rgb_array
from aigdetect.data.transforms import center_crop
from aigdetect.errors import ImageDecodeError

# 16-bit samples and their 8-bit values, v / 257 rounded, worked out by hand. Keeping only the high
# byte (v // 256) gives 1, 0, 1, 255 for 511, 129, 386, 65406: those four catch the difference.
SIXTEEN = [511, 256, 65535, 0, 128, 129, 385, 386, 65406, 65407, 32896, 384]
EIGHT = [2, 1, 255, 0, 0, 1, 1, 2, 254, 255, 128, 1]


def _channels(count: int) -> np.ndarray:
    """(3, 4, count) samples: every value of SIXTEEN in every channel, at different pixels."""
    values = np.array(SIXTEEN)
    return np.stack([np.roll(values, 5 * c) for c in range(count)], axis=-1).reshape(3, 4, count)


def _expected(samples: np.ndarray) -> np.ndarray:
    table = dict(zip(SIXTEEN, EIGHT))
    return np.vectorize(table.__getitem__)(samples).astype(np.uint8)


def _png(samples: np.ndarray, colour_type: int) -> bytes:
    """A 16-bit PNG written by hand, every row with the Sub filter (so a decode that gets the bytes
    per pixel wrong gets the pixels wrong)."""
    height, width = samples.shape[:2]
    raw = samples.astype(">u2").reshape(height, -1).view(np.uint8).reshape(height, -1)
    step = raw.shape[1] // width
    rows = b""
    for row in raw.astype(np.int32):
        filtered = row.copy()
        filtered[step:] = (row[step:] - row[:-step]) % 256
        rows += b"\x01" + filtered.astype(np.uint8).tobytes()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def _tiff(samples: np.ndarray, order: str, photometric: int, extra: int | None = None) -> bytes:
    """An uncompressed 16-bit TIFF with one strip, in byte order ``order`` ("II" or "MM"), with an
    ExtraSamples tag when ``extra`` is given (0: unspecified, 2: unassociated alpha)."""
    height, width, count = samples.shape
    end = "<" if order == "II" else ">"
    data = samples.astype(f"{end}u2").tobytes()
    tags = [(256, 3, 1, width), (257, 3, 1, height), (258, 3, count, "bits"), (259, 3, 1, 1), (262, 3, 1, photometric),
            (273, 4, 1, "data"), (277, 3, 1, count), (278, 3, 1, height), (279, 4, 1, len(data))]  # fmt: skip
    tags += [(338, 3, 1, extra)] if extra is not None else []
    bits_at = 8 + 2 + 12 * len(tags) + 4
    offsets = {"bits": bits_at, "data": bits_at + 2 * count}
    out = (b"II*\x00" if order == "II" else b"MM\x00*") + struct.pack(f"{end}IH", 8, len(tags))
    for tag, kind, number, value in tags:
        value = offsets.get(value, value)
        if kind == 3 and number == 1:  # one SHORT, left-justified in the value field
            out += struct.pack(f"{end}HHIHH", tag, kind, number, value, 0)
        else:
            out += struct.pack(f"{end}HHII", tag, kind, number, value)
    return out + struct.pack(f"{end}I", 0) + struct.pack(f"{end}{count}H", *[16] * count) + data


@pytest.mark.parametrize(
    "name, colour_type, channels, gray",
    [("rgb48.png", 2, 3, False), ("rgba64.png", 6, 4, False), ("gray-alpha32.png", 4, 2, True)],
)
def test_sixteen_bit_png_colour_is_rounded_from_both_bytes(tmp_path, name, colour_type, channels, gray):
    samples = _channels(channels)
    path = tmp_path / name
    path.write_bytes(_png(samples, colour_type))
    expected = _expected(samples[..., [0, 0, 0]] if gray else samples[..., :3])
    decoded = decode_image(path)
    np.testing.assert_array_equal(decoded.array, expected)
    np.testing.assert_array_equal(decode_center(path, 8).array, center_crop(expected, 8))


@pytest.mark.parametrize("order", ["II", "MM"])
@pytest.mark.parametrize("channels, extra, mode", [(3, None, "RGB"), (4, None, "RGBA"), (4, 0, "RGB"), (4, 2, "RGBA")])
def test_sixteen_bit_tiff_colour_is_rounded_from_both_bytes(tmp_path, order, channels, extra, mode):
    samples = _channels(channels)
    path = tmp_path / "deep.tif"
    path.write_bytes(_tiff(samples, order, photometric=2, extra=extra))
    assert Image.open(path).mode == mode  # RGBX and alpha: the fourth sample is dropped
    np.testing.assert_array_equal(decode_image(path).array, _expected(samples[..., :3]))


def test_sixteen_bit_cmyk_is_rounded_then_converted_like_eight_bit(tmp_path):
    samples = _channels(4)
    path = tmp_path / "cmyk.tif"
    path.write_bytes(_tiff(samples, "II", photometric=5))
    expected = np.asarray(Image.fromarray(_expected(samples), "CMYK").convert("RGB"))
    np.testing.assert_array_equal(decode_image(path).array, expected)


def test_compressed_sixteen_bit_files_from_another_writer(tmp_path):
    cv2 = pytest.importorskip("cv2")
    samples = _channels(3)
    for name in ("lzw.tif", "filtered.png"):
        assert cv2.imwrite(str(tmp_path / name), samples[..., ::-1].astype(np.uint16))  # OpenCV writes BGR
        np.testing.assert_array_equal(decode_image(tmp_path / name).array, _expected(samples))


def test_sixteen_bit_grey_and_float_by_hand(tmp_path):
    grey = np.array([SIXTEEN], dtype=np.uint16)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    np.testing.assert_array_equal(decode_image(tmp_path / "grey.png").array[0, :, 0], EIGHT)
    values = np.array([[np.nan, np.inf, -np.inf, -5.0, 300.4, 12.5, 13.5, 254.6]], dtype=np.float32)
    Image.fromarray(values, "F").save(tmp_path / "float.tif")
    np.testing.assert_array_equal(decode_image(tmp_path / "float.tif").array[0, :, 1], [0, 255, 0, 0, 255, 12, 14, 255])


def test_conversion_in_stripes_equals_pillows_whole_conversion():
    """A palette image with transparency, tall enough for several stripes, and a CMYK one."""
    rng = np.random.default_rng(3)
    palette = Image.fromarray(rng.integers(0, 256, (1500, 2100), dtype=np.uint8), "L").convert("P")
    palette.putpalette(rng.integers(0, 256, 768, dtype=np.uint8).tobytes())
    palette.info["transparency"] = 7
    np.testing.assert_array_equal(to_rgb_array(palette), np.asarray(palette.convert("RGBA").convert("RGB")))
    cmyk = Image.fromarray(rng.integers(0, 256, (1100, 1500, 4), dtype=np.uint8), "CMYK")
    np.testing.assert_array_equal(to_rgb_array(cmyk), np.asarray(cmyk.convert("RGB")))


def test_decode_bytes_by_mode():
    assert decode_bytes("RGB", 100, 10) == 1000 * (4 + 3)
    assert decode_bytes("L", 100, 10) == 1000 * (1 + 3)
    assert decode_bytes("I;16B", 100, 10) == 1000 * (2 + 3)
    assert decode_bytes("F", 100, 10) == 1000 * (4 + 3)
    assert decode_bytes("RGB", 100, 10, twice=True) == 1000 * (8 + 3)
    assert decode_bytes("RGB", 10_000, 10_000) < DEFAULT_MAX_BYTES < decode_bytes("RGB", 10_000, 10_000, twice=True)


def test_byte_cap_depends_on_the_mode_and_refuses_from_the_header(tmp_path, monkeypatch):
    Image.new("F", (1000, 1000), 3.0).save(tmp_path / "float.tif", compression="tiff_deflate")
    Image.new("L", (1000, 1000), 3).save(tmp_path / "grey.png")
    cap = 5_000_000  # grey needs 4 bytes per pixel, float 7
    assert decode_image(tmp_path / "grey.png", max_bytes=cap).array.shape == (1000, 1000, 3)

    def never(self):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", never)
    for decode in (decode_image, lambda path, **kw: decode_center(path, 224, **kw)):
        with pytest.raises(ImageDecodeError) as info:
            decode(tmp_path / "float.tif", max_bytes=cap)
        assert info.value.reason == "too-large"
        assert info.value.detail == "1000x1000 F needs about 7000000 bytes to decode, over the limit of 5000000"


def test_our_pixel_cap_replaces_pillows_bomb_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow alone refuses above 2000 pixels
    path = tmp_path / "big.png"
    Image.new("RGB", (50, 50), (9, 8, 7)).save(path)  # 2500 pixels
    assert np.all(decode_image(path, max_pixels=10_000).array == [9, 8, 7])
    assert np.all(decode_center(path, 16, max_pixels=10_000).array == [9, 8, 7])
    assert Image.MAX_IMAGE_PIXELS == 1000  # restored after the decode
    with pytest.raises(ImageDecodeError) as info:
        decode_image(path, max_pixels=2400)
    assert info.value.reason == "too-large" and info.value.detail.endswith("exceeds the limit of 2400")


def _peak_growth_mib(script: str, *args: str) -> float:
    """Peak memory that ``script`` adds to a fresh process after its imports, in MiB.

    Read from /proc (VmHWM, reset first through clear_refs): ``ru_maxrss`` would carry the RSS of
    the pytest process that forked the child, which hides anything smaller.
    """
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux /proc to measure peak memory")
    code = (
        "import sys\n"
        "from aigdetect.data.images import decode_center, decode_image\n"
        "def kib(field):\n"
        "    return next(int(line.split()[1]) for line in open('/proc/self/status') if line.startswith(field))\n"
        "open('/proc/self/clear_refs', 'w').write('5')\n"
        "before = kib('VmRSS:')\n"
        f"{script}\n"
        "print((kib('VmHWM:') - before) / 1024)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def test_a_float_image_costs_what_decode_bytes_says(tmp_path):
    values = np.zeros((4000, 4000), dtype=np.float32)
    values[::7] = 300.5
    Image.fromarray(values, "F").save(tmp_path / "float.tif", compression="tiff_deflate")
    growth = _peak_growth_mib("decode_image(sys.argv[1])", str(tmp_path / "float.tif"))
    assert growth < 1.5 * decode_bytes("F", 4000, 4000) / 2**20


@pytest.fixture()
def photo_jpeg() -> bytes:
    pytest.importorskip("turbojpeg")
    rng = np.random.default_rng(5)
    base = np.linspace(0, 255, 1000 * 1000 * 3).reshape(1000, 1000, 3)
    pixels = np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def test_a_padded_jpeg_is_read_only_up_to_its_end(tmp_path, photo_jpeg, monkeypatch):
    path = tmp_path / "padded.jpg"
    path.write_bytes(photo_jpeg)
    os.truncate(path, 3 << 30)  # 3 GiB of zeros after the EOI, a sparse file: no disk used
    seen = []
    real = jpeg_crop.cut_center
    monkeypatch.setattr(jpeg_crop, "cut_center", lambda data, *a: seen.append(len(data)) or real(data, *a))
    fast = decode_center(path, 224)
    assert seen == [len(photo_jpeg)]
    reference = tmp_path / "plain.jpg"
    reference.write_bytes(photo_jpeg)
    np.testing.assert_array_equal(fast.array, center_crop(decode_image(reference).array, 224))
    assert _peak_growth_mib("decode_center(sys.argv[1], 224)", str(path)) < 256


def test_a_jpeg_longer_than_the_read_limit_is_decoded_whole(tmp_path, photo_jpeg, monkeypatch):
    comments = b"".join(b"\xff\xfe" + struct.pack(">H", 65535) + bytes(65533) for _ in range(4))
    path = tmp_path / "comments.jpg"
    path.write_bytes(photo_jpeg[:2] + comments + photo_jpeg[2:])
    monkeypatch.setattr(jpeg_crop, "read_limit", lambda width, height: 200_000)
    seen = []
    monkeypatch.setattr(jpeg_crop, "cut_center", lambda *a: seen.append(a))
    np.testing.assert_array_equal(decode_center(path, 224).array, center_crop(decode_image(path).array, 224))
    assert seen == []


def test_first_image_reader_follows_markers_and_stops_at_the_limit(photo_jpeg):
    mpo_like = photo_jpeg + photo_jpeg  # a second image after the first EOI, as in an MPO file
    assert jpeg_crop.read_first_image(io.BytesIO(mpo_like), 10 << 20) == photo_jpeg
    assert jpeg_crop.read_first_image(io.BytesIO(photo_jpeg), len(photo_jpeg) - 1) is None
    assert jpeg_crop.read_first_image(io.BytesIO(photo_jpeg[:-2]), 10 << 20) is None  # no EOI
    assert jpeg_crop.read_first_image(io.BytesIO(b"\x89PNG" + photo_jpeg), 10 << 20) is None
    progressive = io.BytesIO()
    Image.open(io.BytesIO(photo_jpeg)).save(progressive, "JPEG", quality=90, progressive=True, restart_marker_rows=1)
    data = progressive.getvalue()
    assert jpeg_crop.read_first_image(io.BytesIO(data + b"trailing"), 10 << 20) == data
    assert jpeg_crop.read_limit(1000, 1000) == 6_000_000 + jpeg_crop.MARKER_ALLOWANCE
