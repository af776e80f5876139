"""scripts/demo_report.py, in its quick mode: a real scan of the folder it builds, photographed in Chromium."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from report_support import require_chromium

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "demo_report.py"
ISLAND = re.compile(r'<script type="application/json" id="aig-data">(.*?)</script>', re.S)


@pytest.mark.slow
def test_demo_report_scans_what_it_built_and_photographs_the_page(tmp_path: Path) -> None:
    require_chromium()
    shot, work = tmp_path / "shot.png", tmp_path / "work"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p))
    command = [sys.executable, str(SCRIPT), "--out", str(shot), "--steps", "4", "--width", "900", "--height", "700",
               "--keep", str(work)]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    with Image.open(shot) as image:
        assert image.format == "PNG" and image.size == (900, 700)
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    assert len(np.unique(pixels, axis=0)) > 50  # a rendered page, not a blank one

    with open(work / "verdicts.csv", newline="", encoding="utf-8") as handle:
        rows = {row["path"]: row for row in csv.DictReader(handle)}
    on_disk = {p.relative_to(work).as_posix() for p in (work / "images").rglob("*") if p.is_file()}
    validation = {p.relative_to(work / "training" / "val") for p in (work / "training" / "val").rglob("*.png")}
    assert set(rows) == on_disk and len(validation) == 32
    assert {Path(p).relative_to("images/synthetic") for p in rows if p.startswith("images/synthetic/")} == validation

    broken = rows.pop("images/photos/truncated.jpg")
    assert (broken["status"], broken["verdict"], broken["score"], broken["error_reason"]) == ("error", "", "", "truncated")
    a1111, firefly = rows["images/generated/a1111.png"], rows["images/generated/firefly.jpg"]
    assert (a1111["verdict"], a1111["generator"], a1111["evidence"].split(":")[:2]) == (
        "ai-generated", "Stable Diffusion XL", ["png-text", "ai"],
    )  # fmt: skip
    assert (firefly["verdict"], firefly["generator"]) == ("ai-generated", "Adobe Firefly")
    assert firefly["evidence"] == "xmp:ai:XMP Iptc4xmpExt:DigitalSourceType is trainedAlgorithmicMedia"
    assert all(row["status"] == "ok" and 0.0 <= float(row["score"]) <= 1.0 for row in rows.values())
    assert all(row["evidence"] == "" for path, row in rows.items() if not path.startswith("images/generated/"))

    page = json.loads(ISLAND.search((work / "report.html").read_text(encoding="utf-8")).group(1))
    assert sum(str(thumb).startswith("data:image/") for thumb in page["thumbs"]) == len(rows)  # every readable file
