"""One run that measures the scan on a GPU against its targets, within a time budget.

It writes its own images (PNGs of 256² and 12-megapixel JPEGs, on every core), builds detectors with
random backbone weights (the same cost as OpenAI's weights), and measures:
  phase 1, model only: images/s at batch 256 for fp32, fp16 autocast, the fp16 cast copy that scans
      use, and that copy under torch.compile; the largest score difference of each against fp32;
  phase 2, end to end: the scan (``run_scan``, what ``aigdetect scan`` runs, with the best settings of
      phase 1) in a child process, against the UnivFD validate.py pipeline (PIL, CenterCrop, ToTensor,
      Normalize, 4 DataLoader workers, batch 128, fp32) in another, on the first ``--baseline-files``
      of the same files (its rate is steady long before); the decode workers alone; scan/baseline
      and scan/ceiling (the best model-only figure). Each child reports its start-up (spawn to first
      scored batch: imports, CUDA context, model copy, first kernels) apart from its steady rate
      (the batches after the first); the ratios and targets compare steady rates;
  phase 3, GPU JPEG decoding on the 12-megapixel set: files/s of the decode alone against the CPU
      workers, the largest pixel and score differences against the CPU decode, and the scan with it
      (with the count of files that fell back to the CPU decoder, from the scan's summary);
  phase 4, the peak of GPU memory in each step.
Steps run in order of importance and one that would overrun ``--budget-s`` is skipped, so the least
important go first: vitb16, then torch.compile, then GPU decoding. Figures go to $OUT/gpu_check.json
and the table with the targets to $OUT/gpu_check.txt after every step (a time-out keeps what
finished); the table is printed at the end. A missed target names the stage that bounds it.

    bash benchmarks/device_check.sh .whl                    # on the GPU machine, with train_throughput after it
    bash benchmarks/device_check.sh --dry-run               # every step of the chain on the CPU, tiny sizes
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import closing, suppress
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

TARGETS = {
    "vitl14_png_over_baseline": 6.0,
    "vitl14_png_over_ceiling": 0.70,
    "vitb32_png_img_per_s": 6000.0,
    "jpeg12mp_over_baseline": 3.0,
    "fp16_max_score_diff": 2e-3,
    "gpu_decode_max_score_diff": 1e-3,
}
SCAN_START_S = 25.0
"""Seconds a child scan spends before its first batch (imports, random init, CUDA context), for the budget."""
COMPILE_S = {"vitl14": 120.0, "vitb16": 60.0, "vitb32": 50.0}


class Budget:
    """Wall-clock budget: a step whose estimate does not fit what is left is skipped."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def fits(self, estimate: float) -> bool:
        return estimate <= self.left()


class Phases:
    """Start-up (the child's spawn to its first scored batch: imports, CUDA context, model copy, first
    kernels) apart from the steady state (the batches after the first), so that a second of start-up
    does not pass for a slow scan. Wall-clock times, comparable across processes."""

    def __init__(self, spawned: float, clock=time.time) -> None:
        self.spawned = spawned
        self.clock = clock
        self.first: tuple[float, int] | None = None
        self.last: tuple[float, int] | None = None

    def batch_done(self, done: int) -> None:
        if done <= 0:
            return
        now = self.clock()
        if self.first is None:
            self.first = (now, done)
        self.last = (now, done)

    def figures(self) -> dict[str, Any]:
        if self.first is None or self.last is None:
            return {"startup_s": None, "steady_img_per_s": None, "steady_files": 0}
        (t0, n0), (t1, n1) = self.first, self.last
        steady = (n1 - n0) / (t1 - t0) if n1 > n0 and t1 > t0 else None
        return {"startup_s": round(t0 - self.spawned, 2), "steady_img_per_s": None if steady is None else round(steady, 1),
                "steady_files": n1 - n0}


