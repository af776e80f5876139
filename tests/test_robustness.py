"""Robustness: the perturbations match UnivFD's computation pixel for pixel, run before the crop,
and the sweep writes its tables and Figure 4-style plot."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import make_tiny_detector, write_image
from PIL import Image
from scipy.ndimage import gaussian_filter
from typer.testing import CliRunner

from aigdetect import score_images
from aigdetect.cli import app
from aigdetect.data.crops import center_crop
from aigdetect.data.images import decode_image
from aigdetect.data.transforms import gaussian_blur, jpeg
from aigdetect.engine.runtime import RuntimeConfig
from aigdetect.errors import ConfigError
from aigdetect.evaluation.bench_config import PAPER_BLUR, PAPER_JPEG, PIXEL_ONLY, BenchConfig, Level, SweepConfig
from aigdetect.evaluation.report import (
    RESULTS_CSV,
    RESULTS_JSON,
    RESULTS_MD,
    ROBUSTNESS_PNG,
    robustness_figure,
)
from aigdetect.evaluation.robustness import run_robustness
from aigdetect.evaluation.suites import discover_pair

runner = CliRunner(env={"COLUMNS": "200"})


def photo_like(seed: int, size: tuple[int, int] = (52, 44)) -> np.ndarray:
    """Smooth gradients plus noise, so blur and JPEG change the pixels in non-trivial ways."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : size[1], 0 : size[0]]
    base = np.stack([x * 4, y * 5, (x + y) * 2], axis=-1).astype(float)
    return np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)


def univfd_blur(array: np.ndarray, sigma: float) -> np.ndarray:
    """UnivFD validate.py's gaussian_blur: per-channel filter written back into the uint8 array."""
    img = np.array(array)
    gaussian_filter(img[:, :, 0], output=img[:, :, 0], sigma=sigma)
    gaussian_filter(img[:, :, 1], output=img[:, :, 1], sigma=sigma)
    gaussian_filter(img[:, :, 2], output=img[:, :, 2], sigma=sigma)
    return img


def univfd_png2jpg(array: np.ndarray, quality: int) -> np.ndarray:
    """UnivFD validate.py's png2jpg on the PIL image of ``array``."""
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="jpeg", quality=quality)
    return np.array(Image.open(out))


@pytest.mark.parametrize("sigma", PAPER_BLUR)
def test_blur_matches_univfd_pixel_for_pixel_and_is_deterministic(sigma: float) -> None:
    array = photo_like(int(sigma))
    original = array.copy()
    blurred = gaussian_blur(array, sigma)
    assert blurred.dtype == np.uint8 and blurred.shape == array.shape
    assert np.array_equal(blurred, univfd_blur(array, sigma))
    assert np.array_equal(blurred, gaussian_blur(array, sigma))
    assert np.array_equal(array, original) and not np.array_equal(blurred, array)


@pytest.mark.parametrize("quality", PAPER_JPEG)
def test_jpeg_matches_a_pil_round_trip_and_is_deterministic(quality: int) -> None:
    array = photo_like(quality)
    compressed = jpeg(array, quality)
    assert np.array_equal(compressed, univfd_png2jpg(array, quality))
    assert np.array_equal(compressed, jpeg(array, quality))
    assert not np.array_equal(compressed, array)


def test_sweep_levels_and_validation() -> None:
    levels = SweepConfig(blur=(2.0,), jpeg=(90, 30)).levels()
    assert [lvl.label for lvl in levels] == ["clean", "blur σ=2", "jpeg q=90", "jpeg q=30"]
    assert len(SweepConfig().levels()) == 1 + 4 + 7
    for bad in ({"blur": (0.0,)}, {"jpeg": (0,)}, {"jpeg": (101,)}, {"blur": (), "jpeg": ()}, {"blur": (1.0, 1.0)}):
        with pytest.raises(ConfigError):
            SweepConfig(**bad)
    assert Level("clean").transform() is None


def test_perturbation_runs_on_the_full_image_before_the_crop(tmp_path: Path) -> None:
    """Blurring the 52x44 image and then cropping 32x32 differs from cropping first at the crop's
    border; the sweep's scores must equal scoring the blurred full image."""
    real = [tmp_path / "real" / "a.png"]
    fake = [tmp_path / "fake" / "b.png"]
    for path, seed in ((real[0], 1), (fake[0], 2)):
        path.parent.mkdir(parents=True)
        Image.fromarray(photo_like(seed)).save(path)
    detector = make_tiny_detector()
    result = run_robustness(
        detector,
        discover_pair(tmp_path / "real", tmp_path / "fake", "pair"),
        origin="tiny",
        device=detector.device,
        config=BenchConfig(runtime=RuntimeConfig(batch_size=2)),
        sweep=SweepConfig(blur=(3.0,), jpeg=(40,)),
    )
    arrays = [decode_image(p).array for p in real + fake]
    expected = {
        "clean": score_images(detector, arrays),
        "blur σ=3": score_images(detector, [gaussian_blur(a, 3.0) for a in arrays]),
        "jpeg q=40": score_images(detector, [jpeg(a, 40) for a in arrays]),
    }
    assert [lvl.label for lvl, _ in result.levels] == list(expected)
    for level, passed in result.levels:
        assert np.allclose([p.score for p in passed.predictions], expected[level.label], atol=1e-6)
    crop_first = score_images(detector, [gaussian_blur(center_crop(a, 32), 3.0) for a in arrays])
    assert not np.allclose(crop_first, expected["blur σ=3"], atol=1e-6)


