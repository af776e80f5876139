"""--shard partitions: N shards cover every file exactly once; --merge joins parts in scan order."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from aigdetect.errors import ConfigError, InputError
from aigdetect.results.write import open_writer, row_line
from aigdetect.scan import (
    FoundFile,
    merge_parts,
    parse_shard,
    part_path,
    scan_columns,
    shard_of,
)
from aigdetect.scan.shard import select_shard
from aigdetect.scan.sidecar import RowSettings, read_sidecar, write_sidecar

COLUMNS = scan_columns(0)


def _files(count: int) -> list[FoundFile]:
    return [FoundFile(f"tree/{i // 10}/img_{i}.png", i, i) for i in range(count)]


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_shards_cover_everything_once(count):
    files = _files(500)
    shards = [select_shard(files, (k, count)) for k in range(count)]
    paths = [f.path for shard in shards for f in shard]
    assert sorted(paths) == sorted(f.path for f in files)
    assert len(paths) == len(set(paths))
    if count > 1:
        assert all(len(shard) > 500 / count / 2 for shard in shards)


def test_shard_is_a_stable_hash_of_the_path_bytes():
    import hashlib

    path = "photos/caf\udce9.png"
    expected = int.from_bytes(hashlib.sha1(b"photos/caf\xe9.png").digest()[:8], "big") % 5
    assert shard_of(path, 5) == expected
    assert select_shard(_files(20), None) == _files(20)


@pytest.mark.parametrize("text", ["3/2", "2/2", "-1/2", "1/0", "1", "a/b", "1/2/3"])
def test_bad_shard_specs_are_config_errors(text):
    with pytest.raises(ConfigError):
        parse_shard(text)


def test_parse_shard_counts_from_zero():
    assert parse_shard("0/1") == (0, 1)
    assert parse_shard("3/4") == (3, 4)


def _row(path: str, score: float | None) -> dict:
    row = dict.fromkeys(COLUMNS)
    row.update(path=path, status="ok" if score is not None else "error", score=score, threshold=0.5, detector="d@1",
               evidence=[])  # fmt: skip
    if score is None:
        row.update(error_reason="corrupt", error_detail="broken data stream")
    else:
        row.update(verdict="likely-ai" if score > 0.88 else "inconclusive", model_verdict="fake" if score > 0.5 else "real")
    return row


SETTINGS = RowSettings(
    detector="d@1", engine="torch-fp32", threshold=0.5, bands=(0.12, 0.88), columns=COLUMNS, evidence=True,
    watermarks=False, trust=None, sha256=True,
)  # fmt: skip


def _write_parts(out: str, fmt: str, rows: list[dict], count: int, settings: RowSettings = SETTINGS) -> None:
    for k in range(count):
        writer = open_writer(fmt, COLUMNS, out=part_path(out, k), stream=None)
        writer.write([row_line(fmt, COLUMNS, r) for r in sorted(rows, key=lambda r: r["path"]) if shard_of(r["path"], count) == k])
        writer.finish({"files": 0}, COLUMNS)
        write_sidecar(part_path(out, k), settings, complete=True, shard=(k, count))


def _read(out: str, fmt: str) -> list[dict]:
    if fmt == "csv":
        with open(out, newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    if fmt == "json":
        return json.loads(Path(out).read_text(encoding="utf-8"))["rows"]
    return [json.loads(line) for line in Path(out).read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json"])
def test_merge_joins_parts_in_byte_order(tmp_path, fmt):
    rows = [_row(f"d/{name}", s) for name, s in [("b.png", 0.9), ("a.png", 0.1), ("c.png", None), ("a-b.png", 0.6), ("z", 0.2)]]
    out = str(tmp_path / f"all.{fmt}")
    _write_parts(out, fmt, rows, 3)
    result = merge_parts(out, fmt)
    merged = _read(out, fmt)
    assert [r["path"] for r in merged] == ["d/a-b.png", "d/a.png", "d/b.png", "d/c.png", "d/z"]
    assert (result.tally.model["fake"], result.tally.model["real"], result.tally.errors) == (2, 2, 1)
    assert result.parts == [part_path(out, k) for k in range(3)]
    assert read_sidecar(out)["summary"]["files"] == 5 and read_sidecar(out)["settings"] == SETTINGS.as_dict()
    if fmt == "json":
        assert json.loads(Path(out).read_text(encoding="utf-8"))["summary"]["merged_parts"] == 3


def test_merge_refuses_missing_unfinished_and_overlapping_parts(tmp_path):
    out = str(tmp_path / "all.csv")
    with pytest.raises(InputError, match="no parts to merge"):
        merge_parts(out, "csv")
    rows = [_row(f"p{i}.png", 0.3) for i in range(6)]
    _write_parts(out, "csv", rows, 3)
    os.rename(part_path(out, 1), str(tmp_path / "aside"))
    with pytest.raises(InputError, match=r"part\(s\) 1 of 0..2 are missing"):
        merge_parts(out, "csv")
    os.rename(str(tmp_path / "aside"), part_path(out, 1))
    with open(part_path(out, 2), "a", encoding="utf-8") as handle:
        handle.write("p9.png,ok,0.")
    with pytest.raises(InputError, match="half-written row"):
        merge_parts(out, "csv")
    _write_parts(out, "csv", rows, 3)
    write_sidecar(part_path(out, 1), SETTINGS, complete=False, shard=(1, 3))
    with pytest.raises(InputError, match="unfinished"):
        merge_parts(out, "csv")
    _write_parts(out, "csv", rows, 3)
    os.remove(part_path(out, 0) + ".summary.json")
    with pytest.raises(InputError, match="has no .*summary.json"):
        merge_parts(out, "csv")


def test_merge_refuses_parts_of_other_splits_or_settings(tmp_path):
    rows = [_row(f"p{i}.png", 0.3) for i in range(8)]
    out = str(tmp_path / "all.csv")
    _write_parts(out, "csv", rows, 2)
    other = str(tmp_path / "other.csv")
    _write_parts(other, "csv", rows, 4)
    os.replace(part_path(other, 1), part_path(out, 1))
    os.replace(part_path(other, 1) + ".summary.json", part_path(out, 1) + ".summary.json")
    with pytest.raises(InputError, match="written as shard \\[1, 4\\], not 1/2"):
        merge_parts(out, "csv")
    _write_parts(out, "csv", rows, 2)
    write_sidecar(part_path(out, 1), RowSettings(**{**SETTINGS.__dict__, "threshold": 0.3}), complete=True, shard=(1, 2))
    with pytest.raises(InputError, match="other settings than .* \\(threshold\\)"):
        merge_parts(out, "csv")
    _write_parts(out, "csv", rows, 2)
    with open(part_path(out, 1), "a", encoding="utf-8") as handle:
        handle.write(row_line("csv", COLUMNS, rows[0]) + "\n")
    with pytest.raises(InputError, match="not sorted by path|is in both"):
        merge_parts(out, "csv")


def test_merge_refuses_a_path_held_by_two_parts(tmp_path):
    out = str(tmp_path / "all.jsonl")
    rows = [_row(f"p{i}.png", 0.3) for i in range(8)]
    _write_parts(out, "jsonl", rows, 2)
    taken = json.loads(Path(part_path(out, 0)).read_text(encoding="utf-8").splitlines()[0])["path"]
    lines = Path(part_path(out, 1)).read_text(encoding="utf-8").splitlines()
    lines.append(row_line("jsonl", COLUMNS, _row(taken, 0.3)))
    lines.sort(key=lambda line: json.loads(line)["path"])
    Path(part_path(out, 1)).write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=f"{taken} is in both .*part0 and .*part1"):
        merge_parts(out, "jsonl")
