"""Parquet output: the same rows as JSONL with real types, the summary in the file, folders of parts, limits."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import write_image
from typer.testing import CliRunner

from aigdetect.cli import app
from aigdetect.engine.runtime import RuntimeConfig
from aigdetect.errors import ConfigError, InputError, InputFileError
from aigdetect.results.parquet import FOLDER_SUMMARY, table_bytes
from aigdetect.results.read import read_scan_results
from aigdetect.results.schema import ReadLimits, scan_columns
from aigdetect.scan.config import ScanConfig
from aigdetect.scan.runner import run_scan

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def _tree(root: Path) -> Path:
    for index in range(5):
        write_image(root / f"img{index}.png", seed=index)
    (root / "notes.txt").write_text("not an image")
    (root / "cut.png").write_bytes((root / "img0.png").read_bytes()[:60])
    return root


def _scan(detector, root: Path, **options) -> object:
    return run_scan(detector, ScanConfig(paths=(str(root),), runtime=RuntimeConfig(workers=0, batch_size=3), **options))


def test_parquet_rows_equal_jsonl_rows_with_real_types(tiny_detector, tmp_path):
    root = _tree(tmp_path / "imgs")
    _scan(tiny_detector, root, out=str(tmp_path / "r.jsonl"))
    summary = _scan(tiny_detector, root, out=str(tmp_path / "r.parquet"))
    expected = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    table = pq.read_table(tmp_path / "r.parquet")
    assert table.num_rows == 7 and table.column_names == list(scan_columns(0))
    assert table.schema.field("width").type == pa.int64() and table.schema.field("mtime_ns").type == pa.int64()
    assert table.schema.field("score").type == pa.float64()
    assert pa.types.is_list(table.schema.field("evidence").type)
    assert pa.types.is_struct(table.schema.field("evidence").type.value_type)
    got = table.to_pylist()
    assert [r["path"] for r in got] == [r["path"] for r in expected]
    for mine, theirs in zip(got, expected):
        assert mine == theirs  # same values, same Nones, findings as structs with every key
    stored = json.loads(pq.read_metadata(tmp_path / "r.parquet").metadata[b"aigdetect.summary"])
    assert stored["files"] == 7 and stored["errors"] == summary.tally.errors == 2
    results = read_scan_results(tmp_path / "r.parquet")
    again = read_scan_results(tmp_path / "r.jsonl")
    assert results.format == "parquet" and results.rows == again.rows and results.summary["files"] == 7


def test_a_folder_of_parts_reads_back_in_path_order_with_its_summary(tmp_path):
    columns = scan_columns(0)

    def row(name: str, score: float) -> dict:
        return {**dict.fromkeys(columns), "path": name, "status": "ok", "verdict": "inconclusive", "model_verdict": "real",
                "score": score, "threshold": 0.5, "evidence": [], "size": 3, "mtime_ns": 7}  # fmt: skip

    folder = tmp_path / "out.parquet"
    folder.mkdir()
    (folder / "part-b.parquet").write_bytes(table_bytes([row("a/1.png", 0.25), row("a/2.png", 0.5)], columns))
    (folder / "part-a.parquet").write_bytes(table_bytes([row("b/1.png", 0.125)], columns))
    unfinished = read_scan_results(folder)
    assert [r.path for r in unfinished.rows] == ["a/1.png", "a/2.png", "b/1.png"] and unfinished.partial
    assert unfinished.rows[2].score == 0.125 and unfinished.rows[0].size == 3
    (folder / FOLDER_SUMMARY).write_text(json.dumps({"files": 3}))
    finished = read_scan_results(folder)
    assert finished.summary == {"files": 3} and not finished.partial
    with pytest.raises(InputError, match="more than 2 rows"):
        read_scan_results(folder, limits=ReadLimits(max_rows=2))
    with pytest.raises(InputFileError, match="too-large|more than 100 bytes"):
        read_scan_results(folder, limits=ReadLimits(max_bytes=100))


def test_damaged_parquet_and_bad_cells_are_refused_in_one_line(tmp_path):
    damaged = tmp_path / "d.parquet"
    damaged.write_bytes(b"PAR1" + b"\0" * 40)
    with pytest.raises(InputError, match="not a readable Parquet file"):
        read_scan_results(damaged)
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"path": ["x.png"], "status": ["ok"], "verdict": ["ok-ish"]}), bad)
    with pytest.raises(InputError, match="column verdict"):
        read_scan_results(bad)


def test_report_reads_a_parquet_scan(tiny_detector, tmp_path):
    root = _tree(tmp_path / "imgs")
    _scan(tiny_detector, root, out=str(tmp_path / "r.parquet"))
    result = CliRunner().invoke(app, ["report", str(tmp_path / "r.parquet"), "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "r.html").read_text()
    assert "img3.png" in page and "cut.png" in page


def test_parquet_options_are_checked_and_missing_pyarrow_names_the_extra(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="not resumed"):
        ScanConfig(paths=("x",), out=str(tmp_path / "r.parquet"), resume=True)
    with pytest.raises(ConfigError, match="standard output"):
        ScanConfig(paths=("x",), output_format="parquet")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    from aigdetect.results.parquet import pyarrow_modules

    with pytest.raises(ConfigError, match=r"aigdetect\[parquet\]"):
        pyarrow_modules()
