"""HEIC (iPhone photos) and AVIF end to end: decoded close to the source, trained and benched on,
and scanned through the CLI, like any other format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from aigdetect import load_detector, score_images
from aigdetect.cli import app
from aigdetect.data.images import decode_center, decode_image
from aigdetect.data.transforms import center_crop

runner = CliRunner()
TINY = Path(__file__).parent / "assets" / "tiny.json"
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _photo(seed: int, size: tuple[int, int] = (64, 48)) -> np.ndarray:
    """Smooth gradients with a seeded tint: lossy codecs keep such images within a few levels."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : size[1], 0 : size[0]]
    base = np.stack([x * 3 + 20, y * 4 + 10, (x + y) * 2], axis=-1) + rng.integers(0, 40, 3)
    return np.clip(base, 0, 255).astype(np.uint8)


def _write(path: Path, array: np.ndarray, fmt: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt, quality=90)
    return path


@pytest.mark.parametrize("fmt, suffix", [("HEIF", ".heic"), ("AVIF", ".avif")])
def test_decoding_stays_close_to_the_source(tmp_path, fmt, suffix):
    source = _photo(0)
    path = _write(tmp_path / f"photo{suffix}", source, fmt)
    decoded = decode_image(path)
    assert (decoded.format, decoded.width, decoded.height) == (fmt, 64, 48)
    error = np.abs(decoded.array.astype(int) - source.astype(int))
    assert error.mean() < 3 and error.max() < 16
    np.testing.assert_array_equal(decode_center(path, 32).array, center_crop(decoded.array, 32))


@pytest.fixture(scope="module")
def heic_folders(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("heic")
    for i in range(6):
        _write(root / "real" / f"IMG_{i:04d}.HEIC", _photo(i), "HEIF")
        fake = _photo(100 + i)
        fake[::2, ::2] = 255 - fake[::2, ::2]  # an artifact for the fakes
        _write(root / "fake" / f"gen_{i}.heic", fake, "HEIF")
    (root / "real" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (root / "fake" / "prompt.txt").write_text("a photo of a cat")
    return root


def test_train_bench_and_scan_on_heic(tmp_path, heic_folders):
    out = tmp_path / "m.safetensors"
    trained = runner.invoke(
        app,
        ["train", "--real", str(heic_folders / "real"), "--fake", str(heic_folders / "fake"), "--model", str(TINY),
         "--backbone-weights", "none", "--out", str(out), "--steps", "4", "--batch-size", "4", "--val-fraction", "0.34",
         "--workers", "0", "--device", "cpu"],
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    assert "train: 8 images (4 real, 4 fake)" in trained.output and "val (held out 0.34" in trained.output
    assert "left out 1 file that no image decoder accepts" in trained.output and "1 system, hidden or excluded entry" in trained.output
    assert "unreadable files skipped" in trained.output and "none" in trained.output.split("unreadable files skipped")[1].splitlines()[0]

    bench = runner.invoke(
        app,
        ["bench", "folder", "--real", str(heic_folders / "real"), "--fake", str(heic_folders / "fake"), "--name", "iphone",
         "--checkpoint", str(out), "--out", str(tmp_path / "bench"), "--device", "cpu", "--workers", "0"],
    )  # fmt: skip
    assert bench.exit_code == 0, bench.output
    results = json.loads((tmp_path / "bench" / "results.json").read_text())
    (subset,) = results["clean"]["subsets"]
    assert (subset["n_real"], subset["n_fake"], subset["n_errors"]) == (6, 6, 0)
    assert any(note.startswith("iphone: left out 1 file that no image decoder accepts") for note in results["notes"])

    photo = heic_folders / "real" / "IMG_0003.HEIC"
    scanned = runner.invoke(app, ["scan", str(photo), "--checkpoint", str(out), "--format", "jsonl", "--workers", "0"])
    assert scanned.exit_code == 0, scanned.output
    (row,) = [json.loads(line) for line in scanned.stdout.splitlines()]
    assert (row["status"], row["format"], row["width"], row["height"]) == ("ok", "HEIF", 64, 48)
    assert row["score"] == pytest.approx(float(score_images(load_detector(out), [str(photo)])[0]), abs=1e-6)
