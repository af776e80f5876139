"""Batched scoring of image files: the one place that decides devices, precision and batching.

Decoding runs in worker processes so it overlaps with the forward pass; a file that fails to
decode, or whose decoder crashes its worker, becomes an error record and never stops its batch.
On a GPU, the next batch is queued before the records of the current one are handed back, so that
rows are built and written while the device computes.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager, nullcontext
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..data.config import DEFAULT_MAX_PIXELS
from ..data.device_jpeg import JpegFile, decode_centers, read_jpeg
from ..data.images import decode_center, decode_image, to_rgb_array
from ..data.transforms import center_crop, crop_grid, eval_tensor, normalize_pixels
from ..errors import ConfigError, ImageDecodeError, InputError
from ..models.detector import Detector
from .pool import Crashed, OrderedPool
from .records import ImageRecord
from .runtime import BF16_REFUSED, DEVICE_PATTERN, available_cores, default_batch_size, resolve_precision

Perturbation = Callable[[np.ndarray], np.ndarray]


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
PREFETCH_BATCHES = 2
"""Batches the decode workers may run ahead of the one being assembled; with the task each worker
holds, this bounds what waits in memory (two batches of 12-megapixel JPEG bytes with ``gpu_decode``)."""
POOL_DEPTH = 2
"""Tasks queued on one decode worker, so that it never waits for its next file."""


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
    """fp16 autocast on CUDA, for training (scoring casts a copy of the model instead, see
    ``inference_copy``). Not bf16: its 8-bit mantissa merges adjacent pixel levels after CLIP
    normalisation (spacing 2^-6 near 2..4), while fp16's spacing stays far below one level (~0.015)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return nullcontext()


PRECISION_DTYPES = {"fp32": torch.float32, "fp16": torch.float16}


def inference_copy(detector: Detector, device: torch.device, precision: str = "fp32") -> Detector:
    """The detector as scoring runs it: on ``device``, in eval mode, its backbone and bypasses in
    ``precision``, its head in fp32 (so the logit and its sigmoid are fp32).

    Casting a frozen fp32 model once costs less than autocast, which casts every weight again at
    every forward. The caller's detector is left exactly as it was (device, dtype, mode): tensors
    are converted into the copy, and those that need no change (fp32 on the same device) are shared
    with it rather than duplicated, so an fp32 copy on the CPU costs no memory.

    Raises:
        ConfigError: a precision other than fp16 and fp32 (bf16 with the reason it is refused).
    """
    if precision not in PRECISION_DTYPES:
        raise ConfigError(BF16_REFUSED if precision == "bf16" else f"unknown `precision` {precision!r}; use fp16 or fp32")
    dtype = PRECISION_DTYPES[precision]
    memo: dict[int, Any] = {id(b.last): None for b in detector.bypasses.values() if b.last is not None}
    for module, cast in ((detector.visual, dtype), (detector.head, torch.float32)):
        for param in module.parameters():
            memo[id(param)] = nn.Parameter(param.detach().to(device, cast), requires_grad=False)
        for buffer in module.buffers():
            memo[id(buffer)] = buffer.to(device, cast if buffer.is_floating_point() else buffer.dtype)
    return copy.deepcopy(detector, memo).eval()


@dataclass(frozen=True)
class _Decoder:
    """Turns one (index, path) into its record and what the main process needs: uint8 views, the
    bytes of a JPEG to decode on the device (``jpeg_bytes``), or None for a failed file. Runs in a
    decode worker."""

    size: int
    crops: int
    perturb: Perturbation | None
    max_pixels: int
    jpeg_bytes: bool = False

    def __call__(self, item: tuple[int, str | os.PathLike[str]]) -> tuple[ImageRecord, np.ndarray | JpegFile | None]:
        index, path = item
        record = ImageRecord(index=index, path=os.fsdecode(path))
        if self.jpeg_bytes:
            jpeg = read_jpeg(path, self.max_pixels)
            if jpeg is not None:
                record.width, record.height, record.format = jpeg.width, jpeg.height, jpeg.format
                return record, jpeg
        try:
            if self.perturb is None and not self.crops:
                decoded = decode_center(path, self.size, self.max_pixels)
            else:
                decoded = decode_image(path, self.max_pixels)
        except ImageDecodeError as exc:
            record.error_reason, record.error = exc.reason, exc.detail
            return record, None
        record.width, record.height, record.format = decoded.width, decoded.height, decoded.format
        array = decoded.array
        try:
            if self.perturb is not None:
                array = self.perturb(array)
            views = [center_crop(array, self.size)]
            if self.crops:
                views += crop_grid(array, self.size, self.crops)
            return record, np.stack([np.ascontiguousarray(v.transpose(2, 0, 1)) for v in views])
        except MemoryError:
            record.error_reason, record.error = "too-large", "out of memory while preprocessing"
            return record, None


