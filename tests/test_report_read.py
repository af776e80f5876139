"""Scan reports without a browser: reading results files, the safe JSON, the page's markup, the histogram, previews."""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from report_support import (
    COLUMNS,
    DETECTOR,
    FUSED,
    HOSTILE_DETAIL,
    HOSTILE_NAME,
    HOSTILE_TOOL,
    scan_rows,
    write_picture,
    write_results,
)

from aigdetect.errors import ConfigError, InputError, InputFileError
from aigdetect.evidence.findings import MAX_DETAIL, Finding, clean_text
from aigdetect.report import ReadLimits, read_scan_results, write_scan_report
from aigdetect.report.histogram import score_histogram
from aigdetect.report.html import script_json
from aigdetect.report.scan_page import summarise
from aigdetect.report.thumbnails import make_thumbnail, make_thumbnails
from aigdetect.results.cells import guard, unguard
from aigdetect.results.typed import parse_compact_evidence

ISLAND = re.compile(r'<script type="application/json" id="aig-data">(.*?)</script>', re.S)


def island(html_path: Path) -> dict:
    return json.loads(ISLAND.search(html_path.read_text(encoding="utf-8")).group(1))


def decoded(uri: str) -> Image.Image:
    prefix = "data:image/jpeg;base64,"
    assert uri.startswith(prefix)
    image = Image.open(io.BytesIO(base64.b64decode(uri[len(prefix) :])))
    assert image.format == "JPEG"
    return image


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    root = tmp_path_factory.mktemp("photos")
    return root, scan_rows(root)


# ---- reading -------------------------------------------------------------------------------------------


def test_csv_json_and_jsonl_of_the_same_rows_give_the_same_rows_and_page_data(photos, tmp_path: Path) -> None:
    root, rows = photos
    summary = {"files": len(rows), "threshold": 0.5}
    results = {s: read_scan_results(write_results(rows, tmp_path / f"r.{s}", summary)) for s in ("json", "jsonl", "csv")}
    assert [r.format for r in results.values()] == ["json", "jsonl", "csv"]
    typed = results["json"].rows
    assert [r.path for r in typed] == [r["path"] for r in rows]
    assert [r.kind for r in typed] == [r["verdict"] or "error" for r in rows]
    assert [r.score for r in typed] == [r["score"] for r in rows]
    assert [r.size for r in typed] == [r["size"] for r in rows]
    assert [[(f.source, f.claim, f.strength, f.detail, f.generator) for f in r.evidence] for r in typed] == [
        [
            (f["source"], f["claim"], f["strength"], clean_text(f["detail"], MAX_DETAIL), f["generator"] or None)
            for f in r["evidence"]
        ]
        for r in rows
    ]  # read back as the evidence layer's findings: one printable line, no empty generator
    assert results["json"].summary == summary and results["csv"].summary == {}
    assert results["jsonl"].rows == typed
    # CSV carries findings as source:claim:detail, without strength and generator.
    assert [[(f.source, f.claim, f.detail) for f in r.evidence] for r in results["csv"].rows] == [
        [(f.source, f.claim, f.detail) for f in r.evidence] for r in typed
    ]
    stripped = [[Finding(f.source, f.claim, None, f.detail) for f in r.evidence] for r in typed]
    assert [list(r.evidence) for r in results["csv"].rows] == stripped

    pages = {}
    for suffix, result in results.items():
        out = tmp_path / f"{suffix}.html"
        stats = write_scan_report(result, out, thumbnails=6, root=root)
        assert stats.rows == len(rows) and stats.bytes == out.stat().st_size
        pages[suffix] = island(out)
    assert pages["json"] == pages["jsonl"]
    evidence = pages["json"]["fields"].index("evidence")
    for row in pages["json"]["rows"]:
        row[evidence] = [[f[0], f[1], "", f[3], ""] for f in row[evidence]]
    assert pages["csv"] == pages["json"]
    assert len(pages["json"]["thumbs"]) == 5  # six previews due; the most suspicious file is gone


