"""RayScorer and score_frames: a user's own pipeline (Ray Data, Spark's mapInPandas) gets a scan's rows."""

from __future__ import annotations

import pytest
from test_scan_remote import SAME_COLUMNS, build_files, scan_rows

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")


def assert_rows_match(rows: list[dict], local: list[dict]) -> None:
    assert len(rows) == len(local)
    for mine, theirs in zip(rows, local):
        assert mine["path"] == theirs["path"].rsplit("/imgs/", 1)[-1]
        for column in SAME_COLUMNS:
            if column == "score" and theirs[column] is not None:
                assert mine[column] == pytest.approx(theirs[column], abs=1e-5)
            else:
                assert mine[column] == theirs[column], column


def test_score_frames_gives_the_scan_rows_for_pandas_frames(tiny_detector, tmp_path):
    from aigdetect.distributed import score_frames, spark_schema

    files = build_files(tmp_path / "imgs")
    local = scan_rows(tiny_detector, str(tmp_path / "imgs"))
    names = sorted(files)
    frames = [pd.DataFrame({"path": names[:4], "content": [files[n] for n in names[:4]]}),
              pd.DataFrame({"path": names[4:], "content": [files[n] for n in names[4:]]})]  # fmt: skip
    out = list(score_frames(iter(frames), detector=tiny_detector))
    assert [len(f) for f in out] == [4, 2]
    rows = [r for frame in out for r in frame.to_dict("records")]
    for row in rows:  # pandas gives NaN and numpy arrays where the rows hold None and lists
        row.update({k: None for k, v in row.items() if not hasattr(v, "__len__") and pd.isna(v)})
        row["evidence"] = [dict(f) for f in row["evidence"]]
        for key in ("width", "height", "size"):
            row[key] = None if row[key] is None else int(row[key])
    assert_rows_match(rows, local)
    assert spark_schema().startswith("path string, status string,") and "width bigint" in spark_schema()
    assert "evidence array<struct<source:string" in spark_schema()


@pytest.mark.slow
def test_ray_scorer_drops_into_map_batches(tiny_detector, tmp_path, ray_local):
    from aigdetect.distributed import RayScorer

    files = build_files(tmp_path / "imgs")
    local = scan_rows(tiny_detector, str(tmp_path / "imgs"))
    items = [{"path": name, "bytes": files[name]} for name in sorted(files)]
    dataset = ray_local.data.from_items(items).map_batches(
        RayScorer, fn_constructor_kwargs={"detector": tiny_detector}, concurrency=1, batch_size=4, batch_format="pyarrow"
    )
    rows = sorted(dataset.take_all(), key=lambda r: r["path"])
    assert_rows_match(rows, local)
