"""The Ray engine against the local engine on the same files: whole `aigdetect scan` processes, alternated.

Each round runs the local engine (CSV out) and the Ray engine (a fresh Parquet folder, a local
Ray started by the command) on the same folder, in alternating order, and reports each one's wall
time, the ratio Ray/local per round (median and range), and the Ray run's rows per second per
scoring actor (rows of the run over its scoring time, divided by the actors).

    python benchmarks/ray_scan.py --files 2000 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from aigdetect import MoLEConfig, create_detector, save_detector


def write_files(folder: Path, count: int, side: int, seed: int = 0) -> None:
    """``count`` JPEGs of side x side in folders of 500, from 16 distinct images (generation stays fast)."""
    rng = np.random.default_rng(seed)
    pool = []
    for index in range(16):
        small = rng.integers(0, 256, (side // 8, side // 8, 3), dtype=np.uint8)
        path = folder / f"pool{index}.jpg"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(small).resize((side, side), Image.BILINEAR).save(path, quality=90)
        pool.append(path.read_bytes())
        path.unlink()
    for i in range(count):
        target = folder / f"d{i // 500:03d}" / f"{i:06d}.jpg"
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(pool[i % len(pool)])


def run(engine: str, checkpoint: Path, folder: Path, work: Path, round_: int, actors: int | None) -> dict[str, float]:
    out = work / (f"local{round_}.csv" if engine == "local" else f"ray{round_}.parquet")
    summary = work / f"{engine}{round_}.summary.json"
    command = [sys.executable, "-m", "aigdetect", "scan", str(folder), "--checkpoint", str(checkpoint), "--allow-random-backbone",
               "--device", "cpu", "--engine", engine, "--out", str(out), "--summary-json", str(summary), "--quiet"]  # fmt: skip
    if engine == "ray" and actors:
        command += ["--ray-actors", str(actors)]
    start = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{engine} scan failed: {done.stderr.strip().splitlines()[-1:]}")
    facts = json.loads(summary.read_text())
    shutil.rmtree(out) if out.is_dir() else out.unlink()
    return {"wall_s": wall, "rows": facts["scored"], "scoring_s": facts["scoring_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--side", type=int, default=256, help="image side (JPEG)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", default="benchmarks/tiny224.json")
    parser.add_argument("--ray-actors", type=int, default=None, help="scoring actors (default: the engine's own)")
    args = parser.parse_args()
    detector = create_detector(args.model, MoLEConfig(blocks=2), backbone_weights="none")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        checkpoint = work / "detector.safetensors"
        save_detector(detector, checkpoint)
        folder = work / "files"
        write_files(folder, args.files, args.side)
        print(f"files: {args.files} JPEGs of {args.side} px; model: {args.model}; rounds: {args.rounds}")
        ratios, per_actor = [], []
        for round_ in range(args.rounds):
            order = ("local", "ray") if round_ % 2 == 0 else ("ray", "local")
            result = {engine: run(engine, checkpoint, folder, work, round_, args.ray_actors) for engine in order}
            ratio = result["ray"]["wall_s"] / result["local"]["wall_s"]
            ratios.append(ratio)
            actors = args.ray_actors or 1
            per_actor.append(result["ray"]["rows"] / result["ray"]["scoring_s"] / actors)
            print(f"round {round_} ({order[0]} first): local {result['local']['wall_s']:.1f} s, ray {result['ray']['wall_s']:.1f} s, "
                  f"ratio {ratio:.2f}, ray rows/s per actor {per_actor[-1]:.1f}")  # fmt: skip
        print(f"ray/local wall ratio: median {statistics.median(ratios):.2f} (min {min(ratios):.2f}, max {max(ratios):.2f})")
        print(f"ray rows/s per actor: median {statistics.median(per_actor):.1f} (min {min(per_actor):.1f}, max {max(per_actor):.1f})")


if __name__ == "__main__":
    main()