Answer = tuple[ImageRecord, "np.ndarray | JpegFile | None"]


def _settle(answer: Answer | Crashed, index: int, paths: Sequence[str | os.PathLike[str]]) -> Answer:
    """A task whose worker died becomes a ``crashed`` record."""
    if isinstance(answer, Crashed):
        record = ImageRecord(index=index, path=os.fsdecode(paths[index]), error_reason="crashed",
                             error=f"the decoder crashed ({answer.detail})")
        return record, None
    return answer


def _batches(answers: Iterator[Any], paths: Sequence[str | os.PathLike[str]], batch_size: int) -> Iterator[list[Answer]]:
    """Group the pool's answers into batches of ``batch_size``."""
    batch: list[Answer] = []
    for index, answer in enumerate(answers):
        batch.append(_settle(answer, index, paths))
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass
class _InFlight:
    """A batch whose forward pass is queued: its records get their scores once ``done`` has fired."""

    records: list[ImageRecord]
    scored: list[ImageRecord]
    probs: torch.Tensor | None = None
    done: Any = None

    def finish(self) -> list[ImageRecord]:
        """Wait for this batch alone (the next one keeps the device busy meanwhile) and fill in its scores."""
        if self.done is not None:
            self.done.synchronize()
        if self.probs is not None:
            for record, row in zip(self.scored, self.probs.numpy()):
                record.score = float(row[0])
                record.crop_scores = [float(v) for v in row[1:]]
        return self.records


class _Scorer:
    """Queues one batch at a time on the device: assemble its pixels, run the model, copy the
    probabilities back into pinned memory without waiting, and record an event to wait on later."""

    def __init__(self, model: Detector, device: torch.device, *, precision: str, views: int, pad_to: int | None,
                 decoder: _Decoder, paths: Sequence[str | os.PathLike[str]], workers: int) -> None:
        self.model = model
        self.device = device
        self.dtype = PRECISION_DTYPES[precision]
        self.views = views
        self.pad_to = pad_to
        self.decoder = decoder
        self.paths = paths
        self.workers = workers
        self.cuda = device.type == "cuda"

    def _on_device(self, batch: list[Answer]) -> list[Answer]:
        """Decode the batch's JPEG bytes on the device; files it fails on go through the CPU decode."""
        jpegs = [i for i, (_, payload) in enumerate(batch) if isinstance(payload, JpegFile)]
        if not jpegs:
            return batch
        crops = decode_centers([batch[i][1] for i in jpegs], self.decoder.size, self.device)
        batch = list(batch)
        failed = []
        for position, crop in zip(jpegs, crops):
            if crop is None:
                failed.append(position)
            else:
                batch[position] = (batch[position][0], crop)
        if failed:
            fallback = replace(self.decoder, jpeg_bytes=False)
            pool = OrderedPool(fallback, workers=min(self.workers, 1), window=len(failed))
            items = [(batch[p][0].index, self.paths[batch[p][0].index]) for p in failed]
            with closing(pool.map(items)) as answers:
                for position, (index, _), answer in zip(failed, items, answers):
                    batch[position] = _settle(answer, index, self.paths)
        return batch

    def _pixels(self, batch: list[Answer]) -> tuple[torch.Tensor | None, list[ImageRecord]]:
        """uint8 (N * views, 3, S, S) on the device, and the records they belong to, in batch order."""
        scored = [record for record, payload in batch if payload is not None]
        arrays = [payload for _, payload in batch if isinstance(payload, np.ndarray)]
        if not scored:
            return None, scored
        uploaded = None
        if arrays:
            rows = sum(len(a) for a in arrays)
            host = torch.empty((rows, *arrays[0].shape[1:]), dtype=torch.uint8, pin_memory=self.cuda)
            np.concatenate(arrays, out=host.numpy())
            uploaded = host.to(self.device, non_blocking=True)
        if len(arrays) == len(scored):
            return uploaded, scored
        parts, offset = [], 0
        for _, payload in batch:
            if isinstance(payload, np.ndarray):
                parts.append(uploaded[offset : offset + len(payload)])
                offset += len(payload)
            elif payload is not None:
                parts.append(payload[None])
        return torch.cat(parts), scored

    def launch(self, batch: list[Answer]) -> _InFlight:
        batch = self._on_device(batch)
        records = [record for record, _ in batch]
        pixels, scored = self._pixels(batch)
        if pixels is None:
            return _InFlight(records, scored)
        rows = len(pixels)
        if self.pad_to is not None and rows < self.pad_to:
            pixels = torch.cat([pixels, pixels.new_zeros((self.pad_to - rows, *pixels.shape[1:]))])
        logits = self.model(normalize_pixels(pixels).to(self.dtype)).logits[:rows]
        probs = torch.sigmoid(logits.float()).view(len(scored), self.views)
        if not self.cuda:
            return _InFlight(records, scored, probs.cpu())
        host = torch.empty(probs.shape, dtype=torch.float32, pin_memory=True)
        host.copy_(probs, non_blocking=True)
        done = torch.cuda.Event()
        done.record()
        return _InFlight(records, scored, host, done)


