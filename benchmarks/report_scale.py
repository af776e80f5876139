"""How the HTML scan report scales: page size, build time and time-to-open at 1k, 10k and 100k rows.

Writes a synthetic scan results file per row count (verdicts, scores and evidence drawn from a seeded
mix; every ok row points at a real 1600x1200 JPEG, hard-linked from a small pool of crops of
scikit-learn's sample photographs), builds the report with ``write_scan_report`` and opens it in
headless Chromium. "build" is the time of ``write_scan_report`` (reading, previews, rendering,
writing), without importing the package. "open" is the wall time from navigation until the first
page of rows is in the table; "first rows" is the page's own clock for the same moment
(``body[data-ready]``, ms since navigation start). "sort" and "filter" are the time the table takes
to re-sort all rows by score and to filter them by verdict, measured inside the page.

    python benchmarks/report_scale.py --rows 1000,10000,100000 --screenshot docs/report.png
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from aigdetect.report import DEFAULT_THUMBNAILS, write_scan_report

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]  # fmt: skip
MIX = {  # verdict: (share of rows, score distribution as beta(a, b))
    "likely-real": (0.44, (2, 9)),
    "inconclusive": (0.15, (6, 6)),
    "camera-signed": (0.10, (1.5, 12)),
    "likely-ai": (0.12, (9, 3)),
    "ai-generated": (0.08, (12, 1.5)),
    "conflict": (0.03, (4, 4)),
    "tampered-credentials": (0.02, (5, 3)),
    "error": (0.06, None),
}
GENERATORS = ["DALL-E 3", "Midjourney v6", "Adobe Firefly 3", "Stable Diffusion XL", "Imagen 3"]
CAMERAS = ["Canon EOS R6", "NIKON Z 6_2", "SONY ILCE-7M4", "Apple iPhone 15 Pro", "FUJIFILM X-T5"]
ERRORS = [("truncated", "image file is truncated (412 bytes not processed)"), ("unsupported", "not an image, or a format Pillow cannot decode"),
          ("too-large", "12000x12000 = 144000000 pixels exceeds the limit of 100000000"), ("corrupt", "broken data stream when reading image file")]  # fmt: skip


def photo_pool(folder: Path, count: int, seed: int) -> list[Path]:
    """``count`` 1600x1200 JPEGs: crops of scikit-learn's two sample photographs, flipped and tinted."""
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(seed)
    photos = [np.asarray(image, dtype=np.uint8) for image in load_sample_images().images]
    folder.mkdir(parents=True, exist_ok=True)
    pool = []
    for index in range(count):
        photo = photos[index % len(photos)]
        height, width = photo.shape[:2]
        ch, cw = int(height * rng.uniform(0.45, 0.9)), int(width * rng.uniform(0.45, 0.9))
        top, left = rng.integers(0, height - ch + 1), rng.integers(0, width - cw + 1)
        crop = photo[top : top + ch, left : left + cw]
        if index % 3 == 1:
            crop = crop[:, ::-1]
        tint = np.clip(crop.astype(np.float32) * rng.uniform(0.8, 1.2, 3), 0, 255).astype(np.uint8)
        path = folder / f"pool{index:02d}.jpg"
        Image.fromarray(tint).resize((1600, 1200), Image.BICUBIC).save(path, quality=90)
        pool.append(path)
    return pool


def _finding(source: str, claim: str, strength: str, detail: str, generator: str = "") -> dict[str, str]:
    return {"source": source, "claim": claim, "strength": strength, "detail": detail, "generator": generator}


def synthetic_results(root: Path, count: int, pool: list[Path], seed: int) -> Path:
    """A scan results JSON file of ``count`` rows whose ok rows are hard links to the pool's photos."""
    rng = np.random.default_rng(seed)
    kinds = list(MIX)
    drawn = rng.choice(len(kinds), size=count, p=[MIX[k][0] for k in kinds])
    rows = []
    for index, pick in enumerate(drawn):
        kind = kinds[pick]
        rel = f"photos/{index // 1000:04d}/IMG_{index:07d}.jpg"
        row = {"path": rel, "status": "ok", "verdict": kind, "model_verdict": "", "score": None, "threshold": 0.5,
               "generator": "", "evidence": [], "detector": "univfd-vitl14@5d0f3c2a91b7", "engine": "torch-cuda-fp16",
               "width": 1600, "height": 1200, "format": "JPEG", "error_reason": "", "error_detail": "", "size": None,
               "mtime_ns": None, "sha256": f"{rng.integers(0, 2**63):016x}" * 4}  # fmt: skip
        if kind == "error":
            reason, detail = ERRORS[index % len(ERRORS)]
            row.update(status="error", verdict="", width=None, height=None, format="", error_reason=reason, error_detail=detail)
        else:
            a, b = MIX[kind][1]
            score = float(rng.beta(a, b))
            row.update(score=round(score, 6), model_verdict="fake" if score > 0.5 else "real")
            if kind in ("ai-generated", "conflict"):
                generator = GENERATORS[index % len(GENERATORS)]
                row["generator"] = generator
                row["evidence"].append(_finding("c2pa" if kind == "ai-generated" else "xmp", "ai", "strong",
                                                f"digitalSourceType: trainedAlgorithmicMedia; softwareAgent: {generator}", generator))  # fmt: skip
            if kind in ("camera-signed", "likely-real", "conflict"):
                camera = CAMERAS[index % len(CAMERAS)]
                source, strength = ("c2pa", "strong") if kind == "camera-signed" else ("exif", "weak")
                row["evidence"].append(_finding(source, "camera", strength, f"Make/Model: {camera}"))
            if kind == "tampered-credentials":
                row["evidence"].append(_finding("c2pa", "error", "strong", "manifest hash does not match the image data"))
            if index % 4 == 0:
                row.update(crop_mean=round(score * rng.uniform(0.8, 1.1), 6), crop_max=round(min(1.0, score * 1.2), 6))
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(pool[index % len(pool)], target)
        info = target.stat()
        row.update(size=info.st_size, mtime_ns=info.st_mtime_ns)
        rows.append(row)
    summary = {"files": count, "detector": "univfd-vitl14@5d0f3c2a91b7", "threshold": 0.5, "bands": [0.35, 0.65],
               "command": "aigdetect scan photos --out verdicts.json", "date": "2026-11-30T09:12:44+00:00",
               "aigdetect_version": "0.2.0", "elapsed_s": round(count / 180.0, 1)}  # fmt: skip
    columns = list(rows[0]) + ["crop_mean", "crop_max"]
    path = root / "verdicts.json"
    path.write_text(json.dumps({"summary": summary, "columns": columns, "rows": rows}), encoding="utf-8")
    return path


