"""Data-parallel training: sharding, gradient averaging, and 2-process gloo == 1 process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from aigdetect.data.synthetic import write_synthetic_dataset
from aigdetect.engine import distributed
from aigdetect.engine.distributed import DistContext
from aigdetect.engine.runtime import RuntimeConfig
from aigdetect.errors import ConfigError
from aigdetect.models.checkpoint import read_checkpoint
from aigdetect.models.config import MoLEConfig
from aigdetect.training.config import TrainConfig
from aigdetect.training.train import train

TINY = Path(__file__).parent / "assets" / "tiny.json"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _ctx(rank: int, world: int) -> DistContext:
    return DistContext(rank, world, rank, torch.device("cpu"))


@pytest.mark.parametrize("count, batch, world", [(10, 4, 1), (10, 4, 2), (11, 6, 3), (7, 2, 2), (24, 8, 2)])
def test_ranks_together_see_the_single_process_batches(count, batch, world):
    single = distributed.epoch_batches(count, batch, _ctx(0, 1), seed=5, epoch=2)
    shards = [distributed.epoch_batches(count, batch, _ctx(r, world), seed=5, epoch=2) for r in range(world)]
    steps = distributed.steps_per_epoch(count, batch, world)
    assert all(len(s) == steps for s in shards)
    padded = (-count) % world
    if padded == 0:
        assert len(single) == steps
        for k in range(steps):
            assert sorted(i for s in shards for i in s[k]) == sorted(single[k])
    seen = [i for s in shards for b in s for i in b]
    assert set(seen) == set(range(count)) and len(seen) == count + padded


def test_epochs_reshuffle_and_seed_reproduces():
    ctx = _ctx(0, 1)
    first = distributed.epoch_batches(20, 5, ctx, seed=1, epoch=0)
    assert distributed.epoch_batches(20, 5, ctx, seed=1, epoch=0) == first
    assert distributed.epoch_batches(20, 5, ctx, seed=1, epoch=1) != first
    assert sorted(i for b in first for i in b) == list(range(20))


def test_global_batch_must_divide_by_world_size():
    with pytest.raises(ConfigError, match="divide"):
        distributed.epoch_batches(10, 5, _ctx(0, 2), seed=0, epoch=0)


def test_single_process_setup_and_helpers_are_no_ops(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ctx = distributed.setup("cpu")
    assert (ctx.rank, ctx.world_size, ctx.is_main, ctx.distributed) == (0, 1, True, False)
    param = torch.nn.Parameter(torch.ones(3))
    param.grad = torch.full((3,), 2.0)
    assert distributed.average_gradients([param], 7, ctx) == 7
    assert torch.equal(param.grad, torch.full((3,), 2.0))
    scores = distributed.gather_predictions([2, 0], [0.5, 0.25], 3, ctx)
    assert scores[0] == 0.25 and scores[2] == 0.5 and np.isnan(scores[1])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _helper_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    ctx = distributed.setup("cpu")
    try:
        params = [torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(1))]
        params[0].grad = torch.tensor([1.0, 2.0, 3.0]) * (rank + 1)
        params[1].grad = torch.tensor([5.0, -1.0]) if rank == 1 else None
        images = 2 if rank == 0 else 3
        total = distributed.average_gradients(params, images, ctx)
        indices = [0, 2, 4] if rank == 0 else [1, 3]
        scores = distributed.gather_predictions(indices, [float(i) / 10 for i in indices], 6, ctx)
        codes = torch.tensor([0, 2, 0], dtype=torch.uint8) if rank == 0 else torch.tensor([1, 0, 0], dtype=torch.uint8)
        distributed.merge_max_(codes, ctx)
        result = {
            "total": total,
            "g0": params[0].grad.tolist(),
            "g1": params[1].grad.tolist(),
            "g2": params[2].grad is None,
            "scores": [None if np.isnan(v) else v for v in scores.tolist()],
            "codes": codes.tolist(),
            "sums": distributed.sum_values([1.0, rank], ctx),
            "counts": distributed.sum_over_ranks_(torch.tensor([[float(rank), 1.0]]), ctx).tolist(),
            "min": distributed.min_over_ranks(5 - 2 * rank, ctx),
        }
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        distributed.teardown(ctx)


@pytest.mark.slow
def test_gradient_averaging_and_gathering_over_two_gloo_processes(tmp_path):
    mp.spawn(_helper_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert results[0] == results[1]
    result = results[0]
    assert result["total"] == 5
    # Image-weighted mean: (2 * g_rank0 + 3 * g_rank1) / 5.
    np.testing.assert_allclose(result["g0"], (2 * np.array([1, 2, 3]) + 3 * np.array([2, 4, 6])) / 5)
    np.testing.assert_allclose(result["g1"], 3 * np.array([5.0, -1.0]) / 5)
    assert result["g2"] is True
    assert result["scores"] == [0.0, 0.1, 0.2, 0.3, 0.4, None]
    assert result["codes"] == [1, 2, 0]
    assert result["sums"] == [2.0, 1.0]
    assert result["counts"] == [[1.0, 2.0]] and result["min"] == 3


def _adapters(path: Path) -> dict[str, torch.Tensor]:
    tensors, _ = read_checkpoint(path)
    return {k: v for k, v in tensors.items() if k.startswith(("adapters.", "head."))}


@pytest.mark.slow
def test_two_gloo_processes_train_like_one(tmp_path):
    data = tmp_path / "data"
    write_synthetic_dataset(data, "wang2020", per_class=12, size=40, seed=3, val_per_class=5)
    common = dict(
        model=str(TINY), backbone_weights="none", steps=6, batch_size=8, lr=3e-3, eval_every=3, patience=0,
        seed=11, runtime=RuntimeConfig(device="cpu", workers=0),
    )
    # Augmentation stays on: each image's random draws depend on (seed, epoch, index) only, so
    # both runs see identical pixels. The load-balancing loss keeps its default weight: its
    # dispatch fractions are counted over both ranks, so the two runs optimise the same loss.
    # The two processes also split their 4 images into micro-batches of 3 and 1, whose
    # accumulated gradients (balance loss included) equal the whole batch's.
    mole = MoLEConfig(blocks=3)
    single = train(TrainConfig(out=str(tmp_path / "one.safetensors"), data=str(data), mole=mole, **common))
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        # "--" keeps torchrun's own parser from reading --log as an abbreviation of its --log-dir.
        "-m", "aigdetect", "--", "train", "--data", str(data), "--model", str(TINY), "--backbone-weights", "none",
        "--steps", "6", "--batch-size", "8", "--lr", "3e-3", "--eval-every", "3", "--patience", "0",
        "--workers", "0", "--seed", "11", "--device", "cpu", "--micro-batch", "3",
        "--out", str(tmp_path / "two.safetensors"), "--log", str(tmp_path / "two.jsonl"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    one = _adapters(tmp_path / "one.state.safetensors")
    two = _adapters(tmp_path / "two.state.safetensors")
    assert one.keys() == two.keys()
    start = _adapters_at_init()
    moved = max(float((one[k] - start[k]).abs().max()) for k in one)
    assert moved > 1e-3
    for key in one:
        torch.testing.assert_close(two[key], one[key], atol=2e-5, rtol=1e-4)
    _, meta = read_checkpoint(tmp_path / "two.safetensors")
    assert meta["provenance"]["steps"] == 6
    assert meta["threshold"] == pytest.approx(single.threshold, abs=1e-4)
    assert meta["provenance"]["val_ap"] == pytest.approx(single.val_ap, abs=1e-6)
    records = [json.loads(line) for line in (tmp_path / "two.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["event"] == "eval"] == [3, 6]


def _adapters_at_init() -> dict[str, torch.Tensor]:
    from aigdetect.models.factory import create_detector

    detector = create_detector(TINY, MoLEConfig(blocks=3), backbone_weights="none", seed=11)
    return detector.adapter_state_dict()