class Report:
    """Results as they arrive: $OUT/gpu_check.json and the table in $OUT/gpu_check.txt, rewritten
    after every step, so that a run cut short keeps both."""

    def __init__(self, out: Path, headline: str) -> None:
        self.out = out
        self.headline = headline
        self.data: dict[str, Any] = {"steps": {}, "skipped": []}

    def save(self, key: str, value: Any) -> None:
        self.data["steps"][key] = value
        self._write()
        print(f"[{time.strftime('%H:%M:%S')}] {key}: {json.dumps(value, default=str)[:300]}", flush=True)

    def skip(self, key: str, why: str) -> None:
        self.data["skipped"].append({"step": key, "why": why})
        self._write()
        print(f"[{time.strftime('%H:%M:%S')}] skipped {key}: {why}", flush=True)

    def _write(self) -> None:
        (self.out / "gpu_check.json").write_text(json.dumps(self.data, indent=1, default=str))
        (self.out / "gpu_check.txt").write_text(table(self) + "\n")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)


def peak_mib(device: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if device.type == "cuda" else None


# ------------------------------------------------------------------ data
def _write_png(task: tuple[str, int, int]) -> None:
    path, seed, side = task
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (side // 8, side // 8, 3), dtype=np.uint8)
    Image.fromarray(small).resize((side, side), Image.BILINEAR).save(path)


def _write_jpeg(task: tuple[str, int, int, int]) -> None:
    path, seed, width, height = task
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8)
    Image.fromarray(small).resize((width, height), Image.BILINEAR).save(path, quality=90)


def make_data(root: Path, args: argparse.Namespace) -> dict[str, Path]:
    width, height = args.jpeg_size
    folders = {"png256": root / "png256", "jpeg12mp": root / "jpeg12mp"}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    with Pool(os.cpu_count()) as pool:
        pool.map(_write_png, [(str(folders["png256"] / f"{i:06d}.png"), i, 256) for i in range(args.png)], chunksize=64)
        pool.map(_write_jpeg, [(str(folders["jpeg12mp"] / f"{i:05d}.jpg"), i, width, height) for i in range(args.jpeg)])
    return folders


def files_of(folder: Path) -> list[Path]:
    return sorted(folder.iterdir())


# ------------------------------------------------------------------ phase 1
def build(model: str, blocks: int = 0):
    from aigdetect import MoLEConfig, create_detector

    return create_detector(model, MoLEConfig(blocks=blocks), backbone_weights="none").eval()


def rate(fn, x: torch.Tensor, device: torch.device, min_s: float) -> float:
    """Images/s of ``fn(x)``: warm-up, then repeated calls for at least ``min_s`` (CUDA events on the GPU)."""
    fn(x)
    fn(x)
    sync(device)
    calls, elapsed = 0, 0.0
    while elapsed < min_s or calls < 3:
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn(x)
            end.record()
            end.synchronize()
            elapsed += start.elapsed_time(end) / 1e3
        else:
            began = time.perf_counter()
            fn(x)
            elapsed += time.perf_counter() - began
        calls += 1
    return calls * x.shape[0] / elapsed


def model_only(model: str, crops: torch.Tensor, device: torch.device, args, with_compile: bool) -> dict:
    """Phase 1 for one model; ``with_compile`` runs only the compiled variant (a later, optional step)."""
    from aigdetect.data.transforms import normalize_pixels
    from aigdetect.engine.infer import inference_copy

    detector = build(model)
    x = normalize_pixels(crops[: args.batch].to(device), detector.preprocess)
    fp32 = inference_copy(detector, device, "fp32")
    half = inference_copy(detector, device, "fp16")
    variants: dict[str, Any] = {}
    if with_compile:
        compiled = torch.compile(half)
        began = time.perf_counter()
        with torch.inference_mode():
            compiled(x.half())
            sync(device)
        variants["fp16_cast_compile"] = lambda inp: compiled(inp.half()).logits
        compile_s = round(time.perf_counter() - began, 1)
    else:
        def with_autocast(inp):
            with torch.autocast(device.type, dtype=torch.float16):
                return fp32(inp).logits

        variants = {"fp32": lambda inp: fp32(inp).logits, "fp16_autocast": with_autocast,
                    "fp16_cast": lambda inp: half(inp.half()).logits}
        if device.type != "cuda":
            variants["bf16_autocast_cpu"] = _bf16_on_cpu(fp32)
    result: dict[str, Any] = {"batch": len(x)}
    with torch.inference_mode():
        reference = torch.sigmoid(fp32(x).logits.float())
        for name, fn in variants.items():
            reset_peak(device)
            scores = torch.sigmoid(fn(x).float())
            result[name] = {
                "img_per_s": round(rate(fn, x, device, args.min_time_s), 1),
                "max_score_diff_vs_fp32": float((scores - reference).abs().max()),
                "peak_mib": peak_mib(device),
            }
    if with_compile:
        result["fp16_cast_compile"]["compile_s"] = compile_s
    return result


def _bf16_on_cpu(model):
    """bf16 autocast, measured on the CPU only to show what the refused precision would gain there."""

    def run(inp):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return model(inp).logits

    return run


# ------------------------------------------------------------------ phase 2
class GpuSampler(threading.Thread):
    """GPU busy percentage (NVML through torch) every 200 ms while a child runs."""

    def __init__(self, device: torch.device) -> None:
        super().__init__(daemon=True)
        self.device, self.values, self.stop = device, [], threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            with suppress(Exception):  # NVML missing or busy: the figure is optional
                self.values.append(torch.cuda.utilization(self.device))

    def median(self) -> float | None:
        return float(np.median(self.values)) if self.values else None


def child(kind: str, spec: dict, device: torch.device, timeout: float) -> dict:
    """Run this script as a child (``--child KIND``): a fresh process per measurement, as a user runs it."""
    sampler = GpuSampler(device) if device.type == "cuda" else None
    if sampler:
        sampler.start()
    began = time.perf_counter()
    spec = {**spec, "spawned": time.time()}
    try:
        done = subprocess.run([sys.executable, __file__, "--child", kind, json.dumps(spec)], capture_output=True,
                              text=True, timeout=max(1.0, timeout))
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    finally:
        if sampler:
            sampler.stop.set()
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1][:300]}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_s"] = round(time.perf_counter() - began, 1)
    result["gpu_busy_median_pct"] = sampler.median() if sampler else None
    return result


