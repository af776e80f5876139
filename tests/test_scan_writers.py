"""Row writers and the resume reader: CSV/JSONL/JSON formats, per-batch flushing, half lines, paths."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pytest

from aigdetect.errors import ConfigError, InputError
from aigdetect.scan import display_path, raw_path, scan_columns
from aigdetect.scan.writers import journal_path, open_writer, read_recorded

COLUMNS = scan_columns(0)


def _row(name: str, score: float | None = 0.25, **extra) -> dict:
    row = dict.fromkeys(COLUMNS)
    row.update(path=name, status="ok" if score is not None else "error", score=score, threshold=0.5, detector="d@1",
               size=10, mtime_ns=123456789012345678)
    if score is None:
        row["error"] = "truncated: image file is truncated"
    else:
        row["verdict"] = "fake" if score > 0.5 else "real"
    row.update(extra)
    return row


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
    writer = open_writer("csv", COLUMNS, out=out, stream=None)
    writer.write([_row("a.png", 0.75), _row(odd, None)])
    writer.finish({})
    with open(out, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["path"] for r in rows] == ["a.png", odd]
    assert raw_path(rows[1]["path"]) == b'we,ird "name"\n\xe9.png'
    assert rows[0]["score"] == "0.75" and rows[0]["verdict"] == "fake" and rows[1]["score"] == ""
    assert rows[1]["error"] == "truncated: image file is truncated"
    assert rows[0]["mtime_ns"] == "123456789012345678"
    assert Path(out).read_text(encoding="utf-8").count("\n") == 3


def test_every_batch_is_on_disk_before_the_next_one(tmp_path):
    out = str(tmp_path / "r.jsonl")
    writer = open_writer("jsonl", COLUMNS, out=out, stream=None)
    writer.write([_row("a.png")])
    with open(out, encoding="utf-8") as handle:
        assert [json.loads(line)["path"] for line in handle] == ["a.png"]
    writer.write([_row("b.png"), _row("c.png")])
    assert len(read_recorded(out, "jsonl", COLUMNS).rows) == 3
    writer.close()


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_resume_reader_drops_a_half_written_last_line(tmp_path, fmt):
    out = str(tmp_path / f"r.{fmt}")
    writer = open_writer(fmt, COLUMNS, out=out, stream=None)
    writer.write([_row("a.png", 0.1), _row("b.png", 0.9)])
    writer.close()
    with open(out, "a", encoding="utf-8") as handle:
        handle.write('c.png,ok,0.3' if fmt == "csv" else '{"path": "c.png", "sta')
    previous = read_recorded(out, fmt, COLUMNS)
    assert previous.partial
    assert [item.row["path"] for item in previous.rows] == ["a.png", "b.png"]
    assert float(previous.rows[1].row["score"]) == 0.9
    reopened = open_writer(fmt, COLUMNS, out=out, stream=None, kept=[item.text for item in previous.rows])
    reopened.write([_row("c.png", 0.3)])
    reopened.close()
    again = read_recorded(out, fmt, COLUMNS)
    assert not again.partial
    assert [float(item.row["score"]) for item in again.rows] == [0.1, 0.9, 0.3]


def test_resume_reader_refuses_other_columns_and_damage(tmp_path):
    out = str(tmp_path / "r.csv")
    writer = open_writer("csv", COLUMNS, out=out, stream=None)
    writer.write([_row("a.png"), _row("b.png")])
    writer.close()
    with pytest.raises(ConfigError, match="another `crops`"):
        read_recorded(out, "csv", scan_columns(4))
    lines = Path(out).read_text(encoding="utf-8").splitlines()
    lines[1] = "only,three,fields"
    Path(out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match="line 2 .* 3 fields instead of 12"):
        read_recorded(out, "csv", COLUMNS)
    assert read_recorded(str(tmp_path / "absent.csv"), "csv", COLUMNS).rows == []


def test_json_is_journalled_then_written_atomically(tmp_path):
    out = str(tmp_path / "r.json")
    writer = open_writer("json", COLUMNS, out=out, stream=None)
    writer.write([_row("a.png", 0.2)])
    assert not os.path.exists(out) and os.path.exists(journal_path(out))
    assert [item.row["path"] for item in read_recorded(out, "json", COLUMNS).rows] == ["a.png"]
    writer.write([_row("b.png", None)])
    writer.finish({"files": 2})
    assert not os.path.exists(journal_path(out))
    document = json.loads(Path(out).read_text(encoding="utf-8"))
    assert document["summary"] == {"files": 2}
    assert document["columns"] == list(COLUMNS)
    assert document["rows"] == [_row("a.png", 0.2), _row("b.png", None)]
    assert [item.row for item in read_recorded(out, "json", COLUMNS).rows] == document["rows"]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json"])
def test_stream_output(fmt):
    stream = io.StringIO()
    writer = open_writer(fmt, COLUMNS, out=None, stream=stream)
    writer.write([_row("a.png", 0.6)])
    writer.write([_row("b.png", 0.4)])
    writer.finish({"files": 2})
    text = stream.getvalue()
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(text)))
    elif fmt == "jsonl":
        rows = [json.loads(line) for line in text.splitlines()]
    else:
        document = json.loads(text)
        assert document["summary"] == {"files": 2}
        rows = document["rows"]
    assert [(r["path"], float(r["score"]), r["verdict"]) for r in rows] == [("a.png", 0.6, "fake"), ("b.png", 0.4, "real")]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json"])
def test_kept_rows_come_first(tmp_path, fmt):
    from aigdetect.scan.writers import row_line

    kept = [row_line(fmt, COLUMNS, _row("kept.png", 0.7))]
    stream = io.StringIO()
    writer = open_writer(fmt, COLUMNS, out=None, stream=stream, kept=kept)
    writer.write([_row("new.png", 0.2)])
    writer.finish({})
    out = str(tmp_path / f"r.{fmt}")
    file_writer = open_writer(fmt, COLUMNS, out=out, stream=None, kept=kept)
    file_writer.write([_row("new.png", 0.2)])
    file_writer.finish({})
    assert [item.row["path"] for item in read_recorded(out, fmt, COLUMNS).rows] == ["kept.png", "new.png"]
    if fmt == "json":
        assert [r["path"] for r in json.loads(stream.getvalue())["rows"]] == ["kept.png", "new.png"]
    else:
        assert stream.getvalue() == Path(out).read_text(encoding="utf-8")
