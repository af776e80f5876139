"""``aigdetect bench`` and ``aigdetect robustness``: the paper's evaluation protocol on the UnivFD,
GenImage and DALL-E 2 layouts (or any real/fake folder pair), rendered like its tables."""

from __future__ import annotations

import functools
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import torch
import typer
from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from ..engine.infer import default_workers, resolve_device
from ..evaluation.bench import BenchConfig, Reencode, run_bench
from ..evaluation.bench import Progress as BenchProgress
from ..evaluation.report import write_bench_report, write_robustness_report
from ..evaluation.results import (
    bench_dict,
    compare_results,
    load_results,
    robustness_dict,
)
from ..evaluation.robustness import PAPER_BLUR, PAPER_JPEG, SweepConfig, run_robustness
from ..evaluation.suites import SUITES, Discovery, Suite, discover, discover_pair
from ..evaluation.tables import TextTable, bench_tables, robustness_tables
from .common import (
    BackboneWeightsOption,
    BatchSizeOption,
    CacheDirOption,
    CheckpointOption,
    DeviceOption,
    ModelOption,
    WorkersOption,
    cli_errors,
    detector_options,
    parse_float_list,
    parse_int_list,
)

RootOption = Annotated[Path, typer.Option("--root", help="Dataset root holding the suite's folders (see the README).")]
RealOption = Annotated[Path, typer.Option("--real", help="Folder of real images (searched recursively).")]
FakeOption = Annotated[Path, typer.Option("--fake", help="Folder of AI-generated images (searched recursively).")]
NameOption = Annotated[str, typer.Option("--name", help="Name of this subset in the tables.")]
OutOption = Annotated[
    Path | None,
    typer.Option("--out", help="Write results.json, results.csv, results.md and predictions.csv here."),
]
MaxPerClassOption = Annotated[
    int | None,
    typer.Option("--max-per-class", min=1, help="Score a seeded random sample of at most N reals and N fakes per subset."),
]
SeedOption = Annotated[int, typer.Option("--seed", help="Seed of the --max-per-class sample.")]
ReencodeOption = Annotated[
    str | None,
    typer.Option("--reencode", help="Re-encode every image before scoring (jpeg:Q or png) to expose file-format shortcuts."),
]
CompareOption = Annotated[
    Path | None, typer.Option("--compare", help="Another run's results.json (same suite): print and record the deltas.")
]
BlurOption = Annotated[str, typer.Option("--blur", help="Comma-separated Gaussian blur sigmas ('' for none).")]
JpegOption = Annotated[str, typer.Option("--jpeg", help="Comma-separated JPEG qualities ('' for none).")]

DEFAULT_BLUR = ",".join(f"{s:g}" for s in PAPER_BLUR)
DEFAULT_JPEG = ",".join(str(q) for q in PAPER_JPEG)


@dataclass(frozen=True)
class _Runtime:
    """The detector and runtime options every bench and robustness command shares."""

    checkpoint: Path | None
    model: str | None
    backbone_weights: str | None
    cache_dir: Path | None
    device: str
    batch_size: int | None
    workers: int | None
    out: Path | None
    max_per_class: int | None
    seed: int
    reencode: str | None
    compare: Path | None

    def config(self, device: torch.device) -> BenchConfig:
        return BenchConfig(
            max_per_class=self.max_per_class,
            seed=self.seed,
            reencode=Reencode.parse(self.reencode) if self.reencode else None,
            batch_size=self.batch_size,
            workers=default_workers(device) if self.workers is None else self.workers,
        )

    def origin(self, detector_name: str) -> str:
        return str(self.checkpoint) if self.checkpoint else f"built-in {detector_name}"


def _command_line(ctx: typer.Context) -> str:
    """The invocation as the user would retype it: the command path plus every non-default option."""
    words = ["aigdetect", *ctx.command_path.split()[1:]]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if param.param_type_name != "option" or value is None or value == param.default:
            continue
        words += [param.opts[0], str(value)]
    return shlex.join(words)


def _print_table(console: Console, table: TextTable) -> None:
    rendered = Table(
        title=Text(table.title),
        caption=Text(table.caption),
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
    )
    for index, column in enumerate(table.columns):
        if index == 0:
            widest = max((len(row[0]) for row in table.rows), default=len(column))
            rendered.add_column(column, min_width=min(max(widest, len(column)), 14))
        else:
            rendered.add_column(column, justify="right", min_width=6)
    for index, row in enumerate(table.rows):
        rendered.add_row(
            *(Text(cell) for cell in row),
            style="bold" if index in table.bold_rows else None,
            end_section=index in table.section_ends and index != len(table.rows) - 1,
        )
    console.print(rendered)


