"""How scan time and memory grow with the number of files and with image size.

Runs `aigdetect scan` in a subprocess per configuration and reports wall time, the scan's own
images/s, and the child's peak resident memory, so a non-linear walk, a growing row buffer or a
leak shows up as a falling rate or a growing peak.

    python benchmarks/scan_scaling.py --counts 1000,10000,100000 --sizes 256,1024,2048,4096
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from aigdetect import MoLEConfig, create_detector, save_detector


def write_files(folder: Path, count: int, side: int, fmt: str, seed: int = 0) -> None:
    """``count`` images of side x side in 1,000-file folders; few distinct images keep generation fast."""
    rng = np.random.default_rng(seed)
    pool = []
    for _ in range(16):
        small = rng.integers(0, 256, (max(1, side // 8), max(1, side // 8), 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((side, side), Image.BILINEAR)
        path = folder / f"pool{len(pool)}.{fmt}"
        folder.mkdir(parents=True, exist_ok=True)
        image.save(path, quality=90) if fmt == "jpg" else image.save(path)
        pool.append(path.read_bytes())
        path.unlink()
    for i in range(count):
        target = folder / f"d{i // 1000:04d}" / f"{i:07d}.{fmt}"
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(pool[i % len(pool)])


def run_scan(checkpoint: Path, folder: Path, out: Path, args: argparse.Namespace) -> dict[str, float]:
    command = [sys.executable, "-m", "aigdetect", "scan", str(folder), "--checkpoint", str(checkpoint),
               "--device", args.device, "--format", "json", "--out", str(out)]
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"scan failed on {folder}")
    summary = json.loads(out.read_text())["summary"]
    return {"wall_s": wall, "images_per_s": float(summary["images_per_s"]), "peak_rss_mib": usage.ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="tests/assets/tiny.json")
    parser.add_argument("--backbone-weights", default="none")
    parser.add_argument("--counts", default="1000,10000,100000", help="file counts (64x64 PNGs)")
    parser.add_argument("--sizes", default="256,1024,2048,4096", help="image sides for the size sweep (JPEG)")
    parser.add_argument("--size-count", type=int, default=64, help="files per size")
    args = parser.parse_args()
    detector = create_detector(args.model, MoLEConfig(blocks=3), backbone_weights=args.backbone_weights)
    print(f"model: {args.model}  device: {args.device}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        checkpoint = root / "detector.safetensors"
        save_detector(detector, checkpoint)
        print("files      wall_s  images/s  peak_rss_mib")
        for count in (int(c) for c in args.counts.split(",") if c):
            folder = root / f"n{count}"
            write_files(folder, count, 64, "png")
            r = run_scan(checkpoint, folder, root / f"n{count}.json", args)
            print(f"{count:<9d} {r['wall_s']:8.1f} {r['images_per_s']:9.1f} {r['peak_rss_mib']:13.0f}")
        print("side      wall_s  images/s  peak_rss_mib")
        for side in (int(s) for s in args.sizes.split(",") if s):
            folder = root / f"s{side}"
            write_files(folder, args.size_count, side, "jpg")
            r = run_scan(checkpoint, folder, root / f"s{side}.json", args)
            print(f"{side:<9d} {r['wall_s']:8.1f} {r['images_per_s']:9.1f} {r['peak_rss_mib']:13.0f}")


if __name__ == "__main__":
    main()