def test_older_files_with_fake_real_verdicts_and_an_error_column(tmp_path: Path) -> None:
    path = tmp_path / "old.csv"
    path.write_text(
        "path,status,score,verdict,threshold,detector,width,height,format,error,size,mtime_ns\n"
        "a.png,ok,0.75,fake,0.5,d@1,48,40,PNG,,10,123456789012345678\n"
        "b.png,ok,0.25,real,0.5,d@1,48,40,PNG,,10,123456789012345678\n"
        "c.jpg,error,,,0.5,d@1,,,,truncated: image file is truncated: 3 bytes,10,123456789012345678\n",
        encoding="utf-8",
    )
    results = read_scan_results(path)
    fake, real, error = results.rows
    assert (fake.kind, fake.model_verdict, fake.score, fake.mtime_ns) == ("fake", "fake", 0.75, 123456789012345678)
    assert (real.kind, real.model_verdict) == ("real", "real")
    assert (error.kind, error.error_reason, error.error_detail) == ("error", "truncated", "image file is truncated: 3 bytes")
    view = summarise(results, {}, {}, 0)
    assert [(c.kind, c.count) for c in view.counts] == [("fake", 1), ("real", 1), ("error", 1)]
    assert view.errors_by_reason == [("truncated", 1)]
    assert [(d.name, d.fingerprint, d.rows) for d in view.detectors] == [("d", "1", 3)]
    assert view.threshold == 0.5


@pytest.mark.parametrize(
    ("cell", "value"),
    [("'=SUM(A1)", "=SUM(A1)"), ("''=x", "'=x"), ("'+1", "+1"), ("'-0.5", "-0.5"), ("'@me", "@me"),
     ("'\tx", "\tx"), ("'abc", "'abc"), ("'", "'"), ("=raw", "=raw"), ("", "")],
)  # fmt: skip
def test_the_csv_formula_guard_is_undone_exactly_once(cell: str, value: str) -> None:
    assert unguard(cell) == value


@pytest.mark.parametrize("value", ["=SUM(A1)", "'=x", "''", "'", "+1", "-", "@", "\tx", "\rx", "plain", "a=b", ""])
def test_guarded_cells_round_trip_and_never_start_a_formula(value: str) -> None:
    cell = guard(value)
    assert unguard(cell) == value
    assert cell[:1] not in ("=", "+", "-", "@", "\t", "\r")


def test_formula_like_names_survive_a_csv_round_trip(photos, tmp_path: Path) -> None:
    _, rows = photos
    row = copy.deepcopy(rows[0])
    row.update(path='=HYPERLINK("http://x")@.png', generator="+cmd|' /C calc'!A0", error_detail="-2")
    [back] = read_scan_results(write_results([row], tmp_path / "f.csv")).rows
    assert (back.path, back.generator, back.error_detail) == (row["path"], row["generator"], "-2")
    assert read_scan_results(write_results([row], tmp_path / "f.json")).rows == [back]


def test_compact_evidence_keeps_colons_and_semicolons_inside_details() -> None:
    text = "c2pa:ai:signed by OpenAI; claim: trainedAlgorithmicMedia; exif:camera:Canon; xmp:ai:CreatorTool: Midjourney v6"
    assert parse_compact_evidence(text) == [
        Finding("c2pa", "ai", None, "signed by OpenAI; claim: trainedAlgorithmicMedia"),
        Finding("exif", "camera", None, "Canon"),
        Finding("xmp", "ai", None, "CreatorTool: Midjourney v6"),
    ]
    assert parse_compact_evidence("  ") == []
    with pytest.raises(ValueError, match="not source:claim"):
        parse_compact_evidence("just words")
    for outside in ("exif:camera; xmp:ai:x", "gps:ai:x", "xmp:maybe:x"):  # no detail, unknown source, unknown claim
        with pytest.raises(ValueError, match="finding"):
            parse_compact_evidence(outside)