def child_scan(spec: dict) -> dict:
    """The scan as ``aigdetect scan`` runs it: load the detector, ``run_scan`` on a folder, CSV rows."""
    from aigdetect import load_detector
    from aigdetect.engine.infer import parameter_count
    from aigdetect.engine.plan import RuntimePlan
    from aigdetect.engine.runtime import RuntimeConfig
    from aigdetect.scan import runner
    from aigdetect.scan.config import ScanConfig

    runtime = RuntimeConfig(device=spec["device"], batch_size=spec["batch"], workers=spec.get("workers"),
                            precision=spec["precision"], gpu_decode=spec["gpu_decode"], compile=spec["compile"])
    device = torch.device(spec["device"])
    detector = load_detector(spec["checkpoint"], backbone_weights="none", allow_random_backbone=True)
    config = ScanConfig(paths=(spec["folder"],), out=spec["out"], output_format="csv", runtime=runtime)
    phases = Phases(spec["spawned"])
    summary = runner.run_scan(detector, config, progress=lambda event: phases.batch_done(event.done))
    facts = summary.as_dict()
    return {**phases.figures(), "img_per_s": round(summary.images_per_s or 0.0, 1), "files": summary.scored,
            "errors": summary.tally.errors, "scoring_s": round(summary.scoring_s, 2),
            "workers": RuntimePlan.resolve(runtime, str(device), parameter_count(detector)).workers,
            "gpu_decode_fallbacks": facts.get("gpu_decode_fallbacks"),
            "peak_mib": peak_mib(device)}


