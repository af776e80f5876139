"""``aigdetect scan`` for scripts and hostile folders: stdout, lists, exit codes, summaries, outputs that
are never destroyed or mixed, files swapped during a scan, and the evidence in every row."""

from __future__ import annotations

import csv
import fcntl
import hashlib
import io
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import make_tiny_detector, write_image
from evidence_files import A1111, AI_SOURCE, ai_manifest, encode, png_with_text, sign, small_photo, write
from typer.testing import CliRunner

from aigdetect import score_images
from aigdetect.cli import app
from aigdetect.engine.reading import FileReader, ReadItem, ReadOptions
from aigdetect.engine.runtime import RuntimeConfig
from aigdetect.errors import ConfigError, InputError
from aigdetect.scan import ScanConfig, run_scan
from aigdetect.scan.sidecar import read_sidecar

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]


def _scan(*args: str, input: bytes | str | None = None):
    return runner.invoke(app, ["scan", *args], input=input)


def _folder(root: Path, count: int = 4) -> Path:
    for i in range(count):
        write_image(root / f"img_{i}.png", size=(40, 36), seed=i)
    return root


def _csv(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_dash_out_means_stdout(tmp_path, tiny_checkpoint, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _folder(tmp_path / "imgs", 2)
    result = _scan("imgs", "--checkpoint", str(tiny_checkpoint), "-o", "-", "--workers", "0")
    assert result.exit_code == 0, result.output
    assert [Path(r["path"]).name for r in _csv(result.stdout)] == ["img_0.png", "img_1.png"]
    assert not (tmp_path / "-").exists()


@pytest.mark.parametrize("null", [False, True])
def test_files_from_a_list_or_stdin_with_missing_entries_as_rows(tmp_path, tiny_checkpoint, null):
    folder = _folder(tmp_path / "imgs", 3)
    names = [str(folder / "img_2.png"), str(folder / "img_0.png"), str(folder / "gone.png")]
    data = ("\0" if null else "\n").join(names) + ("\0" if null else "\n")
    listing = tmp_path / "list.txt"
    listing.write_text(data, encoding="utf-8")
    extra = ["-0"] if null else []
    for source, stdin in ((str(listing), None), ("-", data)):
        result = _scan("--files-from", source, *extra, "--checkpoint", str(tiny_checkpoint), "--workers", "0", input=stdin)
        assert result.exit_code == 0, result.output
        rows = _csv(result.stdout)
        assert [(Path(r["path"]).name, r["status"], r["error_reason"]) for r in rows] == [
            ("gone.png", "error", "missing"), ("img_0.png", "ok", ""), ("img_2.png", "ok", ""),
        ]  # fmt: skip


def test_the_recorded_command_repeats_each_glob_and_leaves_out_options_not_given(tmp_path, tiny_checkpoint):
    folder = _folder(tmp_path / "imgs", 2)
    summary_path = tmp_path / "s.json"
    args = [str(folder), "--checkpoint", str(tiny_checkpoint), "--workers", "0", "-q", "--summary-json", str(summary_path)]
    assert _scan(*args, "--include", "*.png", "--include", "cam 1/**").exit_code == 0
    command = json.loads(summary_path.read_text())["command"]
    words = shlex.split(command)
    at = words.index("--include")
    assert words[at : at + 4] == ["--include", "*.png", "--include", "cam 1/**"] and words.count("--include") == 2
    assert _scan(*args, "--overwrite").exit_code == 0
    assert "--include" not in json.loads(summary_path.read_text())["command"]
    assert "--exclude" not in command


def test_quiet_summary_json_and_fail_on(tmp_path, tiny_checkpoint):
    folder = _folder(tmp_path / "imgs", 3)
    (folder / "broken.png").write_bytes(b"\x89PNG broken")
    summary_path = tmp_path / "summary.json"
    out = tmp_path / "v.csv"
    result = _scan(str(folder), "--checkpoint", str(tiny_checkpoint), "--out", str(out), "--workers", "0", "--quiet",
                   "--summary-json", str(summary_path), "--fail-on", "error")  # fmt: skip
    assert result.exit_code == 3 and result.stderr.splitlines() == ["fail-on: 1 error"]
    summary = json.loads(summary_path.read_text())
    assert (summary["files"], summary["errors"], summary["errors_by_reason"]) == (4, 1, {"unsupported": 1})
    assert summary["aigdetect_version"] and summary["started"]
    assert summary["command"] == shlex.join(["aigdetect", "scan", str(folder), "--checkpoint", str(tiny_checkpoint), "--out",
                                             str(out), "--workers", "0", "--summary-json", str(summary_path),
                                             "--fail-on", "error", "--quiet"])  # fmt: skip
    assert summary == read_sidecar(str(out))["summary"]
    verdicts = {r["verdict"] for r in _csv(out.read_text()) if r["verdict"]}
    missing = next(v for v in ("ai-generated", "conflict", "camera-signed") if v not in verdicts)
    clean = _scan(str(folder), "--checkpoint", str(tiny_checkpoint), "--workers", "0", "--fail-on", missing, "-q")
    assert clean.exit_code == 0 and clean.stderr == ""
    bad = _scan(str(folder), "--checkpoint", str(tiny_checkpoint), "--fail-on", "fakeish")
    assert bad.exit_code == 2 and bad.stderr.startswith("error: --fail-on takes verdicts among")


def test_without_a_terminal_progress_is_a_plain_line(tmp_path, tiny_checkpoint, monkeypatch):
    monkeypatch.setattr("aigdetect.cli.progress.PROGRESS_INTERVAL_S", 0.0)
    folder = _folder(tmp_path / "imgs", 4)
    result = _scan(str(folder), "--checkpoint", str(tiny_checkpoint), "--workers", "0", "--batch-size", "2")
    lines = [line for line in result.stderr.splitlines() if line.startswith("scanned ")]
    assert lines[0].startswith("scanned 2 of 4 files (0 errors), ") and lines[-1].startswith("scanned 4 of 4 files")


def test_csv_loads_in_pandas_with_exact_integers_split_errors_and_hashes(tmp_path, tiny_checkpoint):
    pandas = pytest.importorskip("pandas")
    folder = _folder(tmp_path / "imgs", 2)
    (folder / "cut.png").write_bytes((folder / "img_0.png").read_bytes()[:80])
    out = tmp_path / "v.csv"
    assert _scan(str(folder), "--checkpoint", str(tiny_checkpoint), "--out", str(out), "--workers", "0").exit_code == 0
    frame = pandas.read_csv(out, dtype={"width": "Int64", "height": "Int64"})
    assert frame["size"].dtype == np.int64 and frame["mtime_ns"].dtype == np.int64
    for _, row in frame.iterrows():
        info = Path(row["path"]).stat()
        assert (row["size"], row["mtime_ns"]) == (info.st_size, info.st_mtime_ns)
        assert row["sha256"] == hashlib.sha256(Path(row["path"]).read_bytes()).hexdigest()
    cut = frame[frame["path"].str.endswith("cut.png")].iloc[0]
    assert (cut["status"], cut["error_reason"]) == ("error", "truncated") and "truncated" in cut["error_detail"]
    assert list(frame["width"].dropna()) == [40, 40]


def test_outputs_are_never_replaced_by_accident(tmp_path, tiny_checkpoint):
    folder = _folder(tmp_path / "imgs", 2)
    out = tmp_path / "v.csv"
    base = [str(folder), "--checkpoint", str(tiny_checkpoint), "--workers", "0"]
    assert _scan(*base, "--out", str(out)).exit_code == 0
    again = _scan(*base, "--out", str(out))
    assert again.exit_code == 2 and "exists; pass --resume to continue it or --overwrite to replace it" in again.stderr
    assert _scan(*base, "--out", str(out), "--overwrite").exit_code == 0
    image = folder / "img_0.png"
    before = image.read_bytes()
    clobber = _scan(*base, "--out", str(image), "--format", "csv", "--overwrite")
    assert clobber.exit_code == 2 and f"is under {folder}, which this run reads" in clobber.stderr
    assert image.read_bytes() == before
    weights = _scan(*base, "--out", str(tiny_checkpoint), "--format", "csv", "--overwrite")
    assert weights.exit_code == 2 and f"is {tiny_checkpoint}, which this run reads" in weights.stderr


def test_a_second_scan_of_the_same_output_is_refused_naming_the_holder(tmp_path, tiny_checkpoint):
    folder = _folder(tmp_path / "imgs", 1)
    out = tmp_path / "v.jsonl"
    with open(str(out) + ".lock", "w") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        holder.write("pid 4242: aigdetect scan other")
        holder.flush()
        result = _scan(str(folder), "--checkpoint", str(tiny_checkpoint), "--out", str(out), "--workers", "0")
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {out} is being written by another scan (pid 4242: aigdetect scan other)"
    assert not out.exists()


def test_resume_after_the_folder_changed_equals_a_fresh_scan(tmp_path):
    folder = _folder(tmp_path / "imgs", 4)
    detector = make_tiny_detector()
    out = str(tmp_path / "v.csv")
    runtime = RuntimeConfig(workers=0, batch_size=2)
    run_scan(detector, ScanConfig(paths=(str(folder),), out=out, runtime=runtime))
    write_image(folder / "img_1b.png", size=(40, 36), seed=9)
    write_image(folder / "a_first.png", size=(40, 36), seed=8)
    os.remove(folder / "img_3.png")
    summary = run_scan(detector, ScanConfig(paths=(str(folder),), out=out, resume=True, runtime=runtime))
    assert (summary.resumed, summary.scored) == (3, 2)
    fresh = str(tmp_path / "fresh.csv")
    run_scan(detector, ScanConfig(paths=(str(folder),), out=fresh, runtime=runtime))
    assert Path(out).read_text() == Path(fresh).read_text()


def test_an_output_of_an_older_version_is_rescanned_not_refused(tmp_path):
    folder = _folder(tmp_path / "imgs", 2)
    out = tmp_path / "v.csv"
    old = "path,status,score,verdict,threshold,detector,width,height,format,error,size,mtime_ns\n"
    out.write_text(old + f"{folder / 'img_0.png'},ok,0.3,real,0.5,d@1,40,36,PNG,,10,1\n", encoding="utf-8")
    summary = run_scan(make_tiny_detector(), ScanConfig(paths=(str(folder),), out=str(out), resume=True,
                                                        runtime=RuntimeConfig(workers=0)))  # fmt: skip
    assert (summary.stale, summary.resumed, summary.scored) == (1, 0, 2)
    assert [r["model_verdict"] for r in _csv(out.read_text())] != ["", ""]


def test_size_and_time_come_from_the_descriptor_that_was_decoded(tmp_path, monkeypatch):
    path = write_image(tmp_path / "a.png", size=(40, 36), seed=1)
    before = path.stat()
    original = FileReader._decode

    def swap_then_decode(self, handle, record):
        replacement = tmp_path / "new.png"
        write_image(replacement, size=(60, 50), seed=2)
        os.replace(replacement, path)
        return original(self, handle, record)

    monkeypatch.setattr(FileReader, "_decode", swap_then_decode)
    record, views = FileReader(ReadOptions(size=32))((0, ReadItem(str(path), follow=False)))
    assert (record.size, record.mtime_ns, record.width, record.height) == (before.st_size, before.st_mtime_ns, 40, 36)
    assert path.stat().st_size != before.st_size


def test_a_file_swapped_for_a_fifo_or_a_link_after_the_walk_is_refused_not_read(tmp_path, monkeypatch):
    folder = _folder(tmp_path / "imgs", 3)
    import aigdetect.scan.sources as scan_sources

    walk = scan_sources.walk_stream

    def walk_then_swap(*args, **kwargs):
        found = list(walk(*args, **kwargs))
        if not (folder / "img_1.png").is_fifo():
            os.remove(folder / "img_1.png")
            os.mkfifo(folder / "img_1.png")
            os.remove(folder / "img_2.png")
            os.symlink("/dev/zero", folder / "img_2.png")
        return iter(found)

    monkeypatch.setattr(scan_sources, "walk_stream", walk_then_swap)
    stream = io.StringIO()
    run_scan(make_tiny_detector(), ScanConfig(paths=(str(folder),), runtime=RuntimeConfig(workers=1)), stream=stream)
    rows = {Path(r["path"]).name: r for r in _csv(stream.getvalue())}
    assert (rows["img_1.png"]["error_reason"], rows["img_1.png"]["error_detail"]) == ("unsupported", "not a regular file (fifo)")
    assert rows["img_2.png"]["error_reason"] == "symlink" and rows["img_0.png"]["status"] == "ok"


def test_formula_like_names_are_quoted_in_csv_unless_raw(tmp_path, tiny_checkpoint, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name = "=HYPERLINK(1).png"
    write_image(tmp_path / name, seed=1)
    guarded = _scan(name, "--checkpoint", str(tiny_checkpoint), "--workers", "0")
    assert _csv(guarded.stdout)[0]["path"] == "'" + name
    raw = _scan(name, "--checkpoint", str(tiny_checkpoint), "--workers", "0", "--raw-csv")
    assert _csv(raw.stdout)[0]["path"] == name
    jsonl = _scan(name, "--checkpoint", str(tiny_checkpoint), "--workers", "0", "--format", "jsonl")
    assert json.loads(jsonl.stdout)["path"] == name


def test_evidence_decides_the_verdict_and_is_in_every_row(tmp_path, tiny_checkpoint):
    folder = tmp_path / "imgs"
    write(folder / "a1111.png", png_with_text(small_photo(), {"parameters": A1111}))
    signed, _ = sign(encode(small_photo(), "JPEG", quality=92), "image/jpeg", ai_manifest())
    write(folder / "signed.jpg", signed)
    write(folder / "plain.png", encode(small_photo(), "PNG"))
    result = _scan(str(folder), "--checkpoint", str(tiny_checkpoint), "--workers", "0", "--format", "jsonl")
    rows = {Path(r["path"]).name: r for r in map(json.loads, result.stdout.splitlines())}
    assert rows["a1111.png"]["verdict"] == "ai-generated" and rows["a1111.png"]["generator"] == "Stable Diffusion XL"
    assert [f["source"] for f in rows["a1111.png"]["evidence"]] == ["png-text"]
    assert rows["signed.jpg"]["verdict"] == "ai-generated"
    assert any(f["source"] == "c2pa" and AI_SOURCE.rsplit("/", 1)[-1] in f["detail"] for f in rows["signed.jpg"]["evidence"])
    assert rows["plain.png"]["evidence"] == [] and rows["plain.png"]["verdict"] in ("likely-ai", "inconclusive", "likely-real")
    csv_rows = {Path(r["path"]).name: r for r in _csv(_scan(str(folder), "--checkpoint", str(tiny_checkpoint), "--workers", "0").stdout)}
    assert csv_rows["a1111.png"]["evidence"].startswith("png-text:ai:")
    bare = _scan(str(folder), "--checkpoint", str(tiny_checkpoint), "--workers", "0", "--format", "jsonl", "--no-evidence")
    bare_rows = {Path(r["path"]).name: r for r in map(json.loads, bare.stdout.splitlines())}
    assert bare_rows["a1111.png"]["evidence"] == [] and bare_rows["a1111.png"]["verdict"] != "ai-generated"


def test_inspect_shows_the_same_reasons_for_one_file(tmp_path, tiny_checkpoint):
    path = write(tmp_path / "a1111.png", png_with_text(small_photo(), {"parameters": A1111}))
    result = runner.invoke(app, ["inspect", str(path), "--checkpoint", str(tiny_checkpoint), "--json", "--crops", "4"])
    assert result.exit_code == 0, result.output
    (report,) = json.loads(result.stdout)
    assert report["verdict"] == "ai-generated" and report["generator"] == "Stable Diffusion XL"
    assert report["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest() and len(report["crop_scores"]) == 4
    assert report["reasons"][0].startswith("AUTOMATIC1111") or "sd_xl_base_1.0" in report["reasons"][0]
    assert report["score"] == pytest.approx(float(score_images(make_tiny_detector(), [str(path)])[0]), rel=1e-5)
    panel = runner.invoke(app, ["inspect", str(path), "--checkpoint", str(tiny_checkpoint)], env={"COLUMNS": "160"})
    assert panel.exit_code == 0 and "ai-generated" in panel.stdout and report["sha256"] in panel.stdout


def test_scan_html_and_report_write_the_page_of_the_rows(tmp_path, tiny_checkpoint):
    folder = _folder(tmp_path / "imgs", 3)
    out, page, again = tmp_path / "v.jsonl", tmp_path / "r.html", tmp_path / "again.html"
    result = _scan(str(folder), "--checkpoint", str(tiny_checkpoint), "--out", str(out), "--workers", "0", "--html", str(page))
    assert result.exit_code == 0, result.output
    assert "report of 3 files" in result.stderr and page.read_text().count("img_") >= 3
    assert page.read_text().count("data:image/jpeg;base64,/9j") == 3, "the run's own rows are previewed though its PATH lies outside the folder it ran in"
    report = runner.invoke(app, ["report", str(out), "--out", str(again), "--thumbnails", "0"])
    assert report.exit_code == 0 and again.exists() and "report of 3 files (0 previews" in report.stderr


def _written_rows(out: Path, output_format: str) -> list[dict]:
    """The rows a scan has written so far: CSV or JSONL lines, or a JSON scan's journal until it finishes
    (every line must parse: a terminated scan flushed whole batches)."""
    journal = Path(str(out) + ".partial.jsonl")
    if output_format == "json" and not out.exists():
        return [json.loads(line) for line in journal.read_text().splitlines()] if journal.exists() else []
    if output_format == "json":
        return json.loads(out.read_text())["rows"]
    if not out.exists():
        return []
    return _csv(out.read_text()) if output_format == "csv" else [json.loads(line) for line in out.read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.parametrize("output_format", ["csv", "json", "jsonl"])
def test_sigterm_flushes_rows_exits_143_and_resume_completes(tmp_path, tiny_checkpoint, output_format):
    folder = _folder(tmp_path / "imgs", 24)
    out = tmp_path / f"v.{output_format}"
    driver = (
        "import os, signal, sys, time\n"
        "import aigdetect.engine.infer as infer\n"
        "original = infer.score_decoded\n"
        "def slow(*args, **kwargs):\n"
        "    for number, batch in enumerate(original(*args, **kwargs)):\n"
        "        if number == 2:\n"
        "            os.kill(os.getpid(), signal.SIGTERM)\n"
        "        yield batch\n"
        "infer.score_decoded = slow\n"
        "from aigdetect.cli import main\n"
        "sys.argv[0] = 'aigdetect'\n"
        "main()\n"
    )
    common = [str(folder), "--checkpoint", str(tiny_checkpoint), "--batch-size", "2", "--workers", "1", "--out", str(out),
              "--format", output_format]  # fmt: skip
    killed = subprocess.run([sys.executable, "-c", driver, "scan", *common], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert killed.returncode == 143 and killed.stderr.strip().splitlines()[-1] == "terminated"
    assert "Traceback" not in killed.stderr
    kept = _written_rows(out, output_format)
    assert 4 <= len(kept) < 24
    resumed = _scan(*common, "--resume")
    assert resumed.exit_code == 0, resumed.stderr
    rows = _written_rows(out, output_format)
    assert [row["path"] for row in rows] == [str(folder / f"img_{i}.png") for i in sorted(range(24), key=str)]
    assert rows[: len(kept)] == kept
    assert not Path(str(out) + ".partial.jsonl").exists()


def test_a_reader_that_goes_away_ends_the_scan_quietly(tmp_path, tiny_checkpoint):
    folder = _folder(tmp_path / "imgs", 40)
    scan = subprocess.Popen([sys.executable, "-m", "aigdetect", "scan", str(folder), "--checkpoint", str(tiny_checkpoint),
                             "--workers", "0", "--batch-size", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)  # fmt: skip
    scan.stdout.readline()
    scan.stdout.close()
    _, err = scan.communicate(timeout=300)
    assert scan.returncode in (0, 141) and b"Traceback" not in err and b"error" not in err.lower()


def test_library_refusals_name_the_setting(tmp_path):
    with pytest.raises(ConfigError, match="`resume` keeps the rows of `out` and `overwrite` replaces them"):
        ScanConfig(paths=("x",), out="v.csv", resume=True, overwrite=True)
    with pytest.raises(ConfigError, match="`bands` need 0 <= LOW <= HIGH <= 1"):
        ScanConfig(paths=("x",), bands=(0.9, 0.1))
    folder = _folder(tmp_path / "imgs", 1)
    with pytest.raises(InputError, match="PATH not found"):
        run_scan(make_tiny_detector(), ScanConfig(paths=(str(folder / "nope"),)))
    detector = make_tiny_detector()
    with pytest.raises(ConfigError, match="bands need 0 <= low <= threshold"):
        run_scan(detector, ScanConfig(paths=(str(folder),), bands=(0.6, 0.9), runtime=RuntimeConfig(workers=0)),
                 stream=io.StringIO())  # fmt: skip


_PROBE = (
    "import sys\n"
    "from aigdetect.cli import main\n"
    "sys.argv = ['aigdetect', *sys.argv[1:]]\n"
    "try:\n"
    "    main()\n"
    "except SystemExit as exc:\n"
    "    print('torch loaded:', 'torch' in sys.modules, 'exit:', exc.code)\n"
)


def test_a_finished_resume_and_a_merge_never_load_torch_or_the_detector(tmp_path, tiny_checkpoint):
    folder = _folder(tmp_path / "imgs", 3)
    out = tmp_path / "v.csv"
    # One image per batch: a shard's batches then hold the very inputs of the whole scan's, so the
    # scores match to the last bit (the CPU kernels' sums depend on the batch size).
    common = [str(folder), "--checkpoint", str(tiny_checkpoint), "--workers", "0", "--batch-size", "1"]
    assert _scan(*common, "--out", str(out)).exit_code == 0
    resumed = subprocess.run([sys.executable, "-c", _PROBE, "scan", *common, "--out", str(out), "--resume"],
                             capture_output=True, text=True, cwd=REPO, timeout=300)  # fmt: skip
    assert resumed.stdout.splitlines()[-1] == "torch loaded: False exit: 0", resumed.stderr
    assert "3 kept from the earlier run" in resumed.stderr
    merged = tmp_path / "m.csv"
    for k in range(2):
        assert _scan(*common, "--out", str(merged), "--shard", f"{k}/2").exit_code == 0
    joined = subprocess.run([sys.executable, "-c", _PROBE, "scan", "--merge", str(merged)],
                            capture_output=True, text=True, cwd=REPO, timeout=300)  # fmt: skip
    assert joined.stdout.splitlines()[-1] == "torch loaded: False exit: 0", joined.stderr
    assert merged.read_text() == out.read_text()


def test_system_junk_and_hidden_files_are_skipped_and_counted_unless_asked_for(tmp_path, tiny_checkpoint):
    folder = _folder(tmp_path / "imgs", 2)
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (folder / "._img_0.png").write_bytes(b"\0\5\26\7")
    (folder / ".hidden.png").write_bytes((folder / "img_0.png").read_bytes())
    (folder / "thumbs").mkdir()
    write_image(folder / "thumbs" / "t.png", seed=5)
    base = [str(folder), "--checkpoint", str(tiny_checkpoint), "--workers", "0", "--strict"]
    plain = _scan(*base)
    assert plain.exit_code == 0 and [Path(r["path"]).name for r in _csv(plain.stdout)] == ["img_0.png", "img_1.png", "t.png"]
    assert "3 system, hidden or excluded entries skipped" in plain.stderr
    hidden = _scan(*base, "--hidden", "--exclude", "thumbs/**")
    assert [Path(r["path"]).name for r in _csv(hidden.stdout)] == [".hidden.png", "img_0.png", "img_1.png"]
    only = _scan(*base, "--include", "*_1.png")
    assert [Path(r["path"]).name for r in _csv(only.stdout)] == ["img_1.png"]
