"""Batched scoring of image files: the one place that decides devices, precision and batching.

Decoding runs in worker processes so it overlaps with the forward pass; a file that fails to
decode, or whose decoder crashes its worker, becomes an error record and never stops its batch.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager, nullcontext
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..data.images import decode_center, to_rgb_array
from ..data.transforms import eval_tensor, normalize_pixels
from ..errors import InputError
from ..models.detector import Detector
from .pool import Crashed, OrderedPool
from .reading import FileReader, ReadItem, ReadOptions
from .records import ImageRecord
from .runtime import DEVICE_PATTERN, available_cores, default_batch_size


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU; an explicit accelerator must exist."""
    mps = torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if mps else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("`device` cuda was asked for, but no CUDA device is available; use cpu or auto")
    if name == "mps" and not mps:
        raise InputError("`device` mps was asked for, but this torch reports no Apple MPS device; use cpu or auto")
    if not DEVICE_PATTERN.fullmatch(name):
        raise InputError(f"unknown `device` {name!r}; use auto, cuda, cuda:N, mps or cpu")
    return torch.device(name)


SMALL_MODEL_PARAMETERS = 5_000_000
PREFETCH_FACTOR = 2
"""Batches a decode worker may run ahead of the forward pass."""


@contextmanager
def threads_beside_workers(device: torch.device, workers: int, parameters: int) -> Iterator[None]:
    """On the CPU, give a small model only the cores its decode workers leave free.

    A small model is decode-bound, and intra-op threads that outnumber the free cores spin against
    the workers: on 2 cores that made a scan seven times slower. A CLIP-sized model (``parameters``
    at or above ``SMALL_MODEL_PARAMETERS``) is compute-bound and keeps every core, since its
    decode workers sleep most of the time.
    """
    if device.type != "cpu" or workers <= 0 or parameters >= SMALL_MODEL_PARAMETERS:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, min(before, available_cores() - workers)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def autocast_for(device: torch.device):
    """fp16 autocast on CUDA. Not bf16: its 8-bit mantissa merges adjacent pixel levels after CLIP
    normalisation (spacing 2^-6 near 2..4), while fp16's spacing stays far below one level (~0.015)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return nullcontext()


def _batches(answers: Iterator[Any], batch_size: int) -> Iterator[list[Any]]:
    """Group the pool's answers into batches; a task whose worker died becomes a ``crashed`` record."""
    batch: list[tuple[ImageRecord, np.ndarray | None]] = []
    for index, answer in enumerate(answers):
        if isinstance(answer, Crashed):
            item: ReadItem = answer.task[1]
            record = ImageRecord(index=index, path=item.path, size=item.size, mtime_ns=item.mtime_ns,
                                 error_reason="crashed", error=f"the decoder crashed ({answer.detail})")  # fmt: skip
            answer = (record, None)
        batch.append(answer)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def score_items(
    detector: Detector,
    items: Iterable[ReadItem],
    *,
    device: torch.device,
    batch_size: int | None = None,
    workers: int = 0,
    reading: ReadOptions | None = None,
) -> Iterator[list[ImageRecord]]:
    """Score files in order, yielding one list of records per batch (errors included).

    Decoding runs in an ``OrderedPool``: a decoder that crashes its worker costs that file alone,
    which comes back as a record with reason ``crashed``, and the run goes on. ``items`` is read
    lazily, as workers need more, so a scan of millions of files never holds their list.

    Args:
        detector: the model; it is moved to ``device`` and put in eval mode.
        items: the files, with what the walk knows of them.
        device: where the forward pass runs.
        batch_size: images per forward pass (device default when None).
        workers: decode worker processes; 0 decodes in this process, where a crashing decoder
            ends the process.
        reading: what a worker reads of each file (crops, perturbation, caps, hash, evidence);
            by default the detector's centre crop only.
    """
    batch_size = batch_size or default_batch_size(device.type)
    reading = reading or ReadOptions(size=detector.image_size)
    if reading.size != detector.image_size:
        raise ValueError(f"reading size {reading.size} is not the detector's input size {detector.image_size}")
    pool = OrderedPool(FileReader(reading), workers=workers, window=batch_size * (PREFETCH_FACTOR * workers + 1))
    detector.to(device).eval()
    views = 1 + reading.crops
    parameters = sum(p.numel() for p in detector.parameters())
    answers = pool.map(enumerate(items))
    with torch.inference_mode(), threads_beside_workers(device, workers, parameters), closing(answers):
        for batch in _batches(answers, batch_size):
            records = [record for record, _ in batch]
            arrays = [array for _, array in batch if array is not None]
            if arrays:
                pixels = torch.from_numpy(np.concatenate(arrays))
                if device.type == "cuda":
                    pixels = pixels.pin_memory()
                flat = normalize_pixels(pixels.to(device, non_blocking=True))
                with autocast_for(device):
                    logits = detector(flat, losses=False).logits
                probs = torch.sigmoid(logits.float()).view(len(arrays), views).cpu().numpy()
                for record, row in zip([r for r, a in batch if a is not None], probs):
                    record.score = float(row[0])
                    record.crop_scores = [float(v) for v in row[1:]]
            yield records


def score_files(
    detector: Detector,
    paths: Sequence[str | os.PathLike[str]],
    *,
    device: torch.device,
    batch_size: int | None = None,
    workers: int = 0,
    reading: ReadOptions | None = None,
) -> Iterator[list[ImageRecord]]:
    """``score_items`` for plain paths (symbolic links followed as ``reading`` says)."""
    reading = reading or ReadOptions(size=detector.image_size)
    items = (ReadItem(os.fsdecode(path), reading.follow_symlinks) for path in paths)
    return score_items(detector, items, device=device, batch_size=batch_size, workers=workers, reading=reading)


@torch.inference_mode()
def score_images(
    detector: Detector,
    images: Sequence[str | os.PathLike[str] | Image.Image | np.ndarray],
    batch_size: int = 32,
) -> np.ndarray:
    """Probability of AI-generated for each image, with the evaluation preprocessing, on the detector's device.

    Args:
        detector: the model (left in the mode it was in).
        images: paths, PIL images or HxWx3 uint8 arrays.
        batch_size: images per forward pass.

    Raises:
        ImageDecodeError: a path could not be decoded.
    """
    was_training = detector.training
    detector.eval()
    scores = []
    for start in range(0, len(images), batch_size):
        chunk = []
        for item in images[start : start + batch_size]:
            if isinstance(item, (str, os.PathLike)):
                array = decode_center(item, detector.image_size).array
            elif isinstance(item, Image.Image):
                array = to_rgb_array(item)
            else:
                array = np.asarray(item, dtype=np.uint8)
            chunk.append(eval_tensor(array, detector.image_size))
        logits = detector(torch.stack(chunk).to(detector.device)).logits
        scores.append(torch.sigmoid(logits.float()).cpu().numpy())
    detector.train(was_training)
    return np.concatenate(scores) if scores else np.zeros(0, dtype=np.float32)
