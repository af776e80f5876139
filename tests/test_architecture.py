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
    "progress": 1,
    "outputs": 2,
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
    "serve": 8,
    "jobs": 8,
    "cli": 9,
    "__init__": 10,
    "__main__": 10,
}
HEAVY = ("torch", "open_clip", "matplotlib", "sklearn", "scipy", "c2pa", "cv2", "onnxruntime", "openvino", "fastapi", "uvicorn",
         "ray", "pyarrow", "fsspec", "s3fs", "gcsfs", "adlfs")


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
    tree = ast.parse(path.read_text())  # one tree: the ids of the skipped nodes are only valid while it lives
    skipped = {id(child) for node in ast.walk(tree) if _type_checking(node) for child in ast.walk(node)}
    for node in ast.walk(tree):
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
    assert "aigdetect.training.train" in graph["aigdetect.jobs.train"]


def test_the_graph_sees_deferred_and_relative_imports():
    graph = _graph()
    assert "aigdetect.models.factory" in graph["aigdetect.jobs.scan"]
    assert "aigdetect.outputs" in graph["aigdetect.models.checkpoint"]


MAX_COMMAND_LINES = 60


def test_every_function_of_the_command_line_is_short():
    """Commands parse, build one request and make one call: a long function there is orchestration
    that belongs in the library."""
    long = []
    for path in sorted((PACKAGE / "cli").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                and node.end_lineno - node.lineno + 1 > MAX_COMMAND_LINES
            ):
                long.append(f"{path.name}:{node.name} {node.end_lineno - node.lineno + 1} lines")
    assert not long


def test_scan_and_train_commands_make_one_library_call_and_never_load_the_detector():
    """The jobs load the detector from the request's choice: no command hands the library a loader."""
    graph = _graph()
    for command, job in (("aigdetect.cli.scan", "aigdetect.jobs.scan"), ("aigdetect.cli.train", "aigdetect.jobs.train")):
        assert job in graph[command]
        assert not {
            t for t in graph[command] if t in ("aigdetect.models.factory", "aigdetect.scan.runner", "aigdetect.training.train")
        }


def _router_kind_tests(tree: ast.AST) -> list[int]:
    """Lines comparing a router kind by name: ``router == ...``, ``x.router in ...``, and their negations."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn)) for op in node.ops):
            sides = [node.left, *node.comparators]
            if any(
                isinstance(side, (ast.Name, ast.Attribute)) and "router" in ast.unparse(side).rpartition(".")[2] for side in sides
            ):
                lines.append(node.lineno)
    return lines


def test_the_router_kind_is_tested_by_name_in_one_place_at_most():
    """Router behaviour lives on the router classes and their specs (peft's layer classes), not in
    ``if router == "proto"`` spread over files."""
    found = [
        f"{path.relative_to(PACKAGE)}:{line}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for line in _router_kind_tests(ast.parse(path.read_text()))
    ]
    assert len(found) <= 1, found


def test_the_router_kind_check_sees_every_shape_of_comparison():
    code = 'a = mole.router == "proto"\nb = config.router != "linear"\nc = self.router in ROUTERS\nd = router not in KINDS\ne = routers == x'
    assert _router_kind_tests(ast.parse(code)) == [1, 2, 3, 4, 5]
    assert _router_kind_tests(ast.parse("a = ROUTER_CLASSES[config.router]\nb = spec.contrastive == True")) == []


PROGRESS_PARAMETERS = ("progress", "on_event")


def test_every_long_run_reports_progress_as_the_one_event_type():
    """Scan, bench, robustness, train and report take the same callback of ``ProgressEvent``s, so one
    renderer can show any of them; a second event shape would need a second renderer."""
    shapes = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.parent.name == "cli":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for arg in [*node.args.args, *node.args.kwonlyargs]:
                    # ``Progress`` is training's own step counters (training.state), not a callback
                    if (
                        arg.arg in PROGRESS_PARAMETERS
                        and arg.annotation is not None
                        and ast.unparse(arg.annotation) != "Progress"
                    ):
                        shapes.add(ast.unparse(arg.annotation))
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and "ProgressCallback" in ast.unparse(node).partition("=")[0]:
                shapes.add(f"{path.name} defines {ast.unparse(node)}")
    assert shapes == {
        "ProgressCallback | None",
        "ProgressCallback",
        "progress.py defines ProgressCallback = Callable[[ProgressEvent], None]",
    }


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
        "from aigdetect.cli import app\ntry:\n    app(['serve', '-h'], prog_name='aigdetect')\nexcept SystemExit:\n    pass",
    ],
    ids=["errors", "package", "cli", "scan-help", "version", "train-help", "serve-help"],
)
def test_light_entry_points_load_no_ml_stack(code):
    assert _loaded_after(code) == []
