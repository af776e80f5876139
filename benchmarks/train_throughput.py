"""Training throughput: images/s and peak memory of a MoLE training step, against an inference forward.

The step is the one ``aigdetect train`` runs (``training.accumulate.gradient_step``: fp16 autocast and
a gradient scaler on CUDA, micro-batches when the batch does not fit, then AdamW), on random uint8
images already on the device, so decoding and host-to-device copies are left out. The inference
forward scores the same batch in eval mode under ``inference_mode`` and the same autocast.

The issue's target is that a training step with 3 adapted blocks costs at most 1.6x an inference
forward of the same batch: the frozen early blocks build no autograd graph, so only the adapted tail
pays for backward.

    python benchmarks/train_throughput.py --device cpu --model tests/assets/tiny.json --backbone-weights none --recipe paper
    python benchmarks/train_throughput.py --device cuda --model vitl14 --backbone-weights none --recipe paper --json l14.json

``--recipe paper`` takes the paper's batch of 1024 (``--batch-size`` still wins). On CUDA the
micro-batch is chosen as training chooses it (the whole batch, halved until it fits) unless
``--micro-batch`` is given; on the CPU the whole batch runs at once unless it is given.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from aigdetect import MoLEConfig, create_detector
from aigdetect.data.transforms import normalize_pixels
from aigdetect.engine.infer import resolve_device
from aigdetect.engine.plan import autocast
from aigdetect.training.accumulate import fit_micro_batch, gradient_step, micro_slices
from aigdetect.training.config import RECIPES


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_memory_mib(device: torch.device) -> float:
    """Peak GPU memory allocated since the last reset; on the CPU the process's peak RSS so far."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed(fn, device: torch.device, warmup: int, repeats: int) -> tuple[float, float]:
    """(seconds per call, peak memory MiB) after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    _reset_peak(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / repeats, _peak_memory_mib(device)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    device = resolve_device(args.device)
    torch.manual_seed(0)
    batch = args.batch_size or (RECIPES.get(args.recipe).batch_size if args.recipe else 32)
    lr = RECIPES.get(args.recipe).lr if args.recipe else 6e-4
    detector = create_detector(args.model, MoLEConfig(blocks=args.blocks), backbone_weights=args.backbone_weights)
    detector.to(device).train()
    size = detector.image_size
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, generator=generator).to(device)
    labels = (torch.arange(batch) % 2).float().to(device)
    optimizer = torch.optim.AdamW(detector.trainable_parameters(), lr=lr, weight_decay=0.01)
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")

    micro = args.micro_batch
    automatic = micro is None and device.type == "cuda"
    if automatic:
        micro = fit_micro_batch(detector, pixels, labels, device)
    micro = micro or batch

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        gradient_step(
            detector, pixels, labels, device=device, micro_batch=micro,
            backward=lambda loss: scaler.scale(loss).backward(),
        )
        scaler.step(optimizer)
        scaler.update()

    def forward() -> None:
        with torch.inference_mode():
            for part in micro_slices(batch, inference_batch):
                with autocast(device.type, "fp16"):
                    detector(normalize_pixels(pixels[part], detector.preprocess))

    step_s, train_peak = _timed(train_step, device, args.warmup, args.repeats)
    detector.eval()
    inference_batch = batch
    try:
        forward_s, forward_peak = _timed(forward, device, args.warmup, args.repeats)
    except torch.OutOfMemoryError:
        inference_batch = micro
        forward_s, forward_peak = _timed(forward, device, args.warmup, args.repeats)
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "model": args.model,
        "blocks": args.blocks,
        "recipe": args.recipe,
        "batch": batch,
        "micro_batch": micro,
        "micro_batch_automatic": automatic,
        "inference_batch": inference_batch,
        "autocast": "fp16" if device.type == "cuda" else "none",
        "train_step_s": step_s,
        "train_images_per_s": batch / step_s,
        "train_peak_mib": train_peak,
        "inference_images_per_s": batch / forward_s,
        "inference_peak_mib": forward_peak,
        "train_over_inference": step_s / forward_s,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model", default="vitb32")
    parser.add_argument("--backbone-weights", default=None, help="weights file, or 'none' for random weights")
    parser.add_argument("--blocks", type=int, default=3)
    parser.add_argument("--recipe", choices=RECIPES.names(), help="take the batch size and lr of a training recipe")
    parser.add_argument("--batch-size", type=int, help="images per step (default: the recipe's, else 32)")
    parser.add_argument("--micro-batch", type=int, help="images per forward/backward pass (default: as training chooses)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    results = measure(args)
    for key, value in results.items():
        print(f"{key}: {value:.3f}" if isinstance(value, float) else f"{key}: {value}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return results


if __name__ == "__main__":
    main()