def child_baseline(spec: dict) -> dict:
    """UnivFD's validate.py pipeline: PIL decode, CenterCrop, ToTensor, Normalize in 4 DataLoader
    workers, batch 128, fp32 forward, a sync per batch; the same weights as the scan's detector."""
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms as T

    from aigdetect import load_detector

    class Files(Dataset):
        def __init__(self, paths, size):
            self.paths = paths
            self.transform = T.Compose([T.CenterCrop(size), T.ToTensor(), T.Normalize(OPENAI_DATASET_MEAN, OPENAI_DATASET_STD)])

        def __len__(self):
            return len(self.paths)

        def __getitem__(self, index):
            return self.transform(Image.open(self.paths[index]).convert("RGB"))

    device = torch.device(spec["device"])
    detector = load_detector(spec["checkpoint"], backbone_weights="none", allow_random_backbone=True).to(device).eval()
    paths = sorted(str(p) for p in Path(spec["folder"]).iterdir())[: spec["files"]]
    loader = DataLoader(Files(paths, detector.image_size), batch_size=spec["batch"], num_workers=4, shuffle=False)
    scores: list[float] = []
    phases = Phases(spec["spawned"])
    began = time.perf_counter()
    with torch.no_grad():
        for pixels in loader:
            scores.extend(torch.sigmoid(detector(pixels.to(device)).logits).flatten().tolist())
            phases.batch_done(len(scores))
    elapsed = time.perf_counter() - began
    Path(spec["out"]).write_text("".join(f"{p},{s!r}\n" for p, s in zip(paths, scores)))
    return {**phases.figures(), "img_per_s": round(len(paths) / elapsed, 2), "files": len(paths),
            "elapsed_s": round(elapsed, 2), "peak_mib": peak_mib(device)}


def decode_only(folder: Path, size: int, workers: int, jpeg_bytes: bool, device: torch.device) -> float:
    """Files/s the scan's decode workers deliver with no model (with ``jpeg_bytes``, plus the batched
    device decode in this process)."""
    from aigdetect.data.device_jpeg import decode_centers
    from aigdetect.data.plain_jpeg import JpegFile
    from aigdetect.engine.decoding import POOL_DEPTH, PREFETCH_BATCHES
    from aigdetect.engine.pool import OrderedPool
    from aigdetect.engine.reading import FileReader, ReadItem, ReadOptions

    items = [ReadItem(str(p)) for p in files_of(folder)]
    reader = FileReader(ReadOptions(size, jpeg_bytes=jpeg_bytes))
    pool = OrderedPool(reader, workers=workers, window=128 * PREFETCH_BATCHES + workers * POOL_DEPTH, depth=POOL_DEPTH)
    began = time.perf_counter()
    pending: list[JpegFile] = []
    with closing(pool.map(enumerate(items))) as answers:
        for _, payload in answers:
            if isinstance(payload, JpegFile):
                pending.append(payload)
            if len(pending) == 128:
                decode_centers(pending, size, device)
                pending = []
    decode_centers(pending, size, device)
    sync(device)
    return round(len(items) / (time.perf_counter() - began), 1)


def scan_scores(csv_path: Path) -> dict[str, float]:
    """Scores of a scan's CSV, by path (rows that failed have none)."""
    import csv

    with open(csv_path, newline="", encoding="utf-8") as handle:
        return {row["path"]: float(row["score"]) for row in csv.DictReader(handle) if row["score"]}


def baseline_scores(csv_path: Path) -> dict[str, float]:
    rows = [line.rsplit(",", 1) for line in csv_path.read_text().splitlines()]
    return {path: float(score) for path, score in rows}


