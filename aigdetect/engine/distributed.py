"""Data-parallel training under torchrun: process group, sharded batches, gradient and result exchange.

Gradients are averaged by hand (one flat all-reduce per step) instead of through DDP. Only the small
adapters train, so the exchange is cheap; and doing it by hand weights every rank by the number of
images it actually used (files that fail to decode are skipped), keeps a rank whose whole batch
failed in step with the others, and needs no ``find_unused_parameters`` for experts a batch did not
route to. With one process every function here is a no-op.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ..errors import ConfigError
from .infer import resolve_device


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in the run: its rank, the number of ranks, and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        """Only the main rank writes logs and checkpoints and reports progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def is_main_process() -> bool:
    """True outside torchrun, and on rank 0 under it (for the CLI, before any group exists)."""
    return int(os.environ.get("RANK", "0")) == 0


def local_device(device: str, local_rank: int) -> str:
    """This rank's device under torchrun: its own GPU (cuda:LOCAL_RANK) when CUDA is used.

    Raises:
        ConfigError: the rank has no GPU of its own (more processes per node than GPUs).
    """
    if device not in ("auto", "cuda") or not torch.cuda.is_available():
        return device
    if local_rank >= torch.cuda.device_count():
        raise ConfigError(
            f"local rank {local_rank} has no GPU ({torch.cuda.device_count()} visible); start fewer processes per node"
        )
    return f"cuda:{local_rank}"


def setup(device: str = "auto") -> DistContext:
    """Join the torchrun process group when launched by torchrun (NCCL on CUDA, gloo on the CPU).

    Args:
        device: ``auto``, ``cuda`` or ``cpu``; under torchrun CUDA means this rank's local GPU.
    """
    resolved = resolve_device(device)
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
        return DistContext(0, 1, 0, resolved)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if resolved.type == "cuda":
        resolved = torch.device(local_device(device, local_rank))
        torch.cuda.set_device(resolved)
    owns_group = not dist.is_initialized()
    if owns_group:
        dist.init_process_group(backend="nccl" if resolved.type == "cuda" else "gloo", rank=rank, world_size=world)
    return DistContext(rank, world, local_rank, resolved, owns_group)


def teardown(ctx: DistContext) -> None:
    """Leave the process group, unless the caller had set it up before ``setup``."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def epoch_batches(
    count: int, batch_size: int, ctx: DistContext, seed: int, epoch: int, shuffle: bool = True
) -> list[list[int]]:
    """This rank's index batches for one epoch.

    The permutation depends only on (seed, epoch); it is padded to a multiple of the world size and
    dealt round-robin, so batch k of every rank together is exactly batch k of a single process with
    ``batch_size`` images. ``batch_size`` is the global batch and must divide by the world size.
    """
    if batch_size % ctx.world_size:
        raise ConfigError(f"`batch_size` {batch_size} (the global batch) must divide by the {ctx.world_size} processes")
    order = np.random.default_rng([seed, epoch]).permutation(count) if shuffle else np.arange(count)
    padding = (-count) % ctx.world_size
    if padding:
        order = np.concatenate([order, order[:padding]])
    mine = order[ctx.rank :: ctx.world_size].tolist()
    per_rank = batch_size // ctx.world_size
    return [mine[i : i + per_rank] for i in range(0, len(mine), per_rank)]


def steps_per_epoch(count: int, batch_size: int, world_size: int) -> int:
    return math.ceil(math.ceil(count / world_size) / (batch_size // world_size))


def shard(count: int, ctx: DistContext) -> list[int]:
    """Indices this rank evaluates: every world_size-th one, no padding."""
    return list(range(ctx.rank, count, ctx.world_size))


def average_gradients(parameters: list[nn.Parameter], images: int, ctx: DistContext) -> int:
    """Replace each rank's mean-loss gradients by the mean over every image of the global batch.

    Each rank's gradient is weighted by its image count, so the result equals what one process
    would compute on the whole batch. A parameter keeps ``grad=None`` only when no rank produced a
    gradient for it, which is how the optimizer would treat it in a single process.

    Returns:
        The number of images in the global batch.
    """
    if not ctx.distributed:
        return images
    device = ctx.device
    pieces = []
    for param in parameters:
        grad = param.grad if param.grad is not None else torch.zeros_like(param)
        pieces.append(grad.detach().float().reshape(-1) * images)
    flags = torch.tensor([p.grad is not None for p in parameters] + [1.0], dtype=torch.float32, device=device)
    flags[-1] = images
    flat = torch.cat(pieces + [flags])
    dist.all_reduce(flat)
    total = int(round(flat[-1].item()))
    present = flat[-1 - len(parameters) : -1]
    offset = 0
    for param, used in zip(parameters, present.tolist()):
        size = param.numel()
        if used and total:
            param.grad = (flat[offset : offset + size] / total).view_as(param).to(param.dtype)
        else:
            param.grad = None
        offset += size
    return total


def gather_predictions(indices: list[int], scores: list[float], count: int, ctx: DistContext) -> np.ndarray:
    """Every rank's (index, score) pairs assembled into one array of length ``count`` on every rank.

    Indices that no rank scored (files that failed to decode) stay NaN.
    """
    result = np.full(count, np.nan, dtype=np.float64)
    if not ctx.distributed:
        result[indices] = scores
        return result
    width = math.ceil(count / ctx.world_size)
    local = torch.full((width, 2), -1.0, dtype=torch.float64)
    if indices:
        local[: len(indices), 0] = torch.tensor(indices, dtype=torch.float64)
        local[: len(indices), 1] = torch.tensor(scores, dtype=torch.float64)
    local = local.to(ctx.device)
    parts = [torch.empty_like(local) for _ in range(ctx.world_size)]
    dist.all_gather(parts, local)
    for part in parts:
        rows = part.cpu().numpy()
        rows = rows[rows[:, 0] >= 0]
        result[rows[:, 0].astype(np.int64)] = rows[:, 1]
    return result


def merge_max_(tensor: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Element-wise maximum across ranks, in place (used for per-file failure codes)."""
    if ctx.distributed:
        moved = tensor.to(ctx.device, torch.int32)
        dist.all_reduce(moved, op=dist.ReduceOp.MAX)
        tensor.copy_(moved.to(tensor.device, tensor.dtype))
    return tensor


def sum_values(values: list[float], ctx: DistContext) -> list[float]:
    """Sum a few numbers over all ranks (for logged totals)."""
    if not ctx.distributed:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=ctx.device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def sum_over_ranks_(tensor: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Element-wise sum across ranks, in place: the load-balancing loss's dispatch counts of the
    global batch. Each rank keeps its own gate mass P_j; with gradients averaged by each rank's
    share of the images, only the counts need to be global for N processes to train like one."""
    if ctx.distributed:
        dist.all_reduce(tensor)
    return tensor


def min_over_ranks(value: int, ctx: DistContext) -> int:
    """The smallest of one integer over all ranks (the micro-batch every rank can fit)."""
    if not ctx.distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.int64, device=ctx.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
    return int(tensor.item())
