"""Reading results files as hostile input: bounded memory whatever the file, every cell checked, previews only of the scan's own files."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from report_support import COLUMNS, write_picture, write_results

from aigdetect.errors import InputError
from aigdetect.report import ReadLimits, read_scan_results, write_scan_report
from aigdetect.report.thumbnails import make_thumbnails

REPO = Path(__file__).resolve().parents[1]
HOSTILE_BYTES = 64 * 1024 * 1024
PEAK_BOUND_MB = 200
"""The peak resident memory allowed to a process reading any 64 MiB file (the interpreter and
imports take about 60 MB; the reader before streaming took 4 to 5 GB on these files)."""


def _filled(path: Path, head: bytes, item: bytes, separator: bytes, tail: bytes) -> Path:
    """``head``, then ``item`` repeated (joined by ``separator``) to about 64 MiB, then ``tail``."""
    count = HOSTILE_BYTES // (len(item) + len(separator))
    with open(path, "wb") as handle:
        handle.write(head)
        block = separator.join([item] * 10_000)
        for _ in range(count // 10_000):
            handle.write(block + separator)
        handle.write(item + tail)
    return path


def _peak_rss_mb(results: Path, max_rows: int) -> tuple[float, str]:
    """Read ``results`` in a fresh child and return its peak RSS (MB) and the error it printed.

    A wrapper process runs the child, so RUSAGE_CHILDREN sees that child alone and not whatever
    else this test session started."""
    child = textwrap.dedent(f"""
        from aigdetect.errors import InputError
        from aigdetect.report import ReadLimits, read_scan_results
        try:
            read_scan_results({str(results)!r}, limits=ReadLimits(max_rows={max_rows}))
            print("read")
        except InputError as exc:
            print(exc)
    """)
    wrapper = textwrap.dedent(f"""
        import resource, subprocess, sys
        done = subprocess.run([sys.executable, "-c", {child!r}], capture_output=True, text=True)
        print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
        print(done.stdout.strip()[:300], done.stderr.strip()[-300:])
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    completed = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True, env=env, timeout=600, check=True)
    peak_kb, message = completed.stdout.split("\n", 1)
    return int(peak_kb) / 1024, message


ERROR_ROW = b'{"path": "a.png", "status": "error", "error_reason": "corrupt"}'


@pytest.mark.parametrize(
    ("name", "head", "item", "separator", "tail", "max_rows", "message"),
    [
        ("empty-rows.json", b'{"rows": [', b"{}", b",", b"]}", 1_000_000, "row 1 of .*column path: the path is empty"),
        ("empty-lines.jsonl", b"", b"{}", b"\n", b"\n", 1_000_000, "no path or status column"),
        ("many-rows.json", b'{"columns": ["path", "status", "error_reason"], "rows": [', ERROR_ROW, b",", b"]}", 1000,
         "more than 1000 rows"),
        ("many-lines.jsonl", b"", ERROR_ROW, b"\n", b"\n", 1000, "more than 1000 rows"),
        ("many-lines.csv", b"path,status,error_reason\n", b"a.png,error,corrupt", b"\n", b"\n", 1000, "more than 1000 rows"),
    ],
)  # fmt: skip
def test_reading_stops_at_the_first_bad_row_or_the_row_cap_with_memory_bounded(
    tmp_path: Path, name: str, head: bytes, item: bytes, separator: bytes, tail: bytes, max_rows: int, message: str
) -> None:
    path = _filled(tmp_path / name, head, item, separator, tail)
    assert path.stat().st_size > HOSTILE_BYTES - 1024 * 1024
    peak_mb, printed = _peak_rss_mb(path, max_rows)
    assert peak_mb < PEAK_BOUND_MB, (peak_mb, printed)
    print(name, round(peak_mb))
    assert re.search(message, printed), printed