def _progress_reporter(progress: Progress) -> Callable[[BenchProgress], None]:
    tasks: dict[str, Any] = {}

    def report(event: BenchProgress) -> None:
        if event.stage not in tasks:
            tasks[event.stage] = progress.add_task(event.stage, total=event.total)
        progress.update(tasks[event.stage], completed=event.done)

    return report


def _summarise(err: Console, data: dict[str, Any], written: list[Path]) -> None:
    if data["missing"]:
        names = ", ".join(f"{m['title']} ({m['folder']}/)" for m in data["missing"])
        err.print(f"missing, skipped: {names}")
    for note in data["notes"]:
        err.print(f"note: {note}")
    compared = data.get("compare") or {}
    differing = [*compared.get("delta", {}).get("only_here", []), *compared.get("delta", {}).get("only_there", [])]
    if differing:
        err.print(f"note: --compare run and this run differ in subsets ({', '.join(differing)}); their means cover different sets")
    if data["errors"]:
        err.print(f"{len(data['errors'])} image(s) could not be decoded and were left out (listed in results.md)")
    if written:
        err.print(f"wrote {', '.join(p.name for p in written)} to {written[0].parent}")


def _run(
    ctx: typer.Context,
    runtime: _Runtime,
    find: Callable[[], Discovery],
    sweep: SweepConfig | None = None,
) -> None:
    """Shared body of every bench / robustness command: load, discover, score, report."""
    device = resolve_device(runtime.device)
    config = runtime.config(device)
    discovery = find()
    kind = "bench" if sweep is None else "robustness"
    other = load_results(runtime.compare, kind) if runtime.compare else None
    detector = detector_options(runtime.checkpoint, runtime.model, runtime.backbone_weights, runtime.cache_dir)
    err = Console(stderr=True, markup=False, highlight=False)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        report = _progress_reporter(progress)
        origin = runtime.origin(detector.name)
        if sweep is None:
            bench = run_bench(detector, discovery, origin=origin, device=device, config=config, progress=report)
            data = bench_dict(bench, _command_line(ctx))
            write = functools.partial(write_bench_report, bench, data)
            tables = bench_tables
        else:
            sweep_result = run_robustness(
                detector, discovery, origin=origin, device=device, config=config, sweep=sweep, progress=report
            )
            data = robustness_dict(sweep_result, _command_line(ctx))
            write = functools.partial(write_robustness_report, sweep_result, data)
            tables = robustness_tables
    if other is not None:
        data["compare"] = compare_results(data, other, str(runtime.compare))
    written = write(runtime.out) if runtime.out is not None else []
    console = Console()
    for table in tables(data):
        _print_table(console, table)
    _summarise(err, data, written)


def _sweep(blur: str, jpeg: str) -> SweepConfig:
    return SweepConfig(blur=parse_float_list(blur, "--blur"), jpeg=parse_int_list(jpeg, "--jpeg"))


def _suite_example(verb: str, suite: Suite) -> str:
    name = suite.name
    return f"aigdetect {verb} {name} --root data/{name} --checkpoint mole.safetensors --out runs/{name}"


def _bench_suite(suite: Suite) -> Callable[..., None]:
    """The ``bench <suite>`` command of one registered suite: the suite is fixed by the command name, not an option."""

    @cli_errors
    def command(
        ctx: typer.Context,
        root: RootOption,
        checkpoint: CheckpointOption = None,
        model: ModelOption = None,  # type: ignore[assignment]
        backbone_weights: BackboneWeightsOption = None,
        cache_dir: CacheDirOption = None,
        device: DeviceOption = "auto",
        batch_size: BatchSizeOption = None,
        workers: WorkersOption = None,
        out: OutOption = None,
        max_per_class: MaxPerClassOption = None,
        seed: SeedOption = 0,
        reencode: ReencodeOption = None,
        compare: CompareOption = None,
    ) -> None:
        runtime = _Runtime(
            checkpoint, model, backbone_weights, cache_dir, device, batch_size, workers, out, max_per_class, seed,
            reencode, compare,
        )
        _run(ctx, runtime, lambda: discover(suite, root))

    return command


