"""bench: scoring a suite, sampling, re-encoding, reports, and the CLI end to end on generated trees."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest
from conftest import make_tiny_detector, write_image
from evidence_files import A1111, png_with_text, write
from sklearn.metrics import accuracy_score, average_precision_score
from typer.testing import CliRunner

from aigdetect import save_detector, score_images
from aigdetect.cli import app
from aigdetect.data.images import decode_image
from aigdetect.data.transforms import jpeg
from aigdetect.engine.runtime import RuntimeConfig
from aigdetect.errors import ConfigError
from aigdetect.evaluation.bench import run_bench, sample_files
from aigdetect.evaluation.bench_config import PIXEL_ONLY, BenchConfig, Reencode
from aigdetect.evaluation.report import (
    PREDICTIONS_CSV,
    RESULTS_CSV,
    RESULTS_JSON,
    RESULTS_MD,
)
from aigdetect.evaluation.suites import SUITES, Discovery, SubsetFiles, discover, discover_pair
from aigdetect.progress import ProgressEvent

CPU = ["--device", "cpu", "--workers", "0", "--batch-size", "5"]
runner = CliRunner(env={"COLUMNS": "200"})  # wide enough that rich does not wrap table cells


def images(folder: Path, count: int, seed: int, suffix: str = ".png", size: tuple[int, int] = (40, 36)) -> list[Path]:
    return [write_image(folder / f"{i}{suffix}", size=size, seed=seed * 100 + i) for i in range(count)]


def make_univfd_tree(root: Path) -> Path:
    """CNNDetection-style subsets (category folders, direct 0_real/1_fake) and diffusion_datasets-style
    subsets (fakes in <subset>/1_fake, reals in imagenet/ and laion/), one empty subset and one corrupt file."""
    cnn = root / "CNN" / "test"
    for category, seed in (("airplane", 1), ("cat", 2)):
        images(cnn / "progan" / category / "0_real", 2, seed)
        images(cnn / "progan" / category / "1_fake", 2, seed + 10)
    images(cnn / "deepfake" / "0_real", 3, 3, ".jpg")
    images(cnn / "deepfake" / "1_fake", 4, 4)
    (cnn / "san").mkdir(parents=True)
    diffusion = root / "diffusion_datasets"
    images(diffusion / "imagenet" / "0_real", 3, 5)
    images(diffusion / "laion" / "0_real", 4, 6)
    images(diffusion / "guided" / "1_fake", 3, 7)
    images(diffusion / "ldm_200" / "1_fake", 4, 8)
    images(diffusion / "dalle" / "1_fake", 3, 9)
    (diffusion / "dalle" / "1_fake" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return root


def make_genimage_tree(root: Path) -> Path:
    images(root / "BigGAN" / "imagenet_ai_0419_biggan" / "val" / "ai", 3, 20)
    images(root / "BigGAN" / "imagenet_ai_0419_biggan" / "val" / "nature", 3, 21, ".JPEG")
    images(root / "imagenet_midjourney" / "val" / "ai", 4, 22)
    images(root / "imagenet_midjourney" / "val" / "nature", 3, 23, ".JPEG")
    return root


@pytest.fixture(scope="module")
def univfd_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_univfd_tree(tmp_path_factory.mktemp("univfd"))


def read_predictions(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def scored(rows: list[dict[str, str]], subset: str) -> tuple[np.ndarray, np.ndarray]:
    ok = [r for r in rows if r["subset"] == subset and r["score"]]
    return np.array([int(r["label"]) for r in ok]), np.array([float(r["score"]) for r in ok])


# ---- library ---------------------------------------------------------------------------------------


def test_reencode_parse() -> None:
    assert Reencode.parse("jpeg:90") == Reencode("jpeg", 90)
    assert Reencode.parse("JPG:75").label == "jpeg:75"
    assert Reencode.parse("png") == Reencode("png")
    for bad in ("jpeg", "jpeg:0", "jpeg:101", "jpeg:high", "png:5", "webp:80"):
        with pytest.raises(ConfigError):
            Reencode.parse(bad)


def test_sample_files_is_seeded_bounded_and_per_subset(tmp_path: Path) -> None:
    for name in ("progan", "stylegan"):
        for label, count in (("0_real", 30), ("1_fake", 4)):
            (tmp_path / name / label).mkdir(parents=True)
            for i in range(count):
                (tmp_path / name / label / f"{i:02d}.png").write_bytes(b"\x89PNG\r\n\x1a\n")  # a header is enough
    found = discover(SUITES.get("univfd"), tmp_path)
    first = sample_files(found, 5, seed=3)
    again = sample_files(found, 5, seed=3)
    other = sample_files(found, 5, seed=4)
    for before, after in zip(found.found, first.found):
        assert len(after.real) == 5 and after.fake == before.fake
        assert set(after.real) <= set(before.real) and after.real == sorted(after.real)
    assert [f.real for f in first.found] == [f.real for f in again.found]
    assert [f.real for f in first.found] != [f.real for f in other.found]
    # A subset's sample does not depend on which other subsets are present.
    alone = sample_files(type(found)(found.suite, found.root, found.found[1:]), 5, seed=3)
    assert alone.found[0].real == first.found[1].real
    assert sample_files(found, None, 0) is found


def _univfd_read_path(real_list: list, fake_list: list, max_sample: int, seed: int) -> tuple[list, list]:
    """UnivFD validate.py's per-dataset draw, re-written from its code: set_seed() seeds Python's global
    random, then read_path falls back to 100, shuffles reals, shuffles fakes and cuts both."""
    state = random.getstate()
    try:
        random.seed(seed)
        if (max_sample > len(real_list)) or (max_sample > len(fake_list)):
            max_sample = 100
        random.shuffle(real_list)
        random.shuffle(fake_list)
        return real_list[0:max_sample], fake_list[0:max_sample]
    finally:
        random.setstate(state)


@pytest.mark.parametrize(
    "counts",
    [[(2500, 1800)], [(1500, 999), (1000, 1000)], [(1000, 1001), (120, 4000)], [(80, 300)]],
    ids=["both-large", "one-short", "boundary", "under-100"],
)
@pytest.mark.parametrize("seed", [0, 7])
def test_univfd_protocol_draws_what_validate_py_draws(counts: list[tuple[int, int]], seed: int) -> None:
    suite = SUITES.get("univfd")
    found = [
        SubsetFiles(suite.subsets[i], [Path(f"s{i}/0_real/{k:05d}.png") for k in range(n_real)],
                    [Path(f"s{i}/1_fake/{k:05d}.png") for k in range(n_fake)], f"s{i}")
        for i, (n_real, n_fake) in enumerate(counts)
    ]  # fmt: skip
    sampled = sample_files(Discovery(suite, "root", found), None, seed, "univfd")
    for before, after in zip(found, sampled.found):
        real, fake = _univfd_read_path(list(before.real), list(before.fake), 1000, seed)
        assert (after.real, after.fake) == (real, fake)
    sizes = [(len(f.real), len(f.fake)) for f in sampled.found]
    expected = {
        (2500, 1800): (1000, 1000), (1500, 999): (100, 100), (1000, 1000): (1000, 1000),
        (1000, 1001): (1000, 1000), (120, 4000): (100, 100), (80, 300): (80, 100),
    }  # fmt: skip
    assert sizes == [expected[c] for c in counts]
    notes = " ".join(sampled.notes)
    assert ("100 per class scored" in notes) == any(c in counts for c in [(1500, 999), (120, 4000)])
    assert ("stops on such a subset" in notes) == ((80, 300) in counts)
    # max_per_class takes the place of validate.py's --max_sample.
    small = sample_files(Discovery(suite, "root", found), 50, seed, "univfd")
    for before, after in zip(found, small.found):
        assert (after.real, after.fake) == _univfd_read_path(list(before.real), list(before.fake), 50, seed)


def test_bench_univfd_protocol_end_to_end(tmp_path: Path, tiny_checkpoint: Path) -> None:
    real = images(tmp_path / "real", 7, 40)
    fake = images(tmp_path / "fake", 6, 41)
    out = tmp_path / "run"
    result = runner.invoke(app, [
        "bench", "folder", "--real", str(tmp_path / "real"), "--fake", str(tmp_path / "fake"), "--name", "mine",
        "--checkpoint", str(tiny_checkpoint), "--protocol", "univfd", "--max-per-class", "4", "--seed", "3", *CPU,
        "--out", str(out),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads((out / RESULTS_JSON).read_text())
    assert data["sampling"] == {"max_per_class": 4, "seed": 3, "protocol": "univfd"}
    chosen_real, chosen_fake = _univfd_read_path(sorted(real), sorted(fake), 4, 3)
    rows = read_predictions(out / PREDICTIONS_CSV)
    assert [Path(r["path"]) for r in rows] == chosen_real + chosen_fake
    assert "UnivFD's validate.py protocol: 4 images per class" in (out / RESULTS_MD).read_text()


def test_run_bench_scores_like_detector_score_and_records_corrupt_files(tmp_path: Path) -> None:
    real = images(tmp_path / "real", 3, 1, size=(48, 40))
    fake = images(tmp_path / "fake", 3, 2, size=(36, 44))
    (tmp_path / "fake" / "z_bad.jpg").write_bytes(b"\xff\xd8\xff broken")
    detector = make_tiny_detector()
    events: list[ProgressEvent] = []
    result = run_bench(
        detector,
        discover_pair(tmp_path / "real", tmp_path / "fake", "pair"),
        origin="tiny",
        device=detector.device,
        config=BenchConfig(runtime=RuntimeConfig(batch_size=4)),
        progress=events.append,
    )
    expected = score_images(detector, real + fake)
    got = [p.score for p in result.clean.predictions if p.error is None]
    assert np.allclose(got, expected, atol=1e-6)
    [bad] = result.clean.errors
    assert bad.path.endswith("z_bad.jpg") and bad.label == 1 and bad.score is None
    subset = result.clean.subsets[0]
    assert (subset.n_real, subset.n_fake, subset.n_errors) == (3, 3, 1)
    labels = np.array([0, 0, 0, 1, 1, 1])
    assert subset.metrics["ap"] == average_precision_score(labels, expected)
    assert [(e.done, e.total) for e in events] == [(4, 7), (7, 7)]


def test_reencode_png_changes_nothing_and_jpeg_matches_a_reference(tmp_path: Path) -> None:
    real = images(tmp_path / "real", 2, 3)
    fake = images(tmp_path / "fake", 2, 4)
    detector = make_tiny_detector()
    found = discover_pair(tmp_path / "real", tmp_path / "fake", "pair")
    png = run_bench(detector, found, origin="t", device=detector.device, config=BenchConfig(reencode=Reencode("png")))
    assert [p.score for p in png.reencoded.predictions] == [p.score for p in png.clean.predictions]
    q50 = run_bench(detector, found, origin="t", device=detector.device, config=BenchConfig(reencode=Reencode("jpeg", 50)))
    reference = score_images(detector, [jpeg(decode_image(p).array, 50) for p in real + fake])
    assert np.allclose([p.score for p in q50.reencoded.predictions], reference, atol=1e-6)
    assert not np.allclose(reference, [p.score for p in q50.clean.predictions], atol=1e-6)


# ---- CLI end to end ----------------------------------------------------------------------------------


def test_bench_univfd_end_to_end(univfd_root: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["bench", "univfd", "--root", str(univfd_root), "--checkpoint", str(tiny_checkpoint), "--out", str(out), *CPU]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    for name in (RESULTS_JSON, RESULTS_CSV, RESULTS_MD, PREDICTIONS_CSV, "report.html"):
        assert (out / name).is_file()
    assert "report.html" in result.stderr.splitlines()[-1]
    data = json.loads((out / RESULTS_JSON).read_text())
    assert data["detector"]["origin"] == str(tiny_checkpoint) and data["threshold"] == 0.5
    assert "<title>" in (out / "report.html").read_text() and str(data["clean"]["subsets"][0]["title"]) in (out / "report.html").read_text()
    assert data["command"].startswith("aigdetect bench univfd --root ")
    subsets = data["clean"]["subsets"]
    assert [s["key"] for s in subsets] == ["progan", "deepfake", "guided", "ldm_200", "dalle"]
    assert [(s["n_real"], s["n_fake"], s["n_errors"]) for s in subsets] == [(4, 4, 0), (3, 4, 0), (3, 3, 0), (4, 4, 0), (4, 3, 1)]

    rows = read_predictions(out / PREDICTIONS_CSV)
    assert len(rows) == 4 + 4 + 3 + 4 + 3 + 3 + 4 + 4 + 4 + 3 + 1
    for subset in subsets:
        labels, scores = scored(rows, subset["key"])
        assert subset["metrics"]["ap"] == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
        assert subset["metrics"]["acc_0.5"] == pytest.approx(accuracy_score(labels, scores > 0.5))
        real = labels == 0
        assert subset["metrics"]["real_acc_calibrated"] == pytest.approx(accuracy_score(labels[real], scores[real] > 0.5))
    gan = [s["metrics"]["ap"] for s in subsets if s["family"] == "GAN"]
    assert data["clean"]["means"]["GAN"]["ap"] == pytest.approx(np.mean(gan))
    assert data["clean"]["means"]["all"]["ap"] == pytest.approx(np.mean([s["metrics"]["ap"] for s in subsets]))

    [error] = data["errors"]
    assert error["path"].endswith("broken.png") and error["subset"] == "dalle"
    assert "cyclegan" in [m["key"] for m in data["missing"]]
    assert any(n.startswith("SAN: skipped") for n in data["notes"])

    markdown = (out / RESULTS_MD).read_text()
    assert "| Method | ProGAN | Deepfakes | Guided | LDM 200 steps | DALL-E | mAP |" in markdown
    assert "| Method | ProGAN | Deepfakes | Guided | LDM 200 steps | DALL-E | avg. Acc |" in markdown
    progan_ap = f"{100 * subsets[0]['metrics']['ap']:.2f}"
    assert f"| {data['detector']['name']} | {progan_ap} |" in markdown
    assert "broken.png" in markdown and "CycleGAN" in markdown
    with open(out / RESULTS_CSV, newline="") as handle:
        csv_rows = list(csv.DictReader(handle))
    assert [r["key"] for r in csv_rows if r["scope"] == "subset"] == [s["key"] for s in subsets]
    assert float(next(r for r in csv_rows if r["scope"] == "all")["ap"]) == data["clean"]["means"]["all"]["ap"]
    assert "Total mean (5 subsets)" in result.output and "missing, skipped: CycleGAN" in result.output

    other = tmp_path / "other.safetensors"
    save_detector(make_tiny_detector(seed=1), other)
    compared = runner.invoke(
        app,
        ["bench", "univfd", "--root", str(univfd_root), "--checkpoint", str(other), "--out", str(tmp_path / "b"),
         "--compare", str(out / RESULTS_JSON), *CPU],
    )  # fmt: skip
    assert compared.exit_code == 0, compared.output
    second = json.loads((tmp_path / "b" / RESULTS_JSON).read_text())
    for ours, theirs in zip(second["clean"]["subsets"], subsets):
        delta = second["compare"]["delta"]["subsets"][ours["key"]]["ap"]
        assert delta == pytest.approx(ours["metrics"]["ap"] - theirs["metrics"]["ap"])
    assert "Compared with" in compared.output
    assert "delta vs " in (tmp_path / "b" / RESULTS_MD).read_text()


def test_bench_scores_pixels_only_and_says_so_in_every_output(tmp_path: Path, tiny_checkpoint: Path) -> None:
    """Fakes that declare their generator in a PNG text chunk are scored by the pixels alone (a scan
    would call them ai-generated whatever the score), and every output says so."""
    real = images(tmp_path / "real", 3, 50)
    rng = np.random.default_rng(51)
    fake = [
        write(tmp_path / "fake" / f"{i}.png", png_with_text(rng.integers(0, 256, (36, 40, 3), dtype=np.uint8), {"parameters": A1111}))
        for i in range(3)
    ]
    out = tmp_path / "run"
    result = runner.invoke(app, [
        "bench", "folder", "--real", str(tmp_path / "real"), "--fake", str(tmp_path / "fake"), "--name", "mine",
        "--checkpoint", str(tiny_checkpoint), "--out", str(out), *CPU,
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = read_predictions(out / PREDICTIONS_CSV)
    expected = score_images(make_tiny_detector(), real + fake)
    assert np.allclose([float(r["score"]) for r in rows], expected, atol=1e-6)
    assert "pixel model only" in PIXEL_ONLY and "evidence" in PIXEL_ONLY
    assert f"scores: {PIXEL_ONLY}" in result.stderr.splitlines()
    assert json.loads((out / RESULTS_JSON).read_text())["scores"] == PIXEL_ONLY
    assert f"- scores: {PIXEL_ONLY}" in (out / RESULTS_MD).read_text().splitlines()
    assert f"<dt>Scores</dt><dd>{PIXEL_ONLY}</dd>" in (out / "report.html").read_text()


def test_bench_genimage_end_to_end(tmp_path: Path, tiny_checkpoint: Path) -> None:
    root = make_genimage_tree(tmp_path / "genimage")
    out = tmp_path / "run"
    args = ["bench", "genimage", "--root", str(root), "--checkpoint", str(tiny_checkpoint), "--out", str(out), *CPU]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads((out / RESULTS_JSON).read_text())
    assert [s["title"] for s in data["clean"]["subsets"]] == ["BigGAN", "Midjourney"]
    rows = read_predictions(out / PREDICTIONS_CSV)
    for subset in data["clean"]["subsets"]:
        labels, scores = scored(rows, subset["key"])
        assert subset["metrics"]["ap"] == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    assert "| Method | BigGAN | Midjourney | avg. Acc |" in (out / RESULTS_MD).read_text()
    # Midjourney has 3 reals and 4 fakes: its balanced accuracy is shown beside the counts.
    assert "3/4" in result.output and "Bal." in result.output


def test_bench_folder_reencode_and_sampling(tmp_path: Path, tiny_checkpoint: Path) -> None:
    images(tmp_path / "real", 5, 30, ".jpg")
    images(tmp_path / "fake", 5, 31)
    out = tmp_path / "run"
    base = ["bench", "folder", "--real", str(tmp_path / "real"), "--fake", str(tmp_path / "fake"), "--name", "mine",
            "--checkpoint", str(tiny_checkpoint), "--max-per-class", "3", "--seed", "2", *CPU]  # fmt: skip
    result = runner.invoke(app, [*base, "--out", str(out), "--reencode", "jpeg:95"])
    assert result.exit_code == 0, result.output
    data = json.loads((out / RESULTS_JSON).read_text())
    assert data["reencode"] == "jpeg:95" and data["sampling"] == {"max_per_class": 3, "seed": 2, "protocol": "all"}
    rows = read_predictions(out / PREDICTIONS_CSV)
    assert len(rows) == 6 and "score_reencoded_jpeg95" in rows[0]
    labels = np.array([int(r["label"]) for r in rows])
    reencoded = np.array([float(r["score_reencoded_jpeg95"]) for r in rows])
    ap_after = data["reencoded"]["subsets"][0]["metrics"]["ap"]
    assert ap_after == pytest.approx(average_precision_score(labels, reencoded), abs=1e-12)
    delta = data["reencode_delta"]["subsets"]["mine"]["ap"]
    assert delta == pytest.approx(ap_after - data["clean"]["subsets"][0]["metrics"]["ap"])
    assert "Format-bias check: --reencode jpeg:95" in result.output
    rerun = runner.invoke(app, [*base, "--out", str(tmp_path / "again")])
    assert rerun.exit_code == 0, rerun.output
    assert read_predictions(tmp_path / "again" / PREDICTIONS_CSV) == [
        {k: v for k, v in row.items() if not k.startswith("score_reencoded")} for row in rows
    ]


def test_bench_bad_inputs_exit_2_with_one_line(tmp_path: Path, tiny_checkpoint: Path) -> None:
    write_image(tmp_path / "holiday" / "a.png")
    result = runner.invoke(app, ["bench", "univfd", "--root", str(tmp_path), "--checkpoint", str(tiny_checkpoint), *CPU])
    assert result.exit_code == 2
    assert "does not look like the univfd layout" in result.output and "found: holiday/" in result.output
    write_image(tmp_path / "generated" / "b.png")
    bogus = tmp_path / "bogus.json"
    bogus.write_text(json.dumps({"kind": "scan"}))
    result = runner.invoke(
        app,
        ["bench", "folder", "--real", str(tmp_path / "holiday"), "--fake", str(tmp_path / "generated"),
         "--checkpoint", str(tiny_checkpoint), "--compare", str(bogus), *CPU],
    )  # fmt: skip
    assert result.exit_code == 2 and "expected the results.json of an 'aigdetect bench' run" in result.output
    result = runner.invoke(
        app,
        ["bench", "folder", "--real", str(tmp_path / "holiday"), "--fake", str(tmp_path / "generated"),
         "--checkpoint", str(tiny_checkpoint), "--reencode", "gif", *CPU],
    )  # fmt: skip
    assert result.exit_code == 2 and "--reencode takes jpeg:Q or png" in result.output


def test_results_json_is_strict_json_with_nulls_for_undefined_metrics(tmp_path: Path, tiny_checkpoint: Path) -> None:
    images(tmp_path / "real", 2, 40)
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\ngarbage")  # an image by its header that fails to decode
    result = runner.invoke(
        app,
        ["bench", "folder", "--real", str(tmp_path / "real"), "--fake", str(tmp_path / "fake"),
         "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "run"), *CPU],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    text = (tmp_path / "run" / RESULTS_JSON).read_text()
    data = json.loads(text, parse_constant=lambda name: pytest.fail(f"non-standard JSON constant {name}"))
    assert data["clean"]["subsets"][0]["metrics"]["ap"] is None
    assert any("metrics undefined" in note for note in data["notes"])


def test_bench_and_robustness_commands_share_options_but_only_robustness_sweeps() -> None:
    bench = runner.invoke(app, ["bench", "--help"])
    sweep = runner.invoke(app, ["robustness", "--help"])
    assert bench.exit_code == sweep.exit_code == 0
    for option in ("--checkpoint", "--model", "--backbone-weights", "--device", "--batch-size", "--workers", "--out",
                   "--max-per-class", "--seed", "--reencode", "--compare", "--root", "--real", "--fake", "--name"):  # fmt: skip
        assert option in bench.output and option in sweep.output
    assert "--blur" not in bench.output and "--blur" in sweep.output and "--jpeg" in sweep.output
    assert "univfd, genimage, dalle2, folder" in bench.output and "Example: aigdetect" in bench.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["bench", "univfd", "--real", "r", "--fake", "f"], "suite univfd takes --root DIR"),
        (["bench", "folder", "--root", "r"], "the folder suite takes --real DIR and --fake DIR"),
        (["bench", "imagenet", "--root", "r"], "unknown suite 'imagenet'; choose one of univfd, genimage, dalle2, folder"),
    ],
)
def test_suite_and_folder_options_are_checked_before_anything_loads(args, message) -> None:
    result = runner.invoke(app, [*args, *CPU])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith(f"error: {message}"), result.output