def test_the_streamed_json_reader_reads_keys_in_any_order_and_values_across_chunks(tmp_path: Path) -> None:
    rows = [{"path": f"{'x' * 70_000}{i}.png"[-20:], "status": "error", "error_reason": "corrupt", "error_detail": "d" * 50_000}
            for i in range(5)]  # fmt: skip
    document = {
        "summary": {"files": 5, "note": "n" * 60_000},
        "rows": rows,
        "extra": [1e-3] * 20_000,
        "columns": ["path", "status"],
    }
    path = tmp_path / "r.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    results = read_scan_results(path)
    assert [(r.path, r.error_detail) for r in results.rows] == [(r["path"], r["error_detail"]) for r in rows]
    assert results.summary == document["summary"] and results.columns == ("path", "status")
    for broken, problem in (("{}", 'no "rows"'), ('{"rows": [{"path": "a", "status": "error"}] } x', "not valid JSON"),
                            ('{"rows": [{"path": "a", "status": "error"}', "not valid JSON"), ("[1]", 'no "rows"')):  # fmt: skip
        path.write_text(broken, encoding="utf-8")
        with pytest.raises(InputError, match=problem):
            read_scan_results(path)
    path.write_text('{"rows": [{"path": "' + "a" * 3000 + '", "status": "error"}]}', encoding="utf-8")
    with pytest.raises(InputError, match="row 1 of .* is larger than 1000 bytes"):
        read_scan_results(path, limits=ReadLimits(max_row_bytes=1000))


def _one_row(tmp_path: Path, suffix: str, **cells: object) -> Path:
    row = dict.fromkeys(COLUMNS)
    row.update(path="a.png", status="ok", verdict="likely-ai", model_verdict="fake", score=0.9, threshold=0.5, evidence=[],
               width=4, height=3, size=10, mtime_ns=5)  # fmt: skip
    row.update(cells)
    return write_results([row], tmp_path / f"r.{suffix}")


