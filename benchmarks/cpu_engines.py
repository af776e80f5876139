"""CPU engines against torch eager fp32: speed and score shift, on the same preprocessed batches.

Every installed engine and precision (torch fp32, ONNX Runtime fp32 and int8, OpenVINO fp32 and
bf16) scores the same normalised batches. Timed rounds alternate the engines (A B C A B C ...), so
a change in machine load hits all of them alike; the table gives the median images/s over rounds
with the min-max spread, the speed-up against torch fp32 (the median over rounds of each round's
ratio to torch's rate in that same round, so slow drifts in load cancel), and the largest logit
and score shifts against torch fp32 over all images, with the verdicts flipped at 0.5.

    python benchmarks/cpu_engines.py --model tiny --n 512 --rounds 7
    python benchmarks/cpu_engines.py --model vitb32 --n 64 --rounds 5
    python benchmarks/cpu_engines.py --model vitl14 --n 32 --rounds 3

Weights are random (``--backbone-weights none``, the same cost as real weights) and the MoLE B
matrices get small random values so that the bypasses change the output, as after training. The
images are smooth random 256 px pictures, centre-cropped and normalised as a scan does. Exports go
to a fresh temporary cache unless ``--cache-dir`` is given; the time to open each engine (export,
quantize or convert, then load) is reported too.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from aigdetect import MoLEConfig, create_detector
from aigdetect.data.preprocess import PreprocessConfig
from aigdetect.data.transforms import eval_tensor
from aigdetect.engine import backends
from aigdetect.engine.backends import EngineConfig, Runner, compare_logits, open_runner
from aigdetect.errors import ConfigError

MODELS = {"tiny": str(Path(__file__).resolve().parent.parent / "tests" / "assets" / "tiny.json"), "vitb32": "vitb32", "vitl14": "vitl14"}
ENGINES = [("torch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("openvino", "fp32"), ("openvino", "bf16")]


@dataclass
class Measured:
    runner: Runner
    open_s: float
    rates: list[float] = field(default_factory=list)
    logits: np.ndarray | None = None


def machine() -> dict[str, object]:
    model, flags = "unknown", set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name") and model == "unknown":
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "avx512_bf16": "avx512_bf16" in flags,
        "amx_bf16": "amx_bf16" in flags,
        "avx512_vnni": "avx512_vnni" in flags,
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def images(n: int, preprocess: PreprocessConfig, seed: int) -> np.ndarray:
    """n smooth random 256 px RGB pictures, centre-cropped and normalised: (n, 3, S, S) float32."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        small = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        array = np.asarray(Image.fromarray(small).resize((256, 256), Image.BILINEAR))
        out.append(eval_tensor(array, preprocess).numpy())
    return np.stack(out)


def build_detector(args: argparse.Namespace):
    detector = create_detector(MODELS[args.model], MoLEConfig(blocks=args.blocks), backbone_weights="none", seed=args.seed)
    generator = torch.Generator().manual_seed(args.seed + 7)
    with torch.no_grad():
        for name, param in detector.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.02)
    return detector.eval()


def run_all(runner: Runner, batches: list[np.ndarray]) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    logits = [runner.logits(batch) for batch in batches]
    elapsed = time.perf_counter() - start
    return sum(len(b) for b in batches) / elapsed, np.concatenate(logits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=list(MODELS), default="vitb32")
    parser.add_argument("--blocks", type=int, default=3, help="MoLE-adapted blocks")
    parser.add_argument("--n", type=int, default=64, help="images per round")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per engine, alternating")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads of every engine (default: all cores)")
    parser.add_argument(
        "--engines",
        default=",".join(f"{b}:{p}" for b, p in ENGINES),
        help="backend:precision list; torch:fp32, the reference, is always measured",
    )
    parser.add_argument("--force-bf16", action="store_true", help="run OpenVINO bf16 even without bf16 units (emulated)")
    parser.add_argument("--cache-dir", default=None, help="engine cache (default: a fresh temporary folder)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    info = machine()
    load_before = os.getloadavg()
    print(f"date: {time.strftime('%Y-%m-%d %H:%M')}  " + "  ".join(f"{k}: {v}" for k, v in info.items()))
    print(f"model: {args.model}  blocks: {args.blocks}  n: {args.n}  batch: {args.batch_size}  rounds: {args.rounds}  threads: {args.threads or 'all'}")
    print(f"load average before (1, 5, 15 min): {', '.join(f'{v:.2f}' for v in load_before)}")

    detector = build_detector(args)
    pixels = images(args.n, detector.preprocess, args.seed)
    batches = [pixels[i : i + args.batch_size] for i in range(0, len(pixels), args.batch_size)]
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="aigdetect-engines-") as scratch:
        cache = args.cache_dir or scratch
        measured: dict[str, Measured] = {}
        wanted = [tuple(item.split(":", 1)) for item in args.engines.split(",") if item]
        for backend, precision in [("torch", "fp32")] + [e for e in wanted if e != ("torch", "fp32")]:
            label = f"{backend} {precision}"
            try:
                config = EngineConfig(backend, precision, threads=args.threads, force_bf16=args.force_bf16)
                start = time.perf_counter()
                runner = open_runner(detector, config, cache_dir=cache)
                runner.logits(batches[0])  # first call: lazy initialisation, not timed
                measured[label] = Measured(runner, time.perf_counter() - start)
            except ConfigError as exc:
                print(f"skipped {label}: {exc}")

        for _ in range(args.rounds):
            for entry in measured.values():
                rate, logits = run_all(entry.runner, batches)
                entry.rates.append(rate)
                entry.logits = logits if entry.logits is None else entry.logits

    load_after = os.getloadavg()
    reference = measured["torch fp32"]
    rows = []
    print()
    print("| engine | open s | img/s median | min-max | speed-up | max logit shift | max score shift | flips @0.5 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for entry in measured.values():
        median = statistics.median(entry.rates)
        speedup = statistics.median(r / t for r, t in zip(entry.rates, reference.rates))
        shift = compare_logits(reference.logits, entry.logits)
        rows.append(
            {
                "engine": entry.runner.engine_id,
                "open_s": entry.open_s,
                "rates": entry.rates,
                "median": median,
                "speedup": speedup,
                "max_logit_shift": shift.max_logit,
                "max_score_shift": shift.max_score,
                "flips": shift.flips,
            }
        )
        print(
            f"| {entry.runner.engine_id} | {entry.open_s:.1f} | {median:.1f} | {min(entry.rates):.1f}-{max(entry.rates):.1f} "
            f"| {speedup:.2f}x | {shift.max_logit:.1e} | {shift.max_score:.1e} | {shift.flips}/{len(pixels)} |"
        )
    print()
    print(f"load average after (1, 5, 15 min): {', '.join(f'{v:.2f}' for v in load_after)}")
    if importlib.util.find_spec("openvino") is not None:
        info["openvino_bf16_units"] = backends.cpu_has_bf16()
        print(f"OpenVINO reports bf16 units: {info['openvino_bf16_units']}")
    if args.json:
        report = {
            "machine": info,
            "args": {k: str(v) for k, v in vars(args).items()},
            "load_before": load_before,
            "load_after": load_after,
            "images": len(pixels),
            "rows": rows,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
