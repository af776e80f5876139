"""The Ray engine: a bucket scanned on a local Ray gives the local engine's rows, in a folder of Parquet
parts that ``report`` reads; a run stopped part-way resumes to the same rows; a finished one does nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_scan_remote import SAME_COLUMNS, build_files, scan_rows, upload
from typer.testing import CliRunner

from aigdetect.cli import app
from aigdetect.engine.runtime import RuntimeConfig
from aigdetect.errors import ConfigError
from aigdetect.results.read import read_scan_results
from aigdetect.scan.config import ScanConfig

pytest.importorskip("pyarrow")

pytestmark = pytest.mark.slow


def ray_config(paths: tuple[str, ...], out: str, **options) -> ScanConfig:
    return ScanConfig(paths=paths, out=out, engine="ray", runtime=RuntimeConfig(workers=0, batch_size=3), **options)


def same(rows: list, local: list[dict], prefix: str, root: str) -> None:
    assert [r.path.removeprefix(prefix) for r in rows] == [r["path"].removeprefix(root + "/") for r in local]
    for mine, theirs in zip(rows, local):
        for column in SAME_COLUMNS:
            value = getattr(mine, column)
            if column == "evidence":
                value = [f.to_dict() for f in value]
            if column == "score" and value is not None:
                assert value == pytest.approx(theirs[column], abs=1e-5)
            else:
                assert value == theirs[column] or (value == "" and theirs[column] is None), column


def test_a_bucket_on_ray_gives_the_local_rows_and_resumes_after_a_stop(tiny_detector, tmp_path, s3, ray_local):
    from aigdetect.distributed import RayOptions, ray_scan

    files = build_files(tmp_path / "imgs")
    upload(s3, "ray-in", "set", files)
    local = scan_rows(tiny_detector, str(tmp_path / "imgs"))
    out = str(tmp_path / "rows.parquet")
    options = RayOptions(block_size=1)
    stops = []

    def stop_after_two(update):
        if update.done >= 2:
            stops.append(update.done)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ray_scan(tiny_detector, ray_config(("s3://ray-in/set",), out), options, progress=stop_after_two)
    partial = read_scan_results(out)  # the parts written so far, each whole, and no summary
    assert partial.partial and 2 <= len(partial.rows) <= 6
    for part in sorted(Path(out).glob("part-*.parquet"))[:3]:  # as if the kill had come three blocks earlier
        part.unlink()
    left = len(read_scan_results(out).rows)
    summary = ray_scan(tiny_detector, ray_config(("s3://ray-in/set",), out), options)
    assert (summary.resumed, summary.scored) == (left, 6 - left) and summary.scored >= 3
    results = read_scan_results(out)
    assert not results.partial and results.summary["files"] == 6 and results.summary["errors"] == 2
    same(results.rows, local, "s3://ray-in/set/", str(tmp_path / "imgs"))
    again = ray_scan(tiny_detector, ray_config(("s3://ray-in/set",), out), options)
    assert (again.scored, again.resumed) == (0, 6)
    s3.put_object(Bucket="ray-in", Key="set/b.jpg", Body=files["a.png"])
    changed = ray_scan(tiny_detector, ray_config(("s3://ray-in/set",), out), options)
    assert (changed.scored, changed.resumed) == (1, 5)
    rows = {r.path: r for r in read_scan_results(out).rows}
    assert len(rows) == 6 and rows["s3://ray-in/set/b.jpg"].sha256 == rows["s3://ray-in/set/a.png"].sha256
    with pytest.raises(ConfigError, match="other settings"):
        ray_scan(tiny_detector, ray_config(("s3://ray-in/set",), out, threshold=0.25), options)


def test_ray_writes_parts_into_a_bucket_and_report_reads_a_folder(tiny_detector, tmp_path, s3, ray_local):
    from aigdetect.distributed import RayOptions, ray_scan

    files = build_files(tmp_path / "imgs")
    upload(s3, "ray-out", "in", files)
    summary = ray_scan(tiny_detector, ray_config(("s3://ray-out/in",), "s3://ray-out/results.parquet"), RayOptions(block_size=2))
    assert summary.scored == 6
    names = {o["Key"] for o in s3.list_objects_v2(Bucket="ray-out", Prefix="results.parquet/")["Contents"]}
    assert "results.parquet/_summary.json" in names and any(n.startswith("results.parquet/part-") for n in names)
    local_out = tmp_path / "local.parquet"
    ray_scan(tiny_detector, ray_config((str(tmp_path / "imgs"),), str(local_out)), RayOptions(block_size=2))
    result = CliRunner().invoke(app, ["report", str(local_out), "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output
    assert "sub/deep/d.png" in (tmp_path / "r.html").read_text()


def test_the_scan_command_runs_a_bucket_on_ray(tiny_checkpoint, tmp_path, s3, ray_local):
    files = build_files(tmp_path / "imgs")
    upload(s3, "ray-cli", "p", files)
    out = tmp_path / "results.parquet"
    args = ["scan", "s3://ray-cli/p", "--engine", "ray", "--out", str(out), "--checkpoint", str(tiny_checkpoint),
            "--workers", "0", "--allow-random-backbone"]  # fmt: skip
    first = CliRunner().invoke(app, [*args, "--html", str(tmp_path / "page.html")])
    assert first.exit_code == 0, first.output
    assert "6 files" in first.output and "6 scanned" in first.output
    assert "s3://ray-cli/p/sub/deep/d.png" in (tmp_path / "page.html").read_text()
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert "0 scanned" in again.output and "6 kept from the earlier run" in again.output
    rows = read_scan_results(out).rows
    assert [r.path for r in rows][:2] == ["s3://ray-cli/p/a.png", "s3://ray-cli/p/b.jpg"]
    bad = CliRunner().invoke(app, ["scan", "s3://ray-cli/p", "--out", str(tmp_path / "x.csv"), "--storage-options", "[1]",
                                   "--checkpoint", str(tiny_checkpoint)])  # fmt: skip
    assert bad.exit_code == 2 and "--storage-options takes a JSON object" in bad.output


def test_a_decoder_that_crashes_in_a_ray_task_costs_its_file_alone(tiny_detector, tmp_path, ray_local):
    import os
    import signal

    import numpy as np
    from conftest import write_image
    from PIL import Image

    from aigdetect.distributed import RayOptions, ray_scan

    for index in range(4):
        write_image(tmp_path / "imgs" / f"img_{index}.png", seed=index)
    poison = np.zeros((40, 48, 3), dtype=np.uint8)
    poison[0, :2] = (7, 11, 13)
    Image.fromarray(poison).save(tmp_path / "imgs" / "img_2_poison.png")

    def crash_on_poison(array):
        if array[0, 0].tolist() == [7, 11, 13] and array[0, 1].tolist() == [7, 11, 13]:
            os.kill(os.getpid(), signal.SIGKILL)
        return array

    out = str(tmp_path / "rows.parquet")
    summary = ray_scan(tiny_detector, ray_config((str(tmp_path / "imgs"),), out), RayOptions(block_size=2),
                       perturb=crash_on_poison)  # fmt: skip
    rows = read_scan_results(out).rows
    assert [Path(r.path).name for r in rows] == ["img_0.png", "img_1.png", "img_2.png", "img_2_poison.png", "img_3.png"]
    assert [(Path(r.path).name, r.error_reason) for r in rows if r.status == "error"] == [("img_2_poison.png", "crashed")]
    assert summary.scored == 5 and summary.tally.errors == 1
