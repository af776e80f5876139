"""Shell completion scripts for bash, zsh and fish, kept in ``completions/`` of the repository.

Regenerate with ``python -m aigdetect.cli.completions completions/``; a test fails when they are stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

from typer._completion_shared import get_completion_script

from .common import COMPLETE_VAR

PROG_NAME = "aigdetect"
SHELLS = {"bash": "aigdetect.bash", "zsh": "_aigdetect", "fish": "aigdetect.fish"}


def render(shell: str) -> str:
    return get_completion_script(prog_name=PROG_NAME, complete_var=COMPLETE_VAR, shell=shell) + "\n"


def write_all(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for shell, filename in SHELLS.items():
        path = folder / filename
        path.write_text(render(shell))
        written.append(path)
    return written


if __name__ == "__main__":
    for written in write_all(Path(sys.argv[1] if len(sys.argv) > 1 else "completions")):
        print(written)