def _csv(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "r.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


HEADER = "path,status,verdict,score,evidence"


@pytest.mark.parametrize(
    ("make", "limits", "message"),
    [
        (lambda t: _csv(t, HEADER, "a.png,ok,likely-ai,0.9,", "b.png,ok,likely-ai"), None, "line 3 of .* has 3 fields instead of 5"),
        (lambda t: _csv(t, HEADER, "a.png,maybe,likely-ai,0.9,"), None, "line 2 of .*status is 'maybe'"),
        (lambda t: _csv(t, HEADER, "a.png,ok,likely-ai,high,"), None, "line 2 of .*could not convert"),
        (lambda t: _csv(t, HEADER, "a.png,ok,,0.9,"), None, "status is ok but the verdict is empty"),
        (lambda t: _csv(t, HEADER, "a.png,ok,likely-ai,0.9,nonsense"), None, "not source:claim:detail"),
        (lambda t: _csv(t, HEADER, "x" * 101 + ",ok,likely-ai,0.9,"), ReadLimits(max_text=100), "longer than 100 characters"),
        (lambda t: _csv(t, HEADER, *[f"{i}.png,ok,likely-ai,0.9," for i in range(3)]), ReadLimits(max_rows=2), "more than 2 rows"),
        (lambda t: _csv(t, "name,score", "a.png,0.5"), None, "not an aigdetect scan result: no path or status column"),
        (lambda t: _csv(t, HEADER, 'a.png,ok,likely-ai,0.9,"unterminated'), None, "not readable CSV"),
        (lambda t: _write(t / "r.jsonl", '{"path": "a", "status": "ok", "verdict": "real"}\n{oops\n{"path": "b"}\n'), None,
         "line 2 of .* is not valid JSON"),
        (lambda t: _write(t / "r.json", '{"rows": ' + "[" * 100_000 + "]" * 100_000 + "}"), None, "is not valid JSON"),
        (lambda t: _write(t / "r.json", '{"summary": {}, "columns": []}'), None, 'no "rows" list'),
        (lambda t: _write(t / "r.json", '{"rows": [{"path": "a", "status": "ok", "verdict": "real", "size": 1' + "0" * 5000 + "}]}"),
         None, "is not valid JSON"),
        (lambda t: _write(t / "r.jsonl", json.dumps({"path": "a", "status": "ok", "verdict": "x", "evidence": [{}] * 3}) + "\n"),
         ReadLimits(max_findings=2), "more than 2 evidence findings"),
        (lambda t: _write(t / "r.jsonl", json.dumps({"path": "a", "status": "ok", "verdict": "x", "width": True}) + "\n"), None,
         "expected a number"),
        (lambda t: _write(t / "r.jsonl", "[1, 2]\n"), None, "line 1 of .* is not an object"),
        (lambda t: _write_bytes(t / "r.csv", b"path,status\n\xff\xfe.png,ok\n"), None, "is not UTF-8 text"),
    ],
)  # fmt: skip
def test_damaged_results_are_refused_with_where(tmp_path: Path, make, limits, message: str) -> None:
    with pytest.raises(InputError, match=message):
        read_scan_results(make(tmp_path), limits=limits)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_size_caps_and_special_files_are_refused_before_reading(tmp_path: Path) -> None:
    path = _csv(tmp_path, HEADER, "a.png,ok,likely-ai,0.9,")
    with pytest.raises(InputFileError) as caught:
        read_scan_results(path, limits=ReadLimits(max_bytes=20))
    assert caught.value.reason == "too-large"
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    with pytest.raises(InputFileError) as caught:
        read_scan_results(fifo)
    assert caught.value.reason == "unsupported"
    with pytest.raises(ConfigError):
        ReadLimits(max_rows=0)


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_a_half_written_last_line_is_left_out_and_flagged(photos, tmp_path: Path, suffix: str) -> None:
    _, rows = photos
    path = write_results(rows[:3], tmp_path / f"r.{suffix}")
    complete = path.read_text(encoding="utf-8")
    path.write_text(complete + complete.splitlines()[-1][:25], encoding="utf-8")
    results = read_scan_results(path)
    assert [r.path for r in results.rows] == [r["path"] for r in rows[:3]] and results.partial
    assert any("incomplete" in note for note in summarise(results, {}, {}, 0).notes)
    path.write_text(complete.rstrip("\n"), encoding="utf-8")  # a complete last line without its newline is kept
    again = read_scan_results(path)
    assert len(again.rows) == 3 and not again.partial


def test_format_follows_the_content_when_the_suffix_says_nothing(photos, tmp_path: Path) -> None:
    _, rows = photos
    for suffix, expected in (("json", "json"), ("jsonl", "jsonl"), ("csv", "csv")):
        written = write_results(rows[:4], tmp_path / f"r.{suffix}")
        renamed = written.rename(tmp_path / f"{suffix}.results.part3")
        results = read_scan_results(renamed)
        assert results.format == expected and len(results.rows) == 4


def test_summary_view_counts_rows_and_takes_run_facts_from_the_scan(photos, tmp_path: Path) -> None:
    _, rows = photos
    summary = {"files": len(rows) + 5, "detector": DETECTOR, "threshold": 0.42, "bands": [0.3, 0.7], "command": "aigdetect scan x",
               "date": "2026-12-01T10:00:00+00:00", "aigdetect_version": "0.2.0", "wall_s": 61.25,
               "scoring_s": 40.0, "images_per_s": 2.5}  # fmt: skip
    results = read_scan_results(write_results(rows, tmp_path / "r.json", summary))
    view = summarise(results, results.summary, {}, 0)
    expected = {kind: sum(r["verdict"] == kind for r in rows) for kind in FUSED}
    assert {c.kind: c.count for c in view.counts} == {**expected, "error": 3}
    assert [c.kind for c in view.counts][:4] == ["ai-generated", "ai-edited", "likely-ai", "tampered-credentials"]
    assert [(d.name, d.fingerprint, d.rows) for d in view.detectors] == [("univfd-vitl14", "0123456789ab", len(rows))]
    assert (view.threshold, view.bands, view.elapsed, view.version) == (0.42, (0.3, 0.7), "61.2 s", "0.2.0")
    assert view.scoring == "40.0 s (2.5 images/s)"
    older = summarise(results, {"elapsed_s": 3.25}, {}, 0)
    assert (older.elapsed, older.scoring) == ("", "3.2 s"), "0.2's elapsed_s timed the scoring alone"
    assert view.errors_by_reason == [("too-large", 1), ("truncated", 1), ("unsupported", 1)]
    assert any(f"counts {len(rows) + 5} files but the results hold {len(rows)} rows" in n for n in view.notes)
    assert any("No previews" in n for n in view.notes)
    assert view.date == "2026-12-01T10:00:00+00:00" and view.engine == ""
    assert summarise(results, {**summary, "engine": "onnxruntime-int8"}, {}, 0).engine == "onnxruntime-int8"
    scanned = {k: v for k, v in summary.items() if k != "date"} | {"started": "2026-12-02T08:30:00+00:00"}
    assert summarise(results, scanned, {}, 0).date == "2026-12-02T08:30:00+00:00", "a scan's own summary says `started`"
    bad = summarise(results, {**summary, "bands": [0.9, 0.1]}, {}, 0)
    assert bad.bands is None and any("bands" in n for n in bad.notes)
    out = tmp_path / "r.html"
    write_scan_report(results, out, thumbnails=0, summary={"command": "aigdetect scan <other>"})
    html = out.read_text(encoding="utf-8")
    assert (
        '<code id="command">aigdetect scan &lt;other&gt;</code>' in html
        and '<dd id="date">2026-12-01T10:00:00+00:00</dd>' in html
    )


# ---- what the page holds ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["</script><script>alert(1)</script>", "<!--<script>", "a & b > c", "line\u2028sep\u2029", "lone \udc80 surrogate",
     {"k</script>": ["<", ">", "&", 1.5, None]}],
)  # fmt: skip
def test_script_json_cannot_end_its_element_and_parses_back_to_the_value(value) -> None:
    text = script_json(value)
    assert not set(text) & {"<", ">", "&", "\u2028", "\u2029"} and text.isascii()
    assert json.loads(text) == value


