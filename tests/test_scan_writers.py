"""Row writers and the resume reader: CSV/JSONL/JSON formats, per-batch flushing, half lines, paths."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pytest

from aigdetect.errors import ConfigError, InputError
from aigdetect.results.previous import read_previous
from aigdetect.results.write import journal_path, merge_runs, open_writer, row_line
from aigdetect.scan import display_path, raw_path, scan_columns

COLUMNS = scan_columns(0)


def _row(name: str, score: float | None = 0.25, **extra) -> dict:
    row = dict.fromkeys(COLUMNS)
    row.update(path=name, status="ok" if score is not None else "error", score=score, threshold=0.5, detector="d@1",
               size=10, mtime_ns=123456789012345678, evidence=[])  # fmt: skip
    if score is None:
        row.update(error_reason="truncated", error_detail="image file is truncated")
    else:
        row.update(verdict="likely-ai" if score > 0.88 else "inconclusive", model_verdict="fake" if score > 0.5 else "real")
    row.update(extra)
    return row


def _lines(fmt: str, rows: list[dict]) -> list[str]:
    return [row_line(fmt, COLUMNS, r) for r in rows]


def _paths(out: str, fmt: str) -> list[str]:
    previous = read_previous(out, fmt, COLUMNS)
    return [item.row["path"] for item in previous.rows()] if previous else []


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (b"plain/caf\xc3\xa9.png", "plain/café.png"),
        (b"bad/caf\xe9.png", "bad/caf\\xe9.png"),
        (b"back\\slash\\x41.png", "back\\\\slash\\\\x41.png"),
        (b"new\nline\ttab.png", "new\\x0aline\\x09tab.png"),
        (b"\xff\xfe\\\x7f", "\\xff\\xfe\\\\\\x7f"),
    ],
)
def test_display_path_escapes_and_raw_path_inverts(raw, shown):
    assert display_path(os.fsdecode(raw)) == shown
    assert raw_path(shown) == raw


def test_csv_rows_load_with_the_csv_module_and_stay_one_line_each(tmp_path):
    out = str(tmp_path / "r.csv")
    odd = display_path(os.fsdecode(b'we,ird "name"\n\xe9.png'))
    finding = {"source": "png-text", "claim": "ai", "strength": "moderate", "detail": "ComfyUI; workflow", "generator": "ComfyUI"}
    writer = open_writer("csv", COLUMNS, out=out, stream=None)
    writer.write(_lines("csv", [_row("a.png", 0.95, evidence=[finding], generator="ComfyUI"), _row(odd, None)]))
    writer.finish({}, COLUMNS)
    with open(out, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["path"] for r in rows] == ["a.png", odd]
    assert raw_path(rows[1]["path"]) == b'we,ird "name"\n\xe9.png'
    assert rows[0]["score"] == "0.95" and rows[0]["verdict"] == "likely-ai" and rows[0]["model_verdict"] == "fake"
    assert rows[0]["evidence"] == "png-text:ai:ComfyUI, workflow" and rows[1]["score"] == ""
    assert (rows[1]["error_reason"], rows[1]["error_detail"]) == ("truncated", "image file is truncated")
    assert rows[0]["mtime_ns"] == "123456789012345678"
    assert Path(out).read_text(encoding="utf-8").count("\n") == 3


def test_csv_cells_that_a_spreadsheet_would_run_are_guarded_and_read_back_exactly(tmp_path):
    out = str(tmp_path / "r.csv")
    names = ["=HYPERLINK(\"http://x\").png", "+1.png", "-cmd.png", "@sum.png", "'quoted.png", "plain.png"]
    writer = open_writer("csv", COLUMNS, out=out, stream=None)
    writer.write(_lines("csv", [_row(name) for name in names]))
    writer.close()
    with open(out, newline="", encoding="utf-8") as handle:
        cells = [r["path"] for r in csv.DictReader(handle)]
    assert cells == ["'" + n for n in names[:5]] + ["plain.png"]
    assert _paths(out, "csv") == names
    raw = str(tmp_path / "raw.csv")
    writer = open_writer("csv", COLUMNS, out=raw, stream=None)
    writer.write([row_line("csv", COLUMNS, _row(names[0]), guarded=False)])
    writer.close()
    with open(raw, newline="", encoding="utf-8") as handle:
        assert [r["path"] for r in csv.DictReader(handle)] == [names[0]]


def test_every_batch_is_on_disk_before_the_next_one(tmp_path):
    out = str(tmp_path / "r.jsonl")
    writer = open_writer("jsonl", COLUMNS, out=out, stream=None)
    writer.write(_lines("jsonl", [_row("a.png")]))
    with open(out, encoding="utf-8") as handle:
        assert [json.loads(line)["path"] for line in handle] == ["a.png"]
    writer.write(_lines("jsonl", [_row("b.png"), _row("c.png")]))
    assert _paths(out, "jsonl") == ["a.png", "b.png", "c.png"]
    writer.close()


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_the_reader_drops_a_half_written_last_line(tmp_path, fmt):
    out = str(tmp_path / f"r.{fmt}")
    writer = open_writer(fmt, COLUMNS, out=out, stream=None)
    writer.write(_lines(fmt, [_row("a.png", 0.1), _row("b.png", 0.9)]))
    writer.close()
    with open(out, "a", encoding="utf-8") as handle:
        handle.write("c.png,ok,0.3" if fmt == "csv" else '{"path": "c.png", "sta')
    previous = read_previous(out, fmt, COLUMNS)
    rows = [item.row for item in previous.rows()]
    assert previous.partial and [r["path"] for r in rows] == ["a.png", "b.png"]
    assert float(rows[1]["score"]) == 0.9 and rows[0]["size"] == 10


def test_the_reader_refuses_other_columns_and_damage_and_marks_older_outputs_stale(tmp_path):
    out = str(tmp_path / "r.csv")
    writer = open_writer("csv", COLUMNS, out=out, stream=None)
    writer.write(_lines("csv", [_row("a.png"), _row("b.png")]))
    writer.close()
    with pytest.raises(ConfigError, match="another `crops`"):
        read_previous(out, "csv", scan_columns(4))
    lines = Path(out).read_text(encoding="utf-8").splitlines()
    lines[1] = "only,three,fields"
    Path(out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=f"line 2 .* 3 fields instead of {len(COLUMNS)}"):
        list(read_previous(out, "csv", COLUMNS).rows())
    assert read_previous(str(tmp_path / "absent.csv"), "csv", COLUMNS) is None
    old = tmp_path / "old.csv"
    old.write_text("path,status,score,verdict,threshold,detector,width,height,format,error,size,mtime_ns\n"
                   "a.png,ok,0.3,real,0.5,d@1,4,4,PNG,,10,1\n", encoding="utf-8")  # fmt: skip
    assert read_previous(str(old), "csv", COLUMNS).stale


def test_json_is_journalled_then_written_atomically(tmp_path):
    out = str(tmp_path / "r.json")
    writer = open_writer("json", COLUMNS, out=out, stream=None)
    writer.write(_lines("json", [_row("a.png", 0.2)]))
    assert not os.path.exists(out) and os.path.exists(journal_path(out))
    assert _paths(out, "json") == ["a.png"]
    writer.write(_lines("json", [_row("b.png", None)]))
    writer.finish({"files": 2}, COLUMNS)
    assert not os.path.exists(journal_path(out))
    document = json.loads(Path(out).read_text(encoding="utf-8"))
    assert document["summary"] == {"files": 2}
    assert document["columns"] == list(COLUMNS)
    assert document["rows"] == [_row("a.png", 0.2), _row("b.png", None)]
    assert [item.row for item in read_previous(out, "json", COLUMNS).rows()] == document["rows"]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json"])
def test_stream_output(fmt):
    stream = io.StringIO()
    writer = open_writer(fmt, COLUMNS, out=None, stream=stream)
    writer.write(_lines(fmt, [_row("a.png", 0.6)]))
    writer.write(_lines(fmt, [_row("b.png", 0.4)]))
    writer.finish({"files": 2}, COLUMNS)
    text = stream.getvalue()
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(text)))
    elif fmt == "jsonl":
        rows = [json.loads(line) for line in text.splitlines()]
    else:
        document = json.loads(text)
        assert document["summary"] == {"files": 2}
        rows = document["rows"]
    assert [(r["path"], float(r["score"]), r["model_verdict"]) for r in rows] == [("a.png", 0.6, "fake"), ("b.png", 0.4, "real")]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_two_sorted_runs_merge_into_path_order(tmp_path, fmt):
    out = str(tmp_path / f"r.{fmt}")
    writer = open_writer(fmt, COLUMNS, out=out, stream=None)
    writer.write(_lines(fmt, [_row(n) for n in ("a.png", "c.png", "e/x.png")]))
    writer.close()
    boundary = os.path.getsize(out)
    writer = open_writer(fmt, COLUMNS, out=str(tmp_path / "other"), stream=None)
    with open(out, "a", encoding="utf-8") as handle:
        handle.writelines(line + "\n" for line in _lines(fmt, [_row(n) for n in ("b.png", "e.png", "f.png")]))
    merge_runs(out, fmt, 1 if fmt == "csv" else 0, boundary)
    assert _paths(out, fmt) == ["a.png", "b.png", "c.png", "e.png", "e/x.png", "f.png"]
