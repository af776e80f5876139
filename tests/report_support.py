"""Helpers of the report tests: scan results written by hand in CSV, JSON and JSONL, and an offline browser."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from aigdetect.evidence import VERDICTS

CHROMIUM = "/usr/bin/chromium"
REQUIRE_BROWSER_ENV = "AIGDETECT_REQUIRE_BROWSER"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-default-apps",
    "--disable-sync",
]
COLUMNS = (
    "path", "status", "verdict", "model_verdict", "score", "crop_mean", "crop_max", "threshold", "generator",
    "evidence", "detector", "engine", "width", "height", "format", "error_reason", "error_detail", "size",
    "mtime_ns", "sha256",
)  # fmt: skip
FUSED = VERDICTS
DETECTOR = "univfd-vitl14@0123456789ab"
HOSTILE_NAME = "<img src=x onerror=alert(1)>.png"
HOSTILE_SCRIPT_PATH = "x/</script><script>alert(2)</script>.jpg"
HOSTILE_TOOL = "<b onmouseover=alert(3)>Photoshop</b><script>alert(4)</script>"
HOSTILE_DETAIL = 'CreatorTool: <img src=x onerror="alert(5)">&amp; </script>\u2028'


def write_picture(path: Path, size: tuple[int, int], seed: int) -> None:
    """A small smooth picture (so JPEG keeps it small) of (width, height)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(small).resize(size, Image.BILINEAR).save(path)


def finding(source: str, claim: str, strength: str, detail: str, generator: str = "") -> dict[str, str]:
    return {"source": source, "claim": claim, "strength": strength, "detail": detail, "generator": generator}


def _ok(path: str, verdict: str, score: float, **extra: Any) -> dict[str, Any]:
    row = dict.fromkeys(COLUMNS)
    row.update(path=path, status="ok", verdict=verdict, model_verdict="fake" if score > 0.5 else "real", score=score,
               threshold=0.5, generator="", evidence=[], detector=DETECTOR, engine="torch-cpu", format="PNG",
               error_reason="", error_detail="", sha256=hashlib.sha256(path.encode()).hexdigest())  # fmt: skip
    row.update(extra)
    return row


def _error(path: str, reason: str, detail: str) -> dict[str, Any]:
    row = dict.fromkeys(COLUMNS)
    row.update(path=path, status="error", verdict="", model_verdict="", generator="", evidence=[], detector=DETECTOR,
               engine="torch-cpu", format="", error_reason=reason, error_detail=detail, sha256="", threshold=0.5)  # fmt: skip
    return row


def scan_rows(root: Path, per_kind: int = 17) -> list[dict[str, Any]]:
    """Rows of every fused verdict, error rows and hostile names, with real files under ``root`` for most.

    Paths are relative to ``root``. Scores are distinct; findings vary from none to three per row.
    """
    rows = []
    for k, verdict in enumerate(FUSED):
        for i in range(per_kind):
            name = f"{verdict}/img{i:02d}.png"
            score = round((k * per_kind + i + 0.5) / (len(FUSED) * per_kind + 1), 6)
            extra: dict[str, Any] = {"width": 48 + i, "height": 36 + k}
            if i % 3 == 1:
                extra["evidence"] = [finding("xmp", "ai", "moderate", "CreatorTool: Midjourney v6", "Midjourney")]
                extra["generator"] = "Midjourney"
            if i % 5 == 2:
                extra["evidence"] = [
                    finding("c2pa", "ai", "strong", "trainedAlgorithmicMedia; signed by OpenAI", "DALL-E 3"),
                    finding("exif", "camera", "weak", "Make: Canon; Model: EOS R5"),
                    finding("watermark", "none", "weak", "no SynthID-style watermark: decoded bits 0"),
                ]
                extra["generator"] = "DALL-E 3"
                extra["crop_mean"], extra["crop_max"] = round(score * 0.9, 6), round(min(1.0, score * 1.1), 6)
            rows.append(_ok(name, verdict, score, **extra))
    rows.append(_ok(HOSTILE_NAME, "likely-ai", 0.9912, width=40, height=30, generator=HOSTILE_TOOL,
                    evidence=[finding("xmp", "ai", "strong", HOSTILE_DETAIL, HOSTILE_TOOL)]))  # fmt: skip
    rows.append(_ok(HOSTILE_SCRIPT_PATH, "conflict", 0.4321, width=40, height=30, format="JPEG"))
    rows.append(_ok("odd/caf\\xe9 name.png", "camera-signed", 0.0123, width=40, height=30))
    rows.append(_ok("gone/deleted.png", "ai-generated", 0.9876, width=40, height=30, size=1234, mtime_ns=10**18))
    rows.append(_error("broken/truncated.jpg", "truncated", "image file is truncated (3 bytes not processed)"))
    rows.append(_error("broken/notes.txt", "unsupported", "not an image, or a format Pillow cannot decode"))
    rows.append(_error("broken/huge.png", "too-large", "30000x30000 = 900000000 pixels exceeds the limit of 100000000"))
    for row in rows:
        if row["status"] != "ok" or row["path"].startswith("gone/"):
            continue
        raw = root / os.fsdecode(_raw(row["path"]))
        write_picture(raw, (row["width"], row["height"]), seed=len(row["path"]) + int(row["score"] * 1000))
        info = raw.stat()
        row["size"], row["mtime_ns"] = info.st_size, info.st_mtime_ns
    return rows


