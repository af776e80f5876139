"""What reading evidence and hashing cost a scan: the same folder scanned with and without each, alternated.

Variants (all `aigdetect scan` processes on the same files, rounds A B C D A B C D ...):
  full:        evidence and SHA-256 (the defaults)
  no-evidence: --no-evidence
  no-sha256:   --no-sha256
  bare:        --no-evidence --no-sha256
The rate of each run is the scan's own (its summary's images/s: walking, decoding, scoring, writing;
interpreter start-up and model loading excluded). Reported: the median over rounds with min-max,
and each variant's median time per file relative to `bare`, paired round by round.

    python benchmarks/scan_overhead.py --model tests/assets/tiny.json --n 1000 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

VARIANTS = {
    "full": [],
    "no-evidence": ["--no-evidence"],
    "no-sha256": ["--no-sha256"],
    "bare": ["--no-evidence", "--no-sha256"],
}


def generate(folder: Path, n: int, seed: int = 0) -> None:
    """n files: three quarters 256x256 PNG, a quarter 512x512 JPEG, smooth noise; a tenth carry generator text."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        side, fmt = (512, "JPEG") if i % 4 == 3 else (256, "PNG")
        small = rng.integers(0, 256, (side // 8, side // 8, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((side, side), Image.BILINEAR)
        options: dict = {"quality": 90} if fmt == "JPEG" else {}
        if fmt == "PNG" and i % 10 == 0:
            from PIL import PngImagePlugin

            info = PngImagePlugin.PngInfo()
            info.add_text("parameters", "a photo\nSteps: 20, Sampler: Euler, Model: sd_xl_base_1.0")
            options["pnginfo"] = info
        image.save(folder / f"{i:06d}.{'jpg' if fmt == 'JPEG' else 'png'}", format=fmt, **options)


def run(folder: Path, checkpoint: Path, out: Path, extra: list[str], args: argparse.Namespace) -> float:
    command = [sys.executable, "-m", "aigdetect", "scan", str(folder), "--checkpoint", str(checkpoint), "--out", str(out),
               "--overwrite", "--quiet", "--device", "cpu", "--summary-json", str(out) + ".s.json", *extra]  # fmt: skip
    if args.workers is not None:
        command += ["--workers", str(args.workers)]
    subprocess.run(command, check=True)
    return float(json.loads(Path(str(out) + ".s.json").read_text())["images_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tests/assets/tiny.json")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    from aigdetect import MoLEConfig, create_detector, save_detector

    print(f"cpus: {os.cpu_count()}  load before: {os.getloadavg()[0]:.2f}  files: {args.n}  model: {args.model}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        checkpoint = root / "detector.safetensors"
        save_detector(create_detector(args.model, MoLEConfig(blocks=3), backbone_weights="none"), checkpoint)
        generate(root / "images", args.n)
        rates: dict[str, list[float]] = {name: [] for name in VARIANTS}
        for _ in range(args.rounds):
            for name, extra in VARIANTS.items():
                rates[name].append(run(root / "images", checkpoint, root / f"{name}.csv", extra, args))
    print(f"load after: {os.getloadavg()[0]:.2f}")
    print(f"{'variant':12s} {'median img/s':>13s} {'min-max':>17s} {'time/file vs bare':>18s}")
    for name, values in rates.items():
        paired = statistics.median(b / v for v, b in zip(values, rates["bare"]))
        print(f"{name:12s} {statistics.median(values):13.1f} {min(values):8.1f}-{max(values):<8.1f} {paired:18.3f}")


if __name__ == "__main__":
    main()
