"""Batched scoring of image files, as a ``RuntimePlan`` says (device, precision, batching, workers).

Decoding runs in worker processes so it overlaps with the forward pass; a file that fails to
decode, or whose decoder crashes its worker, becomes an error record and never stops its batch.
The next batch is queued before the records of the current one are handed back, so that rows are
built and written while the model computes: on a GPU behind an event, on the CPU in compute
threads, where a CLIP-sized model runs two batches side by side (``RuntimePlan.compute``).
"""

from __future__ import annotations

import copy
import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import ExitStack, closing
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..data.decoder_messages import own_native_stderr
from ..data.device_jpeg import Refused, decode_centers
from ..data.images import decode_center, to_rgb_array
from ..data.plain_jpeg import JpegFile
from ..data.preprocess import PreprocessConfig
from ..data.transforms import eval_tensor, normalize_pixels
from ..errors import ConfigError, InputError
from ..models.detector import Detector
from .decoding import POOL_DEPTH, Decoding
from .plan import RuntimePlan
from .pool import Crashed, OrderedPool
from .reading import FileReader, JpegFallback, ReadItem, ReadOptions
from .records import ImageRecord
from .runtime import BF16_REFUSED, DEVICE_PATTERN, CpuCompute, RuntimeConfig


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


Answer = tuple[ImageRecord, "np.ndarray | JpegFile | torch.Tensor | None"]


def _settle(answer: Answer | Crashed, index: int) -> Answer:
    """A task whose worker died becomes a ``crashed`` record."""
    if isinstance(answer, Crashed):
        item: ReadItem = answer.task[1]
        record = ImageRecord(index=index, path=item.path, size=item.size, mtime_ns=item.mtime_ns,
                             error_reason="crashed", error=f"the decoder crashed ({answer.detail})")  # fmt: skip
        return record, None
    return answer


def _batches(answers: Iterator[Any], batch_size: int) -> Iterator[list[Answer]]:
    """Group the pool's answers into batches of ``batch_size``."""
    batch: list[Answer] = []
    for index, answer in enumerate(answers):
        batch.append(_settle(answer, index))
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass
class _InFlight:
    """A batch whose forward pass is queued: its records get their scores once ``done`` has fired
    (a CUDA event) or ``computed`` has its probabilities (a CPU compute thread)."""

    records: list[ImageRecord]
    scored: list[ImageRecord]
    probs: torch.Tensor | None = None
    done: Any = None
    computed: Future[torch.Tensor] | None = None

    def finish(self) -> list[ImageRecord]:
        """Wait for this batch alone (the next one keeps the device busy meanwhile) and fill in its scores."""
        if self.done is not None:
            self.done.synchronize()
        if self.computed is not None:
            self.probs = self.computed.result()
        if self.probs is not None:
            for record, row in zip(self.scored, self.probs.numpy()):
                record.score = float(row[0])
                record.crop_scores = [float(v) for v in row[1:]]
        return self.records


Forward = Callable[[torch.Tensor], torch.Tensor]
"""Normalised fp32 pixels (B, 3, S, S) in, logits (B, 1) out."""


def _forward(model: nn.Module | None, detector: Detector, device: torch.device, *, backend: str, precision: str,
             compile: bool, threads: int | None) -> Forward:  # fmt: skip
    """The scoring forward pass: ``model`` (``inference_copy``, for the torch backend), or the
    detector exported to a CPU engine (``backends``)."""
    if model is not None:
        run = torch.compile(model) if compile else model
        dtype = PRECISION_DTYPES[precision]
        return lambda pixels: run(pixels.to(dtype)).logits
    if device.type != "cpu":
        raise ConfigError(f"`backend` {backend} runs on the CPU, not {device}")
    from .backends import EngineConfig, open_runner

    runner = open_runner(detector, EngineConfig(backend, precision, threads=threads))
    return lambda pixels: torch.from_numpy(runner.logits(pixels.numpy())).view(-1, 1)


class Stopped(Exception):
    """A batch abandoned between two blocks because its run was closed (``_ComputeThreads.close``)."""