@pytest.mark.parametrize(
    ("cells", "column", "problem"),
    [
        ({"score": 1e308}, "score", "outside 0.0..1.0"),
        ({"score": -0.5}, "score", "outside"),
        ({"threshold": 2}, "threshold", "outside"),
        ({"crop_max": 1.5}, "crop_max", "outside"),
        ({"width": 4.5}, "width", "whole number"),
        ({"size": -1}, "size", "outside 0..inf"),
        ({"verdict": "probably"}, "verdict", "not one of"),
        ({"model_verdict": "likely-ai"}, "model_verdict", "not one of"),
        ({"status": "fine"}, "status", "not one of"),
        ({"sha256": "xyz"}, "sha256", "hexadecimal"),
        ({"evidence": [{"source": "gps", "claim": "ai", "strength": "weak", "detail": "x"}]}, "evidence", "source must be one of"),
        ({"evidence": [{"source": "xmp", "claim": "ai", "strength": "total", "detail": "x"}]}, "evidence", "strength must be one of"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("suffix", ["csv", "json", "jsonl"])
def test_a_cell_not_of_its_column_type_is_refused_naming_row_and_column(tmp_path: Path, suffix, cells, column, problem) -> None:
    path = _one_row(tmp_path, suffix, **cells)
    where = "row 1" if suffix == "json" else "line 2" if suffix == "csv" else "line 1"
    if suffix == "csv" and "strength" in problem:
        read_scan_results(path)  # CSV keeps no strength: nothing to refuse
        return
    with pytest.raises(InputError, match=f"{where} of .*, column {column}: .*{problem}"):
        read_scan_results(path)


def test_a_huge_score_is_a_usage_error_of_the_report_command(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from aigdetect.cli import app

    path = _one_row(tmp_path, "csv", score="1e308")
    result = CliRunner().invoke(app, ["report", str(path), "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 2, result.output
    assert "line 2 of" in result.output and "column score" in result.output and "OverflowError" not in result.output


def test_previews_only_of_files_under_the_root_with_a_matching_size_and_time(tmp_path: Path) -> None:
    root = tmp_path / "scan"
    inside = root / "in.png"
    write_picture(inside, (32, 24), seed=3)
    secret = tmp_path / "secret.png"
    write_picture(secret, (32, 24), seed=4)
    (root / "up").symlink_to(tmp_path, target_is_directory=True)
    stat_in, stat_secret = inside.stat(), secret.stat()
    known = {"size": stat_in.st_size, "mtime_ns": stat_in.st_mtime_ns}
    secret_known = {"size": stat_secret.st_size, "mtime_ns": stat_secret.st_mtime_ns}
    rows = [
        ("in.png", known),
        (str(inside), known),  # absolute, but under the root
        (str(secret), secret_known),  # absolute, outside: a hostile file names it with its true size and time
        ("../secret.png", secret_known),
        ("up/secret.png", secret_known),  # through a link in the scan's folder
        ("in.png", {"size": None, "mtime_ns": None}),  # nothing to check the file against
    ]
    results = write_results(
        [dict(dict.fromkeys(COLUMNS), path=p, status="ok", verdict="likely-ai", score=0.9 - i / 100, evidence=[], **facts)
         for i, (p, facts) in enumerate(rows)],
        tmp_path / "hostile.json",
    )  # fmt: skip
    made = make_thumbnails(read_scan_results(results).rows, 10, root=root)
    assert [made[i].reason for i in range(len(rows))] == [None, None, "outside", "outside", "outside", "unverified"]
    out = tmp_path / "r.html"
    stats = write_scan_report(results, out, thumbnails=10, root=root)
    assert (stats.thumbnails, stats.placeholders) == (2, 4)
    assert "outside the scan" in out.read_text(encoding="utf-8")


@pytest.mark.parametrize("output_format", ["csv", "json", "jsonl"])
def test_what_the_writers_write_the_reader_types_back_cell_for_cell(tmp_path: Path, output_format: str) -> None:
    from aigdetect.evidence.findings import Finding
    from aigdetect.results.schema import SCHEMA, scan_columns
    from aigdetect.results.write import open_writer, row_line

    columns = scan_columns(2)
    assert set(columns) == {c.name for c in SCHEMA}, "every column a scan writes has a type"
    found = Finding.make("c2pa", "ai", "strong", "C2PA manifest: trainedAlgorithmicMedia; signed", "DALL-E 3")
    ok = dict.fromkeys(columns) | {
        "path": "=cmd|x.png", "status": "ok", "verdict": "ai-generated", "model_verdict": "fake", "score": 0.875,
        "crop_mean": 0.5, "crop_max": 1.0, "threshold": 0.5, "generator": "DALL-E 3", "evidence": [found.to_dict()],
        "detector": "d@1", "engine": "torch-cpu", "width": 640, "height": 480, "format": "PNG", "size": 12345,
        "mtime_ns": -5, "sha256": "ab" * 32,
    }  # fmt: skip
    error = dict.fromkeys(columns) | {"path": "b.jpg", "status": "error", "threshold": 0.5, "detector": "d@1", "evidence": [],
                                      "error_reason": "truncated", "error_detail": "3 bytes missing", "size": 0}  # fmt: skip
    out = tmp_path / f"r.{output_format}"
    writer = open_writer(output_format, columns, out=str(out), stream=None)
    writer.write([row_line(output_format, columns, r) for r in (ok, error)])
    writer.finish({"files": 2}, columns)
    first, second = read_scan_results(out).rows
    expected = {k: "" if v is None else v for k, v in ok.items() if k != "evidence"}  # empty text reads back as ""
    assert {k: getattr(first, k) for k in expected} == expected
    strength = None if output_format == "csv" else "strong"
    generator = None if output_format == "csv" else "DALL-E 3"
    detail = found.detail.replace(";", ",") if output_format == "csv" else found.detail  # a CSV cell joins findings with ";"
    assert first.evidence == (Finding(found.source, found.claim, strength, detail, generator),)
    assert (second.kind, second.error_reason, second.error_detail, second.size, second.score) == (
        "error",
        "truncated",
        "3 bytes missing",
        0,
        None,
    )


def test_the_schema_version_follows_the_columns() -> None:
    from aigdetect.results.previous import stale_schema
    from aigdetect.results.schema import BASE_COLUMNS, SCHEMA_VERSION, schema_version

    old = ("path", "status", "score", "verdict", "threshold", "detector", "error", "size", "mtime_ns")
    assert (schema_version(old), schema_version(BASE_COLUMNS), SCHEMA_VERSION) == (1, 2, 2)
    assert stale_schema(old, BASE_COLUMNS) and not stale_schema(BASE_COLUMNS, BASE_COLUMNS)


def test_a_run_may_preview_its_own_rows_outside_the_folder_it_ran_in(tmp_path: Path) -> None:
    photo = tmp_path / "elsewhere" / "a.png"
    write_picture(photo, (16, 12), seed=5)
    info = photo.stat()
    results = write_results(
        [dict(dict.fromkeys(COLUMNS), path=str(photo), status="ok", verdict="likely-ai", score=0.9, evidence=[],
              size=info.st_size, mtime_ns=info.st_mtime_ns)],
        tmp_path / "own.csv",
    )  # fmt: skip
    rows = read_scan_results(results).rows
    ran_in = tmp_path / "cwd"
    ran_in.mkdir()
    assert make_thumbnails(rows, 1, root=ran_in)[0].reason == "outside"
    assert make_thumbnails(rows, 1, root=ran_in, within=os.sep)[0].data_uri is not None