def test_robustness_cli_writes_plot_and_one_row_per_level(tmp_path: Path, tiny_checkpoint: Path) -> None:
    root = tmp_path / "univfd"
    for folder, seed in (("progan/horse/0_real", 1), ("progan/horse/1_fake", 2), ("imagenet/0_real", 3),
                         ("guided/1_fake", 4), ("laion/0_real", 5), ("dalle/1_fake", 6)):  # fmt: skip
        for i in range(3):
            write_image(root / folder / f"{i}.png", size=(40, 36), seed=seed * 10 + i)
    out = tmp_path / "run"
    args = ["robustness", "univfd", "--root", str(root), "--checkpoint", str(tiny_checkpoint),
            "--blur", "1,3", "--jpeg", "90,50,30", "--device", "cpu", "--workers", "0", "--batch-size", "8"]  # fmt: skip
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    for name in (RESULTS_JSON, RESULTS_CSV, RESULTS_MD, ROBUSTNESS_PNG):
        assert (out / name).is_file()
    with Image.open(out / ROBUSTNESS_PNG) as image:
        image.verify()
        assert image.format == "PNG" and image.size[0] > image.size[1] > 100

    labels = ["clean", "blur σ=1", "blur σ=3", "jpeg q=90", "jpeg q=50", "jpeg q=30"]
    data = json.loads((out / RESULTS_JSON).read_text())
    assert [lvl["label"] for lvl in data["levels"]] == labels
    assert list(data["levels"][0]["means"]) == ["all", "GAN", "Diffusion", "Autoregressive"]
    markdown = (out / RESULTS_MD).read_text()
    for table in ("mAP (%)", "avg. Acc (%)"):
        section = markdown.split(f"Robustness, {table}")[1].split("###")[0]
        rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| Level")]
        assert [row.split(" | ")[0].lstrip("| ") for row in rows] == labels
    assert "| Level | GAN | Diffusion | Autoregressive | Average |" in markdown
    with open(out / RESULTS_CSV, newline="") as handle:
        overall = [r for r in csv.DictReader(handle) if r["scope"] == "all"]
    assert [(r["perturbation"], r["level"]) for r in overall] == [
        ("clean", ""), ("blur", "1.0"), ("blur", "3.0"), ("jpeg", "90.0"), ("jpeg", "50.0"), ("jpeg", "30.0")
    ]
    for row, level in zip(overall, data["levels"]):
        assert float(row["ap"]) == level["means"]["all"]["ap"]
    for label in labels:
        assert label in result.output
    assert f"scores: {PIXEL_ONLY}" in result.stderr.splitlines() and data["scores"] == PIXEL_ONLY
    assert f"- scores: {PIXEL_ONLY}" in markdown.splitlines()
    assert f"<dt>Scores</dt><dd>{PIXEL_ONLY}</dd>" in (out / "report.html").read_text()

    again = runner.invoke(app, [*args, "--out", str(tmp_path / "b"), "--compare", str(out / RESULTS_JSON)])
    assert again.exit_code == 0, again.output
    compared = json.loads((tmp_path / "b" / RESULTS_JSON).read_text())["compare"]["levels"]
    assert [c["label"] for c in compared] == labels
    assert all(abs(c["delta"]["means"]["all"]["ap"]) < 1e-9 for c in compared)


def _sweep(families: dict[str, dict[str, float]], average: dict[str, float]) -> dict:
    """A robustness results dict with the given mAP per level (fractions) for each family and overall."""
    levels = []
    for label in average:
        kind, _, value = label.partition(":")
        means = {"all": {"ap": average[label]}, **{f: {"ap": aps[label]} for f, aps in families.items()}}
        levels.append({"perturbation": kind, "level": float(value) if value else None, "means": means, "label": label})
    return {
        "levels": levels,
        "suite": {"name": "univfd", "title": "UnivFD test sets (Tables 1 and 2)", "families": list(families)},
        "detector": {"name": "mole"},
    }


def test_figure_panels_share_one_y_range_that_holds_every_point() -> None:
    # JPEG costs 5 points, blur 40: on separate scales both would fill their panel.
    gan = {"clean": 0.95, "blur:1": 0.80, "blur:2": 0.55, "jpeg:90": 0.93, "jpeg:50": 0.90}
    diffusion = {"clean": 0.90, "blur:1": 0.75, "blur:2": 0.50, "jpeg:90": 0.88, "jpeg:50": 0.86}
    average = {k: (gan[k] + diffusion[k]) / 2 for k in gan}
    figure = robustness_figure(_sweep({"GAN": gan, "Diffusion": diffusion}, average))
    blur, jpeg_axis = figure.axes[:2]
    assert blur.get_ylim() == jpeg_axis.get_ylim()
    low, high = blur.get_ylim()
    assert low <= 50 and high >= 95 and high <= 100
    points = [y for axis in (blur, jpeg_axis) for line in axis.get_lines() for y in line.get_ydata()]
    assert low < min(points) and max(points) < high
    assert [line.get_label() for line in jpeg_axis.get_lines()] == ["GAN", "Diffusion", "Average"]
    assert list(blur.get_lines()[0].get_ydata()) == pytest.approx([95, 80, 55])
    assert "Figure 4" in figure._suptitle.get_text() and "Table" not in figure._suptitle.get_text()


def test_a_single_family_stays_visible_under_the_average() -> None:
    only = {"clean": 0.9, "blur:1": 0.7, "jpeg:90": 0.85}
    figure = robustness_figure(_sweep({"Diffusion": only}, dict(only)))
    for axis in figure.axes[:2]:
        family, average = axis.get_lines()
        assert list(family.get_ydata()) == list(average.get_ydata())
        # The average is narrower and dashed, drawn on top: the family line shows around and between its dashes.
        assert family.get_visible() and average.get_visible()
        assert family.get_linewidth() > average.get_linewidth() and family.get_linestyle() == "-"
        assert average.get_linestyle() == "--" and average.get_zorder() > family.get_zorder()
        assert family.get_marker() != average.get_marker()
