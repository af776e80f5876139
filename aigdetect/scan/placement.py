"""Where this scan process writes and which files it takes, once ``shard`` and torchrun are applied.

Under torchrun each rank scans shard RANK/WORLD_SIZE into ``OUT.partRANK`` on its local GPU, and
rank 0 joins the parts once every rank is done.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from datetime import timedelta

from ..errors import ConfigError
from .config import ScanConfig, infer_format
from .rows import Tally
from .shard import merge_parts, part_path

MERGE_TIMEOUT = timedelta(hours=24)


def torchrun_rank() -> tuple[int, int, int] | None:
    """(RANK, WORLD_SIZE, LOCAL_RANK) when started by torchrun with more than one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or "RANK" not in os.environ:
        return None
    return int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0"))


@dataclass(frozen=True)
class Placement:
    """What this process writes and scans: its output file, its format, its shard and its device."""

    out: str | None
    output_format: str | None
    shard: tuple[int, int] | None
    device: str


def place(out: str | None, output_format: str | None, shard: tuple[int, int] | None, device: str) -> Placement:
    """Apply ``shard`` K/N and torchrun's ranks: any shard with ``out`` OUT writes OUT.partK.

    Raises:
        ConfigError: ``shard`` under torchrun, or torchrun without ``out``, or a rank without its GPU.
    """
    spec = shard
    distributed = torchrun_rank()
    if distributed is not None:
        from ..engine.distributed import local_device

        rank, world, local_rank = distributed
        if spec is not None:
            raise ConfigError("under torchrun each rank takes its shard from RANK/WORLD_SIZE; drop `shard`")
        if out is None:
            raise ConfigError("under torchrun every rank writes OUT.partRANK; pass `out` OUT")
        spec = (rank, world)
        device = local_device(device, local_rank)
    if spec is not None and out is not None:
        output_format = infer_format(out, output_format)
        out = part_path(out, spec[0])
    return Placement(out, output_format, spec, device)


def place_config(config: ScanConfig) -> ScanConfig:
    """``config`` as this process runs it: its own part of the output, its shard and its device."""
    at = place(config.out, config.output_format, config.shard, config.runtime.device)
    return replace(config, out=at.out, output_format=at.output_format, shard=at.shard,
                   runtime=replace(config.runtime, device=at.device))  # fmt: skip


def merge_under_torchrun(out: str, output_format: str, *, overwrite: bool = False) -> Tally | None:
    """Wait for every rank, then let rank 0 join the parts; None on other ranks or without a group."""
    import torch.distributed as dist

    distributed = torchrun_rank()
    if distributed is None or not dist.is_available() or "MASTER_ADDR" not in os.environ:
        return None
    rank, world, _ = distributed
    if not dist.is_initialized():
        dist.init_process_group("gloo", rank=rank, world_size=world, timeout=MERGE_TIMEOUT)
    try:
        dist.barrier()
        return merge_parts(out, output_format, overwrite=overwrite).tally if rank == 0 else None
    finally:
        dist.destroy_process_group()
