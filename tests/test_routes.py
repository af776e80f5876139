"""``aigdetect routes``: the maps (PNG) and routes.json are written and describe the same routing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_tiny_detector, write_image
from PIL import Image
from typer.testing import CliRunner

from aigdetect import MoLEConfig, save_detector, score_images
from aigdetect.cli import app
from aigdetect.data.images import decode_image
from aigdetect.data.transforms import eval_tensor
from aigdetect.evaluation.routes import expert_colours

runner = CliRunner()
PATCHES = 16  # tiny backbone: 32 px crop, 8 px patches -> 4 x 4


def _checkpoint(tmp_path: Path, mole: MoLEConfig) -> Path:
    path = tmp_path / "detector.safetensors"
    save_detector(make_tiny_detector(mole), path)
    return path


def _run(*args: str):
    return runner.invoke(app, ["routes", *map(str, args)])


def _hex_to_rgb(colour: str) -> np.ndarray:
    return np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])


def _read_png_grid(png: Path, panel: list[int], shape: tuple[int, int], colours: list[str]) -> np.ndarray:
    """Expert id at every patch centre of a panel: the legend colour nearest to the pixel there."""
    pixels = np.asarray(Image.open(png).convert("RGB")).astype(int)
    palette = np.stack([_hex_to_rgb(c) for c in colours])
    left, top, width, height = panel
    rows, cols = shape
    ids = np.zeros(shape, dtype=int)
    for r in range(rows):
        for c in range(cols):
            pixel = pixels[int(top + (r + 0.5) * height / rows), int(left + (c + 0.5) * width / cols)]
            distance = np.abs(palette - pixel).max(axis=1)
            assert distance.min() <= 3, f"pixel {pixel} at patch ({r}, {c}) is no legend colour"
            ids[r, c] = distance.argmin()
    return ids


@pytest.mark.parametrize("cls_expert", [False, True])
def test_png_and_json_are_written_and_agree(tmp_path: Path, cls_expert: bool):
    mole = MoLEConfig(router="proto", expert_ranks=(2, 4, 4, 8), cls_expert=cls_expert)
    checkpoint = _checkpoint(tmp_path, mole)
    first = write_image(tmp_path / "in" / "first.png", size=(48, 40), seed=1)
    second = write_image(tmp_path / "in" / "second.jpg", size=(32, 64), seed=2)
    out = tmp_path / "maps"

    result = _run(first, second, "--checkpoint", checkpoint, "--out", out)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["first.png", "routes.json", "second.png"]
    document = json.loads((out / "routes.json").read_text())
    assert document["router"] == "proto" and document["cls_expert"] is cls_expert
    assert document["colours"] == expert_colours(4)
    assert document["patch_grid"] == [4, 4] and document["blocks"] == [1, 2, 3]

    detector = make_tiny_detector(mole).eval()
    totals = {block: np.zeros(4, dtype=int) for block in document["blocks"]}
    for entry, path in zip(document["images"], (first, second)):
        assert entry["png"] == f"{path.stem}.png"
        assert Image.open(out / entry["png"]).format == "PNG"
        with torch.no_grad():
            routing = detector(eval_tensor(decode_image(path).array, detector.preprocess)[None]).routing
        for block in entry["blocks"]:
            grid = np.array(block["grid"])
            counts = np.bincount(grid.ravel(), minlength=4)
            assert block["counts"] == counts.tolist()
            assert block["utilisation"] == pytest.approx((counts / PATCHES).tolist())
            totals[block["block"]] += counts

            assignments = routing[block["block"]].assignments[0]
            patches = assignments if cls_expert else assignments[1:]
            assert grid.tolist() == patches.reshape(4, 4).tolist()
            assert block["cls"] == (None if cls_expert else int(assignments[0]))

            drawn = _read_png_grid(out / entry["png"], block["panel"], grid.shape, document["colours"])
            assert drawn.tolist() == grid.tolist()
    for block, counts in totals.items():
        assert document["utilisation"][f"block{block}"] == pytest.approx((counts / counts.sum()).tolist())


def test_bad_image_becomes_an_error_entry_and_a_warning(tmp_path: Path):
    checkpoint = _checkpoint(tmp_path, MoLEConfig(router="proto"))
    good = write_image(tmp_path / "good.png", seed=3)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    out = tmp_path / "maps"

    result = _run(bad, good, tmp_path / "missing.png", "--checkpoint", checkpoint, "--out", out)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2 and "broken.jpg" in warnings[0] and "missing.png" in warnings[1]
    entries = json.loads((out / "routes.json").read_text())["images"]
    assert [e.get("error_reason") for e in entries] == ["unsupported", None, "missing"]
    assert "png" not in entries[0] and entries[1]["png"] == "good.png"
    assert sorted(p.name for p in out.iterdir()) == ["good.png", "routes.json"]


def test_only_bad_images_is_an_error_but_still_writes_json(tmp_path: Path):
    checkpoint = _checkpoint(tmp_path, MoLEConfig())
    bad = write_image(tmp_path / "broken.png", size=(64, 64), seed=6)
    bad.write_bytes(bad.read_bytes()[:400])
    result = _run(bad, "--checkpoint", checkpoint, "--out", tmp_path / "maps")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: none of the 1 images")
    document = json.loads((tmp_path / "maps" / "routes.json").read_text())
    assert document["images"][0]["error_reason"] == "truncated"
    assert document["utilisation"] == {}


def test_checkpoint_without_adapted_blocks_is_refused(tmp_path: Path):
    checkpoint = _checkpoint(tmp_path, MoLEConfig(blocks=0))
    image = write_image(tmp_path / "image.png")
    result = _run(image, "--checkpoint", checkpoint, "--out", tmp_path / "maps")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "no adapted blocks" in lines[0]
    assert not (tmp_path / "maps").exists()


def test_folders_expand_and_repeated_stems_do_not_overwrite(tmp_path: Path):
    checkpoint = _checkpoint(tmp_path, MoLEConfig(blocks=1))
    write_image(tmp_path / "in" / "a" / "same.png", seed=4)
    write_image(tmp_path / "in" / "b" / "same.png", seed=5)
    out = tmp_path / "maps"
    result = _run(tmp_path / "in", "--checkpoint", checkpoint, "--out", out)
    assert result.exit_code == 0, result.output
    entries = json.loads((out / "routes.json").read_text())["images"]
    assert [Path(e["path"]).parent.name for e in entries] == ["a", "b"]
    assert [e["png"] for e in entries] == ["same.png", "same-2.png"]
    assert (out / "same-2.png").is_file()


def test_empty_folder_is_an_error(tmp_path: Path):
    checkpoint = _checkpoint(tmp_path, MoLEConfig(blocks=1))
    (tmp_path / "empty").mkdir()
    result = _run(tmp_path / "empty", "--checkpoint", checkpoint, "--out", tmp_path / "maps")
    assert result.exit_code == 2 and "no images" in result.stderr


def test_maps_name_the_file_its_score_and_verdict(tmp_path: Path):
    detector = make_tiny_detector(MoLEConfig(router="proto"))
    paths = [write_image(tmp_path / "in" / f"photo_{i}.png", size=(48, 40), seed=20 + i) for i in range(2)]
    scores = score_images(detector, paths)
    assert scores[0] != scores[1]
    detector.threshold = float(np.mean(scores))  # one image on each side of the threshold
    checkpoint = tmp_path / "detector.safetensors"
    save_detector(detector, checkpoint)
    out = tmp_path / "maps"
    result = _run(*paths, "--checkpoint", checkpoint, "--out", out)
    assert result.exit_code == 0, result.output
    document = json.loads((out / "routes.json").read_text())
    assert document["threshold"] == pytest.approx(detector.threshold)
    verdicts = []
    for entry, path, score in zip(document["images"], paths, scores):
        assert entry["file"] == path.name and entry["score"] == pytest.approx(float(score), abs=1e-6)
        verdicts.append(entry["verdict"])
        expected = "ai-generated" if score > detector.threshold else "real"
        assert entry["verdict"] == expected
        title = Image.open(out / entry["png"]).text["Title"]
        assert title == f"{path.name}: score {entry['score']:.4f}, {expected} (threshold {detector.threshold:.4f})"
    assert sorted(verdicts) == ["ai-generated", "real"]
