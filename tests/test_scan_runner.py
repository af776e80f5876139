"""The scan runner on a tree of valid and broken files, scored by the tiny detector."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import make_tiny_detector, write_image
from PIL import Image

from aigdetect import score_images
from aigdetect.engine.runtime import RuntimeConfig
from aigdetect.errors import ConfigError, WeightsError
from aigdetect.results.write import journal_path
from aigdetect.scan import ScanConfig, detector_id, display_path, raw_path, run_scan
from aigdetect.scan.runner import DetectorSource
from aigdetect.scan.sidecar import sidecar_path

NON_UTF8 = b"caf\xe9.png"
MAGIC = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_bomb_png(path: Path, side: int = 12000) -> Path:
    """A 1-bit PNG whose header claims side x side pixels (144 M for 12000, over the 100 M default)."""
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
    path.write_bytes(data + _png_chunk(b"IEND", b""))
    return path


def _truncate(source: Path, target: Path) -> None:
    data = source.read_bytes()
    target.write_bytes(data[: len(data) // 2])


def _corrupt_png(source: Path, target: Path) -> None:
    """Scramble the pixel data but keep the CRC right, so only decoding finds the damage."""
    data = source.read_bytes()
    at = data.find(b"IDAT")
    size = struct.unpack(">I", data[at - 4 : at])[0]
    payload = bytes(b ^ 0x55 for b in data[at + 4 : at + 4 + size])
    chunk = _png_chunk(b"IDAT", payload)
    target.write_bytes(data[: at - 4] + chunk + data[at + 8 + size :])


def build_tree(root: Path) -> dict[str, tuple[str, str | None]]:
    """Write valid, unusual and broken files; return {display path relative to root: (status, reason)}."""
    rng = np.random.default_rng(0)
    expected: dict[str, tuple[str, str | None]] = {}
    for name, size, seed in [("photos/a.png", (48, 40), 1), ("photos/b.jpg", (40, 56), 2), ("photos/big.png", (96, 80), 3)]:
        write_image(root / name, size=size, seed=seed)
        expected[name] = ("ok", None)
    (root / "modes").mkdir()
    Image.fromarray(rng.integers(0, 65536, (36, 44)).astype(np.uint16)).save(root / "modes/gray16.png")
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).convert("CMYK").save(root / "modes/cmyk.jpg")
    palette = Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).convert("P")
    palette.info["transparency"] = 0
    palette.save(root / "modes/palette_alpha.png")
    Image.fromarray(rng.integers(0, 256, (40, 40, 4), dtype=np.uint8)).save(root / "modes/rgba.png")
    frames = [Image.fromarray(rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)).convert("P") for _ in range(3)]
    frames[0].save(root / "modes/animated.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    for name in ("gray16.png", "cmyk.jpg", "palette_alpha.png", "rgba.png", "animated.gif"):
        expected[f"modes/{name}"] = ("ok", None)
    broken = root / "broken"
    broken.mkdir()
    _truncate(root / "photos/b.jpg", broken / "truncated.jpg")
    _truncate(root / "photos/a.png", broken / "truncated.png")
    _corrupt_png(root / "photos/a.png", broken / "corrupt.png")
    (broken / "random.jpg").write_bytes(rng.bytes(300))
    (broken / "empty.png").write_bytes(b"")
    (broken / "notes.txt").write_text("not an image\n")
    write_bomb_png(broken / "bomb.png")
    expected.update({
        "broken/truncated.jpg": ("error", "truncated"),
        "broken/truncated.png": ("error", "truncated"),
        "broken/corrupt.png": ("error", "corrupt"),
        "broken/random.jpg": ("error", "unsupported"),
        "broken/empty.png": ("error", "unsupported"),
        "broken/notes.txt": ("error", "unsupported"),
        "broken/bomb.png": ("error", "too-large"),
    })
    links = root / "links"
    links.mkdir()
    (links / "loop").symlink_to("..")
    (links / "to_a.png").symlink_to("../photos/a.png")
    (links / "broken.png").symlink_to("nowhere.png")
    os.mkfifo(root / "pipe")
    expected.update({name: ("error", "symlink") for name in ("links/loop", "links/to_a.png", "links/broken.png")})
    expected["pipe"] = ("error", "unsupported")
    write_image(Path(os.fsdecode(os.fsencode(root) + b"/" + NON_UTF8)), seed=4, fmt="png")
    expected[display_path(os.fsdecode(NON_UTF8))] = ("ok", None)
    return expected


def relative_rows(rows: list[dict], root: Path) -> dict[str, dict]:
    prefix = display_path(str(root)) + "/"
    assert all(r["path"].startswith(prefix) for r in rows)
    return {r["path"][len(prefix):]: r for r in rows}


def scan_to_rows(detector, root: Path, **options) -> tuple[list[dict], object]:
    stream = io.StringIO()
    summary = run_scan(detector, ScanConfig(paths=(str(root),), output_format="jsonl", **options, runtime=RuntimeConfig(workers=0)), stream=stream)
    return [json.loads(line) for line in stream.getvalue().splitlines()], summary


@pytest.fixture()
def tree(tmp_path) -> tuple[Path, dict[str, tuple[str, str | None]]]:
    root = tmp_path / "tree"
    root.mkdir()
    return root, build_tree(root)


def test_every_file_once_with_the_right_status_and_reason(tree):
    root, expected = tree
    detector = make_tiny_detector()
    rows, summary = scan_to_rows(detector, root)
    by_path = relative_rows(rows, root)
    assert len(rows) == len(by_path) == len(expected)
    got = {p: (r["status"], r["error_reason"]) for p, r in by_path.items()}
    assert got == expected
    assert [r["path"] for r in rows] == sorted((r["path"] for r in rows), key=raw_path)
    assert "exceeds the limit of 100000000" in by_path["broken/bomb.png"]["error_detail"]
    assert (by_path["links/to_a.png"]["error_reason"], by_path["links/to_a.png"]["error_detail"]) == (
        "symlink", "symbolic link, not followed (pass --follow-symlinks)"
    )
    assert summary.tally.errors == sum(1 for s, _ in expected.values() if s == "error")
    assert sum(summary.tally.model.values()) == sum(1 for s, _ in expected.values() if s == "ok")
    assert sum(summary.tally.verdicts.values()) == sum(summary.tally.model.values())
    assert summary.tally.reasons["unsupported"] == 4


def test_scores_equal_detector_score_and_verdicts_follow_the_threshold(tree):
    root, _ = tree
    detector = make_tiny_detector()
    rows, _ = scan_to_rows(detector, root)
    ok = [r for r in rows if r["status"] == "ok"]
    reference = score_images(detector, [os.fsdecode(raw_path(r["path"])) for r in ok])
    np.testing.assert_allclose([r["score"] for r in ok], reference, rtol=1e-5, atol=1e-6)
    threshold = float(np.median(reference))
    rows, summary = scan_to_rows(detector, root, threshold=threshold)
    ok = [r for r in rows if r["status"] == "ok"]
    assert all(r["threshold"] == threshold for r in rows)
    assert [r["model_verdict"] for r in ok] == ["fake" if s > threshold else "real" for s in reference]
    assert summary.tally.model == {"fake": int(np.sum(reference > threshold)), "real": int(np.sum(reference <= threshold))}
    assert {r["detector"] for r in rows} == {detector_id(detector)}


def test_file_facts_and_non_utf8_names(tree):
    root, _ = tree
    rows, _ = scan_to_rows(make_tiny_detector(), root)
    by_path = relative_rows(rows, root)
    big = by_path["photos/big.png"]
    assert (big["width"], big["height"], big["format"]) == (96, 80, "PNG")
    assert big["size"] == (root / "photos/big.png").stat().st_size
    assert big["mtime_ns"] == (root / "photos/big.png").stat().st_mtime_ns
    assert by_path["modes/cmyk.jpg"]["format"] == "JPEG"
    assert by_path["modes/animated.gif"]["width"] == 30
    name = display_path(os.fsdecode(NON_UTF8))
    assert name == "caf\\xe9.png"
    assert raw_path(by_path[name]["path"]) == os.fsencode(root) + b"/" + NON_UTF8


def test_crops_add_mean_and_max_beside_the_centre_score(tree):
    from aigdetect.data.crops import crop_grid
    from aigdetect.data.images import decode_image
    from aigdetect.data.transforms import eval_tensor, normalize

    root, _ = tree
    detector = make_tiny_detector()
    rows, _ = scan_to_rows(detector, root, crops=4)
    big = relative_rows(rows, root)["photos/big.png"]
    assert list(big)[:7] == ["path", "status", "verdict", "model_verdict", "score", "crop_mean", "crop_max"]
    array = decode_image(root / "photos/big.png").array
    crops = [normalize(c, detector.preprocess) for c in crop_grid(array, detector.image_size, 4)]
    import torch

    with torch.no_grad():
        crop_scores = torch.sigmoid(detector(torch.stack(crops)).logits).numpy()
        centre = torch.sigmoid(detector(eval_tensor(array, detector.preprocess)[None]).logits).item()
    assert big["score"] == pytest.approx(centre, rel=1e-5)
    assert big["crop_mean"] == pytest.approx(float(crop_scores.mean()), rel=1e-5)
    assert big["crop_max"] == pytest.approx(float(crop_scores.max()), rel=1e-5)
    assert big["model_verdict"] == ("fake" if big["score"] > 0.5 else "real")


def test_max_pixels_refuses_before_decoding(tmp_path):
    write_image(tmp_path / "small.png", size=(20, 20))
    write_image(tmp_path / "large.png", size=(50, 40))
    rows, _ = scan_to_rows(make_tiny_detector(), tmp_path, max_pixels=1000)
    assert [(Path(r["path"]).name, r["status"]) for r in rows] == [("large.png", "error"), ("small.png", "ok")]
    assert (rows[0]["error_reason"], rows[0]["error_detail"]) == ("too-large", "50x40 = 2000 pixels exceeds the limit of 1000")


def test_follow_symlinks_scores_linked_files_and_reports_the_loop(tree):
    root, _ = tree
    rows, _ = scan_to_rows(make_tiny_detector(), root, follow_symlinks=True)
    by_path = relative_rows(rows, root)
    assert by_path["links/to_a.png"]["score"] == by_path["photos/a.png"]["score"]
    assert by_path["links/loop"]["error_reason"] == "symlink-loop"
    assert by_path["links/loop"]["error_detail"].startswith("links back to")
    assert by_path["links/broken.png"]["error_reason"] == "missing"
    assert by_path["links/broken.png"]["error_detail"].startswith("broken symbolic link")


def test_a_crashing_decoder_worker_costs_one_row(tmp_path):
    """A worker killed by SIGKILL while preparing one image: that file is 'crashed', the rest is scored."""
    for i in range(9):
        write_image(tmp_path / f"img_{i}.png", size=(36, 36), seed=i)
    poison = np.random.default_rng(9).integers(0, 256, (36, 36, 3), dtype=np.uint8)
    poison[0, :2] = MAGIC
    Image.fromarray(poison).save(tmp_path / "img_4_poison.png")

    def crash_on_magic(array: np.ndarray) -> np.ndarray:
        if np.array_equal(array[0, :2], MAGIC):
            os.kill(os.getpid(), signal.SIGKILL)
        return array

    detector = make_tiny_detector()
    stream = io.StringIO()
    config = ScanConfig(paths=(str(tmp_path),), output_format="jsonl", runtime=RuntimeConfig(batch_size=2, workers=2))
    summary = run_scan(detector, config, stream=stream, perturb=crash_on_magic)
    rows = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [Path(r["path"]).name for r in rows] == sorted(p.name for p in tmp_path.iterdir())
    crashed = [r for r in rows if r["status"] == "error"]
    assert [Path(r["path"]).name for r in crashed] == ["img_4_poison.png"]
    assert crashed[0]["error_reason"] == "crashed"
    assert crashed[0]["error_detail"] == "the decoder crashed (killed by SIGKILL)"
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == 9
    np.testing.assert_allclose([r["score"] for r in ok], score_images(detector, [r["path"] for r in ok]), rtol=1e-5, atol=1e-6)
    assert summary.tally.reasons == {"crashed": 1}


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json"])
@pytest.mark.parametrize("workers", [0, 2])
def test_a_detector_that_fails_to_load_leaves_no_output_behind(tmp_path, fmt, workers):
    for i in range(3):
        write_image(tmp_path / "imgs" / f"{i}.png", seed=i)
    out = tmp_path / f"v.{fmt}"
    config = ScanConfig(paths=(str(tmp_path / "imgs"),), out=str(out), output_format=fmt, runtime=RuntimeConfig(workers=workers))
    detector = make_tiny_detector()

    def unloadable() -> None:
        raise WeightsError("no weights for vitl14")

    failing = DetectorSource(detector_id(detector), 0.5, unloadable, image_size=detector.image_size, parameters=65_000)
    with pytest.raises(WeightsError, match="no weights"):
        run_scan(failing, config)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imgs"]
    run_scan(detector, config)
    assert out.exists() and json.loads(Path(sidecar_path(str(out))).read_text())["complete"]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json"])
def test_interrupted_scan_resumes_to_the_same_result(tree, tmp_path, fmt):
    root, expected = tree
    detector = make_tiny_detector()
    whole = str(tmp_path / f"whole.{fmt}")
    run_scan(detector, ScanConfig(paths=(str(root),), out=whole, runtime=RuntimeConfig(batch_size=2, workers=0)))
    out = str(tmp_path / f"part.{fmt}")

    def interrupt(update) -> None:
        if update.done >= 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_scan(detector, ScanConfig(paths=(str(root),), out=out, runtime=RuntimeConfig(batch_size=2, workers=0)), progress=interrupt)
    assert os.path.exists(journal_path(out) if fmt == "json" else out)
    summary = run_scan(detector, ScanConfig(paths=(str(root),), out=out, resume=True, runtime=RuntimeConfig(batch_size=2, workers=0)))
    assert summary.resumed >= 6 and summary.resumed + summary.scored == len(expected)
    if fmt != "json":
        assert Path(out).read_bytes() == Path(whole).read_bytes()
    else:
        first, second = json.loads(Path(whole).read_text(encoding="utf-8")), json.loads(Path(out).read_text(encoding="utf-8"))
        assert second["rows"] == first["rows"]
        assert second["summary"]["resumed"] == summary.resumed
        assert not os.path.exists(journal_path(out))


def test_resume_rescans_changed_files_and_drops_rows_of_removed_ones(tree, tmp_path):
    root, expected = tree
    detector = make_tiny_detector()
    out = str(tmp_path / "r.csv")
    run_scan(detector, ScanConfig(paths=(str(root),), out=out, runtime=RuntimeConfig(workers=0)))
    write_image(root / "photos/a.png", size=(60, 50), seed=11)
    os.remove(root / "photos/b.jpg")
    summary = run_scan(detector, ScanConfig(paths=(str(root),), out=out, resume=True, runtime=RuntimeConfig(workers=0)))
    assert (summary.scored, summary.resumed) == (1, len(expected) - 2)
    with open(out, newline="", encoding="utf-8") as handle:
        rows = relative_rows(list(csv.DictReader(handle)), root)
    assert len(rows) == len(expected) - 1 and "photos/b.jpg" not in rows
    assert (rows["photos/a.png"]["width"], rows["photos/a.png"]["height"]) == ("60", "50")
    other = make_tiny_detector(seed=3)
    with pytest.raises(ConfigError, match="other settings \\(detector: "):
        run_scan(other, ScanConfig(paths=(str(root),), out=out, resume=True, runtime=RuntimeConfig(workers=0)))
    summary = run_scan(other, ScanConfig(paths=(str(root),), out=out, overwrite=True, runtime=RuntimeConfig(workers=0)))
    assert (summary.scored, summary.resumed) == (len(expected) - 1, 0)


def test_resume_refuses_another_threshold_or_other_columns(tree, tmp_path):
    root, _ = tree
    detector = make_tiny_detector()
    out = str(tmp_path / "r.jsonl")
    run_scan(detector, ScanConfig(paths=(str(root),), out=out, threshold=0.3, runtime=RuntimeConfig(workers=0)))
    with pytest.raises(ConfigError, match="other settings \\(threshold: 0.3 -> 0.5"):
        run_scan(detector, ScanConfig(paths=(str(root),), out=out, resume=True, runtime=RuntimeConfig(workers=0)))
    os.remove(sidecar_path(out))
    with pytest.raises(ConfigError, match="threshold 0.3"):
        run_scan(detector, ScanConfig(paths=(str(root),), out=out, resume=True, runtime=RuntimeConfig(workers=0)))
    with pytest.raises(ConfigError, match="another `crops`"):
        run_scan(detector, ScanConfig(paths=(str(root),), out=out, threshold=0.3, crops=2, resume=True, runtime=RuntimeConfig(workers=0)))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"threshold": 1.5}, "within \\[0, 1\\]"),
        ({"threshold": float("nan")}, "within \\[0, 1\\]"),
        ({"crops": -1}, "`crops`"),
        ({"shard": (2, 2)}, "0 <= K < N"),
        ({"resume": True}, "pass `out`"),
        ({"out": "x.txt"}, "pass `output_format`"),
        ({"output_format": "xml"}, "`output_format` must be one of"),
        ({"max_pixels": 0}, "`max_pixels`"),
    ],
)
def test_scan_config_validates_itself(options, message):
    with pytest.raises(ConfigError, match=message):
        ScanConfig(paths=("x",), **options)


def test_scan_config_infers_the_format():
    assert ScanConfig(paths=("x",), out="r.JSONL").output_format == "jsonl"
    assert ScanConfig(paths=("x",), out="r.json").output_format == "json"
    assert ScanConfig(paths=("x",)).output_format == "csv"
    assert ScanConfig(paths=("x",), out="r.txt", output_format="csv").output_format == "csv"


def test_detector_id_tracks_weights_not_objects():
    a, b = make_tiny_detector(seed=0), make_tiny_detector(seed=0)
    assert detector_id(a) == detector_id(b)
    assert detector_id(a).startswith(a.name + "@")
    assert detector_id(make_tiny_detector(seed=1)) != detector_id(a)
    import torch

    with torch.no_grad():
        b.visual.conv1.weight[0, 0, 0, 0] += 1.0
    assert detector_id(b) != detector_id(a)
