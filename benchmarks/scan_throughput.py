"""Whole `aigdetect scan` processes against a plain UnivFD-style loop, alternated, on the same files.

Each round runs both, in alternating order (A B, then B A, ...), as fresh processes timed from
start to exit, so that imports, model building, walking, decoding, scoring and writing all count:
  scan:     python -m aigdetect scan FOLDER --checkpoint C --out rows.csv --device DEVICE [OPTIONS]
  baseline: python benchmarks/univfd_baseline.py FOLDER --checkpoint C (PIL, CenterCrop, ToTensor,
            Normalize, 4 workers, batch 128, fp32)
The detector has MoLE bypasses in its last `--blocks` blocks (3 by default) on a random-weight
backbone (`--backbone-weights none`, which a config-file model embeds in its checkpoint). Printed per image kind: the median wall time of each with its
min-max, the median of the per-round ratios scan/baseline, and the largest score difference.

    python benchmarks/scan_throughput.py --model vitb32 --kinds png256,jpeg512 --n 256 --rounds 5
    python benchmarks/scan_throughput.py --model tests/assets/tiny.json --kinds png256 --n 1000
    python benchmarks/scan_throughput.py --quick      # a small run that checks the script itself

The last line printed is `ratio scan/baseline: X.XX`, the geometric mean over the kinds.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
KINDS = {
    "png256": ((256, 256), "PNG", ".png"),
    "jpeg512": ((512, 512), "JPEG", ".jpg"),
    "jpeg12mp": ((4000, 3000), "JPEG", ".jpg"),
}


def generate(folder: Path, kind: str, n: int, seed: int = 0) -> None:
    """n images of one kind (a tenth as many 12-MP JPEGs, at least 2): smooth noise at photo-like sizes."""
    rng = np.random.default_rng(seed)
    (width, height), fmt, suffix = KINDS[kind]
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(max(2, n // 10) if kind == "jpeg12mp" else n):
        small = rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((width, height), Image.BILINEAR)
        image.save(folder / f"{i:06d}{suffix}", format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def scan_command(folder: Path, checkpoint: Path, out: Path, args: argparse.Namespace) -> list[str]:
    return [sys.executable, "-m", "aigdetect", "scan", str(folder), "--checkpoint", str(checkpoint), "--out", str(out),
            "--overwrite", "--quiet", "--device", args.device, "--backbone-weights", "none", "--allow-random-backbone", *args.scan_option]  # fmt: skip


def baseline_command(folder: Path, checkpoint: Path, out: Path) -> list[str]:
    return [sys.executable, str(HERE / "univfd_baseline.py"), str(folder), "--checkpoint", str(checkpoint), "--out", str(out),
            "--backbone-weights", "none"]  # fmt: skip


def largest_difference(rows: Path, scores: Path) -> float:
    baseline = json.loads(scores.read_text())
    with rows.open(newline="") as handle:
        scanned = {str(Path(row["path"]).resolve()): float(row["score"]) for row in csv.DictReader(handle)}
    if scanned.keys() != baseline.keys():
        raise SystemExit(f"scan and baseline scored different files: {len(scanned)} against {len(baseline)}")
    return max(abs(scanned[path] - baseline[path]) for path in scanned)


def measure(folder: Path, checkpoint: Path, work: Path, args: argparse.Namespace) -> tuple[list[float], list[float], float]:
    """Wall times of scan and baseline over the rounds, and the largest score difference."""
    rows, scores = work / "rows.csv", work / "scores.json"
    runs = {
        "scan": scan_command(folder, checkpoint, rows, args),
        "baseline": baseline_command(folder, checkpoint, scores),
    }
    times: dict[str, list[float]] = {"scan": [], "baseline": []}
    for round_ in range(args.rounds):
        order = ["scan", "baseline"] if round_ % 2 == 0 else ["baseline", "scan"]
        for name in order:
            times[name].append(timed(runs[name]))
    return times["scan"], times["baseline"], largest_difference(rows, scores)


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):7.2f} s ({min(values):.2f}-{max(values):.2f})"


def main(argv: list[str] | None = None) -> dict[str, tuple[list[float], list[float], float]]:
    """Print the figures; return, per kind, the scan and baseline wall times and the largest score difference."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="vitb32")
    parser.add_argument("--blocks", type=int, default=3, help="blocks with MoLE bypasses")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--n", type=int, default=256, help="images per kind")
    parser.add_argument("--kinds", default="png256,jpeg512")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--scan-option", action="append", default=[], help="passed to scan (repeat: --scan-option=--batch-size --scan-option=128)")
    parser.add_argument("--quick", action="store_true", help="the tiny model, 8 PNGs, one round")
    args = parser.parse_args(argv)
    if args.quick:
        args.model, args.n, args.kinds, args.rounds = str(HERE.parent / "tests/assets/tiny.json"), 8, "png256", 1
    from aigdetect import MoLEConfig, create_detector, save_detector

    kinds = [kind for kind in args.kinds.split(",") if kind]
    print(f"model: {args.model}  blocks: {args.blocks}  device: {args.device}  cores: {len(os.sched_getaffinity(0))}  "
          f"load before: {os.getloadavg()[0]:.2f}  options: {' '.join(args.scan_option) or '-'}")  # fmt: skip
    ratios, results = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        checkpoint = root / "detector.safetensors"
        save_detector(create_detector(args.model, MoLEConfig(blocks=args.blocks), backbone_weights="none"), checkpoint)
        for kind in kinds:
            generate(root / kind, kind, args.n)
            scan, base, difference = measure(root / kind, checkpoint, root, args)
            paired = statistics.median(a / b for a, b in zip(scan, base))
            ratios.append(paired)
            results[kind] = (scan, base, difference)
            files = len(list((root / kind).iterdir()))
            print(f"{kind:9s} files {files:6d}  scan {spread(scan)}  baseline {spread(base)}  "
                  f"scan/baseline {paired:.2f}  max score difference {difference:.1e}")  # fmt: skip
    print(f"load after: {os.getloadavg()[0]:.2f}")
    print(f"ratio scan/baseline: {math.exp(statistics.fmean(math.log(r) for r in ratios)):.2f}")
    return results


if __name__ == "__main__":
    main()
