"""The resumable training state: ``<out>.state.safetensors``, written and read back exactly.

The file is a detector checkpoint (the current adapters and head) plus, under ``train_state.``,
every tensor the loop needs to continue (optimizer moments, RNG states, per-file failure codes, the
best weights so far) and, in its metadata, the rest (step, early-stopping record, scheduler,
scaler, the run's config and a fingerprint of its data). No pickle: safetensors plus JSON.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError, ConfigError, InputError
from ..models.checkpoint import TRAIN_STATE_PREFIX, read_checkpoint
from ..models.detector import ADAPTER_PREFIX, HEAD_PREFIX, Detector
from ..models.factory import save_detector
from .config import STATE_SUFFIX, STATE_VERSION, TrainConfig


@dataclass
class Progress:
    """The loop's position and early-stopping record; all of it goes into the state file.

    Attributes:
        step: optimizer steps taken.
        best_ap: validation AP of the kept weights.
        best_step: the step whose weights are kept.
        stale: validations since the last kept one (peers: since the last sufficient gain).
        finished: the run has nothing left to train.
        stopped_early: it ended before its last step.
        best: the kept adapter weights.
        reference: peers protocol only, the accuracy the next validation must beat by the margin;
            None right after a learning-rate drop (the next validation is kept unconditionally).
        lr_drops: peers protocol only, how many times the learning rate was divided by 10.
    """

    step: int = 0
    best_ap: float | None = None
    best_step: int = 0
    stale: int = 0
    finished: bool = False
    stopped_early: bool = False
    best: dict[str, torch.Tensor] | None = None
    reference: float | None = None
    lr_drops: int = 0


@dataclass
class TrainingParts:
    """The live objects whose state the file holds."""

    detector: Detector
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    failed_train: torch.Tensor
    failed_val: torch.Tensor
    total_steps: int
    steps_per_epoch: int


def refuse_unfinished_state(path: Path) -> None:
    """Starting afresh would overwrite a run that can still be resumed: refuse unless it finished.

    Raises:
        InputError: ``path`` holds an unfinished (or unreadable) run.
    """
    if not path.exists():
        return
    try:
        finished = bool(read_checkpoint(path)[1].get("train_state", {}).get("finished", False))
    except CheckpointError:
        finished = False
    if not finished:
        raise InputError(f"{path} holds an unfinished run; pass `resume` {path} to continue it, or delete it to start over")


def write_state(path: Path, parts: TrainingParts, progress: Progress, config: TrainConfig, data_fingerprint: str) -> None:
    """Write the current weights plus everything else the loop needs to continue exactly here (atomic)."""
    tensors: dict[str, torch.Tensor] = {
        f"{TRAIN_STATE_PREFIX}failed_train": parts.failed_train,
        f"{TRAIN_STATE_PREFIX}failed_val": parts.failed_val,
        f"{TRAIN_STATE_PREFIX}rng.torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"{TRAIN_STATE_PREFIX}rng.cuda.{i}"] = state
    optimizer = parts.optimizer.state_dict()
    for index, slots in optimizer["state"].items():
        for name, value in slots.items():
            tensors[f"{TRAIN_STATE_PREFIX}optim.{index}.{name}"] = torch.as_tensor(value)
    for key, value in (progress.best or {}).items():
        tensors[f"{TRAIN_STATE_PREFIX}best.{key}"] = value
    numpy_state = np.random.get_state()
    python_state = random.getstate()
    meta = {
        "version": STATE_VERSION,
        "config": config.to_dict(),
        "step": progress.step,
        "total_steps": parts.total_steps,
        "steps_per_epoch": parts.steps_per_epoch,
        "best_ap": progress.best_ap,
        "best_step": progress.best_step,
        "stale": progress.stale,
        "finished": progress.finished,
        "stopped_early": progress.stopped_early,
        "reference": progress.reference,
        "lr_drops": progress.lr_drops,
        "data_fingerprint": data_fingerprint,
        "optimizer_groups": optimizer["param_groups"],
        "scheduler": parts.scheduler.state_dict(),
        "scaler": parts.scaler.state_dict(),
        "rng_numpy": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]],
        "rng_python": [python_state[0], list(python_state[1]), python_state[2]],
    }
    save_detector(parts.detector, path, extra_tensors=tensors, extra_metadata={"train_state": meta})


def restore_state(path: Path, parts: TrainingParts, config: TrainConfig, data_fingerprint: str) -> Progress:
    """Load a state file into ``parts`` after checking that it belongs to this run.

    Raises:
        CheckpointError: the file holds no training state, another version, or unusable contents.
        ConfigError: the run used other settings, or another number of steps per epoch.
        InputError: the training or validation files changed.
    """
    tensors, meta = read_checkpoint(path)
    state = meta.get("train_state")
    if not isinstance(state, dict):
        raise CheckpointError(
            f"{path} is a detector checkpoint without training state; resume from the {STATE_SUFFIX} file written beside `out`"
        )
    if state.get("version") != STATE_VERSION:
        raise CheckpointError(f"{path}: training state version {state.get('version')} is not {STATE_VERSION}")
    try:
        saved = TrainConfig.from_dict(state["config"])
    except (KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: training state has no usable config ({exc})") from None
    changed = config.differences(saved)
    if changed:
        raise ConfigError(
            f"`resume`: the run in {path} used other settings ({'; '.join(changed)}); "
            "rerun with its settings (only `device`, `workers`, `micro_batch` and `log` may change)"
        )
    if state["data_fingerprint"] != data_fingerprint:
        raise InputError(f"`resume`: the training or validation files changed since {path} was written")
    if state["steps_per_epoch"] != parts.steps_per_epoch:
        raise ConfigError(
            f"`resume`: {path} ran {state['steps_per_epoch']} steps per epoch, this run would take "
            f"{parts.steps_per_epoch}; use the same number of processes and `batch_size`"
        )
    parts.detector.load_adapter_state_dict(
        {k: v for k, v in tensors.items() if k.startswith((ADAPTER_PREFIX, HEAD_PREFIX))}, str(path)
    )
    _restore_optimizer(parts.optimizer, tensors, state, path)
    parts.scheduler.load_state_dict(state["scheduler"])
    if parts.scaler.is_enabled() and state["scaler"]:
        parts.scaler.load_state_dict(state["scaler"])
    parts.failed_train.copy_(tensors[f"{TRAIN_STATE_PREFIX}failed_train"])
    parts.failed_val.copy_(tensors[f"{TRAIN_STATE_PREFIX}failed_val"])
    _restore_rng(tensors, state)
    best_prefix = f"{TRAIN_STATE_PREFIX}best."
    best = {k[len(best_prefix):]: v for k, v in tensors.items() if k.startswith(best_prefix)}
    return Progress(
        step=int(state["step"]), best_ap=state["best_ap"], best_step=int(state["best_step"]),
        stale=int(state["stale"]), finished=bool(state["finished"]), stopped_early=bool(state["stopped_early"]),
        best=best or None, reference=state.get("reference"), lr_drops=int(state.get("lr_drops", 0)),
    )


def _restore_rng(tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
    torch.set_rng_state(tensors[f"{TRAIN_STATE_PREFIX}rng.torch"])
    cuda_states = [tensors[k] for k in sorted(tensors) if k.startswith(f"{TRAIN_STATE_PREFIX}rng.cuda.")]
    if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_states)
    numpy_state = state["rng_numpy"]
    np.random.set_state((numpy_state[0], np.array(numpy_state[1], dtype=np.uint32), *numpy_state[2:]))
    python_state = state["rng_python"]
    random.setstate((python_state[0], tuple(python_state[1]), python_state[2]))


def _restore_optimizer(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], state: dict[str, Any], path: Path
) -> None:
    prefix = f"{TRAIN_STATE_PREFIX}optim."
    slots: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith(prefix):
            index, name = key[len(prefix):].split(".", 1)
            slots.setdefault(int(index), {})[name] = value
    groups = [dict(group, betas=tuple(group["betas"])) for group in state["optimizer_groups"]]
    try:
        optimizer.load_state_dict({"state": slots, "param_groups": groups})
    except (ValueError, KeyError) as exc:
        raise CheckpointError(f"{path}: optimizer state does not fit this detector ({exc})") from None