def end_to_end(model: str, kind: str, folder: Path, best: dict, ceiling: float, device: torch.device, args,
               budget: Budget, tmp: Path) -> dict:
    from aigdetect import save_detector

    checkpoint = tmp / f"{Path(model).stem}.safetensors"
    if not checkpoint.exists():
        save_detector(build(model), checkpoint)
    size = build_size(model)
    spec = {"device": device.type, "checkpoint": str(checkpoint), "folder": str(folder), "batch": args.batch,
            "workers": args.workers, **best, "out": str(tmp / f"{kind}_{Path(model).stem}_scan.csv")}
    result: dict[str, Any] = {"settings": best}
    result["scan"] = child("scan", spec, device, budget.left())
    workers = result["scan"].get("workers") or args.workers or 1
    result["decode_only_img_per_s"] = decode_only(folder, size, workers, False, device)
    base_spec = {"device": device.type, "checkpoint": str(checkpoint), "folder": str(folder), "files": args.baseline_files,
                 "batch": args.baseline_batch,
                 "out": str(tmp / f"{kind}_{Path(model).stem}_base.csv")}
    result["baseline"] = child("baseline", base_spec, device, budget.left())
    scan_rate, base_rate = result["scan"].get("steady_img_per_s"), result["baseline"].get("steady_img_per_s")
    if scan_rate and base_rate:
        result["scan_over_baseline"] = round(scan_rate / base_rate, 2)
        result["scan_over_ceiling"] = round(scan_rate / ceiling, 2)
        scanned = scan_scores(Path(spec["out"]))
        base = baseline_scores(Path(base_spec["out"]))
        common = [p for p in base if p in scanned]
        if common:
            result["max_score_diff_scan_vs_baseline"] = max(abs(scanned[p] - base[p]) for p in common)
        result["bound_by"] = bound_stage(scan_rate, result["decode_only_img_per_s"], best["model_img_per_s"])
    return result


def bound_stage(scan: float, decode: float, model: float) -> str:
    """The stage that limits the scan: the slower of decoding and the model, or, when the scan runs
    well below both, what lies between them in the main process."""
    slower, name = min((decode, "decode workers"), (model, "model forward"))
    if scan < 0.8 * slower:
        return f"main process (batch assembly, copies, rows): {scan:.0f} img/s against {name} {slower:.0f}"
    return f"{name}: {slower:.0f} img/s alone, scan {scan:.0f}"


def build_size(model: str) -> int:
    from aigdetect.models.backbones import resolve_backbone

    return resolve_backbone(model).image_size


def best_settings(phase1: dict) -> dict:
    """The fastest precision of phase 1 that stays within the fp16 tolerance (compile only when it won)."""
    ok = {k: v for k, v in phase1.items() if isinstance(v, dict) and "img_per_s" in v and k != "bf16_autocast_cpu"
          and v["max_score_diff_vs_fp32"] <= TARGETS["fp16_max_score_diff"]}
    name = max(ok, key=lambda k: ok[k]["img_per_s"])
    return {"precision": "fp32" if name == "fp32" else "fp16", "compile": name.endswith("compile"), "gpu_decode": False,
            "model_img_per_s": ok[name]["img_per_s"], "from": name}