class _Markup(HTMLParser):
    """Every element with its attributes, and the text of script and style elements."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.texts: list[tuple[str, dict[str, str | None], str]] = []
        self._open: tuple[str, dict[str, str | None]] | None = None

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))
        if tag in ("script", "style"):
            self._open = (tag, dict(attrs))
            self.texts.append((tag, dict(attrs), ""))

    def handle_data(self, data):
        if self._open is not None:
            tag, attrs, text = self.texts[-1]
            self.texts[-1] = (tag, attrs, text + data)

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._open = None


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def test_the_page_runs_only_its_hashed_script_and_holds_no_markup_from_the_data(photos, tmp_path: Path) -> None:
    root, rows = photos
    summary = {"command": f"aigdetect scan '{HOSTILE_NAME}' </script>", "detector": HOSTILE_TOOL}
    out = tmp_path / "r.html"
    write_scan_report(read_scan_results(write_results(rows, tmp_path / "r.json", summary)), out, root=root, thumbnails=3)
    html = out.read_text(encoding="utf-8")
    markup = _Markup()
    markup.feed(html)
    [csp] = [a["content"] for tag, a in markup.elements if tag == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    policy = dict(part.strip().split(" ", 1) for part in csp.split(";"))
    scripts = [(a, t) for tag, a, t in markup.texts if tag == "script"]
    styles = [t for tag, _, t in markup.texts if tag == "style"]
    assert [a.get("type") for a, _ in scripts] == ["application/json", None]
    assert policy["script-src"] == _hash(scripts[1][1]) and policy["style-src"] == _hash(styles[0])
    assert (policy["default-src"], policy["img-src"], policy["base-uri"]) == ("'none'", "data:", "'none'")
    assert [tag for tag, _ in markup.elements].count("script") == 2
    assert not [tag for tag, _ in markup.elements if tag in ("img", "iframe", "object", "embed", "link", "base", "b")]
    for _, attrs in markup.elements:
        assert not [name for name in attrs if name.startswith("on") or name == "style"]
        assert all(attrs[name].startswith("data:") for name in ("src", "href") if name in attrs)
    page = json.loads(scripts[0][1])
    fields = page["fields"]
    hostile = next(r for r in page["rows"] if r[fields.index("path")] == HOSTILE_NAME)
    assert hostile[fields.index("generator")] == HOSTILE_TOOL
    assert hostile[fields.index("evidence")][0][3] == clean_text(HOSTILE_DETAIL, MAX_DETAIL)
    assert html.count("</script>") == 2


def test_histogram_bins_by_hand() -> None:
    scores = [0.0, 0.01, 0.099, -0.1, 0.1, 0.5, 0.5, 0.95, 1.0, 1.2]
    h = score_histogram(scores, threshold=0.5, bands=(0.3, 0.7), bins=10, width=240, height=130)
    assert [b.count for b in h.bars] == [4, 1, 0, 0, 0, 2, 0, 0, 0, 3]
    assert (h.scored, h.outside, h.y_max) == (10, 2, 4)
    assert [b.zone for b in h.bars] == ["real"] * 3 + ["mid"] * 4 + ["ai"] * 3
    plot = h.bottom - h.top
    assert h.bars[0].height == pytest.approx(plot) and h.bars[1].height == pytest.approx(plot / 4, abs=0.01)
    assert h.bars[1].y == pytest.approx(h.bottom - plot / 4, abs=0.01)
    span = h.right - h.left
    assert [(m.kind, m.x) for m in h.markers] == [
        ("threshold", pytest.approx(h.left + span / 2)),
        ("band", pytest.approx(h.left + 0.3 * span)),
        ("band", pytest.approx(h.left + 0.7 * span)),
    ]
    plain = score_histogram([0.2, 0.8], bins=4)
    assert [b.zone for b in plain.bars] == ["plain"] * 4 and plain.markers == []
    assert [b.zone for b in score_histogram([0.7], threshold=0.5, bins=2).bars] == ["real", "ai"]
    with pytest.raises(ConfigError):
        score_histogram([], bins=0)


# ---- previews ----------------------------------------------------------------------------------------


def _save(path: Path, image: Image.Image, **options) -> Path:
    image.save(path, **options)
    return path


def test_previews_fit_192_pixels_keep_the_aspect_and_the_colours(tmp_path: Path) -> None:
    cases = [
        (_save(tmp_path / "wide.jpg", Image.new("RGB", (1000, 600), (200, 30, 40)), quality=95), (192, 115), (200, 30, 40)),
        (_save(tmp_path / "small.png", Image.new("RGB", (150, 90), (20, 90, 200))), (150, 90), (20, 90, 200)),
        (_save(tmp_path / "tall16.png", Image.fromarray(np.full((2000, 300), 40000, np.uint16))), (29, 192), (156, 156, 156)),
        (_save(tmp_path / "pal.gif", Image.new("P", (400, 400), 0)), (192, 192), None),
        (_save(tmp_path / "alpha.png", Image.new("RGBA", (500, 250), (10, 200, 10, 0))), (192, 96), (10, 200, 10)),
    ]
    for path, size, colour in cases:
        thumb = make_thumbnail(path)
        assert thumb.reason is None, path
        image = decoded(thumb.data_uri)
        assert image.size == size and max(image.size) <= 192, path
        if colour is not None:
            mean = np.asarray(image.convert("RGB"), dtype=float).reshape(-1, 3).mean(axis=0)
            assert np.allclose(mean, colour, atol=4), (path, mean)


def test_previews_are_refused_for_gone_changed_odd_or_huge_originals(tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    write_picture(photo, (64, 48), seed=1)
    info = photo.stat()
    assert make_thumbnail(photo, size=info.st_size, mtime_ns=info.st_mtime_ns).reason is None
    assert make_thumbnail(photo, size=info.st_size + 1, mtime_ns=info.st_mtime_ns).reason == "changed"
    assert make_thumbnail(photo, size=info.st_size, mtime_ns=info.st_mtime_ns + 1).reason == "changed"
    assert make_thumbnail(tmp_path / "nothing.png").reason == "gone"
    assert make_thumbnail(photo, max_pixels=64 * 48 - 1).reason == "too-large"
    (tmp_path / "notes.txt").write_text("not an image")
    assert make_thumbnail(tmp_path / "notes.txt").reason == "not-an-image"
    (tmp_path / "link.png").symlink_to(photo)
    assert make_thumbnail(tmp_path / "link.png").reason == "unreadable"
    (tmp_path / "cut.png").write_bytes(photo.read_bytes()[:60])
    assert make_thumbnail(tmp_path / "cut.png").reason == "undecodable"
    os.mkfifo(tmp_path / "fifo.png")
    assert make_thumbnail(tmp_path / "fifo.png").reason == "not-an-image"


def test_the_preview_cap_goes_to_the_most_suspicious_files(photos, tmp_path: Path) -> None:
    root, rows = photos
    results = read_scan_results(write_results(rows, tmp_path / "r.json"))
    made = make_thumbnails(results.rows, 10, root=root)
    ai = sorted((i for i, r in enumerate(rows) if r["verdict"] == "ai-generated"), key=lambda i: -rows[i]["score"])
    assert sorted(made) == sorted(ai[:10])
    assert rows[ai[0]]["path"] == "gone/deleted.png" and made[ai[0]].reason == "gone"
    assert all(made[i].data_uri for i in ai[1:10])

    out = tmp_path / "r.html"
    steps: list[tuple[int, int]] = []
    stats = write_scan_report(results, out, thumbnails=10, root=root, progress=lambda e: steps.append((e.stage, e.done, e.total)))
    assert (stats.thumbnails, stats.placeholders) == (9, 1) and steps == [("thumbnails", i, 10) for i in range(1, 11)]
    page = island(out)
    thumb = page["fields"].index("thumb")
    values = [r[thumb] for r in page["rows"]]
    assert sorted(v for v in values if isinstance(v, int)) == list(range(9)) and len(page["thumbs"]) == 9
    ok = sum(r["status"] == "ok" for r in rows)
    assert values.count("capped") == ok - 10 and values.count("gone") == 1 and values.count(None) == 3
    assert all(max(decoded(uri).size) <= 192 for uri in page["thumbs"])


def test_every_existing_original_gets_a_preview_even_with_an_undecodable_name(photos, tmp_path: Path) -> None:
    root, rows = photos
    results = read_scan_results(write_results(rows, tmp_path / "r.jsonl"))
    made = make_thumbnails(results.rows, len(rows), root=root)
    odd = next(i for i, r in enumerate(rows) if r["path"] == "odd/caf\\xe9 name.png")
    assert (root / os.fsdecode(b"odd/caf\xe9 name.png")).is_file()
    assert made[odd].data_uri is not None
    assert {t.reason for t in made.values()} == {None, "gone"}
    assert len(made) == sum(r["status"] == "ok" for r in rows)
    with pytest.raises(ConfigError):
        write_scan_report(results, tmp_path / "x.html", thumbnails=-1)
    assert set(COLUMNS) == set(results.columns)