def score_files(
    detector: Detector,
    paths: Sequence[str | os.PathLike[str]],
    *,
    device: torch.device,
    batch_size: int | None = None,
    workers: int = 0,
    crops: int = 0,
    perturb: Perturbation | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    precision: str = "auto",
    gpu_decode: bool = False,
    compile: bool = False,
) -> Iterator[list[ImageRecord]]:
    """Score files in order, yielding one list of records per batch (errors included).

    Decoding runs in an ``OrderedPool``: a decoder that crashes its worker costs that file alone,
    which comes back as a record with reason ``crashed``, and the scan goes on. The forward pass of
    the next batch is queued on the device before a batch's records are yielded, so the caller
    builds and writes rows while the device computes; each batch costs one wait, on its own event.

    Args:
        detector: the model; it is left as it is (a copy in ``precision`` on ``device`` scores).
        paths: image files.
        device: where the forward pass runs.
        batch_size: images per forward pass (device default when None).
        workers: decode worker processes; 0 decodes in this process, where a crashing decoder
            ends the process.
        crops: extra crops spread over the image, scored beside the centre crop.
        perturb: applied to the decoded full image before cropping (robustness sweeps).
        max_pixels: decompression-bomb cap per image.
        precision: auto (fp16 on CUDA, fp32 elsewhere), fp16 or fp32.
        gpu_decode: workers hand over the bytes of plain JPEGs and the main process decodes them
            in batches on ``device`` with ``torchvision.io.decode_jpeg`` (nvJPEG on CUDA); ignored
            with ``crops`` or ``perturb``, which need the whole image on the host.
        compile: run the model through ``torch.compile``; batches are padded to ``batch_size`` so
            that one graph serves the whole run.
    """
    batch_size = batch_size or default_batch_size(device.type)
    precision = resolve_precision(precision, device.type)
    jpeg_bytes = gpu_decode and perturb is None and not crops
    decoder = _Decoder(detector.image_size, crops, perturb, max_pixels, jpeg_bytes)
    window = batch_size * PREFETCH_BATCHES + workers * POOL_DEPTH
    pool = OrderedPool(decoder, workers=workers, window=window, depth=POOL_DEPTH)
    parameters = sum(p.numel() for p in detector.parameters())
    model = inference_copy(detector, device, precision)
    views = 1 + crops
    scorer = _Scorer(
        torch.compile(model) if compile else model, device, precision=precision, views=views,
        pad_to=batch_size * views if compile else None, decoder=decoder, paths=paths, workers=workers,
    )
    answers = pool.map(enumerate(paths))
    with torch.inference_mode(), threads_beside_workers(device, workers, parameters), closing(answers):
        pending: _InFlight | None = None
        for batch in _batches(answers, paths, batch_size):
            queued = scorer.launch(batch)
            if pending is not None:
                yield pending.finish()
            pending = queued
        if pending is not None:
            yield pending.finish()


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
