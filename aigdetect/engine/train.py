"""The CLIPMoLE training recipe (§4.1): AdamW on the adapters and head, validation, early stopping on
validation AP, threshold calibration, and resumable state.

Choices the paper leaves open, made here:
- the learning rate stays at its initial value (``schedule="constant"``): the paper gives only the
  initial rate 6e-4; ``cosine`` is offered as an option;
- weight decay is AdamW's usual 0.01, the batch is CNNDetection's 64, and without ``steps`` or
  ``epochs`` a run lasts 10 epochs, stopped earlier when validation AP has not improved for
  ``patience`` validations;
- the threshold maximises balanced accuracy on the validation set, using the best model.

Two files are written (by rank 0 only): ``out``, the best detector so far (the final one carries the
calibrated threshold and its provenance), and ``<out>.state.safetensors``, everything needed to
continue after a crash: current adapters, optimizer moments, scheduler, scaler, RNG states, step,
best AP and the run's configuration. Both are written atomically and neither holds a pickle.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.optim.lr_scheduler import LambdaLR

from ..data.layouts import TrainingData, prepare_training_data
from ..data.loading import Batch, LabeledImages, batch_loader
from ..data.transforms import normalize_pixels
from ..errors import DECODE_REASONS, InputError
from ..fileio import json_safe
from ..metrics import Accuracy, accuracy, average_precision, calibrate_threshold
from ..models.detector import Detector
from ..models.factory import create_detector, save_detector
from ..models.telemetry import routing_summary
from . import distributed
from .distributed import DistContext
from .infer import autocast_for, threads_beside_workers
from .runtime import default_workers
from .train_config import TrainConfig
from .train_state import Progress, TrainingParts, refuse_unfinished_state, restore_state, write_state

Event = dict[str, Any]
EventHandler = Callable[[Event], None]


@dataclass
class TrainResult:
    """What a finished run reports (the same on every rank; only rank 0 wrote files).

    Attributes:
        out: the detector file.
        state: the training-state file.
        steps: optimizer steps taken in all.
        total_steps: steps the run was set to take.
        best_step: the step whose weights were kept.
        val_ap: validation AP of the kept weights.
        threshold: calibrated decision threshold (balanced accuracy on validation).
        acc_threshold: validation accuracy at ``threshold``.
        acc_half: validation accuracy at 0.5.
        train_images: training images listed.
        val_images: validation images listed.
        skipped: unreadable files by reason, over training and validation.
        skipped_examples: a few of those files.
        stopped_early: validation AP stopped improving before ``total_steps``.
    """

    out: str
    state: str
    steps: int
    total_steps: int
    best_step: int
    val_ap: float
    threshold: float
    acc_threshold: Accuracy
    acc_half: Accuracy
    train_images: int
    val_images: int
    skipped: dict[str, int]
    skipped_examples: list[str]
    stopped_early: bool

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for name in ("acc_threshold", "acc_half"):
            acc = getattr(self, name)
            data[name] = {"real": acc.real, "fake": acc.fake, "overall": acc.overall, "balanced": acc.balanced}
        return data


@dataclass
class _Validation:
    labels: np.ndarray
    scores: np.ndarray
    ap: float
    acc: Accuracy


def _accuracy_dict(acc: Accuracy) -> dict[str, float]:
    return {"real": acc.real, "fake": acc.fake, "overall": acc.overall, "balanced": acc.balanced}


@dataclass
class _Window:
    """Image-weighted loss sums and timing since the last step record; validation time is excluded."""

    sums: dict[str, float] = field(default_factory=lambda: dict.fromkeys(("images", "loss", "bce", "lb", "rcl"), 0.0))
    routing: dict[str, dict] = field(default_factory=dict)
    start: float = field(default_factory=time.perf_counter)
    paused: float = 0.0

    def add(self, images: int, losses: dict[str, float], routing: dict[str, dict] | None) -> None:
        self.sums["images"] += images
        for key in ("loss", "bce", "lb", "rcl"):
            self.sums[key] += losses.get(key, 0.0) * images
        if routing is not None:
            self.routing = routing


class _Trainer:
    """One run on one rank; ``run`` drives it from data discovery to the calibrated checkpoint."""

    def __init__(self, config: TrainConfig, ctx: DistContext, on_event: EventHandler, command: str | None) -> None:
        self.config = config
        self.ctx = ctx
        self.on_event = on_event
        self.command = command
        self.device = ctx.device
        self.progress = Progress()
        self.log_file = None

    def emit(self, event: str, **payload: Any) -> None:
        """Report to the caller and append to the JSONL log (rank 0 only)."""
        if not self.ctx.is_main:
            return
        record = json_safe({"event": event, **payload})
        self.on_event(record)
        if self.log_file is not None and event in ("step", "eval", "done"):
            self.log_file.write(json.dumps(record) + "\n")
            self.log_file.flush()

    def run(self) -> TrainResult:
        config = self.config
        if config.resume is not None and not Path(config.resume).is_file():
            raise InputError(
                f"`resume` {config.resume}: no such training state "
                f"(it is written beside `out` as {config.state_path.name})"
            )
        if config.resume is None:
            refuse_unfinished_state(config.state_path)
        self.data = prepare_training_data(
            data=config.data, real=config.real, fake=config.fake, val=config.val,
            val_fraction=config.val_fraction, train_size=config.train_size, seed=config.seed,
        )
        self.emit("data", layout=self.data.layout.kind, description=self.data.describe(), counts=self.data.counts())
        self._build()
        if config.resume is not None:
            self._restore(Path(config.resume))
        if self.ctx.is_main and config.log:
            Path(config.log).parent.mkdir(parents=True, exist_ok=True)
            self.log_file = open(config.log, "a", encoding="utf-8")
        try:
            self.emit(
                "start", total_steps=self.total_steps, start_step=self.progress.step,
                steps_per_epoch=self.steps_per_epoch,
                train_images=len(self.data.train), val_images=len(self.data.val), world_size=self.ctx.world_size,
                device=str(self.device), trainable_parameters=sum(p.numel() for p in self.params),
            )
            parameters = sum(p.numel() for p in self.detector.parameters())
            with threads_beside_workers(self.device, self.workers, parameters):
                if not self.progress.finished:
                    self._loop()
                return self._finish()
        finally:
            if self.log_file is not None:
                self.log_file.close()

    def _build(self) -> None:
        config, ctx = self.config, self.ctx
        self.detector: Detector = create_detector(
            config.model, config.mole, backbone_weights=config.backbone_weights, cache_dir=config.cache_dir,
            seed=config.seed,
        ).to(self.device)
        self.params = self.detector.trainable_parameters()
        self.optimizer = torch.optim.AdamW(self.params, lr=config.lr, weight_decay=config.weight_decay)
        self.steps_per_epoch = distributed.steps_per_epoch(len(self.data.train), config.batch_size, ctx.world_size)
        self.total_steps = config.steps if config.steps is not None else config.epochs * self.steps_per_epoch
        total = self.total_steps
        if config.schedule == "cosine":
            self.scheduler = LambdaLR(self.optimizer, lambda s: 0.5 * (1.0 + math.cos(math.pi * min(s, total) / total)))
        else:
            self.scheduler = LambdaLR(self.optimizer, lambda s: 1.0)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.device.type == "cuda")
        size = self.detector.image_size
        self.train_set = LabeledImages(self.data.train, size, config.augment, config.seed, config.max_pixels, config.max_bytes)
        self.val_set = LabeledImages(self.data.val, size, None, config.seed, config.max_pixels, config.max_bytes)
        self.failed_train = torch.zeros(len(self.data.train), dtype=torch.uint8)
        self.failed_val = torch.zeros(len(self.data.val), dtype=torch.uint8)
        cores = default_workers(self.device.type) // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", ctx.world_size)))
        self.workers = config.runtime.workers if config.runtime.workers is not None else max(1, cores)
        self.pin = self.device.type == "cuda"

    def _loop(self) -> None:
        config, progress = self.config, self.progress
        self.detector.train()
        window = _Window()
        while not progress.finished:
            epoch, offset = divmod(progress.step, self.steps_per_epoch)
            batches = distributed.epoch_batches(len(self.train_set), config.batch_size, self.ctx, config.seed, epoch)
            self.train_set.epoch = epoch
            loader = batch_loader(self.train_set, batches[offset:], workers=self.workers, pin_memory=self.pin)
            for batch in loader:
                losses, routing = self._train_step(batch)
                progress.step += 1
                window.add(len(batch), losses, routing)
                self.emit("progress", step=progress.step, total_steps=self.total_steps)
                if progress.step % config.log_every == 0 or progress.step == self.total_steps:
                    self._log_step(window)
                    window = _Window(routing=window.routing)
                paused = time.perf_counter()
                evaluated = self._eval_due()
                if evaluated:
                    self._after_validation(self._validate())
                progress.finished = progress.finished or progress.step >= self.total_steps
                if evaluated or progress.finished or progress.step % self.steps_per_epoch == 0:
                    self._save_state()
                window.paused += time.perf_counter() - paused
                if progress.finished:
                    break

    def _train_step(self, batch: Batch) -> tuple[dict[str, float], dict[str, dict] | None]:
        self.optimizer.zero_grad(set_to_none=True)
        for index, code in batch.failed:
            self.failed_train[index] = code
        losses: dict[str, float] = {}
        routing = None
        if batch.pixels is not None:
            pixels = normalize_pixels(batch.pixels.to(self.device, non_blocking=True))
            labels = batch.labels.to(self.device, non_blocking=True)
            with autocast_for(self.device):
                output = self.detector(pixels)
            terms = self.detector.loss(output, labels, lb_loss=self._global_balance(output.routing))
            self.scaler.scale(terms["loss"]).backward()
            losses = {k: float(v.detach()) for k, v in terms.items()}
            upcoming = self.progress.step + 1
            if self.ctx.is_main and (upcoming % self.config.log_every == 0 or upcoming == self.total_steps):
                routing = routing_summary(output.routing, labels)
        else:
            # Keeps the scaler initialised, and this rank in the balance-loss collective, when its
            # whole batch failed to decode.
            self.scaler.scale(torch.zeros((), device=self.device))
            self._global_balance(None)
        images = distributed.average_gradients(self.params, len(batch), self.ctx)
        if images:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        self.scheduler.step()
        return losses, routing

    def _global_balance(self, routing: dict | None) -> torch.Tensor | None:
        """Under data parallelism, the balance loss with dispatch counted over the global batch."""
        if not (self.ctx.distributed and self.detector.bypasses):
            return None
        blocks = sorted(self.detector.bypasses)
        return distributed.balance_loss_across_ranks(routing, blocks, self.detector.mole.num_experts, self.ctx)

    def _log_step(self, window: _Window) -> None:
        keys = ("images", "loss", "bce", "lb", "rcl")
        totals = dict(zip(keys, distributed.sum_values([window.sums[k] for k in keys], self.ctx)))
        images = max(totals["images"], 1.0)
        elapsed = time.perf_counter() - window.start - window.paused
        self.emit(
            "step",
            step=self.progress.step,
            epoch=self.progress.step / self.steps_per_epoch,
            total_steps=self.total_steps,
            loss=totals["loss"] / images,
            bce=totals["bce"] / images,
            lb=totals["lb"] / images,
            rcl=totals["rcl"] / images,
            lr=self.scheduler.get_last_lr()[0],
            images_per_s=totals["images"] / elapsed if elapsed > 0 else None,
            skipped_files=int((self.failed_train > 0).sum()),
            routing=window.routing,
        )

    def _eval_due(self) -> bool:
        step, every = self.progress.step, self.config.eval_every
        if step >= self.total_steps:
            return True
        return step % every == 0 if every else step % self.steps_per_epoch == 0

    def _validate(self) -> _Validation:
        """Score the validation set (sharded over ranks) and compute AP and accuracy at 0.5."""
        self.detector.eval()
        mine = distributed.shard(len(self.val_set), self.ctx)
        size = self.config.batch_size
        loader = batch_loader(
            self.val_set, [mine[i : i + size] for i in range(0, len(mine), size)], workers=self.workers,
            pin_memory=self.pin,
        )
        indices: list[int] = []
        scores: list[float] = []
        with torch.inference_mode():
            for batch in loader:
                for index, code in batch.failed:
                    self.failed_val[index] = code
                if batch.pixels is None:
                    continue
                with autocast_for(self.device):
                    pixels = normalize_pixels(batch.pixels.to(self.device, non_blocking=True))
                    logits = self.detector(pixels).logits
                indices.extend(batch.indices.tolist())
                scores.extend(torch.sigmoid(logits.float()).cpu().tolist())
        self.detector.train()
        distributed.merge_max_(self.failed_train, self.ctx)
        distributed.merge_max_(self.failed_val, self.ctx)
        all_scores = distributed.gather_predictions(indices, scores, len(self.val_set), self.ctx)
        labels = np.array([s.label for s in self.data.val], dtype=np.int64)
        ok = ~np.isnan(all_scores)
        if len(set(labels[ok].tolist())) < 2:
            raise InputError(
                "validation needs readable real and fake images; too many validation files failed to decode"
            )
        labels, all_scores = labels[ok], all_scores[ok]
        return _Validation(labels, all_scores, average_precision(labels, all_scores), accuracy(labels, all_scores, 0.5))

    def _after_validation(self, result: _Validation) -> None:
        progress, config = self.progress, self.config
        improved = progress.best_ap is None or result.ap > progress.best_ap
        if improved:
            progress.best_ap, progress.best_step, progress.stale = result.ap, progress.step, 0
            progress.best = {k: v.detach().cpu().clone() for k, v in self.detector.adapter_state_dict().items()}
            if self.ctx.is_main:
                self.detector.provenance = {"status": "training", "step": progress.step, "val_ap": result.ap}
                save_detector(self.detector, config.out)
        else:
            progress.stale += 1
        if config.patience and progress.stale >= config.patience and progress.step < self.total_steps:
            progress.finished = progress.stopped_early = True
        self.emit(
            "eval", step=progress.step, epoch=progress.step / self.steps_per_epoch, val_ap=result.ap,
            val_acc=result.acc.overall, val_acc_real=result.acc.real, val_acc_fake=result.acc.fake,
            best_ap=progress.best_ap, best_step=progress.best_step, improved=improved,
            stopped_early=progress.stopped_early, skipped_files=self._skipped_count(),
        )

    def _skipped_count(self) -> int:
        return int((self.failed_train > 0).sum() + (self.failed_val > 0).sum())

    def _skipped(self) -> tuple[dict[str, int], list[str]]:
        reasons: dict[str, int] = {}
        examples: list[str] = []
        for failed, samples in ((self.failed_train, self.data.train), (self.failed_val, self.data.val)):
            for index in torch.nonzero(failed).flatten().tolist():
                reason = DECODE_REASONS[int(failed[index]) - 1]
                reasons[reason] = reasons.get(reason, 0) + 1
                if len(examples) < 5:
                    examples.append(os.fsdecode(samples[index].path))
        return dict(sorted(reasons.items())), examples

    def _finish(self) -> TrainResult:
        """Put the best weights back, calibrate the threshold on validation, write the final detector."""
        progress, config = self.progress, self.config
        if progress.best is not None:
            self.detector.load_adapter_state_dict(progress.best, "the best weights of this run")
        result = self._validate()
        threshold = calibrate_threshold(result.labels, result.scores)
        acc_threshold = accuracy(result.labels, result.scores, threshold)
        skipped, examples = self._skipped()
        summary = TrainResult(
            out=config.out, state=str(config.state_path), steps=progress.step, total_steps=self.total_steps,
            best_step=progress.best_step, val_ap=result.ap, threshold=threshold, acc_threshold=acc_threshold,
            acc_half=result.acc, train_images=len(self.data.train), val_images=len(self.data.val), skipped=skipped,
            skipped_examples=examples, stopped_early=progress.stopped_early,
        )
        self.detector.threshold = threshold
        self.detector.provenance = self._provenance(summary)
        if self.ctx.is_main:
            save_detector(self.detector, config.out)
        distributed.barrier(self.ctx)
        self.emit("done", **summary.to_dict())
        return summary

    def _provenance(self, summary: TrainResult) -> dict[str, Any]:
        data: TrainingData = self.data
        return json_safe({
            "data": data.layout.root,
            "layout": data.layout.kind,
            "val": data.val_source,
            "counts": data.counts(),
            "steps": summary.steps,
            "best_step": summary.best_step,
            "epochs": summary.steps / self.steps_per_epoch,
            "seed": self.config.seed,
            "command": self.command,
            "val_ap": summary.val_ap,
            "val_acc_threshold": _accuracy_dict(summary.acc_threshold),
            "val_acc_0.5": _accuracy_dict(summary.acc_half),
            "skipped_files": summary.skipped,
            "train_config": self.config.to_dict(),
        })

    def _save_state(self) -> None:
        """Write ``<out>.state.safetensors`` (rank 0; atomic) so that the run can continue exactly here."""
        if self.ctx.is_main:
            write_state(self.config.state_path, self._parts(), self.progress, self.config, self.data.fingerprint())

    def _restore(self, path: Path) -> None:
        self.progress = restore_state(path, self._parts(), self.config, self.data.fingerprint())

    def _parts(self) -> TrainingParts:
        return TrainingParts(
            self.detector, self.optimizer, self.scheduler, self.scaler, self.failed_train, self.failed_val,
            self.total_steps, self.steps_per_epoch,
        )


def train(config: TrainConfig, on_event: EventHandler | None = None, *, command: str | None = None) -> TrainResult:
    """Train a MoLE detector and write it to ``config.out``, joining torchrun's process group if any.

    Args:
        config: the run.
        on_event: receives progress records (rank 0 only): ``data`` (layout description and counts),
            ``start``, ``progress`` (every step), ``step`` (every ``log_every`` steps: losses, lr,
            images/s, routing telemetry), ``eval``, and ``done`` (the summary).
        command: the command line, recorded in the checkpoint's provenance.

    Raises:
        LayoutError: the data folders do not fit a layout or lack a class.
        InputError: ``--resume`` names no file, an unfinished state would be overwritten, or the
            validation images cannot be read.
        ConfigError: invalid or (on resume) changed settings.
        CheckpointError: the resume file is damaged or does not belong to this detector.
    """
    ctx = distributed.setup(config.runtime.device)
    try:
        return _Trainer(config, ctx, on_event or (lambda event: None), command).run()
    finally:
        distributed.teardown(ctx)
