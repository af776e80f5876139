"""The scan report in a real browser (headless Chromium): counts, sorting, filters, detail view, hostile names, offline."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image
from report_support import (
    FUSED,
    HOSTILE_DETAIL,
    HOSTILE_NAME,
    HOSTILE_SCRIPT_PATH,
    HOSTILE_TOOL,
    launch_browser,
    open_offline,
    scan_rows,
    write_results,
)

from aigdetect.evidence.findings import MAX_DETAIL, clean_text
from aigdetect.report import write_scan_report
from aigdetect.results.schema import ScanResults, ScanRow

PREVIEWS = 40
CELLS = "trs => trs.map(tr => Array.from(tr.cells, td => td.textContent))"


@pytest.fixture(scope="module")
def browser():
    playwright, browser = launch_browser()
    yield browser
    browser.close()
    playwright.stop()


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict], Path]:
    """A results file with every verdict, error rows and hostile names, and its report."""
    root = tmp_path_factory.mktemp("scan")
    rows = scan_rows(root / "photos")
    for row in rows:
        row["path"] = "photos/" + row["path"]
    summary = {"files": len(rows), "detector": "univfd-vitl14@0123456789ab", "threshold": 0.5, "bands": [0.35, 0.65],
               "command": f"aigdetect scan photos --html '{HOSTILE_NAME}'", "date": "2026-12-01", "aigdetect_version": "0.2.0"}  # fmt: skip
    results = write_results(rows, root / "verdicts.json", summary)
    out = root / "report.html"
    stats = write_scan_report(results, out, thumbnails=PREVIEWS, root=root)
    assert stats.rows == len(rows) and stats.thumbnails == PREVIEWS - 1  # the most suspicious file is gone
    return results, rows, out


@pytest.fixture()
def page(browser, scan):
    opened = open_offline(browser, scan[2])
    yield opened
    assert opened.dialogs == [] and opened.errors == [] and opened.outside() == [] and opened.aborted == []
    opened.page.context.close()


def _file_rows(results: Path) -> list[dict]:
    """The rows as the file holds them, read with the json module alone."""
    return json.loads(results.read_text(encoding="utf-8"))["rows"]


def _table(page) -> list[list[str]]:
    return page.eval_on_selector_all("#rows tr", CELLS)


def _show_all(page) -> None:
    page.select_option("#page-size", "500")


def test_counts_on_the_page_equal_the_file(page, scan, tmp_path: Path) -> None:
    results, _, _ = scan
    file_rows = _file_rows(results)
    expected = Counter(r["verdict"] or "error" for r in file_rows)
    shown = {
        k: int(v)
        for k, v in page.page.eval_on_selector_all(".cards [data-count]", "els => els.map(e => [e.dataset.count, e.textContent])")
    }
    assert shown == {**dict.fromkeys(FUSED, 0), **expected} and set(expected) == {*FUSED, "error"}
    assert page.page.text_content("#count-files") == str(len(file_rows))
    assert page.page.text_content("#match-count") == f"{len(file_rows)} files"
    options = page.page.eval_on_selector_all("#verdict option", "os => os.map(o => [o.value, o.textContent])")
    assert options[0] == ["", "all verdicts"]
    assert {value: int(text.rsplit("(", 1)[1].rstrip(")")) for value, text in options[1:]} == dict(expected)
    reasons = page.page.eval_on_selector_all("#errors-by-reason tbody tr", CELLS)
    assert sorted(reasons) == sorted([r, "1"] for r in ("truncated", "unsupported", "too-large"))
    bars = page.page.eval_on_selector_all("#histogram rect.bar", "rs => rs.map(r => Number(r.dataset.count))")
    assert sum(bars) == sum(r["score"] is not None for r in file_rows)
    assert page.page.text_content("#threshold") == "0.5" and page.page.text_content("#bands") == "0.35 to 0.65"
    shot = tmp_path / "report.png"
    page.page.screenshot(path=str(shot), full_page=True)
    with Image.open(shot) as image:
        assert image.format == "PNG" and image.width == 1280 and image.height > 900


def test_sorting_orders_the_rows_and_keeps_missing_values_last(page, scan) -> None:
    file_rows = _file_rows(scan[0])
    _show_all(page.page)
    page.page.click("th[data-sort=score] button")
    assert page.page.get_attribute("th[data-sort=score]", "aria-sort") == "descending"
    scored = [r for r in file_rows if r["score"] is not None]
    unscored = [r["path"] for r in file_rows if r["score"] is None]
    table = _table(page.page)
    assert [row[1] for row in table] == [r["path"] for r in sorted(scored, key=lambda r: -r["score"])] + unscored
    assert all(abs(float(row[3]) - r["score"]) <= 0.00051 for row, r in zip(table, sorted(scored, key=lambda r: -r["score"])))
    assert [row[3] for row in table[-3:]] == [""] * 3
    page.page.click("th[data-sort=score] button")
    assert page.page.get_attribute("th[data-sort=score]", "aria-sort") == "ascending"
    assert [row[1] for row in _table(page.page)] == [r["path"] for r in sorted(scored, key=lambda r: r["score"])] + unscored
    page.page.click("th[data-sort=path] button")
    assert [row[1] for row in _table(page.page)] == sorted(r["path"] for r in file_rows)
    assert page.page.get_attribute("th[data-sort=score]", "aria-sort") == "none"
    page.page.click("th[data-sort=dims] button")
    pixels = [r["width"] * r["height"] for r in file_rows if r["width"] is not None]
    shown = [row[7] for row in _table(page.page)]
    assert [int(a) * int(b) for a, b in (s.split(" \u00d7 ") for s in shown if s)] == sorted(pixels)


def test_the_verdict_filter_shows_exactly_the_matching_rows(page, scan) -> None:
    file_rows = _file_rows(scan[0])
    for kind in (*FUSED, "error"):
        page.page.select_option("#verdict", kind)
        expected = [r["path"] for r in file_rows if (r["verdict"] or "error") == kind]
        assert [row[1] for row in _table(page.page)] == expected, kind
        assert page.page.text_content("#match-count") == f"{len(expected)} of {len(file_rows)} files"
    page.page.select_option("#verdict", "")
    page.page.click("button[data-verdict=conflict]")  # the summary's count cards filter too
    assert page.page.input_value("#verdict") == "conflict"
    assert len(_table(page.page)) == sum(r["verdict"] == "conflict" for r in file_rows)


def _search(page, text: str, expected: int, total: int) -> list[list[str]]:
    page.fill("#q", text)
    page.wait_for_selector("#files-table:not([aria-busy])", state="attached")
    assert page.text_content("#match-count") == (f"{expected} files" if expected == total else f"{expected} of {total} files")
    return _table(page)


def test_the_text_filter_matches_paths_generators_evidence_and_errors(page, scan) -> None:
    file_rows = _file_rows(scan[0])
    total = len(file_rows)

    def haystack(r: dict) -> str:
        findings = " ".join(" ".join(f.values()) for f in r["evidence"])
        return " ".join([r["path"], r["generator"], findings, r["error_reason"], r["error_detail"]]).lower()

    for query in ("midjourney", "DALL-E canon", "truncated", "img03", "caf\\xe9"):
        terms = query.lower().split()
        expected = [r["path"] for r in file_rows if all(t in haystack(r) for t in terms)]
        assert expected, query
        assert [row[1] for row in _search(page.page, query, len(expected), total)] == expected[:100], query
    page.page.select_option("#verdict", "likely-real")
    both = [r["path"] for r in file_rows if r["verdict"] == "likely-real" and "midjourney" in haystack(r)]
    assert [row[1] for row in _search(page.page, "midjourney", len(both), total)] == both
    assert _search(page.page, "no such file anywhere", 0, total) == [["No file matches the filters."]]


def test_pages_of_rows(page, scan) -> None:
    file_rows = _file_rows(scan[0])
    page.page.select_option("#page-size", "50")
    assert [row[1] for row in _table(page.page)] == [r["path"] for r in file_rows[:50]]
    pages = -(-len(file_rows) // 50)
    assert page.page.text_content("#page-info") == f"1\u201350 (page 1 of {pages})"
    assert page.page.is_disabled("#prev")
    page.page.click("#next")
    assert [row[1] for row in _table(page.page)] == [r["path"] for r in file_rows[50:100]]
    for _ in range(pages - 2):
        page.page.click("#next")
    assert [row[1] for row in _table(page.page)] == [r["path"] for r in file_rows[(pages - 1) * 50 :]]
    assert page.page.is_disabled("#next")


def test_the_detail_view_shows_every_finding_and_the_crop_scores(page, scan) -> None:
    file_rows = _file_rows(scan[0])
    target = next(r for r in file_rows if len(r["evidence"]) == 3 and r["crop_mean"] is not None)
    _search(page.page, target["path"], 1, len(file_rows))
    page.page.click("#rows tr[data-row]")
    dialog = page.page.locator("dialog#detail")
    assert dialog.get_attribute("open") is not None
    assert page.page.text_content("#detail-title") == target["path"]
    findings = page.page.eval_on_selector_all("#detail-body table.findings tbody tr", CELLS)
    assert findings == [[f["source"], f["claim"], f["strength"], f["detail"], f["generator"]] for f in target["evidence"]]
    facts = dict(
        zip(
            *[
                page.page.eval_on_selector_all(f"#detail-body dl {tag}", "es => es.map(e => e.textContent)")
                for tag in ("dt", "dd")
            ]
        )
    )
    assert facts["Crop mean"] == f"{target['crop_mean']:.3f}" and facts["Crop max"] == f"{target['crop_max']:.3f}"
    assert facts["Score"] == f"{target['score']:.3f}" and facts["SHA-256"] == target["sha256"]
    assert facts["Size"] == f"{target['size'] / 1024:.1f} KiB ({target['size']} bytes)"
    page.page.click("#detail-close")
    assert dialog.get_attribute("open") is None
    error = next(r for r in file_rows if r["error_reason"] == "truncated")
    _search(page.page, error["path"], 1, len(file_rows))
    page.page.focus("#rows tr[data-row]")  # rows are reachable from the keyboard
    page.page.keyboard.press("Enter")
    facts = dict(
        zip(
            *[
                page.page.eval_on_selector_all(f"#detail-body dl {tag}", "es => es.map(e => e.textContent)")
                for tag in ("dt", "dd")
            ]
        )
    )
    assert facts["Verdict"] == "error" and facts["Error"] == f"truncated: {error['error_detail']}"
    assert page.page.text_content("#detail-body h3") == "Evidence: none found"


def test_hostile_names_and_metadata_show_as_text_and_run_nothing(page, scan) -> None:
    file_rows = _file_rows(scan[0])
    _show_all(page.page)
    by_path = {row[1]: row for row in _table(page.page)}
    hostile = by_path["photos/" + HOSTILE_NAME]
    assert hostile[4] == HOSTILE_TOOL and "photos/" + HOSTILE_SCRIPT_PATH in by_path
    assert page.page.text_content("#command") == f"aigdetect scan photos --html '{HOSTILE_NAME}'"
    _search(page.page, "onerror", 1, len(file_rows))
    page.page.click("#rows tr[data-row]")
    findings = page.page.eval_on_selector_all("#detail-body table.findings tbody tr", CELLS)
    assert findings == [["xmp", "ai", "strong", clean_text(HOSTILE_DETAIL, MAX_DETAIL), HOSTILE_TOOL]]
    assert page.page.text_content("#detail-title") == "photos/" + HOSTILE_NAME
    counts = page.page.evaluate(
        "() => [document.scripts.length, document.querySelectorAll('img[src=x], b, iframe').length, "
        "document.querySelectorAll('[onerror], [onmouseover]').length]"
    )
    assert counts == [2, 0, 0]
    assert page.page.locator("#detail-body img").evaluate("img => img.src.startsWith('data:image/jpeg;base64,')")


def test_previews_fit_192_pixels_and_placeholders_say_why(page, scan) -> None:
    _show_all(page.page)
    sizes = page.page.eval_on_selector_all(
        "#rows td.thumb img", "is => is.map(i => [i.complete, i.naturalWidth, i.naturalHeight])"
    )
    assert len(sizes) == PREVIEWS - 1
    assert all(done and 0 < w <= 192 and 0 < h <= 192 for done, w, h in sizes)
    placeholders = Counter(page.page.eval_on_selector_all("#rows td.thumb .placeholder", "ps => ps.map(p => p.textContent)"))
    assert placeholders["original not found"] == 1 and placeholders["\u2014"] == 3
    assert placeholders["no preview (over the limit)"] == len(_table(page.page)) - PREVIEWS - 3


def test_the_offline_guard_sees_a_page_that_reaches_out(browser, tmp_path: Path) -> None:
    """The request recorder of the other tests works: a page with a remote image and a fetch is caught."""
    leaky = tmp_path / "leaky.html"
    leaky.write_text(
        '<!DOCTYPE html><img src="http://192.0.2.1/pixel.png"><script>fetch("https://example.invalid/x")</script>',
        encoding="utf-8",
    )
    opened = open_offline(browser, leaky, ready=None)  # returns after the load event, which waits for the image
    assert "http://192.0.2.1/pixel.png" in opened.outside() and "http://192.0.2.1/pixel.png" in opened.aborted
    opened.page.context.close()


def test_verdicts_named_like_object_properties_stay_plain_words(browser, tmp_path: Path) -> None:
    rows = [
        ScanRow(path=f"{verdict}.png", status="ok", verdict=verdict, score=score)
        for verdict, score in (("constructor", 0.2), ("__proto__", 0.9), ("toString", 0.5), ("likely-ai", 0.7))
    ]  # a results file may not hold such verdicts (the reader refuses them); the page stays safe with them all the same
    write_scan_report(ScanResults(rows), tmp_path / "odd.html", thumbnails=0)
    opened = open_offline(browser, tmp_path / "odd.html")
    page = opened.page
    assert [row[2] for row in _table(page)] == ["constructor", "__proto__", "toString", "likely AI"]
    page.click("th[data-sort=verdict] button")
    assert [row[1] for row in _table(page)] == ["likely-ai.png", "__proto__.png", "constructor.png", "toString.png"]
    page.select_option("#verdict", "__proto__")
    assert [row[1] for row in _table(page)] == ["__proto__.png"]
    assert opened.errors == [] and opened.dialogs == [] and opened.outside() == []
    opened.page.context.close()


def test_the_report_counts_ai_edited_and_shows_the_chain_as_text(browser, tmp_path):
    hostile_label, hostile_signer = 'urn:c2pa:<img src=x onerror="alert(7)">', "<script>alert(8)</script>Signer"
    rows = [r for r in scan_rows(tmp_path, per_kind=1) if r["status"] == "ok" and not r["path"].startswith("gone/")][:3]
    chain_findings = [
        {"source": "c2pa", "claim": "ai-edited", "strength": "moderate", "generator": "Adobe Firefly",
         "detail": "C2PA manifest (valid, signed by X, untrusted) records generative parts or edits in its chain (perceptibleGenAI)"},
        {"source": "c2pa", "claim": "none", "strength": "weak", "generator": None,
         "detail": f"C2PA ingredient manifest (parentOf, signed by {hostile_signer}, untrusted), signals: fullyGenAIMedia; "
                   f"{hostile_label}"},
    ]  # fmt: skip
    rows[0].update(verdict="ai-edited", generator="Adobe Firefly", evidence=chain_findings)
    results = write_results(rows, tmp_path / "verdicts.json", {"files": len(rows), "threshold": 0.5})
    out = tmp_path / "report.html"
    write_scan_report(results, out, thumbnails=0, root=tmp_path)
    opened = open_offline(browser, out)
    page = opened.page
    counts = dict(page.eval_on_selector_all(".cards [data-count]", "els => els.map(e => [e.dataset.count, e.textContent])"))
    assert [r["verdict"] for r in rows] == ["ai-edited", "ai-edited", "likely-ai"]
    assert counts["ai-edited"] == "2" and counts["ai-generated"] == "0"
    page.fill("#q", rows[0]["path"])
    page.wait_for_selector("#files-table:not([aria-busy])", state="attached")
    assert page.text_content("#match-count") == f"1 of {len(rows)} files"
    page.click("#rows tr[data-row]")
    cells = page.eval_on_selector_all(
        "#detail-body table.findings tbody tr", "trs => trs.map(tr => Array.from(tr.cells, td => td.textContent))"
    )
    assert cells == [[f["source"], f["claim"], f["strength"], f["detail"], f["generator"] or ""] for f in chain_findings]
    injected = page.evaluate("() => [document.scripts.length, document.querySelectorAll('img[src=x], [onerror]').length]")
    assert injected == [2, 0]
    assert opened.dialogs == [] and opened.errors == [] and opened.outside() == []
    page.context.close()
