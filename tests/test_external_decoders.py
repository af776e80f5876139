"""No input reaches a decoder that runs an external program: a PostScript file named evidence.jpg
never starts Ghostscript, through the library or a whole ``aigdetect scan``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

POSTSCRIPT = b"""%!PS-Adobe-3.0 EPSF-3.0
%%BoundingBox: 0 0 10 10
%%EndComments
newpath 0 0 moveto 10 10 lineto stroke
showpage
"""


def _trap(tmp_path: Path) -> tuple[dict[str, str], Path, Path]:
    """A fake ``gs`` first on PATH that leaves a marker file when anything runs it."""
    bin_dir, marker = tmp_path / "bin", tmp_path / "gs-was-run"
    bin_dir.mkdir()
    gs = bin_dir / "gs"
    gs.write_text(f"#!/bin/sh\ntouch '{marker}'\nexit 1\n")
    gs.chmod(0o755)
    evidence = tmp_path / "evidence.jpg"
    evidence.write_bytes(POSTSCRIPT)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}, marker, evidence


def _python(code: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True)


def test_the_trap_works_when_pillow_is_free_to_use_ghostscript(tmp_path):
    env, marker, evidence = _trap(tmp_path)
    _python("import sys\nfrom PIL import Image\nImage.open(sys.argv[1], formats=['EPS']).load()", env, str(evidence))
    assert marker.exists()


def test_decode_image_never_runs_ghostscript(tmp_path):
    env, marker, evidence = _trap(tmp_path)
    code = (
        "import json, sys\nfrom aigdetect.data.images import decode_image, decode_center\nfrom aigdetect.errors import ImageDecodeError\n"
        "for decode in (decode_image, lambda p: decode_center(p, 8)):\n"
        "    try:\n        decode(sys.argv[1])\n    except ImageDecodeError as exc:\n        print(json.dumps(exc.reason))\n"
    )
    done = _python(code, env, str(evidence))
    assert done.stdout.split() == ['"unsupported"', '"unsupported"'], done.stderr
    assert not marker.exists()


def test_a_whole_scan_never_runs_ghostscript(tmp_path, tiny_checkpoint):
    env, marker, evidence = _trap(tmp_path)
    command = [sys.executable, "-m", "aigdetect", "scan", str(evidence), "--checkpoint", str(tiny_checkpoint), "--format", "jsonl"]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    (row,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert row["status"] == "error" and row["error_reason"] == "unsupported"
    assert not marker.exists()
