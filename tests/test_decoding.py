"""Decoding that starts before the model exists: answers gathered while it loads come back in order,
as many as the limit allows, and the sizes that let it start come from the checkpoint's metadata."""

from __future__ import annotations

import multiprocessing
import time

import numpy as np
import pytest
from conftest import make_tiny_detector, write_image

from aigdetect import MoLEConfig, save_detector
from aigdetect.engine.decoding import Decoding, ahead_limit, decode_window
from aigdetect.engine.reading import ReadItem, ReadOptions
from aigdetect.models.backbones import build_visual, resolve_backbone
from aigdetect.models.choice import DetectorChoice
from aigdetect.models.fingerprint import _sizes, fingerprint


def _files(tmp_path, count: int) -> list[ReadItem]:
    items = [ReadItem(str(write_image(tmp_path / f"{i:02d}.png", (40 + i, 36), seed=i))) for i in range(count)]
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    items.insert(3, ReadItem(str(bad)))
    return items


def _answers(decoding: Decoding) -> list[tuple[str, str | None, bytes | None]]:
    out = []
    for record, payload in decoding:
        out.append((record.path, record.error_reason, None if payload is None else np.asarray(payload).tobytes()))
    return out


def test_answers_gathered_while_the_model_loads_come_back_in_order_within_the_limit(tmp_path):
    items = _files(tmp_path, 11)
    reading = ReadOptions(size=32)
    expected = _answers(Decoding(items, reading, workers=0, window=4))
    decoding = Decoding(items, reading, workers=2, window=decode_window(2, 2))
    gathered = []

    def load() -> str:
        deadline = time.monotonic() + 60
        while len(decoding._ready) < 5 and time.monotonic() < deadline:
            time.sleep(0.005)
        gathered.append(len(decoding._ready))
        return "model"

    assert decoding.ahead_of(load, limit=5) == "model"
    assert gathered == [5] and len(decoding._ready) == 5
    assert _answers(decoding) == expected
    assert [reason for _, reason, _ in expected].count("unsupported") == 1
    decoding.close()
    assert not multiprocessing.active_children()


def test_a_failing_load_is_raised_and_closing_stops_the_workers(tmp_path):
    decoding = Decoding(_files(tmp_path, 6), ReadOptions(size=32), workers=2, window=4)

    def load() -> None:
        raise OSError("weights unreadable")

    with pytest.raises(OSError, match="weights unreadable"):
        decoding.ahead_of(load, limit=4)
    decoding.close()
    assert not multiprocessing.active_children()


def test_the_ahead_limit_keeps_gathered_pixels_within_its_budget():
    assert ahead_limit(ReadOptions(size=224), window=70) == 445
    assert ahead_limit(ReadOptions(size=224, crops=4), window=70) == 89
    assert ahead_limit(ReadOptions(size=16), window=70) == 4096
    assert ahead_limit(ReadOptions(size=224, jpeg_bytes=True), window=70) == 70
    assert ahead_limit(ReadOptions(size=2048), window=70) == 70


def test_checkpoint_metadata_gives_the_input_size_and_the_size_class_without_building(tmp_path):
    detector = make_tiny_detector(MoLEConfig(blocks=1))
    path = tmp_path / "tiny.safetensors"
    save_detector(detector, path)
    known = fingerprint(DetectorChoice(checkpoint=str(path)))
    backbone = sum(p.numel() for p in build_visual(detector.source, meta=True).parameters())
    assert known.image_size == detector.image_size
    assert known.parameters is not None and abs(known.parameters - backbone) / backbone < 0.1


def test_vision_sizes_follow_the_vit_arithmetic_and_ignore_nonsense():
    vitb32 = {"image_size": 224, "layers": 12, "width": 768, "patch_size": 32}
    # per layer 4*768^2 + 2*768*3072 = 7,077,888; patch embedding and 50 positions (3*32*32 + 50) * 768
    assert _sizes({"backbone": {"config": {"vision_cfg": vitb32}}}) == (224, 12 * 7_077_888 + 2_397_696)
    tower = build_visual(resolve_backbone("vitb32"), meta=True)
    assert _sizes({"backbone": {"config": {"vision_cfg": vitb32}}})[1] == pytest.approx(
        sum(p.numel() for p in tower.parameters()), rel=0.02
    )
    for nonsense in ({"width": 10**9}, {"layers": True}, {"image_size": "224"}, {"mlp_ratio": -1}):
        assert _sizes({"backbone": {"config": {"vision_cfg": {**vitb32, **nonsense}}}}) == (None, None)
    assert _sizes({"backbone": {"name": "vitb32"}}) == (None, None)
    assert _sizes({"backbone": "vitb32"}) == (None, None)
