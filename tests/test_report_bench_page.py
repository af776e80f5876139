"""Bench and robustness pages from real tiny runs, opened offline in headless Chromium; numbers checked against results.json."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from conftest import make_tiny_detector, write_image
from PIL import Image
from report_support import launch_browser, open_offline

from aigdetect.engine.runtime import RuntimeConfig
from aigdetect.errors import InputError
from aigdetect.evaluation.bench import run_bench
from aigdetect.evaluation.bench_config import PIXEL_ONLY, BenchConfig, Reencode, SweepConfig
from aigdetect.evaluation.report import RESULTS_JSON, ROBUSTNESS_PNG, write_bench_report, write_robustness_report
from aigdetect.evaluation.results import bench_dict, compare_results, robustness_dict
from aigdetect.evaluation.robustness import run_robustness
from aigdetect.evaluation.suites import SUITES, discover
from aigdetect.report import REPORT_HTML, write_bench_html, write_robustness_html

CELLS = "trs => trs.map(tr => Array.from(tr.cells, td => td.textContent))"
FACTS = "dl => Object.fromEntries(Array.from(dl.querySelectorAll('dt'), dt => [dt.textContent, dt.nextElementSibling.textContent]))"


def percent(value: float | None, signed: bool = False) -> str:
    """Independent of the tables module: a fraction as the paper's percentage with two decimals."""
    if value is None:
        return "-"
    return f"{100 * value:+.2f}" if signed else f"{100 * value:.2f}"


@pytest.fixture(scope="module")
def browser():
    playwright, browser = launch_browser()
    yield browser
    browser.close()
    playwright.stop()