@cli_errors
def bench_folder(
    ctx: typer.Context,
    real: RealOption,
    fake: FakeOption,
    name: NameOption = "folder",
    checkpoint: CheckpointOption = None,
    model: ModelOption = None,  # type: ignore[assignment]
    backbone_weights: BackboneWeightsOption = None,
    cache_dir: CacheDirOption = None,
    device: DeviceOption = "auto",
    batch_size: BatchSizeOption = None,
    workers: WorkersOption = None,
    out: OutOption = None,
    max_per_class: MaxPerClassOption = None,
    seed: SeedOption = 0,
    reencode: ReencodeOption = None,
    compare: CompareOption = None,
) -> None:
    """Evaluate a detector on a folder of real and a folder of fake images.

    Example: aigdetect bench folder --real photos/ --fake generated/ --name mine --out runs/mine --reencode jpeg:95
    """
    runtime = _Runtime(
        checkpoint, model, backbone_weights, cache_dir, device, batch_size, workers, out, max_per_class, seed,
        reencode, compare,
    )
    _run(ctx, runtime, lambda: discover_pair(real, fake, name))


def _robustness_suite(suite: Suite) -> Callable[..., None]:
    """The ``robustness <suite>`` command of one registered suite (see ``_bench_suite``)."""

    @cli_errors
    def command(
        ctx: typer.Context,
        root: RootOption,
        checkpoint: CheckpointOption = None,
        model: ModelOption = None,  # type: ignore[assignment]
        backbone_weights: BackboneWeightsOption = None,
        cache_dir: CacheDirOption = None,
        device: DeviceOption = "auto",
        batch_size: BatchSizeOption = None,
        workers: WorkersOption = None,
        out: OutOption = None,
        max_per_class: MaxPerClassOption = None,
        seed: SeedOption = 0,
        reencode: ReencodeOption = None,
        compare: CompareOption = None,
        blur: BlurOption = DEFAULT_BLUR,
        jpeg: JpegOption = DEFAULT_JPEG,
    ) -> None:
        sweep = _sweep(blur, jpeg)
        runtime = _Runtime(
            checkpoint, model, backbone_weights, cache_dir, device, batch_size, workers, out, max_per_class, seed,
            reencode, compare,
        )
        _run(ctx, runtime, lambda: discover(suite, root), sweep)

    return command


@cli_errors
def robustness_folder(
    ctx: typer.Context,
    real: RealOption,
    fake: FakeOption,
    name: NameOption = "folder",
    checkpoint: CheckpointOption = None,
    model: ModelOption = None,  # type: ignore[assignment]
    backbone_weights: BackboneWeightsOption = None,
    cache_dir: CacheDirOption = None,
    device: DeviceOption = "auto",
    batch_size: BatchSizeOption = None,
    workers: WorkersOption = None,
    out: OutOption = None,
    max_per_class: MaxPerClassOption = None,
    seed: SeedOption = 0,
    reencode: ReencodeOption = None,
    compare: CompareOption = None,
    blur: BlurOption = DEFAULT_BLUR,
    jpeg: JpegOption = DEFAULT_JPEG,
) -> None:
    """Measure mAP and accuracy under blur and JPEG on a folder of real and a folder of fake images.

    Example: aigdetect robustness folder --real photos/ --fake generated/ --name mine --out runs/mine --blur 1,2 --jpeg 90,50
    """
    sweep = _sweep(blur, jpeg)
    runtime = _Runtime(
        checkpoint, model, backbone_weights, cache_dir, device, batch_size, workers, out, max_per_class, seed,
        reencode, compare,
    )
    _run(ctx, runtime, lambda: discover_pair(real, fake, name), sweep)


def _group(help_text: str) -> typer.Typer:
    return typer.Typer(help=help_text, no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]})


def _bench_group() -> typer.Typer:
    group = _group("Evaluate a detector on the paper's benchmarks (Tables 1-3).")
    for suite in SUITES.list():
        example = f"{_suite_example('bench', suite)} --reencode jpeg:95"
        help_text = f"Evaluate a detector on {suite.title}.\n\nExample: {example}"
        group.command(suite.name, help=help_text)(_bench_suite(suite))
    group.command("folder")(bench_folder)
    return group


def _robustness_group() -> typer.Typer:
    group = _group("Score a detector under Gaussian blur and JPEG compression (Figure 4).")
    for suite in SUITES.list():
        example = f"{_suite_example('robustness', suite)} --blur 1,2 --jpeg 90,50"
        help_text = f"Measure mAP and accuracy under blur and JPEG on {suite.title}.\n\nExample: {example}"
        group.command(suite.name, help=help_text)(_robustness_suite(suite))
    group.command("folder")(robustness_folder)
    return group


def register(app: typer.Typer) -> None:
    app.add_typer(_bench_group(), name="bench")
    app.add_typer(_robustness_group(), name="robustness")
