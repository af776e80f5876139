"""The CLIPMoLE training recipe (§4.1): AdamW on the adapters and head, validation, early stopping,
threshold calibration, and resumable state.

Two recipes (``training.config.RECIPES``) set the batch, learning rate, augmentation and validation
protocol; settings given explicitly win over them:
- ``default`` (ours): CNNDetection's batch 64; validation on clean centre crops at native
  resolution; the weights with the best validation AP are kept, and the run stops after
  ``patience`` validations without a better AP;
- ``paper``: the supplementary's batch 1024 with the validation of CNNDetection and UnivFD
  (``val_protocol="peers"``): images resized to 256 and blurred / JPEG-compressed at the middle of
  the training ranges with the training probabilities; the weights are kept on accuracy at 0.5, and
  after ``patience`` validations without a gain of 0.001 (0.002 after a drop) the learning rate is
  divided by 10, until it would fall below 1e-6 and the run stops. As in their EarlyStopping, the
  first validation after a drop is kept unconditionally.

Choices the paper leaves open, made here: the learning rate is otherwise constant (the paper gives
only 6e-4; ``cosine`` is an option); weight decay is AdamW's usual 0.01; without ``steps`` or
``epochs`` a run lasts 10 epochs; the threshold maximises balanced accuracy on the validation set,
using the kept weights. A batch that does not fit is split into micro-batches whose gradients add
up to the whole batch's (``accumulate``).

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
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.optim.lr_scheduler import LambdaLR

from ..data.layouts import TrainingData, prepare_training_data
from ..data.loading import Batch, LabeledImages, batch_loader
from ..data.transforms import PeersValidation, normalize_pixels
from ..engine import distributed
from ..engine.distributed import DistContext
from ..engine.infer import parameter_count
from ..engine.plan import RuntimePlan
from ..errors import DECODE_REASONS, InputError
from ..fileio import json_safe
from ..metrics import Accuracy, accuracy, average_precision, calibrate_threshold
from ..models.detector import Detector
from ..models.factory import create_detector, save_detector
from ..outputs import append_output
from ..progress import ProgressCallback, ProgressEvent
from ..version import __version__
from .accumulate import fit_micro_batch, gradient_step
from .config import TrainConfig
from .state import Progress, TrainingParts, refuse_unfinished_state, restore_state, write_state

LOGGED_EVENTS = frozenset({"run", "recipe", "start", "micro_batch", "note", "step", "eval", "done"})
# The peers' plateau rule (CNNDetection / UnivFD train.py and EarlyStopping): the accuracy gain a
# validation needs before and after the first learning-rate drop, and the rate below which they stop.
PEERS_MARGINS = (0.001, 0.002)
PEERS_MIN_LR = 1e-6


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
        stopped_early: validation stopped improving before ``total_steps``.
        lr_drops: how often the peers protocol divided the learning rate by 10.
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
    lr_drops: int = 0

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

    def __init__(self, config: TrainConfig, ctx: DistContext, on_event: ProgressCallback, command: str | None) -> None:
        self.config = config
        self.ctx = ctx
        self.on_event = on_event
        self.command = command
        self.device = ctx.device
        self.progress = Progress()
        self.log_file = None
        self.run_id = uuid.uuid4().hex[:12]
        self.micro: int | None = None
        self.noted: set[str] = set()

    def note(self, message: str) -> None:
        """A one-line remark on how the run adapted to the machine, reported once per run however
        often the cause recurs (every epoch's loader meets the same shared memory)."""
        if message not in self.noted:
            self.noted.add(message)
            self.emit("note", message=message)

    def emit(self, event: str, **payload: Any) -> None:
        """Report to the caller and append to the JSONL log (rank 0 only); log lines carry the run id,
        so that runs appended to one log can be told apart."""
        if not self.ctx.is_main:
            return
        record = json_safe({"event": event, **payload})
        done = record.get("step", record.get("start_step", 0))
        self.on_event(ProgressEvent(event, done, record.get("total_steps", 0), detail=record))
        if self.log_file is not None and event in LOGGED_EVENTS:
            self.log_file.write(json.dumps({"run_id": self.run_id, **record}) + "\n")
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
            self.log_file = append_output(config.log)
        try:
            self.emit(
                "run", run_id=self.run_id, command=self.command, version=__version__,
                date=datetime.now(timezone.utc).isoformat(timespec="seconds"), resume=config.resume,
            )
            self.emit("recipe", **config.resolved_recipe())
            self.emit(
                "start", total_steps=self.total_steps, start_step=self.progress.step,
                steps_per_epoch=self.steps_per_epoch,
                train_images=len(self.data.train), val_images=len(self.data.val), world_size=self.ctx.world_size,
                device=str(self.device), trainable_parameters=sum(p.numel() for p in self.params),
                plan=self.plan.describe(),
            )
            with self.plan.threads_beside_workers():
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
        self.scheduler = LambdaLR(self.optimizer, lambda step: self._lr_factor(step))
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.device.type == "cuda")
        size = self.detector.image_size
        self.train_set = LabeledImages(self.data.train, size, config.augment, config.seed, config.max_pixels, config.max_bytes)
        peers = PeersValidation.from_augment(config.augment, size) if config.val_protocol == "peers" else None
        self.val_set = LabeledImages(self.data.val, size, None, config.seed, config.max_pixels, config.max_bytes, validation=peers)
        self.failed_train = torch.zeros(len(self.data.train), dtype=torch.uint8)
        self.failed_val = torch.zeros(len(self.data.val), dtype=torch.uint8)
        ranks = int(os.environ.get("LOCAL_WORLD_SIZE", ctx.world_size))
        per_rank = replace(config.runtime, batch_size=config.batch_size // ctx.world_size)
        self.plan = RuntimePlan.resolve(per_rank, str(self.device), parameter_count(self.detector), ranks=ranks)
        self.workers = self.plan.workers
        self.pin = self.device.type == "cuda"

    def _lr_factor(self, step: int) -> float:
        """The schedule's factor times 1/10 per learning-rate drop of the peers protocol."""
        factor = 1.0
        if self.config.schedule == "cosine":
            total = self.total_steps
            factor = 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
        return factor * 0.1**self.progress.lr_drops

    def _loop(self) -> None:
        config, progress = self.config, self.progress
        self.detector.train()
        window = _Window()
        while not progress.finished:
            epoch, offset = divmod(progress.step, self.steps_per_epoch)
            batches = distributed.epoch_batches(len(self.train_set), config.batch_size, self.ctx, config.seed, epoch)
            self.train_set.epoch = epoch
            loader = batch_loader(self.train_set, batches[offset:], workers=self.workers, pin_memory=self.pin, note=self.note)
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
        self._choose_micro_batch(batch)
        losses: dict[str, float] = {}
        routing = None
        if batch.pixels is not None:
            upcoming = self.progress.step + 1
            outcome = gradient_step(
                self.detector, batch.pixels, batch.labels, device=self.device, precision=self.plan.precision,
                micro_batch=self.micro,
                backward=lambda loss: self.scaler.scale(loss).backward(),
                share_counts=self._share_counts if self.ctx.distributed else None,
                telemetry=self.ctx.is_main and (upcoming % self.config.log_every == 0 or upcoming == self.total_steps),
            )
            losses, routing = outcome.losses, outcome.routing
        else:
            # Keeps the scaler initialised, and this rank in the balance-loss collective, when its
            # whole batch failed to decode.
            self.scaler.scale(torch.zeros((), device=self.device))
            if self.ctx.distributed and self.detector.bypasses:
                self._share_counts(torch.zeros(len(self.detector.bypasses), self.detector.mole.num_experts, device=self.device))
        images = distributed.average_gradients(self.params, len(batch), self.ctx)
        if images:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        self.scheduler.step()
        return losses, routing

    def _share_counts(self, counts: torch.Tensor) -> torch.Tensor:
        return distributed.sum_over_ranks_(counts, self.ctx)

    def _choose_micro_batch(self, batch: Batch) -> None:
        """Once per process, before its first step: the configured micro-batch, else on CUDA the
        largest that fits (the whole batch, halved after each out-of-memory error), the same on every rank."""
        if self.micro is not None:
            return
        per_rank = self.config.batch_size // self.ctx.world_size
        automatic = self.config.micro_batch is None and self.device.type == "cuda"
        if not automatic:
            self.micro = self.config.micro_batch or per_rank
        else:
            fits = per_rank
            if batch.pixels is not None:
                fits = fit_micro_batch(self.detector, batch.pixels, batch.labels, self.device, self.plan.precision)
            self.micro = distributed.min_over_ranks(fits, self.ctx)
        self.emit("micro_batch", micro_batch=self.micro, per_process_batch=per_rank, automatic=automatic)

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
            lr=self.optimizer.param_groups[0]["lr"],
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
        size = min(self.config.batch_size, self.micro or self.config.batch_size)
        loader = batch_loader(
            self.val_set, [mine[i : i + size] for i in range(0, len(mine), size)], workers=self.workers,
            pin_memory=self.pin, note=self.note,
        )
        indices: list[int] = []
        scores: list[float] = []
        with torch.inference_mode():
            for batch in loader:
                for index, code in batch.failed:
                    self.failed_val[index] = code
                if batch.pixels is None:
                    continue
                with self.plan.autocast():
                    pixels = normalize_pixels(batch.pixels.to(self.device, non_blocking=True), self.detector.preprocess)
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
        dropped = False
        if config.val_protocol == "peers":
            keep, dropped = self._peers_rule(result.acc.overall)
        else:
            keep = progress.best_ap is None or result.ap > progress.best_ap
            progress.stale = 0 if keep else progress.stale + 1
            if config.patience and progress.stale >= config.patience and progress.step < self.total_steps:
                progress.finished = progress.stopped_early = True
        if keep:
            progress.best_ap, progress.best_step = result.ap, progress.step
            progress.best = {k: v.detach().cpu().clone() for k, v in self.detector.adapter_state_dict().items()}
            if self.ctx.is_main:
                self.detector.provenance = {"status": "training", "step": progress.step, "val_ap": result.ap}
                save_detector(self.detector, config.out)
        self.emit(
            "eval", step=progress.step, epoch=progress.step / self.steps_per_epoch, val_ap=result.ap,
            val_acc=result.acc.overall, val_acc_real=result.acc.real, val_acc_fake=result.acc.fake,
            best_ap=progress.best_ap, best_step=progress.best_step, improved=keep, protocol=config.val_protocol,
            lr_dropped=dropped, lr=self.optimizer.param_groups[0]["lr"], stopped_early=progress.stopped_early,
            skipped_files=self._skipped_count(),
        )

    def _peers_rule(self, acc: float) -> tuple[bool, bool]:
        """Apply ``peers_rule``; after a drop, the optimizer takes the new rate at once."""
        progress = self.progress
        keep, dropped = peers_rule(
            progress, acc, patience=self.config.patience, lr=self.config.lr, last_step=progress.step >= self.total_steps
        )
        if dropped:
            for group, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs):
                group["lr"] = base * self._lr_factor(self.scheduler.last_epoch)
        return keep, dropped

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
            skipped_examples=examples, stopped_early=progress.stopped_early, lr_drops=progress.lr_drops,
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