@pytest.fixture(scope="module")
def univfd(tmp_path_factory: pytest.TempPathFactory):
    """A small UnivFD-layout tree (GAN and diffusion subsets, one corrupt file) and its discovery."""
    root = tmp_path_factory.mktemp("univfd")
    folders = [("CNN/test/progan/cat/0_real", 1, 3), ("CNN/test/progan/cat/1_fake", 2, 3), ("CNN/test/deepfake/0_real", 3, 3),
               ("CNN/test/deepfake/1_fake", 4, 4), ("diffusion_datasets/imagenet/0_real", 5, 3),
               ("diffusion_datasets/guided/1_fake", 6, 3), ("diffusion_datasets/laion/0_real", 8, 3),
               ("diffusion_datasets/dalle/1_fake", 7, 2)]  # fmt: skip
    for folder, seed, count in folders:
        for i in range(count):
            write_image(root / folder / f"{i}.png", size=(40, 36), seed=seed * 10 + i)
    (root / "diffusion_datasets/dalle/1_fake/broken <b onclick=alert(1)>x.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return discover(SUITES.get("univfd"), root)


def _bench(univfd, out: Path, seed: int):
    detector = make_tiny_detector(seed=seed)
    config = BenchConfig(runtime=RuntimeConfig(batch_size=8), reencode=Reencode("jpeg", 90))
    result = run_bench(detector, univfd, origin="tiny", device=detector.device, config=config)
    return result, bench_dict(result, "aigdetect bench univfd --root <root> --reencode jpeg:90")


@pytest.fixture(scope="module")
def bench_page(univfd, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("bench")
    _, other = _bench(univfd, out, seed=1)
    result, data = _bench(univfd, out, seed=0)
    data["compare"] = compare_results(data, other, "other/results.json")
    write_bench_report(result, data, out)
    assert write_bench_html(data, out) == out / REPORT_HTML
    return json.loads((out / RESULTS_JSON).read_text()), other, out / REPORT_HTML


def _tables(page) -> dict[str, dict]:
    """Every results table of the page by title: its header and its rows as text."""
    return page.evaluate(
        """() => Object.fromEntries(Array.from(document.querySelectorAll('section.bench-table'), s => [
            s.dataset.title,
            {head: Array.from(s.querySelectorAll('thead th'), th => th.textContent),
             rows: Array.from(s.querySelectorAll('tbody tr'), tr => Array.from(tr.cells, td => td.textContent)),
             bold: Array.from(s.querySelectorAll('tbody tr'), tr => tr.classList.contains('bold'))}]))"""
    )


def test_bench_page_shows_the_paper_tables_with_the_numbers_of_results_json(browser, bench_page, tmp_path: Path) -> None:
    data, other, html = bench_page
    opened = open_offline(browser, html, ready=None)
    page = opened.page
    tables = _tables(page)
    subsets = data["clean"]["subsets"]
    name = data["detector"]["name"]
    assert [s["key"] for s in subsets] == ["progan", "deepfake", "guided", "dalle"]

    ap = tables["AP (%), UnivFD test sets (Tables 1 and 2)"]
    assert ap["head"] == ["Method", "ProGAN", "Deepfakes", "Guided", "DALL-E", "mAP"]
    assert ap["rows"][0] == [name, *(percent(s["metrics"]["ap"]) for s in subsets), percent(data["clean"]["means"]["all"]["ap"])]
    reencoded = data["reencoded"]["subsets"]
    assert ap["rows"][1] == [f"{name}, re-encoded jpeg:90", *(percent(s["metrics"]["ap"]) for s in reencoded),
                             percent(data["reencoded"]["means"]["all"]["ap"])]  # fmt: skip
    deltas = [percent(a["metrics"]["ap"] - b["metrics"]["ap"], signed=True) for a, b in zip(subsets, other["clean"]["subsets"])]
    assert ap["rows"][-1][:-1] == [f"delta vs {other['detector']['name']}", *deltas] and ap["bold"][-1]
    acc = tables["Acc (%), UnivFD test sets (Tables 1 and 2)"]
    assert acc["rows"][0][1:] == [*(percent(s["metrics"]["acc_calibrated"]) for s in subsets),
                                  percent(data["clean"]["means"]["all"]["acc_calibrated"])]  # fmt: skip

    family = tables["Family means (%)"]
    families = [f for f in data["suite"]["families"] if f in data["clean"]["means"]]
    assert len(families) > 2 and [row[0] for row in family["rows"]] == [*families, "Total"]
    assert [row[2] for row in family["rows"]] == [percent(data["clean"]["means"][g]["ap"]) for g in [*families, "all"]]
    assert family["bold"] == [False] * len(families) + [True]

    details = [t for title, t in tables.items() if title == "Per subset, as stored"][0]
    assert [row[:5] for row in details["rows"]] == [
        [s["title"], s["family"], str(s["n_real"]), str(s["n_fake"]), str(s["n_errors"])] for s in subsets
    ]
    assert [row[7] for row in details["rows"]] == [percent(s["metrics"]["ap"]) for s in subsets]
    assert [row[12] for row in details["rows"]] == [percent(s["metrics"]["acc_0.5"]) for s in subsets]
    assert "Per subset, re-encoded jpeg:90" in tables

    [error] = page.eval_on_selector_all("#errors tbody tr", CELLS)
    assert error[0] == "dalle" and error[1].endswith("broken <b onclick=alert(1)>x.png")
    assert page.evaluate("() => [document.scripts.length, document.querySelectorAll('b').length]") == [0, 0]
    notes = page.text_content(".notes")
    assert "Missing subsets, skipped" in notes and "CycleGAN" in notes
    assert page.eval_on_selector("#facts", FACTS)["Scores"] == PIXEL_ONLY == data["scores"]
    page.screenshot(path=str(tmp_path / "bench.png"), full_page=True)
    assert opened.outside() == [] and opened.aborted == [] and opened.errors == [] and opened.dialogs == []
    opened.page.context.close()


@pytest.fixture(scope="module")
def robustness_page(univfd, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("robustness")
    detector = make_tiny_detector()
    result = run_robustness(detector, univfd, origin="tiny", device=detector.device, config=BenchConfig(runtime=RuntimeConfig(batch_size=8)),
                            sweep=SweepConfig(blur=(1.0, 3.0), jpeg=(50,)))  # fmt: skip
    data = robustness_dict(result, "aigdetect robustness univfd --blur 1,3 --jpeg 50")
    write_robustness_report(result, data, out)
    assert write_robustness_html(data, out, out / ROBUSTNESS_PNG) == out / REPORT_HTML
    return data, out


def test_robustness_page_embeds_the_plot_and_one_row_per_level(browser, robustness_page, tmp_path: Path) -> None:
    data, out = robustness_page
    opened = open_offline(browser, out / REPORT_HTML, ready=None)
    page = opened.page
    src = page.get_attribute("#plot img", "src")
    assert src.startswith("data:image/png;base64,")
    assert base64.b64decode(src.split(",", 1)[1]) == (out / ROBUSTNESS_PNG).read_bytes()
    with Image.open(out / ROBUSTNESS_PNG) as plot:
        natural = page.eval_on_selector("#plot img", "img => [img.complete, img.naturalWidth, img.naturalHeight]")
        assert natural == [True, plot.width, plot.height]
    tables = _tables(page)
    map_table = next(t for title, t in tables.items() if title.startswith("Robustness, mAP (%)"))
    groups = [f for f in data["suite"]["families"] if f in data["levels"][0]["means"]]
    assert map_table["head"] == ["Level", *groups, "Average"]
    assert map_table["rows"] == [
        [lvl["label"], *(percent(lvl["means"][g]["ap"]) for g in groups), percent(lvl["means"]["all"]["ap"])]
        for lvl in data["levels"]
    ]
    assert [row[0] for row in map_table["rows"]] == ["clean", "blur \u03c3=1", "blur \u03c3=3", "jpeg q=50"]
    level_details = [title for title in tables if title.startswith("Per subset, ")]
    assert level_details == [f"Per subset, {lvl['label']}" for lvl in data["levels"]]
    blurred = tables["Per subset, blur \u03c3=3"]
    assert [row[7] for row in blurred["rows"]] == [percent(s["metrics"]["ap"]) for s in data["levels"][2]["subsets"]]
    assert page.eval_on_selector("#facts", FACTS)["Scores"] == PIXEL_ONLY == data["scores"]
    page.screenshot(path=str(tmp_path / "robustness.png"), full_page=True)
    assert opened.outside() == [] and opened.aborted == [] and opened.errors == [] and opened.dialogs == []
    opened.page.context.close()


def test_a_plot_that_is_not_a_png_is_refused(robustness_page, tmp_path: Path) -> None:
    data, _ = robustness_page
    fake = tmp_path / "plot.png"
    fake.write_bytes(b"<svg onload=alert(1)>")
    with pytest.raises(InputError, match="not a PNG"):
        write_robustness_html(data, tmp_path, fake)
    without = write_robustness_html(data, tmp_path, None)
    assert "<img" not in without.read_text(encoding="utf-8")