# ------------------------------------------------------------------ phase 3
def gpu_decode(model: str, folder: Path, device: torch.device, args, tmp: Path, budget: Budget, best: dict) -> dict:
    from aigdetect.data.device_jpeg import decode_centers
    from aigdetect.data.images import decode_center
    from aigdetect.data.plain_jpeg import JpegFile
    from aigdetect.data.transforms import normalize_pixels, to_chw
    from aigdetect.engine.infer import inference_copy
    from aigdetect.engine.runtime import default_workers

    size = build_size(model)
    workers = args.workers or default_workers(device.type)
    reset_peak(device)
    result: dict[str, Any] = {
        "cpu_workers_files_per_s": decode_only(folder, size, workers, False, device),
        "gpu_files_per_s": decode_only(folder, size, workers, True, device),
        "peak_mib": peak_mib(device),
    }
    paths = files_of(folder)[: args.compare_files]
    from aigdetect.engine.reading import FileReader, ReadItem, ReadOptions

    reader = FileReader(ReadOptions(size, max_pixels=10**9, jpeg_bytes=True))
    jpegs = [payload if isinstance(payload, JpegFile) else None for _, payload in (reader((0, ReadItem(str(p)))) for p in paths)]
    result["files_taken_by_gpu"] = f"{sum(j is not None for j in jpegs)}/{len(paths)}"
    pairs = [(p, j) for p, j in zip(paths, jpegs) if j is not None]
    gpu_crops = decode_centers([j for _, j in pairs], size, device)
    kept = [(p, c) for (p, _), c in zip(pairs, gpu_crops) if c is not None]
    if kept:
        gpu = torch.stack([c for _, c in kept]).cpu()
        cpu = torch.stack([to_chw(decode_center(p, size).array) for p, _ in kept])
        difference = (gpu.int() - cpu.int()).abs()
        detector = inference_copy(build(model), device, "fp32")
        with torch.inference_mode():
            scored = [torch.sigmoid(detector(normalize_pixels(t.to(device), detector.preprocess)).logits.float()) for t in (gpu, cpu)]
        result.update(max_pixel_diff=int(difference.max()), pixels_differing_pct=round(100 * float((difference > 0).float().mean()), 3),
                      max_score_diff_fp32=float((scored[0] - scored[1]).abs().max()), compared_files=len(kept))
    if budget.fits(SCAN_START_S + len(files_of(folder)) / 50):
        checkpoint = tmp / f"{Path(model).stem}.safetensors"
        spec = {"device": device.type, "checkpoint": str(checkpoint), "folder": str(folder), "batch": args.batch,
                "workers": args.workers, **{**best, "gpu_decode": True}, "out": str(tmp / "gpu_decode_scan.csv")}
        result["scan_gpu_decode"] = child("scan", spec, device, budget.left())
    return result


# ------------------------------------------------------------------ the run
def targets(report: Report, headline: str) -> list[tuple[str, str, str]]:
    """(target, figure, verdict with the bounding stage where missed); the vitl14 targets are read on
    the headline model (the first of ``--models``), the 6,000 img/s one on vitb32."""
    steps = report.data["steps"]
    rows: list[tuple[str, str, str]] = []

    def verdict(ok: bool, bound: str | None) -> str:
        return "met" if ok else f"MISSED, bound by {bound}" if bound else "MISSED"

    l14 = steps.get(f"scan {headline} png256", {})
    if "scan_over_baseline" in l14:
        rows.append((f"{headline} PNG scan >= 6x UnivFD", f"{l14['scan_over_baseline']}x",
                     verdict(l14["scan_over_baseline"] >= TARGETS["vitl14_png_over_baseline"], l14.get("bound_by"))))
        rows.append((f"{headline} PNG scan >= 70% of model-only", f"{l14['scan_over_ceiling']:.0%}",
                     verdict(l14["scan_over_ceiling"] >= TARGETS["vitl14_png_over_ceiling"], l14.get("bound_by"))))
    b32 = steps.get("scan vitb32 png256", {})
    if b32.get("scan", {}).get("steady_img_per_s"):
        figure = b32["scan"]["steady_img_per_s"]
        rows.append(("vitb32 PNG scan >= 6,000 img/s steady", f"{figure:,.0f}",
                     verdict(figure >= TARGETS["vitb32_png_img_per_s"], b32.get("bound_by"))))
    jpeg = steps.get(f"scan {headline} jpeg12mp", {})
    if "scan_over_baseline" in jpeg:
        rows.append((f"{headline} 12-MP JPEG scan >= 3x UnivFD", f"{jpeg['scan_over_baseline']}x",
                     verdict(jpeg["scan_over_baseline"] >= TARGETS["jpeg12mp_over_baseline"], jpeg.get("bound_by"))))
    for key, value in steps.items():
        if key.startswith("model ") and "fp16_cast" in value:
            diff = value["fp16_cast"]["max_score_diff_vs_fp32"]
            rows.append((f"{key[6:]} fp16 within 2e-3 of fp32", f"{diff:.1e}", verdict(diff <= TARGETS["fp16_max_score_diff"], "fp16 rounding")))
    decode = steps.get(f"gpu decode {headline} jpeg12mp", {})
    if "max_score_diff_fp32" in decode:
        diff = decode["max_score_diff_fp32"]
        rows.append(("GPU decode score diff < 1e-3 (else stays opt-in)", f"{diff:.1e}",
                     "met" if diff < TARGETS["gpu_decode_max_score_diff"] else "MISSED: keep gpu_decode opt-in"))
    return rows