def open_page(browser, html: Path) -> dict[str, float]:
    """Open the page in a fresh context; time to the first page of rows, then sort and filter timings."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:") else route.abort())
    start = time.perf_counter()
    page.goto(html.resolve().as_uri(), wait_until="commit")
    page.wait_for_selector("body[data-ready]", state="attached", timeout=600_000)
    wall = time.perf_counter() - start
    ready_ms = float(page.get_attribute("body", "data-ready"))
    sort_ms = page.evaluate("() => { const t = performance.now(); document.querySelector('th[data-sort=score] button').click(); "
                            "return performance.now() - t; }")  # fmt: skip
    filter_ms = page.evaluate("() => { const s = document.getElementById('verdict'); s.value = 'likely-ai'; const t = performance.now(); "
                              "s.dispatchEvent(new Event('change')); return performance.now() - t; }")  # fmt: skip
    heap = page.evaluate("() => performance.memory ? performance.memory.usedJSHeapSize : 0")
    context.close()
    return {"open_s": wall, "ready_ms": ready_ms, "sort_ms": sort_ms, "filter_ms": filter_ms, "heap_mib": heap / 2**20}


def screenshot(browser, html: Path, out: Path) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, device_scale_factor=1)
    page = context.new_page()
    page.goto(html.resolve().as_uri())
    page.wait_for_selector("body[data-ready]", state="attached")
    out.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out))
    context.close()


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())  # fmt: skip
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="1000,10000,100000", help="row counts, comma-separated")
    parser.add_argument("--thumbnails", type=int, default=DEFAULT_THUMBNAILS, help="previews embedded per report")
    parser.add_argument("--repeat", type=int, default=3, help="opens per report; the median is shown")
    parser.add_argument("--pool", type=int, default=24, help="distinct photos behind the rows")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--screenshot", type=Path, help="write a screenshot of the smallest report here (e.g. docs/report.png)")
    parser.add_argument("--keep", type=Path, help="build in this folder and keep it (default: a temporary folder)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    version = subprocess.run([args.chromium, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"date: {datetime.date.today()}  machine: {machine()}  browser: {version}")
    print(f"previews: up to {args.thumbnails} per report; open figures are medians of {args.repeat}")
    header = f"{'rows':>7} {'previews':>8} {'page MB':>8} {'build s':>8} {'open s':>7} {'first rows ms':>13} {'sort ms':>8} {'filter ms':>9} {'JS heap MiB':>11}"
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        home = Path.cwd()
        base = (args.keep or Path(tmp)).resolve()
        shot = args.screenshot.resolve() if args.screenshot is not None else None
        browser = playwright.chromium.launch(executable_path=args.chromium, headless=True, args=CHROMIUM_ARGS)
        pool = photo_pool(base / "pool", args.pool, args.seed)
        print(header)
        counts = [int(c) for c in args.rows.split(",") if c]
        for count in counts:
            root = base / f"n{count}"
            results = synthetic_results(root, count, pool, args.seed)
            html = root / "report.html"
            os.chdir(root)  # as a user would: report from the folder the scan ran in, paths relative to it
            start = time.perf_counter()
            stats = write_scan_report(results.name, html.name, thumbnails=args.thumbnails)
            build = time.perf_counter() - start
            os.chdir(home)
            runs = [open_page(browser, html) for _ in range(args.repeat)]
            median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
            print(f"{stats.rows:>7} {stats.thumbnails:>8} {stats.bytes / 1e6:>8.1f} {build:>8.1f} {median['open_s']:>7.2f} "
                  f"{median['ready_ms']:>13.0f} {median['sort_ms']:>8.0f} {median['filter_ms']:>9.0f} {median['heap_mib']:>11.0f}", flush=True)  # fmt: skip
            if shot is not None and count == counts[0]:
                screenshot(browser, html, shot)
        browser.close()


if __name__ == "__main__":
    main()
