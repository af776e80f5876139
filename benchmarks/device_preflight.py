"""Before the device measures anything: every aigdetect module imports, and what it runs on.

A missing wheel must cost seconds, not the budget: this imports each module of the package (not
``__main__``), so that an import error deep in a lazy path shows now rather than minutes into a step.
It writes the versions to $OUT/preflight.txt and exits 3 naming what failed.

    python benchmarks/device_preflight.py
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import platform
import sys
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "torchvision", "open_clip_torch", "ftfy", "platformdirs", "pillow", "pillow-heif", "c2pa-python",
            "numpy", "safetensors", "timm")
TORCH_FLOOR = (2, 13)
"""The project's declared floor; the device's own torch may be older, and the figures say so."""


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "missing"


def check() -> tuple[list[str], list[str]]:
    """(report lines, failures)."""
    import aigdetect

    failures = []
    for module in pkgutil.walk_packages(aigdetect.__path__, "aigdetect."):
        if module.name.rsplit(".", 1)[-1] == "__main__":
            continue
        try:
            importlib.import_module(module.name)
        except ImportError as exc:
            failures.append(f"{module.name}: {exc}")
    import torch

    major, minor = (int(part) for part in torch.__version__.split(".")[:2])
    lines = [f"python {platform.python_version()}", f"aigdetect {aigdetect.__version__} from {Path(aigdetect.__file__).parent}"]
    lines += [f"{name} {_version(name)}" for name in PACKAGES]
    lines.append(f"cuda {torch.version.cuda}, gpu {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}")
    if (major, minor) < TORCH_FLOOR:
        lines.append(f"note: torch {torch.__version__} is below the project's floor {'.'.join(map(str, TORCH_FLOOR))}: "
                     "figures from this run say so")
    return lines, failures


def main() -> int:
    lines, failures = check()
    text = "\n".join(lines + [f"IMPORT FAILED {failure}" for failure in failures]) + "\n"
    Path(os.environ.get("OUT", "."), "preflight.txt").write_text(text)
    sys.stdout.write(text)
    return 3 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