def _rates(run: dict) -> str:
    """A child's steady rate and start-up, or its error."""
    if "error" in run:
        return str(run["error"])
    return (f"{run.get('steady_img_per_s')} img/s steady (start-up {run.get('startup_s')} s, "
            f"whole {run.get('img_per_s')} img/s)")


def table(report: Report) -> str:
    lines = ["| step | figure |", "| --- | --- |"]
    for key, value in report.data["steps"].items():
        if key.startswith(("model ", "compile ")) and "error" not in value:
            for variant, v in value.items():
                if isinstance(v, dict):
                    lines.append(f"| {key} {variant} | {v['img_per_s']:,.1f} img/s, max Δscore {v['max_score_diff_vs_fp32']:.1e}, "
                                 f"peak {v['peak_mib']} MiB{', compile ' + str(v['compile_s']) + ' s' if 'compile_s' in v else ''} |")
        elif "error" in value:
            lines.append(f"| {key} | {value['error']} |")
        elif key.startswith("scan "):
            scan, base = value.get("scan", {}), value.get("baseline", {})
            lines.append(f"| {key} ({value['settings']['from']}) | scan {_rates(scan)}, UnivFD {_rates(base)}, "
                         f"decode alone {value.get('decode_only_img_per_s')}, "
                         f"scan/UnivFD {value.get('scan_over_baseline')}, scan/ceiling {value.get('scan_over_ceiling')}, "
                         f"GPU busy {scan.get('gpu_busy_median_pct')} %, peak {scan.get('peak_mib')} MiB |")
        elif key.startswith("gpu decode"):
            fields = {k: v for k, v in value.items() if k != "scan_gpu_decode"}
            scan = value.get("scan_gpu_decode", {})
            lines.append(f"| {key} | {fields}; scan with it {_rates(scan)}, "
                         f"{scan.get('gpu_decode_fallbacks')} files fell back to the CPU |")
    lines += ["", "| target | figure | verdict |", "| --- | --- | --- |"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in targets(report, report.headline)]
    lines += [f"skipped: {s['step']} ({s['why']})" for s in report.data["skipped"]]
    return "\n".join(lines)


def plan(args: argparse.Namespace) -> list[tuple[str, str, str]]:
    """(step, model, kind) in order of importance; the last ones are dropped first."""
    largest, *rest = args.models
    steps = [("model", largest, ""), ("scan", largest, "png256"), ("scan", largest, "jpeg12mp")]
    for model in rest[:1]:
        steps += [("model", model, ""), ("scan", model, "png256")]
    steps += [("gpu decode", largest, "jpeg12mp"), ("compile", largest, "")]
    steps += [("compile", model, "") for model in rest[:1]]
    for model in rest[1:]:
        steps += [("model", model, ""), ("scan", model, "png256"), ("compile", model, "")]
    return steps


