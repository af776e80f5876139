"""Training and validation batches: decode safely, augment, and carry bad files as counted skips.

Randomness is drawn per sample from a generator seeded with (seed, epoch, index), so an image gets
the same augmentation whichever worker, process or rank decodes it. That is what lets a resumed run
replay its data exactly and lets a multi-process run see the very batches a single process would.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import DECODE_REASONS, ImageDecodeError
from .config import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, AugmentConfig
from .images import decode_center, decode_image
from .layouts import Sample
from .transforms import PeersValidation, to_chw, train_view

VALIDATION_STREAM = 0x7A11
"""Seed word of validation draws: independent of the epoch, so every validation sees the same images."""


def reason_code(reason: str) -> int:
    """A small positive code per decode-failure reason (0 means the file was fine)."""
    return DECODE_REASONS.index(reason) + 1 if reason in DECODE_REASONS else len(DECODE_REASONS)


@dataclass
class Batch:
    """Decoded images of one batch; files that failed are listed instead of stopping the batch.

    Attributes:
        pixels: uint8 images (B', 3, S, S), or None when every file failed; ``normalize_pixels``
            turns them into model input on the device.
        labels: float labels (B',), 1 for fake.
        indices: dataset indices of the images in ``pixels``.
        failed: (dataset index, reason code) of every file that could not be used.
    """

    pixels: torch.Tensor | None
    labels: torch.Tensor
    indices: torch.Tensor
    failed: list[tuple[int, int]] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.labels.numel())

    def pin_memory(self) -> Batch:
        if self.pixels is not None:
            self.pixels = self.pixels.pin_memory()
        self.labels = self.labels.pin_memory()
        return self


class LabeledImages(Dataset):
    """Labelled image files as tensors: augmented (training), centre-cropped (evaluation), or the
    peers' validation view.

    Args:
        samples: the files and their labels.
        size: crop size, the backbone's input resolution.
        augment: training augmentation; None gives an evaluation transform.
        seed: base seed of the per-sample generators.
        max_pixels: decompression-bomb cap per image.
        max_bytes: decode-memory cap per image (see ``images.decode_bytes``).
        validation: with ``augment`` None, the CNNDetection / UnivFD validation view instead of the
            plain centre crop; its draws are seeded per image and the same at every validation.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        size: int,
        augment: AugmentConfig | None,
        seed: int = 0,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        validation: PeersValidation | None = None,
    ) -> None:
        self.samples = list(samples)
        self.size = size
        self.augment = augment
        self.seed = seed
        self.max_pixels = max_pixels
        self.max_bytes = max_bytes
        self.validation = validation
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[int, int, torch.Tensor | None, int]:
        """(index, label, tensor or None, failure reason code)."""
        sample = self.samples[index]
        try:
            if self.validation is not None:
                rng = np.random.default_rng([self.seed, VALIDATION_STREAM, index])
                view = self.validation(decode_image(sample.path, self.max_pixels, self.max_bytes).array, rng)
            elif self.augment is None:
                view = decode_center(sample.path, self.size, self.max_pixels, self.max_bytes).array
            else:
                rng = np.random.default_rng([self.seed, self.epoch, index])
                decoded = decode_image(sample.path, self.max_pixels, self.max_bytes)
                view = train_view(decoded.array, self.size, self.augment, rng)
            tensor = to_chw(view)
        except ImageDecodeError as exc:
            return index, sample.label, None, reason_code(exc.reason)
        except MemoryError:
            return index, sample.label, None, reason_code("too-large")
        return index, sample.label, tensor, 0


def collate(items: list[tuple[int, int, torch.Tensor | None, int]]) -> Batch:
    good = [item for item in items if item[2] is not None]
    return Batch(
        pixels=torch.stack([item[2] for item in good]) if good else None,
        labels=torch.tensor([float(item[1]) for item in good], dtype=torch.float32),
        indices=torch.tensor([item[0] for item in good], dtype=torch.long),
        failed=[(item[0], item[3]) for item in items if item[2] is None],
    )


SHM_PATH = "/dev/shm"
PREFETCH_FACTOR = 2
"""Batches each DataLoader worker keeps ready (torch's default)."""
SHM_HEADROOM = 1.5
"""Shared memory asked for per batch in flight, as a multiple of its pixels (labels, indices, slack)."""


@dataclass(frozen=True)
class LoaderPlan:
    """Workers and batches ahead each that fit in the shared memory; ``note`` says what was cut and why."""

    workers: int
    prefetch_factor: int | None
    note: str | None = None


def plan_loader(workers: int, batch_bytes: int) -> LoaderPlan:
    """Fit DataLoader workers to the free space of /dev/shm.

    Each worker hands its batches over in shared memory (both of torch's sharing strategies,
    file_descriptor and file_system, create their segments in /dev/shm), so ``workers`` x
    ``PREFETCH_FACTOR`` batches sit there at once: 16 workers of 64 ViT-L crops hold about 1.2 GB,
    while Docker gives a container 64 MB by default, and a full /dev/shm kills the workers with a bus
    error. When they do not fit, each worker keeps one batch ahead, then there are fewer workers,
    then none (loading in the training process needs no shared memory). Where there is no /dev/shm
    (macOS, Windows), torch shares memory otherwise and nothing changes.
    """
    if workers == 0:
        return LoaderPlan(0, None)
    try:
        stats = os.statvfs(SHM_PATH)
    except OSError:
        return LoaderPlan(workers, PREFETCH_FACTOR)
    free = stats.f_bavail * stats.f_frsize
    per_batch = batch_bytes * SHM_HEADROOM
    if workers * PREFETCH_FACTOR * per_batch <= free:
        return LoaderPlan(workers, PREFETCH_FACTOR)
    fit = min(workers, int(free // per_batch))
    size = f"{SHM_PATH} has {free / 2**20:.0f} MiB free, and {workers} workers need {workers * PREFETCH_FACTOR * per_batch / 2**20:.0f} MiB"
    advice = "give it more room (docker run --shm-size=2g) to load at full speed"
    if fit == 0:
        return LoaderPlan(0, None, f"{size}: loading images in the training process instead; {advice}")
    return LoaderPlan(fit, 1, f"{size}: loading with {fit} workers and one batch ahead each; {advice}")


def batch_loader(
    dataset: LabeledImages,
    batches: Sequence[Sequence[int]],
    *,
    workers: int,
    pin_memory: bool,
    note: Callable[[str], None] | None = None,
) -> DataLoader:
    """A loader over precomputed index batches (one epoch's shard, possibly resumed mid-way).

    Workers are re-created per loader so that they pick up ``dataset.epoch``. Their number is fitted
    to the free shared memory (``plan_loader``); ``note`` receives the one-line reason when it is cut.
    """
    largest = max((len(b) for b in batches), default=0)
    plan = plan_loader(workers, largest * 3 * dataset.size * dataset.size)
    if plan.note is not None and note is not None:
        note(plan.note)
    return DataLoader(
        dataset,
        batch_sampler=[list(b) for b in batches],
        num_workers=plan.workers,
        prefetch_factor=plan.prefetch_factor,
        collate_fn=collate,
        pin_memory=pin_memory,
        persistent_workers=False,
    )
