"""``aigdetect bench`` and ``aigdetect robustness``: the paper's evaluation protocol on the UnivFD,
GenImage and DALL-E 2 layouts (or any real/fake folder pair), rendered like its tables.

Both commands forward their options by keyword to ``evaluation.run.run_request``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ..engine.runtime import RuntimeConfig
from ..evaluation.bench_config import BenchConfig, Reencode, SweepConfig
from ..evaluation.run import FOLDER_SUITE, BenchRequest, suite_names
from .common import cli_errors, command_line, with_options
from .options import (
    AllowRandomBackboneOption,
    BackboneWeightsOption,
    BackendOption,
    BatchSizeOption,
    CacheDirOption,
    CheckpointOption,
    CompileOption,
    DetectorModelOption,
    DeviceOption,
    GpuDecodeOption,
    PrecisionOption,
    WorkersOption,
    default,
    default_list,
    detector_choice,
    option,
    parse_float_list,
    parse_int_list,
)
from .progress import StageBars

SuiteArgument = Annotated[
    str, typer.Argument(metavar="SUITE", help=f"One of {', '.join(suite_names())}.", show_default=False)
]
RootOption = Annotated[
    Path | None, typer.Option("--root", file_okay=False, help="Dataset root holding the suite's folders (see the README).")
]
RealOption = Annotated[
    Path | None, typer.Option("--real", file_okay=False, help="Folder suite: folder of real images (searched recursively).")
]
FakeOption = Annotated[
    Path | None, typer.Option("--fake", file_okay=False, help="Folder suite: folder of AI-generated images.")
]
NameOption = Annotated[str, typer.Option("--name", help="Folder suite: the subset's name in the tables.")]
OutOption = Annotated[
    Path | None,
    typer.Option(
        "--out", file_okay=False, help="Write results.json, results.csv, results.md, predictions.csv and report.html here."
    ),
]
OverwriteOption = Annotated[
    bool, typer.Option("--overwrite", help="Replace the report files in OUT when they are an earlier run's.")
]
MaxPerClassOption = Annotated[int | None, option(BenchConfig, "max_per_class")]
SeedOption = Annotated[int, option(BenchConfig, "seed")]
ProtocolOption = Annotated[str, option(BenchConfig, "protocol")]
ReencodeOption = Annotated[str | None, option(BenchConfig, "reencode")]
MaxPixelsOption = Annotated[int, option(BenchConfig, "max_pixels")]
MaxBytesOption = Annotated[int, option(BenchConfig, "max_bytes")]
CompareOption = Annotated[
    Path | None,
    typer.Option("--compare", dir_okay=False, help="Another run's results.json (same suite): print and record the deltas."),
]


def _print_table(console: Any, table: Any) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

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


def _summarise(err: Any, data: dict[str, Any], written: list[Path]) -> None:
    err.print(f"scores: {data['scores']}")
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


def _html_page(request: BenchRequest, data: dict[str, Any]) -> Path:
    """report.html beside the other report files: the tables, the plot and the per-subset figures."""
    from ..evaluation.report import ROBUSTNESS_PNG
    from ..report import write_bench_html, write_robustness_html

    out = Path(request.out)
    if request.sweep is None:
        return write_bench_html(data, out)
    return write_robustness_html(data, out, out / ROBUSTNESS_PNG)


def _check_outputs(request: BenchRequest, overwrite: bool) -> None:
    """Refuse, before scoring, report files in ``out`` that would destroy an input or another file."""
    from ..evaluation.report import PREDICTIONS_CSV, RESULTS_CSV, RESULTS_JSON, RESULTS_MD, ROBUSTNESS_PNG
    from ..outputs import BENCH_CSV, BENCH_JSON, BENCH_MARKDOWN, FIGURE, HTML_REPORT, Output, OutputError, check_outputs
    from ..report.bench_page import REPORT_HTML

    if request.out is None:
        return
    out = Path(request.out)
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise OutputError(f"`out` {out} is not a folder; give a folder for the report files")
    files = [(RESULTS_JSON, BENCH_JSON), (RESULTS_CSV, BENCH_CSV), (RESULTS_MD, BENCH_MARKDOWN), (PREDICTIONS_CSV, BENCH_CSV),
             (REPORT_HTML, HTML_REPORT)] + ([(ROBUSTNESS_PNG, FIGURE)] if request.sweep is not None else [])  # fmt: skip
    reads = [p for p in (request.root, request.real, request.fake, request.compare, request.choice.checkpoint) if p]
    check_outputs([Output.of(out / name, kind, "out") for name, kind in files], overwrite=overwrite, reads=reads)


def _run(request: BenchRequest, overwrite: bool) -> None:
    """Check the outputs, score with a progress bar on stderr, then print the tables and a summary."""
    _check_outputs(request, overwrite)
    from rich.console import Console

    from ..evaluation.run import run_request

    err = Console(stderr=True, markup=False, highlight=False)
    with StageBars(err) as bars:
        outcome = run_request(request, bars)
    if request.out is not None:
        outcome.written.append(_html_page(request, outcome.data))
    console = Console()
    for table in outcome.tables:
        _print_table(console, table)
    _summarise(err, outcome.data, outcome.written)


def _request(
    ctx: typer.Context, suite: str, root: Path | None, real: Path | None, fake: Path | None, name: str, **options: Any
) -> BenchRequest:
    choice = detector_choice(
        options["checkpoint"], options["model"], options["backbone_weights"], options["cache_dir"],
        options["allow_random_backbone"],
    )
    config = BenchConfig(
        max_per_class=options["max_per_class"],
        seed=options["seed"],
        protocol=options["protocol"],
        reencode=Reencode.parse(options["reencode"]) if options["reencode"] else None,
        runtime=RuntimeConfig(
            device=options["device"], batch_size=options["batch_size"], workers=options["workers"],
            backend=options["backend"], precision=options["precision"], gpu_decode=options["gpu_decode"],
            compile=options["compile"],
        ),  # fmt: skip
        max_pixels=options["max_pixels"],
        max_bytes=options["max_bytes"],
    )
    as_text = {k: str(v) if v is not None else None for k, v in (("root", root), ("real", real), ("fake", fake))}
    return BenchRequest(
        suite=suite, choice=choice, config=config, name=name, out=str(options["out"]) if options["out"] else None,
        compare=str(options["compare"]) if options["compare"] else None, sweep=options["sweep"],
        command=command_line(ctx), **as_text,
    )


def _shared(
    ctx: typer.Context,
    suite: SuiteArgument,
    root: RootOption = None,
    real: RealOption = None,
    fake: FakeOption = None,
    name: NameOption = FOLDER_SUITE,
    checkpoint: CheckpointOption = None,
    model: DetectorModelOption = None,
    backbone_weights: BackboneWeightsOption = None,
    cache_dir: CacheDirOption = None,
    allow_random_backbone: AllowRandomBackboneOption = False,
    device: DeviceOption = default(RuntimeConfig, "device"),
    batch_size: BatchSizeOption = default(RuntimeConfig, "batch_size"),
    workers: WorkersOption = default(RuntimeConfig, "workers"),
    backend: BackendOption = default(RuntimeConfig, "backend"),
    precision: PrecisionOption = default(RuntimeConfig, "precision"),
    gpu_decode: GpuDecodeOption = default(RuntimeConfig, "gpu_decode"),
    compile: CompileOption = default(RuntimeConfig, "compile"),
    out: OutOption = None,
    max_per_class: MaxPerClassOption = default(BenchConfig, "max_per_class"),
    seed: SeedOption = default(BenchConfig, "seed"),
    protocol: ProtocolOption = default(BenchConfig, "protocol"),
    reencode: ReencodeOption = None,
    compare: CompareOption = None,
    max_pixels: MaxPixelsOption = default(BenchConfig, "max_pixels"),
    max_bytes: MaxBytesOption = default(BenchConfig, "max_bytes"),
    overwrite: OverwriteOption = False,
) -> None:
    """The options bench and robustness share, written once: its signature is theirs."""


def _forward(options: dict[str, Any], sweep: SweepConfig | None = None) -> None:
    where = {key: options.pop(key) for key in ("ctx", "suite", "root", "real", "fake", "name")}
    overwrite = options.pop("overwrite")
    _run(_request(**where, **options, sweep=sweep), overwrite)


@cli_errors
@with_options(_shared)
def bench(**options: Any) -> None:
    """Evaluate a detector on a benchmark suite (the paper's Tables 1-3) or on a real/fake folder pair.

    Example: aigdetect bench univfd --root data/univfd --checkpoint mole.safetensors --out runs/univfd --reencode jpeg:95

    Example: aigdetect bench folder --real photos/ --fake generated/ --name mine --out runs/mine

    Example: aigdetect bench univfd --root data/univfd --checkpoint mole.safetensors --protocol univfd
    """
    _forward(options)


@cli_errors
@with_options(_shared)
def robustness(
    *,
    blur: Annotated[str, option(SweepConfig, "blur")] = default_list(SweepConfig, "blur"),
    jpeg: Annotated[str, option(SweepConfig, "jpeg")] = default_list(SweepConfig, "jpeg"),
    **options: Any,
) -> None:
    """Measure mAP and accuracy under Gaussian blur and JPEG compression (Figure 4).

    Example: aigdetect robustness univfd --root data/univfd --checkpoint mole.safetensors --out runs/rob --blur 1,2 --jpeg 90,50
    """
    _forward(options, SweepConfig(blur=parse_float_list(blur, "blur"), jpeg=parse_int_list(jpeg, "jpeg")))


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
    app.command("robustness")(robustness)