def estimate(step: str, model: str, kind: str, args, phase1: dict) -> float:
    """Rough seconds a step takes, from the sizes and the model-only rates already measured."""
    files = args.png if kind == "png256" else args.jpeg
    fp32 = phase1.get(model, {}).get("fp32", {}).get("img_per_s", 500.0)
    if step == "model":
        return 30.0 + 4 * 3 * args.min_time_s
    if step == "compile":
        return COMPILE_S.get(Path(model).stem, 60.0)
    if step == "scan":
        baseline = min(files, args.baseline_files)
        return 2 * SCAN_START_S + files / 3000 + baseline / min(fp32, 1500.0 if kind == "png256" else 40.0)
    return SCAN_START_S + args.jpeg / 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--models", default="vitl14,vitb32,vitb16", help="comma-separated; the first is the headline model")
    parser.add_argument("--png", type=int, default=20_000, help="256² PNGs to write")
    parser.add_argument("--jpeg", type=int, default=400, help="large JPEGs to write")
    parser.add_argument("--jpeg-size", default="4000x3000", help="WIDTHxHEIGHT of the large JPEGs")
    parser.add_argument("--batch", type=int, default=256, help="batch of the model-only runs and of the scans")
    parser.add_argument("--workers", type=int, default=None, help="scan decode workers (default: the scan's own)")
    parser.add_argument("--baseline-files", type=int, default=6000,
                        help="files the UnivFD pipeline scores (the first of each set; its rate is steady long before)")
    parser.add_argument("--baseline-batch", type=int, default=128, help="the UnivFD pipeline's batch (validate.py's 128)")
    parser.add_argument("--min-time-s", type=float, default=2.0, help="timed seconds per model-only variant")
    parser.add_argument("--compare-files", type=int, default=64, help="JPEGs whose GPU and CPU decodes are compared")
    parser.add_argument("--budget-s", type=float, default=290.0,
                        help="wall-clock budget; steps that would overrun are skipped (device_check.sh runs training after)")
    parser.add_argument("--no-compile", action="store_true", help="leave out the torch.compile steps")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "SPEC"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, spec = args.child
        result = (child_scan if kind == "scan" else child_baseline)(json.loads(spec))
        print(json.dumps(result))
        return
    budget = Budget(args.budget_s)
    args.models = [m for m in args.models.split(",") if m]
    args.jpeg_size = tuple(int(v) for v in args.jpeg_size.lower().split("x"))
    device = torch.device(args.device)
    report = Report(Path(os.environ.get("OUT", ".")), Path(args.models[0]).stem)
    report.save("env", {"torch": torch.__version__, "cuda": torch.version.cuda, "cores": os.cpu_count(),
                        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
                        "args": {k: v for k, v in vars(args).items() if k != "child"}})
    from aigdetect.data.images import decode_center
    from aigdetect.data.transforms import to_chw

    with tempfile.TemporaryDirectory(prefix="gpu_check_") as name:
        tmp = Path(name)
        began = time.perf_counter()
        folders = make_data(tmp, args)
        report.save("data", {"png256": args.png, "jpeg": args.jpeg, "jpeg_size": args.jpeg_size,
                             "seconds": round(time.perf_counter() - began, 1)})
        pngs = files_of(folders["png256"])
        crops: dict[int, torch.Tensor] = {}
        phase1: dict[str, dict] = {}
        for step, model, kind in plan(args):
            key = f"{step} {Path(model).stem}" + (f" {kind}" if kind else "")
            if step == "compile" and args.no_compile:
                report.skip(key, "--no-compile")
                continue
            if not budget.fits(estimate(step, model, kind, args, phase1)):
                report.skip(key, f"needs about {estimate(step, model, kind, args, phase1):.0f} s, {budget.left():.0f} s left")
                continue
            if step in ("scan", "gpu decode") and model not in phase1:
                report.skip(key, "its model-only step did not run")
                continue
            size = build_size(model)
            if size not in crops:
                crops[size] = torch.stack([to_chw(decode_center(p, size).array) for p in pngs[: args.batch]])
            try:
                if step in ("model", "compile"):
                    result = model_only(model, crops[size], device, args, with_compile=step == "compile")
                    phase1.setdefault(model, {}).update(result)
                elif step == "scan":
                    ceiling = max(v["img_per_s"] for v in phase1[model].values() if isinstance(v, dict))
                    result = end_to_end(model, kind, folders[kind], best_settings(phase1[model]), ceiling, device, args,
                                        budget, tmp)
                else:
                    result = gpu_decode(model, folders[kind], device, args, tmp, budget, best_settings(phase1[model]))
            except (RuntimeError, OSError, ValueError) as exc:  # one failed step must not lose the others
                result = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"}
            report.save(key, result)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    print(table(report))


if __name__ == "__main__":
    main()
