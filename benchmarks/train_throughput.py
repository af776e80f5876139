"""Training throughput: images/s and peak memory of a MoLE training step, against an inference forward.

The issue's target is that a training step with 3 adapted blocks costs at most 1.6x an inference
forward of the same batch: the frozen early blocks build no autograd graph, so only the adapted tail
pays for backward.

    python benchmarks/train_throughput.py --device cpu --model tests/assets/tiny.json --backbone-weights none
    python benchmarks/train_throughput.py --device cuda --model vitl14 --batch-size 64 --n 640
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from aigdetect import MoLEConfig, create_detector
from aigdetect.engine.infer import autocast_for, resolve_device


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(args: argparse.Namespace) -> dict[str, float]:
    device = resolve_device(args.device)
    detector = create_detector(args.model, MoLEConfig(blocks=args.blocks), backbone_weights=args.backbone_weights)
    detector.to(device)
    size = detector.image_size
    pixels = torch.randn(args.batch_size, 3, size, size, device=device)
    labels = (torch.arange(args.batch_size, device=device) % 2).float()
    optimizer = torch.optim.AdamW(detector.trainable_parameters(), lr=6e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")
    steps = max(1, args.n // args.batch_size)

    def train_step() -> None:
        detector.train()
        optimizer.zero_grad(set_to_none=True)
        with autocast_for(device):
            output = detector(pixels)
        scaler.scale(detector.loss(output, labels)["loss"]).backward()
        scaler.step(optimizer)
        scaler.update()

    def forward() -> None:
        detector.eval()
        with torch.inference_mode(), autocast_for(device):
            detector(pixels)

    results = {}
    for name, fn in (("train_step", train_step), ("inference_forward", forward)):
        for _ in range(args.warmup):
            fn()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        _sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            fn()
        _sync(device)
        elapsed = time.perf_counter() - start
        results[f"{name}_images_per_s"] = steps * args.batch_size / elapsed
        results[f"{name}_peak_mib"] = _peak_memory_mib(device)
    results["train_over_forward"] = results["inference_forward_images_per_s"] / results["train_step_images_per_s"]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model", default="vitb32")
    parser.add_argument("--backbone-weights", default=None)
    parser.add_argument("--blocks", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--n", type=int, default=256, help="images per measurement")
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    results = measure(args)
    print(f"device: {resolve_device(args.device)}  model: {args.model}  blocks: {args.blocks}  batch: {args.batch_size}")
    for key, value in results.items():
        print(f"{key}: {value:.2f}")
    print(f"ratio train/forward cost: {results['train_over_forward']:.2f}")


if __name__ == "__main__":
    main()