def peers_rule(progress: Progress, acc: float, *, patience: int, lr: float, last_step: bool) -> tuple[bool, bool]:
    """CNNDetection's and UnivFD's rule on one validation accuracy; updates ``progress`` and returns
    (keep these weights, divide the learning rate by 10 now).

    As their train.py with its EarlyStopping: a validation is kept when it is the first since the
    start or the last drop, or when it beats the reference by the margin (0.001, then 0.002 after a
    drop). ``patience`` validations in a row without that divide the learning rate by 10 and start
    afresh, or end the run (``finished`` and ``stopped_early``) once the rate would fall below 1e-6.
    ``patience`` 0 never drops or stops; neither happens at the last step.
    """
    margin = PEERS_MARGINS[min(progress.lr_drops, 1)]
    if progress.reference is None or acc >= progress.reference + margin:
        progress.reference, progress.stale = acc, 0
        return True, False
    progress.stale += 1
    if not patience or progress.stale < patience or last_step:
        return False, False
    rate = lr
    for _ in range(progress.lr_drops + 1):
        rate /= 10  # divided step by step, as their optimizer's rate is, for the same boundary cases
    if rate < PEERS_MIN_LR:
        progress.finished = progress.stopped_early = True
        return False, False
    progress.lr_drops += 1
    progress.reference, progress.stale = None, 0
    return False, True


def train(config: TrainConfig, on_event: ProgressCallback | None = None, *, command: str | None = None) -> TrainResult:
    """Train a MoLE detector and write it to ``config.out``, joining torchrun's process group if any.

    Args:
        config: the run.
        on_event: receives a ``ProgressEvent`` per record (rank 0 only), its stage the record's
            ``event``, ``done`` its step (of ``total_steps`` when the record has it) and ``detail``
            the record itself: ``data`` (layout description and counts),
            ``run`` (run id, command, version, date), ``recipe`` (the recipe and the settings used,
            with those that replaced its values), ``start``, ``micro_batch`` (before the first
            step), ``progress`` (every step), ``step`` (every ``log_every`` steps: losses, lr,
            images/s, routing telemetry), ``eval`` (with any learning-rate drop), and ``done`` (the
            summary). All but ``data`` and ``progress`` also go to ``config.log``, each line with the
            run id.
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
