"""Load on `aigdetect serve`: requests per second and latency at several concurrencies, the service's
memory before and after, and its throughput against `aigdetect scan` on the same files.

The service runs as users start it (`python -m aigdetect serve`, a subprocess on a free port, no
token on loopback); this script is its client: asyncio and httpx, each request uploading one file
(cycling over the generated ones), `--concurrency` requests in flight at once. Reported per level:
requests/s over the level's wall time, p50/p95/p99 latency, errors (any answer but 200, or a
report with an error), and the service's RSS (from /proc) before the first level (after a warm-up)
and after the last. The scan baseline is `aigdetect scan` over the same folder, its own images/s
(its summary: model loading excluded).

    python benchmarks/serve_load.py --model tiny --concurrency 1,8,32 --requests 300
    python benchmarks/serve_load.py --model vitb32 --concurrency 1,8,32 --requests 96
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scan_overhead import generate  # noqa: E402

MODELS = {"tiny": str(Path(__file__).resolve().parent.parent / "tests" / "assets" / "tiny.json"), "vitb32": "vitb32"}
RANDOM = ["--backbone-weights", "none", "--allow-random-backbone"]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(checkpoint: Path, port: int, args: argparse.Namespace, log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "aigdetect", "serve", "--checkpoint", str(checkpoint), "--port", str(port), *RANDOM,
               "--device", "cpu", "--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms)]  # fmt: skip
    if args.workers is not None:
        command += ["--workers", str(args.workers)]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=sink)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/health").status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("the server did not become healthy")


async def level(url: str, bodies: list[tuple[str, bytes]], concurrency: int, requests: int) -> dict[str, object]:
    """``requests`` uploads with ``concurrency`` in flight: rate, latency percentiles, errors."""
    latencies: list[float] = []
    errors = 0
    taken = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors, taken
        while taken < requests:
            name, body = bodies[taken % len(bodies)]
            taken += 1
            started = time.perf_counter()
            response = await client.post("/v1/inspect", files=[("files", (name, body))])
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200 or "error" in response.json()[0]:
                errors += 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        wall = time.perf_counter() - started
    p50, p95, p99 = (float(np.percentile(latencies, q)) * 1000 for q in (50, 95, 99))
    return {"concurrency": concurrency, "requests": requests, "rps": requests / wall, "p50_ms": p50, "p95_ms": p95,
            "p99_ms": p99, "errors": errors}  # fmt: skip


def batch_totals(url: str) -> tuple[float, float]:
    """Files scored and batches so far, from the service's metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    values = {s.name: s.value for f in text_string_to_metric_families(httpx.get(f"{url}/metrics").text) for s in f.samples}
    return values.get("aigdetect_batch_files_sum", 0.0), values.get("aigdetect_batch_files_count", 0.0)


def measured(url: str, bodies: list[tuple[str, bytes]], concurrency: int, requests: int) -> dict[str, object]:
    """``level``, with the mean batch size the service formed meanwhile."""
    files, batches = batch_totals(url)
    row = asyncio.run(level(url, bodies, concurrency, requests))
    files_after, batches_after = batch_totals(url)
    row["mean_batch"] = (files_after - files) / max(1.0, batches_after - batches)
    return row


def scan_rate(folder: Path, checkpoint: Path, out: Path, args: argparse.Namespace) -> float:
    command = [sys.executable, "-m", "aigdetect", "scan", str(folder), "--checkpoint", str(checkpoint), "--out", str(out),
               "--overwrite", "--quiet", "--device", "cpu", "--summary-json", str(out) + ".s.json", *RANDOM]  # fmt: skip
    if args.workers is not None:
        command += ["--workers", str(args.workers)]
    subprocess.run(command, check=True)
    summary = json.loads(Path(str(out) + ".s.json").read_text())
    return float(summary["images_per_s"])


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=list(MODELS), default="tiny")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--requests", type=int, default=300, help="requests per concurrency level")
    parser.add_argument("--files", type=int, default=256, help="distinct image files uploaded in turn (and scanned)")
    parser.add_argument("--workers", type=int, default=None, help="decode workers of the service and the scan (default: the plan's)")
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=10.0)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)

    from aigdetect import MoLEConfig, create_detector, save_detector

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = root / "images"
        generate(folder, args.files)
        checkpoint = root / "model.safetensors"
        save_detector(create_detector(MODELS[args.model], MoLEConfig(), backbone_weights="none"), checkpoint)
        files = sorted(folder.iterdir())
        bodies = [(p.name, p.read_bytes()) for p in files]
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        process = start_server(checkpoint, port, args, root / "serve.log")
        try:
            asyncio.run(level(url, bodies, 4, len(bodies)))
            rss_before = rss_kib(process.pid)
            levels = [measured(url, bodies, int(c), args.requests) for c in args.concurrency.split(",")]
            rss_after = rss_kib(process.pid)
            health = httpx.get(f"{url}/v1/health").status_code
        finally:
            process.terminate()
            process.wait(120)
        scan = scan_rate(folder, checkpoint, root / "scan.jsonl", args)
    figures = {
        "model": args.model, "files": args.files, "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version()},
        "levels": levels, "rss_kib_before": rss_before, "rss_kib_after": rss_after, "requests_total": args.requests * len(levels),
        "health_after": health, "scan_images_per_s": scan,
    }  # fmt: skip
    print(f"model {args.model}, {args.files} files (256 px PNG, 512 px JPEG), scan {scan:.1f} images/s")
    print("| concurrency | requests | req/s | p50 ms | p95 ms | p99 ms | errors | mean batch | vs scan |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in levels:
        print(f"| {row['concurrency']} | {row['requests']} | {row['rps']:.1f} | {row['p50_ms']:.0f} | {row['p95_ms']:.0f} | "
              f"{row['p99_ms']:.0f} | {row['errors']} | {row['mean_batch']:.1f} | {row['rps'] / scan:.2f} |")  # fmt: skip
    print(f"service RSS {rss_before / 1024:.0f} MiB before, {rss_after / 1024:.0f} MiB after {figures['requests_total']} requests;"
          f" health {health}")  # fmt: skip
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=1))
    return figures


if __name__ == "__main__":
    main()
