"""Safe decoding: every mode becomes the documented RGB array, every failure a named reason."""

from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import write_image
from PIL import Image

from aigdetect.data.images import decode_image
from aigdetect.errors import ImageDecodeError


def _reason(path, **kwargs) -> str:
    with pytest.raises(ImageDecodeError) as info:
        decode_image(path, **kwargs)
    return info.value.reason


def test_rgb_png_is_exact(tmp_path):
    path = write_image(tmp_path / "a.png", (20, 10), seed=4)
    decoded = decode_image(path)
    assert decoded.array.shape == (10, 20, 3) and decoded.format == "PNG"
    assert np.array_equal(decoded.array, np.asarray(Image.open(path)))


def test_sixteen_bit_is_scaled_by_257(tmp_path):
    values = np.array([[0, 257, 65535, 128], [1000, 40000, 300, 65280]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    array = decode_image(path).array
    expected = np.round(values / 257).astype(np.uint8)
    assert np.array_equal(array[..., 0], expected) and np.array_equal(array[..., 2], expected)


def test_alpha_is_dropped_not_composited(tmp_path):
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 200, 100, 50, 0
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(path)
    assert np.all(decode_image(path).array == [200, 100, 50])


def test_palette_with_transparency_and_cmyk(tmp_path):
    palette = Image.new("P", (6, 6), 1)
    palette.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    palette.info["transparency"] = 1
    path = tmp_path / "pal.png"
    palette.save(path, transparency=1)
    assert np.all(decode_image(path).array == [10, 20, 30])
    cmyk = Image.new("CMYK", (5, 5), (0, 255, 0, 0))
    cmyk_path = tmp_path / "cmyk.jpg"
    cmyk.save(cmyk_path, quality=100)
    pixel = decode_image(cmyk_path).array[2, 2]
    assert pixel[0] > 200 and pixel[1] < 50 and pixel[2] > 200


def test_animated_gif_uses_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    pixel = decode_image(path).array[0, 0]
    assert pixel[0] > 200 and pixel[2] < 50


def test_failures_have_reasons(tmp_path):
    assert _reason(tmp_path / "absent.png") == "missing"
    (tmp_path / "notes.txt").write_text("hello")
    assert _reason(tmp_path / "notes.txt") == "unsupported"
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert _reason(tmp_path / "empty.jpg") == "unsupported"
    assert _reason(tmp_path) == "unreadable"
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    (tmp_path / "cut.jpg").write_bytes(buffer.getvalue()[:600])
    assert _reason(tmp_path / "cut.jpg") == "truncated"
    png = write_image(tmp_path / "ok.png", (32, 32)).read_bytes()
    (tmp_path / "bad.png").write_bytes(png[:60] + bytes(255 - b for b in png[60:160]) + png[160:])
    assert _reason(tmp_path / "bad.png") == "corrupt"


def test_pixel_cap_refuses_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    Image.new("L", (6000, 6000)).save(path)
    assert path.stat().st_size < 100_000
    with pytest.raises(ImageDecodeError) as info:
        decode_image(path, max_pixels=1_000_000)
    assert info.value.reason == "too-large" and "36000000" in info.value.detail
