"""Memory and time of scans over very many files: a fresh scan, a finished resume, and a merge of shards.

The files are empty (an empty file costs an inode, not a block), spread over folders of 1,000, so the
walk, the decode workers, the rows and the writer do their full work per file while decoding itself
costs nothing (each file is an ``unsupported`` row). Each command runs in its own process; reported:
wall time, files per second, and the peak resident memory of the scan's main process (VmHWM), in
total and per file above a 1,000-file run of the same command.

    python benchmarks/scan_memory.py --counts 1000,100000,1000000
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

DRIVER = (
    "import sys\n"
    "from aigdetect.cli import main\n"
    "sys.argv = ['aigdetect', *sys.argv[1:]]\n"
    "try:\n"
    "    main()\n"
    "except SystemExit as exc:\n"
    "    code = exc.code\n"
    "peak = next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM'))\n"
    "print(peak, code, file=sys.stderr)\n"
)


def make_files(root: Path, count: int) -> None:
    for start in range(0, count, 1000):
        folder = root / f"d{start // 1000:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(start, min(count, start + 1000)):
            (folder / f"f{i:08d}.png").touch()


def run(arguments: list[str]) -> tuple[float, int]:
    """(wall seconds, peak KiB of the main process) of one `aigdetect` command."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", DRIVER, *arguments], capture_output=True, text=True)
    wall = time.perf_counter() - started
    peak, code = done.stderr.strip().splitlines()[-1].split()
    if code not in ("0", "None"):
        raise SystemExit(f"aigdetect {' '.join(arguments)} failed:\n{done.stderr}")
    return wall, int(peak)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="1000,100000")
    parser.add_argument("--model", default="tests/assets/tiny.json")
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    from aigdetect import MoLEConfig, create_detector, save_detector

    counts = [int(c) for c in args.counts.split(",")]
    print(f"cpus: {os.cpu_count()}  load: {os.getloadavg()[0]:.2f}  model: {args.model}")
    print(f"{'files':>9s} {'command':8s} {'wall s':>8s} {'files/s':>9s} {'peak MiB':>9s} {'KiB/file over base':>19s}")
    results: dict[str, dict[int, tuple[float, int]]] = {"scan": {}, "resume": {}, "merge": {}}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        checkpoint = root / "detector.safetensors"
        save_detector(create_detector(args.model, MoLEConfig(blocks=3), backbone_weights="none"), checkpoint)
        for count in counts:
            tree = root / f"tree{count}"
            make_files(tree, count)
            out, merged = root / f"v{count}.csv", root / f"m{count}.csv"
            common = ["scan", str(tree), "--checkpoint", str(checkpoint), "--quiet", "--no-sha256"]
            if args.workers is not None:
                common += ["--workers", str(args.workers)]
            results["scan"][count] = run([*common, "--out", str(out)])
            results["resume"][count] = run([*common, "--out", str(out), "--resume"])
            for k in range(2):
                run([*common, "--out", str(merged), "--shard", f"{k}/2"])
            results["merge"][count] = run(["scan", "--merge", str(merged), "--quiet"])
            for command, by_count in results.items():
                wall, peak = by_count[count]
                base = by_count[counts[0]][1]
                per_file = (peak - base) / count if count != counts[0] else float("nan")
                print(f"{count:9d} {command:8s} {wall:8.1f} {count / wall:9.0f} {peak / 1024:9.1f} {per_file:19.3f}")
    print(json.dumps({c: {k: v[c] for k, v in results.items()} for c in counts}))


if __name__ == "__main__":
    main()
