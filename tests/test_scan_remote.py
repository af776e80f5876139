"""Scans of objects in a store over fsspec: a bucket on a real S3-compatible server (moto) gives the
rows a local scan of the same files gives; 403, 404, short reads and changed objects are rows."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from conftest import write_image

from aigdetect.engine.reading import FileReader, ReadItem, ReadOptions
from aigdetect.engine.runtime import RuntimeConfig
from aigdetect.errors import ConfigError, InputError
from aigdetect.scan.config import ScanConfig
from aigdetect.scan.runner import run_scan

fsspec = pytest.importorskip("fsspec")
MemoryFileSystem = pytest.importorskip("fsspec.implementations.memory").MemoryFileSystem

SAME_COLUMNS = ("status", "verdict", "model_verdict", "score", "threshold", "generator", "evidence", "detector", "width",
                "height", "format", "error_reason", "error_detail", "size", "sha256")  # fmt: skip


def build_files(root: Path) -> dict[str, bytes]:
    """A small tree: images of three formats, a nested one, a text file and a truncated PNG."""
    write_image(root / "a.png", seed=1)
    write_image(root / "b.jpg", seed=2)
    write_image(root / "sub" / "c.webp", seed=3)
    write_image(root / "sub" / "deep" / "d.png", seed=4, size=(64, 30))
    (root / "notes.txt").write_text("not an image")
    (root / "cut.png").write_bytes((root / "a.png").read_bytes()[:80])
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def upload(s3, bucket: str, prefix: str, files: dict[str, bytes]) -> None:
    s3.create_bucket(Bucket=bucket)
    for name, data in files.items():
        s3.put_object(Bucket=bucket, Key=f"{prefix}/{name}", Body=data)


def scan_rows(detector, path: str, **options) -> list[dict]:
    stream = io.StringIO()
    run_scan(detector, ScanConfig(paths=(path,), output_format="jsonl", runtime=RuntimeConfig(workers=0, batch_size=3),
                                  **options), stream=stream)  # fmt: skip
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def assert_same_rows(remote: list[dict], local: list[dict], prefix: str, root: Path) -> None:
    assert [r["path"].removeprefix(prefix) for r in remote] == [r["path"].removeprefix(str(root) + "/") for r in local]
    for mine, theirs in zip(remote, local):
        for column in SAME_COLUMNS:
            if column == "score" and mine[column] is not None:
                assert mine[column] == pytest.approx(theirs[column], abs=1e-5)
            else:
                assert mine[column] == theirs[column], column


def test_a_bucket_scans_to_the_rows_of_the_same_files_on_disk(tiny_detector, tmp_path, s3):
    files = build_files(tmp_path / "imgs")
    upload(s3, "photos", "in/2024", files)
    remote = scan_rows(tiny_detector, "s3://photos/in/2024")
    local = scan_rows(tiny_detector, str(tmp_path / "imgs"))
    assert len(remote) == 6 and sum(r["status"] == "ok" for r in remote) == 4
    assert_same_rows(remote, local, "s3://photos/in/2024/", tmp_path / "imgs")
    assert all(isinstance(r["mtime_ns"], int) and r["mtime_ns"] > 0 for r in remote)
    one = scan_rows(tiny_detector, "s3://photos/in/2024/b.jpg")
    assert [r["path"] for r in one] == ["s3://photos/in/2024/b.jpg"] and one[0]["sha256"] == local[1]["sha256"]
    flat = scan_rows(tiny_detector, "s3://photos/in/2024", recursive=False)
    assert [r["path"].rsplit("/", 1)[-1] for r in flat] == ["a.png", "b.jpg", "cut.png", "notes.txt"]
    with pytest.raises(InputError, match="PATH not found: s3://photos/nothing"):
        scan_rows(tiny_detector, "s3://photos/nothing")


def test_caps_apply_before_the_fetch_and_a_vanished_object_is_a_missing_row(tiny_detector, tmp_path, s3):
    files = build_files(tmp_path / "imgs")
    upload(s3, "capped", "p", files)
    rows = scan_rows(tiny_detector, "s3://capped/p", max_bytes=200)
    reasons = {r["path"][len("s3://capped/p/") :]: r["error_reason"] for r in rows}
    small = {name for name, data in files.items() if len(data) <= 200}
    assert small == {"cut.png", "notes.txt"} and reasons["notes.txt"] == "unsupported"
    assert all(reasons[name] == "too-large" for name in files if name not in small)
    assert all(r["size"] == len(files[r["path"][len("s3://capped/p/") :]]) for r in rows)
    reader = FileReader(ReadOptions(size=tiny_detector.image_size))
    record, payload = reader((0, ReadItem("s3://capped/p/gone.png", size=10, version="x")))
    assert payload is None and (record.error_reason, record.error) == ("missing", "no such object (404)")


class _Flaky(MemoryFileSystem):
    """A store whose objects answer 403, come back short, or change once listed, by name."""

    protocol = "flaky"

    @classmethod
    def _strip_protocol(cls, path):
        return "/" + path.removeprefix("flaky://").lstrip("/")

    def unstrip_protocol(self, name):
        return "flaky://" + name.lstrip("/")

    def cat_file(self, path, start=None, end=None, **kwargs):
        if "denied" in path:
            raise PermissionError(403, "Access Denied")
        data = super().cat_file(path, start=start, end=end, **kwargs)
        return data[: len(data) // 2] if "short" in path else data


@pytest.fixture()
def flaky(tmp_path):
    fsspec.register_implementation("flaky", _Flaky, clobber=True)
    store = _Flaky()
    data = write_image(tmp_path / "x.png").read_bytes()
    for name in ("denied.png", "short.png", "grown.png", "fine.png"):
        store.pipe(f"/bucket/{name}", data)
    yield store, len(data)
    store.rm("/bucket", recursive=True)


def test_403_short_reads_and_changed_objects_are_rows_with_reasons(tiny_detector, flaky):
    store, size = flaky
    reader = FileReader(ReadOptions(size=tiny_detector.image_size))
    outcome = {}
    for name, listed in (("denied", size), ("short", size), ("grown", size - 5), ("fine", size)):
        record, payload = reader((0, ReadItem(f"flaky://bucket/{name}.png", size=listed)))
        outcome[name] = record.error_reason
        assert (payload is None) == (name != "fine")
    assert outcome == {"denied": "forbidden", "short": "truncated", "grown": "changed", "fine": None}
    rows = scan_rows(tiny_detector, "flaky://bucket")
    assert [(r["path"], r["error_reason"]) for r in rows] == [
        ("flaky://bucket/denied.png", "forbidden"), ("flaky://bucket/fine.png", None),
        ("flaky://bucket/grown.png", None), ("flaky://bucket/short.png", "truncated"),
    ]  # fmt: skip


def test_storage_options_that_do_not_fit_the_store_are_one_line(tiny_detector):
    with pytest.raises(ConfigError, match="storage_options"):
        scan_rows(tiny_detector, "s3://bucket/x", storage_options={"no_such_option": 1})


def test_a_file_over_http_scans_like_the_same_file_on_disk(tiny_detector, tmp_path):
    pytest.importorskip("aiohttp")
    import functools
    import http.server
    import threading

    files = build_files(tmp_path / "imgs")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "imgs"))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        rows = scan_rows(tiny_detector, f"{base}/b.jpg") + scan_rows(tiny_detector, f"{base}/cut.png")
    finally:
        server.shutdown()
        server.server_close()
    local = [r for r in scan_rows(tiny_detector, str(tmp_path / "imgs")) if r["path"].endswith(("/b.jpg", "/cut.png"))]
    assert [r["path"] for r in rows] == [f"{base}/b.jpg", f"{base}/cut.png"]
    assert_same_rows(rows, local, f"{base}/", tmp_path / "imgs")
    assert rows[0]["size"] == len(files["b.jpg"])