def _raw(text: str) -> bytes:
    from aigdetect.results.paths import raw_path

    return raw_path(text)


def compact(findings: list[dict[str, str]]) -> str:
    return "; ".join(f"{f['source']}:{f['claim']}:{f['detail']}" for f in findings)


def neutralise(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def write_results(rows: list[dict[str, Any]], path: Path, summary: dict[str, Any] | None = None) -> Path:
    """Write rows as a scan does, the format following the suffix (CSV: compact evidence, formula guard)."""
    suffix = path.suffix
    if suffix == ".json":
        document = {"summary": summary or {}, "columns": list(COLUMNS), "rows": rows}
        path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    elif suffix == ".jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    else:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in rows:
            cells = {**row, "evidence": compact(row["evidence"])}
            writer.writerow([neutralise(cells[c]) for c in COLUMNS])
        path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


@dataclass
class OfflinePage:
    """A page opened from a file with every request recorded and every non-data request aborted."""

    page: Any
    url: str
    requests: list[str] = field(default_factory=list)
    aborted: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def outside(self) -> list[str]:
        """Requests other than the page itself and data: URIs."""
        return [u for u in self.requests if u != self.url and not u.startswith("data:")]


def require_chromium() -> None:
    """Skip a browser test where Chromium is not installed, unless ``AIGDETECT_REQUIRE_BROWSER=1``
    says it must be (CI installs it): there a missing browser fails the test instead of hiding it."""
    if os.path.exists(CHROMIUM):
        return
    reason = f"{CHROMIUM} is not installed (apt-get install -y chromium)"
    if os.environ.get(REQUIRE_BROWSER_ENV) == "1":
        pytest.fail(f"{reason}, and {REQUIRE_BROWSER_ENV}=1 requires it", pytrace=False)
    pytest.skip(reason)


def launch_browser():
    """Start Playwright and headless Chromium (see ``require_chromium`` for a missing one)."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    return playwright, browser


def open_offline(browser: Any, path: Path, *, ready: str | None = "body[data-ready]", viewport=(1280, 900)) -> OfflinePage:
    context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]}, java_script_enabled=True)
    page = context.new_page()
    url = path.resolve().as_uri()
    opened = OfflinePage(page, url)
    page.on("request", lambda request: opened.requests.append(request.url))
    page.on("dialog", lambda dialog: (opened.dialogs.append(dialog.message), dialog.dismiss()))
    page.on("console", lambda message: opened.errors.append(message.text) if message.type in ("error", "warning") else None)
    page.on("pageerror", lambda error: opened.errors.append(str(error)))

    def guard(route: Any) -> None:
        if route.request.url == url:
            route.continue_()
        else:
            opened.aborted.append(route.request.url)
            route.abort()

    page.route("**/*", guard)
    page.goto(url)
    if ready:
        page.wait_for_selector(ready, state="attached")
    return opened
