"""Training's DataLoader fits its workers to the free space of /dev/shm (64 MB in a default Docker container)."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
import torch
from conftest import write_image

from aigdetect.data import loading
from aigdetect.data.layouts import Sample
from aigdetect.data.loading import LabeledImages, batch_loader, plan_loader

MIB = 2**20


def fake_shm(monkeypatch, free_bytes: int | None) -> list[str]:
    """Make /dev/shm report ``free_bytes`` free (None: no /dev/shm at all); returns the paths asked about."""
    asked: list[str] = []

    def statvfs(path):
        asked.append(path)
        if free_bytes is None:
            raise FileNotFoundError(path)
        return SimpleNamespace(f_bavail=free_bytes // 4096, f_frsize=4096)

    monkeypatch.setattr(loading.os, "statvfs", statvfs)
    return asked


@pytest.mark.parametrize(
    ("free_mib", "workers", "prefetch", "noted"),
    [
        (4096, 16, 2, False),  # 16 x 2 x 13.8 MiB = 441 MiB fit
        (300, 16, 1, True),  # one batch ahead each: 16 x 13.8 = 220 MiB fit
        (64, 4, 1, True),  # Docker's default: 64 // 13.8 = 4 workers
        (10, 0, None, True),  # not even one batch: load in the training process
        (None, 16, 2, False),  # no /dev/shm: torch shares memory another way
    ],
)
def test_plan_fits_workers_and_prefetch_to_shared_memory(monkeypatch, free_mib, workers, prefetch, noted):
    asked = fake_shm(monkeypatch, None if free_mib is None else free_mib * MIB)
    batch_bytes = 64 * 3 * 224 * 224  # 9.2 MiB of uint8 crops, 13.8 MiB with headroom
    plan = plan_loader(16, batch_bytes)
    assert asked == ["/dev/shm"]
    assert (plan.workers, plan.prefetch_factor) == (workers, prefetch)
    assert (plan.note is not None) == noted
    if noted:
        assert plan.note.startswith(f"/dev/shm has {free_mib} MiB free, and 16 workers need 441 MiB")
        assert "\n" not in plan.note and "--shm-size" in plan.note


def test_no_workers_asks_nothing(monkeypatch):
    asked = fake_shm(monkeypatch, 0)
    assert plan_loader(0, 10**9) == loading.LoaderPlan(0, None)
    assert asked == []


def test_batch_loader_uses_the_plan_and_still_yields_every_batch(tmp_path, monkeypatch):
    fake_shm(monkeypatch, 3 * 32 * 32 * 3)  # room for nothing once headroom is counted
    samples = [Sample(write_image(tmp_path / f"{i}.png", (40, 40), seed=i), i % 2) for i in range(5)]
    dataset = LabeledImages(samples, 32, None)
    notes: list[str] = []
    loader = batch_loader(dataset, [[0, 1, 2], [3, 4]], workers=2, pin_memory=False, note=notes.append)
    assert loader.num_workers == 0
    assert len(notes) == 1 and "loading images in the training process" in notes[0]
    batches = list(loader)
    assert [b.indices.tolist() for b in batches] == [[0, 1, 2], [3, 4]]
    assert batches[0].pixels.dtype == torch.uint8 and batches[0].pixels.shape == (3, 3, 32, 32)


def test_real_dev_shm_is_read_where_it_exists():
    if not os.path.isdir("/dev/shm"):
        pytest.skip("no /dev/shm on this system")
    stats = os.statvfs("/dev/shm")
    free = stats.f_bavail * stats.f_frsize
    plan = plan_loader(2, max(1, free // 8))
    assert plan.workers == 2 and plan.prefetch_factor == 2 and plan.note is None
