"""What the feature cache saves: a first and a second ``train --probe`` on the same images.

The first fit decodes every image and runs the frozen backbone on every view, writing the
features to the cache; the second reads them back and decodes nothing, so it costs the model's
construction, hashing the files and the head's fit. Both run in this process, through the library
call the command makes (``training.probe.fit_probe``), on a seeded synthetic set (PNG, ``--size``
pixels, 10 % of it held out for validation) with a randomly initialised backbone: the timings do
not depend on the weights.

    python benchmarks/probe_cache.py --n 2000 --model vitb32
    python benchmarks/probe_cache.py --n 200 --model vitb32 --views 1 --threads 2
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from aigdetect import MoLEConfig
from aigdetect.data.synthetic import write_synthetic_dataset
from aigdetect.training.config import ProbeConfig, TrainConfig
from aigdetect.training.probe import fit_probe


def _fit(config: TrainConfig) -> tuple[float, dict]:
    began = time.perf_counter()
    summary = fit_probe(config, lambda event: None)
    return time.perf_counter() - began, summary


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="images in all (train and validation)")
    parser.add_argument("--model", default="vitb32")
    parser.add_argument("--views", type=int, default=0, help="augmented views per image besides the centre crop")
    parser.add_argument("--size", type=int, default=256, help="side of the synthetic images")
    parser.add_argument("--epochs", type=int, default=10, help="passes of the head over the cached features")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="aigdetect-probe-") as scratch:
        root = Path(scratch)
        per_class = max(2, round(args.n * 0.45))
        write_synthetic_dataset(root / "data", "wang2020", per_class=per_class, size=args.size, seed=args.seed,
                                val_per_class=max(1, round(args.n * 0.05)))  # fmt: skip
        config = TrainConfig(
            out=str(root / "probe.safetensors"), data=str(root / "data"), model=args.model, backbone_weights="none",
            mole=MoLEConfig(blocks=0), epochs=args.epochs, seed=args.seed,
            probe=ProbeConfig(feature_cache=str(root / "fc"), views=args.views),
        )  # fmt: skip
        first_s, first = _fit(config)
        second_s, second = _fit(config)
        images = first["train_images"] + first["val_images"]
        cache_bytes = sum(p.stat().st_size for p in (root / "fc").rglob("*.npy"))
    figures = {
        "date": datetime.now(timezone.utc).isoformat(timespec="minutes"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}",
        "load_average": os.getloadavg(),
        "model": args.model, "images": images, "views": args.views + 1,
        "first_s": round(first_s, 2), "second_s": round(second_s, 2), "ratio": round(first_s / second_s, 2),
        "first_decoded": first["decoded"], "second_decoded": second["decoded"],
        "first_extract_s": round(first["extract_s"], 2), "second_extract_s": round(second["extract_s"], 2),
        "cache_bytes_per_image": round(cache_bytes / images),
    }  # fmt: skip
    for key, value in figures.items():
        print(f"{key}: {value}")
    return figures


if __name__ == "__main__":
    main()