class _ComputeThreads:
    """``split.streams`` threads that each run one batch of ``model`` at a time with ``split.threads``
    intra-op threads (set in each thread: OpenMP keeps the count per calling thread).

    Closing stops the batches in flight at their next block, so that Ctrl-C ends a scan within a
    block's time rather than a batch's (a minute for ViT-L/14 on a laptop). The threads are joined,
    never left running: the process aborts if torch is still at work in one when it exits.
    """

    def __init__(self, split: CpuCompute, model: nn.Module) -> None:
        self._tasks: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]] | None] = queue.SimpleQueue()
        self._stop = threading.Event()
        blocks = [block for child in model.modules() if isinstance(child, nn.ModuleList) for block in child]
        self._hooks = [block.register_forward_pre_hook(self._check) for block in blocks]
        self._threads = [
            threading.Thread(target=self._run, args=(split.threads,), name=f"aigdetect-compute-{index}", daemon=True)
            for index in range(split.streams)
        ]
        for thread in self._threads:
            thread.start()

    def _check(self, module: nn.Module, inputs: Any) -> None:
        if self._stop.is_set():
            raise Stopped

    def _run(self, threads: int) -> None:
        torch.set_num_threads(threads)
        while (task := self._tasks.get()) is not None:
            future, work, args = task
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(work(*args))
                except BaseException as exc:
                    future.set_exception(exc)

    def submit(self, work: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self._tasks.put((future, work, args))
        return future

    def close(self) -> None:
        """Stop the batches in flight and wait for the threads to end."""
        self._stop.set()
        for _ in self._threads:
            self._tasks.put(None)
        for thread in self._threads:
            thread.join()
        for hook in self._hooks:
            hook.remove()


class _Scorer:
    """Queues one batch at a time: assemble its pixels, then run the model on the CPU compute threads
    (``compute``), or on the GPU, copying the probabilities back into pinned memory without waiting
    and recording an event to wait on later."""

    def __init__(self, forward: Forward, device: torch.device, *, views: int, pad_to: int | None,
                 reading: ReadOptions, workers: int, preprocess: PreprocessConfig,
                 compute: _ComputeThreads | None = None) -> None:  # fmt: skip
        self.forward = forward
        self.preprocess = preprocess
        self.device = device
        self.views = views
        self.pad_to = pad_to
        self.reading = reading
        self.workers = workers
        self.compute = compute
        self.cuda = device.type == "cuda"

    def _on_device(self, batch: list[Answer]) -> list[Answer]:
        """Decode the batch's JPEG bytes on the device; files it fails on are decoded on the CPU."""
        jpegs = [i for i, (_, payload) in enumerate(batch) if isinstance(payload, JpegFile)]
        if not jpegs:
            return batch
        crops = decode_centers([batch[i][1] for i in jpegs], self.reading.size, self.device)
        batch = list(batch)
        failed = []
        for position, crop in zip(jpegs, crops):
            if isinstance(crop, Refused):
                batch[position][0].device_decode_refused = crop.reason
                failed.append(position)
            else:
                batch[position] = (batch[position][0], crop)
        if failed:
            pool = OrderedPool(JpegFallback(self.reading), workers=min(self.workers, 1), window=len(failed))
            with closing(pool.map([batch[p] for p in failed])) as answers:
                for position, answer in zip(failed, answers):
                    if isinstance(answer, Crashed):
                        record = batch[position][0]
                        record.error_reason, record.error = "crashed", f"the decoder crashed ({answer.detail})"
                        answer = (record, None)
                    batch[position] = answer
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

    def _probabilities(self, pixels: torch.Tensor, scored: int) -> torch.Tensor:
        """Probabilities (scored, views) of uint8 pixels, padded to ``pad_to`` rows when compiled."""
        rows = len(pixels)
        if self.pad_to is not None and rows < self.pad_to:
            pixels = torch.cat([pixels, pixels.new_zeros((self.pad_to - rows, *pixels.shape[1:]))])
        logits = self.forward(normalize_pixels(pixels, self.preprocess))[:rows]
        return torch.sigmoid(logits.float()).view(scored, self.views)

    def _inference(self, pixels: torch.Tensor, scored: int) -> torch.Tensor:
        """``_probabilities`` in a compute thread, which has its own autograd mode."""
        with torch.inference_mode():
            return self._probabilities(pixels, scored)

    def launch(self, batch: list[Answer]) -> _InFlight:
        batch = self._on_device(batch)
        records = [record for record, _ in batch]
        pixels, scored = self._pixels(batch)
        if pixels is None:
            return _InFlight(records, scored)
        if self.compute is not None:
            return _InFlight(records, scored, computed=self.compute.submit(self._inference, pixels, len(scored)))
        probs = self._probabilities(pixels, len(scored))
        if not self.cuda:
            return _InFlight(records, scored, probs.cpu())
        host = torch.empty(probs.shape, dtype=torch.float32, pin_memory=True)
        host.copy_(probs, non_blocking=True)
        done = torch.cuda.Event()
        done.record()
        return _InFlight(records, scored, host, done)


def reading_for(detector: Detector, reading: ReadOptions | None, gpu_decode: bool) -> ReadOptions:
    """What the workers read for ``detector``: by default its centre crop only; plain JPEGs as bytes
    when they are decoded on the device (``gpu_decode``, unless the whole image is needed)."""
    reading = reading or ReadOptions(size=detector.image_size)
    if reading.size != detector.image_size:
        raise ValueError(f"reading size {reading.size} is not the detector's input size {detector.image_size}")
    return reading.decoded_on_device(gpu_decode)


def score_items(
    detector: Detector, items: Iterable[ReadItem], plan: RuntimePlan, *, reading: ReadOptions | None = None
) -> Iterator[list[ImageRecord]]:
    """Score files in order, as ``plan`` says, yielding one list of records per batch (errors included).

    Decoding runs in an ``OrderedPool`` of ``plan.workers`` processes: a decoder that crashes its
    worker costs that file alone, which comes back as a record with reason ``crashed``, and the run
    goes on (with no workers, a crashing decoder ends the process). ``items`` is read lazily, as
    workers need more, so a scan of millions of files never holds their list. The forward pass of
    the next batch is queued before a batch's records are yielded, so the caller builds and writes
    rows while the model computes.

    Args:
        detector: the model; it is left as it is (a copy in the plan's precision on its device scores).
        items: the files, with what the walk knows of them.
        plan: device, precision, batching, workers and engine (``RuntimePlan.resolve``). With
            ``plan.gpu_decode``, workers hand over the bytes of plain JPEGs and this process decodes
            them in batches on the device (nvJPEG), unless ``reading`` needs the whole image; with
            ``plan.compile``, batches are padded to the batch size so that one graph serves the run.
        reading: what a worker reads of each file (crops, perturbation, caps, hash, evidence);
            by default the detector's centre crop only.
    """
    decoding = Decoding(items, reading_for(detector, reading, plan.gpu_decode), workers=plan.workers, window=plan.window)
    return score_decoded(detector, decoding, plan)


def score_decoded(detector: Detector, decoding: Decoding, plan: RuntimePlan) -> Iterator[list[ImageRecord]]:
    """``score_items`` for files already being decoded (``Decoding``, started before the model was
    loaded); the decoding is closed when the iteration ends.

    On the CPU, the torch backend computes in ``plan.compute``'s threads: up to ``streams`` batches
    at once and one more queued, each batch in one thread.

    Raises:
        ValueError: the decoding reads another size than the detector's input.
        InputError: the plan's device does not exist here.
    """
    if decoding.reading.size != detector.image_size:
        decoding.close()
        raise ValueError(f"reading size {decoding.reading.size} is not the detector's input size {detector.image_size}")
    try:
        device = resolve_device(plan.device)
    except BaseException:
        decoding.close()
        raise
    return _scored(detector, decoding, device, plan)


def _scored(detector: Detector, decoding: Decoding, device: torch.device, plan: RuntimePlan) -> Iterator[list[ImageRecord]]:
    backend, precision = plan.backend, plan.precision
    views = 1 + decoding.reading.crops
    with ExitStack() as stack:
        stack.enter_context(closing(decoding))
        stack.enter_context(plan.threads_beside_workers())
        model = inference_copy(detector, device, precision) if backend == "torch" else None
        compute = _ComputeThreads(plan.compute, model) if plan.compute is not None and model is not None else None
        if compute is not None:
            stack.callback(compute.close)
        threads = None if plan.threads is None else torch.get_num_threads()
        forward = _forward(model, detector, device, backend=backend, precision=precision, compile=plan.compile,
                           threads=threads)  # fmt: skip
        scorer = _Scorer(forward, device, views=views, pad_to=plan.batch_size * views if plan.compile else None,
                         reading=replace(decoding.reading, jpeg_bytes=False), workers=decoding.workers,
                         preprocess=detector.preprocess, compute=compute)  # fmt: skip
        stack.enter_context(torch.inference_mode())
        yield from _pipelined(scorer, _batches(iter(decoding), plan.batch_size), plan)


def _pipelined(scorer: _Scorer, batches: Iterable[list[Answer]], plan: RuntimePlan) -> Iterator[list[ImageRecord]]:
    """Launch each batch, and hand back the records of the oldest once more than the plan's
    streams are in flight, so that the model computes while the caller builds rows."""
    in_flight = plan.compute.streams if plan.compute is not None else 1
    pending: deque[_InFlight] = deque()
    for batch in batches:
        pending.append(scorer.launch(batch))
        if len(pending) > in_flight:
            yield pending.popleft().finish()
    while pending:
        yield pending.popleft().finish()


def read_items(paths: Iterable[str | os.PathLike[str]], reading: ReadOptions) -> Iterator[ReadItem]:
    """Plain paths as the workers read them (symbolic links followed as ``reading`` says)."""
    return (ReadItem(os.fsdecode(path), reading.follow_symlinks) for path in paths)


def score_files(
    detector: Detector,
    paths: Sequence[str | os.PathLike[str]],
    *,
    device: torch.device,
    batch_size: int | None = None,
    workers: int = 0,
    reading: ReadOptions | None = None,
    backend: str = "torch",
    precision: str = "auto",
    gpu_decode: bool = False,
    compile: bool = False,
) -> Iterator[list[ImageRecord]]:
    """``score_items`` for plain paths, planned from these settings (``RuntimeConfig``'s, except that
    decoding stays in this process unless ``workers`` is given, and ``gpu_decode`` decodes plain JPEGs
    on ``device`` whatever it is): for one-off calls and notebooks; a run that resolves a
    ``RuntimePlan`` passes it to ``score_items``.

    Raises:
        ConfigError: a setting ``RuntimeConfig`` refuses.
    """
    runtime = RuntimeConfig(device=str(device), batch_size=batch_size, workers=workers, backend=backend,
                            precision=precision, gpu_decode=gpu_decode, compile=compile)  # fmt: skip
    # gpu_decode as given: decode_jpeg also runs on the CPU (libjpeg-turbo), which tests compare with the workers' decode.
    plan = replace(RuntimePlan.resolve(runtime, str(device), parameter_count(detector)), gpu_decode=gpu_decode)
    reading = reading or ReadOptions(size=detector.image_size)
    return score_items(detector, read_items(paths, reading), plan, reading=reading)


class ScoringSession:
    """``score_items`` for a service: call after call on a few files each, with one set of decode
    workers (``OrderedPool.start``), one scoring copy of the model and one set of compute threads for
    the whole session, so that a batch pays for none of them.

    Its calls must come one at a time; ``close`` it once the last has returned.

    Args:
        detector: the model (left as it is; a copy in the plan's precision scores).
        plan: as for ``score_items``.
        reading: what the workers read of each file; every call must ask for the same.

    Raises:
        InputError: the plan's device does not exist here.
    """

    def __init__(self, detector: Detector, plan: RuntimePlan, reading: ReadOptions) -> None:
        self.plan = plan
        self.reading = reading_for(detector, reading, plan.gpu_decode)
        device = resolve_device(plan.device)
        self._pool = OrderedPool(FileReader(self.reading), workers=plan.workers, window=plan.window, depth=POOL_DEPTH,
                                 setup=own_native_stderr).start()
        model = inference_copy(detector, device, plan.precision) if plan.backend == "torch" else None
        self._compute = _ComputeThreads(plan.compute, model) if plan.compute is not None and model is not None else None
        threads = None if plan.threads is None else min(torch.get_num_threads(), plan.threads)
        forward = _forward(model, detector, device, backend=plan.backend, precision=plan.precision, compile=plan.compile,
                           threads=threads)  # fmt: skip
        self._scorer = _Scorer(forward, device, views=1 + self.reading.crops,
                               pad_to=plan.batch_size * (1 + self.reading.crops) if plan.compile else None,
                               reading=replace(self.reading, jpeg_bytes=False), workers=plan.workers,
                               preprocess=detector.preprocess, compute=self._compute)  # fmt: skip

    def score(self, paths: Sequence[str | os.PathLike[str]], reading: ReadOptions) -> list[ImageRecord]:
        """The records of ``paths``, in order (errors included; a crashing decoder costs its file alone).

        Raises:
            ValueError: ``reading`` is not what the session's workers read.
        """
        if reading.decoded_on_device(self.plan.gpu_decode) != self.reading:
            raise ValueError("a scoring session reads every file the same way; this call asks for other reading options")
        answers = self._pool.map(enumerate(read_items(paths, self.reading)))
        with closing(answers), self.plan.threads_beside_workers(), torch.inference_mode():  # type: ignore[arg-type]
            return [r for batch in _pipelined(self._scorer, _batches(answers, self.plan.batch_size), self.plan) for r in batch]

    def close(self) -> None:
        """Stop the compute threads and the decode workers."""
        if self._compute is not None:
            self._compute.close()
        self._pool.close()


def parameter_count(detector: nn.Module) -> int:
    """Every parameter of the model, frozen ones included: what sets the pace of its forward pass."""
    return sum(p.numel() for p in detector.parameters())


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
            chunk.append(eval_tensor(array, detector.preprocess))
        logits = detector(torch.stack(chunk).to(detector.device)).logits
        scores.append(torch.sigmoid(logits.float()).cpu().numpy())
    detector.train(was_training)
    return np.concatenate(scores) if scores else np.zeros(0, dtype=np.float32)
