"""The package's structure: imports point one way (down the floors), form no cycle, and the light
entry points (errors, -h, --version) never load the ML stack."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "aigdetect"

FLOORS = {
    "version": 0,
    "errors": 0,
    "settings": 1,
    "fileio": 1,
    "registry": 1,
    "metrics": 1,
    "data": 2,
    "formats": 2,
    "models": 3,
    "evidence": 4,
    "engine": 5,
    "results": 5,
    "evaluation": 6,
    "scan": 6,
    "training": 6,
    "report": 7,
    "distributed": 7,
    "cli": 8,
    "__init__": 9,
    "__main__": 9,
}
HEAVY = ("torch", "open_clip", "matplotlib", "sklearn", "scipy", "c2pa", "cv2", "onnxruntime", "openvino", "ray", "pyarrow",
         "fsspec", "s3fs", "gcsfs", "adlfs")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """Every aigdetect module this file imports at run time (deferred imports included); ``from
    package import submodule`` counts as importing the submodule."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    skipped = {id(child) for node in ast.walk(ast.parse(path.read_text())) if _type_checking(node) for child in ast.walk(node)}
    for node in ast.walk(ast.parse(path.read_text())):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("aigdetect"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("aigdetect"):
                submodules = {f"{target}.{alias.name}" for alias in node.names} & modules
                found.update(submodules or {target})
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {t for t in _imports(path, set(modules)) if t in modules and t != name} for name, path in modules.items()}


def _floor(module: str) -> int:
    parts = module.split(".")
    return FLOORS["__init__"] if len(parts) == 1 else FLOORS[parts[1]]


def test_every_room_has_a_floor():
    rooms = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    assert rooms <= set(FLOORS)


def test_imports_only_point_down_or_stay_in_their_room():
    upward = []
    for module, targets in _graph().items():
        room = module.split(".")[:2]
        for target in targets:
            if target.split(".")[:2] != room and _floor(target) >= _floor(module) and target != "aigdetect":
                upward.append(f"{module} -> {target}")
    assert not upward


def test_no_import_cycles():
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert not cycles


def test_the_engine_imports_no_training_and_training_reaches_inference_only_through_the_plan():
    graph = _graph()
    engine = {m: t for m, t in graph.items() if m.startswith("aigdetect.engine")}
    assert {f"{m} -> {t}" for m, targets in engine.items() for t in targets if t.startswith("aigdetect.training")} == set()
    training = {t for m, targets in graph.items() if m.startswith("aigdetect.training") for t in targets}
    assert {"aigdetect.engine.plan", "aigdetect.engine.distributed"} <= training
    assert "aigdetect.training.train" in graph["aigdetect.cli.train"]


def test_the_graph_sees_deferred_and_relative_imports():
    graph = _graph()
    assert "aigdetect.models.factory" in graph["aigdetect.cli.scan"]
    assert "aigdetect.fileio" in graph["aigdetect.models.checkpoint"]


def _loaded_after(code: str) -> list[str]:
    probe = f"{code}\nimport sys\nprint('loaded:', *(m for m in {HEAVY!r} if m in sys.modules))"
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
    return completed.stdout.splitlines()[-1].split()[1:]


@pytest.mark.parametrize(
    "code",
    [
        "import aigdetect.errors",
        "import aigdetect",
        "import aigdetect.cli",
        "from aigdetect.cli import app\ntry:\n    app(['scan', '-h'], prog_name='aigdetect')\nexcept SystemExit:\n    pass",
        "from aigdetect.cli import app\ntry:\n    app(['--version'], prog_name='aigdetect')\nexcept SystemExit:\n    pass",
        "from aigdetect.cli import app\ntry:\n    app(['train', '-h'], prog_name='aigdetect')\nexcept SystemExit:\n    pass",
    ],
    ids=["errors", "package", "cli", "scan-help", "version", "train-help"],
)
def test_light_entry_points_load_no_ml_stack(code):
    assert _loaded_after(code) == []
