"""``aigdetect train``: the paper's recipe on the user's data, with progress and a summary."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..data.config import AugmentConfig
from ..engine.runtime import RuntimeConfig
from ..errors import ConfigError
from ..models.config import MoLEConfig
from ..training.config import RECIPES, ProbeConfig, TrainConfig
from ..training.request import TrainRequest
from .common import cli_errors, command_line, with_options
from .options import (
    BlocksOption,
    ClsExpertOption,
    DeviceOption,
    ExpertAlphasOption,
    ExpertRanksOption,
    GateWeightOption,
    LbWeightOption,
    RclTemperatureOption,
    RclWeightOption,
    RouterOption,
    SharedAlphaOption,
    SharedRankOption,
    TopKOption,
    WorkersOption,
    default,
    default_list,
    flag,
    mole_config,
    option,
    parse_blocks,
    parse_float_list,
    parse_int_list,
    render,
)
from .progress import PlainProgress

if TYPE_CHECKING:
    from rich.table import Table

    from ..progress import ProgressEvent
    from ..training.train import TrainResult


def _train_option(name: str, *declarations: str, **kwargs) -> object:
    return option(TrainConfig, name, *declarations, **kwargs)


def _augment_option(name: str, *declarations: str) -> object:
    return option(AugmentConfig, name, *declarations)


def _probe_option(name: str, *declarations: str, **kwargs) -> object:
    return option(ProbeConfig, name, *declarations, **kwargs)


def _print_probe(summary: dict[str, Any], out: Path) -> None:
    """Per-view validation, then what the cache saved: the probe's summary as plain lines."""
    from rich.console import Console

    console = Console(soft_wrap=True)
    for row in summary["views"]:
        name = "centre crop" if row["view"] == 0 else f"augmented view {row['view']}"
        console.print(f"{name}: val AP {row['ap']:.4f}, acc@0.5 {row['acc']:.4f}", highlight=False)
    console.print(
        f"{summary['solver']}: {summary['steps']} steps, threshold {summary['threshold']:.4f}; images decoded "
        f"{summary['decoded']}, cached features read {summary['cache_hits']}, written {summary['cache_writes']}",
        highlight=False,
    )
    for path in summary["failed"]:
        console.print(f"skipped: {path}", highlight=False, markup=False)
    console.print(f"detector: {out}", highlight=False, markup=False)


def _pair(text: str, setting: str, parse: Any) -> tuple:
    values = parse(text, setting)
    if len(values) != 2:
        raise ConfigError(f"`{setting}` takes two comma-separated values LOW,HIGH, got {text!r}")
    return tuple(values)


def _augment(ctx: typer.Context, recipe: str, given: dict[str, Any]) -> AugmentConfig | None:
    """The augmentation options typed on the command line, over the recipe's augmentation; None
    (the recipe's) when none was typed, so that a default never silently replaces a recipe value."""
    # by name: typer parses with its own copy of click, whose ParameterSource is not click's
    typed = {k: v for k, v in given.items() if ctx.get_parameter_source(k).name != "DEFAULT"}
    if not typed:
        return None
    if "blur_sigma" in typed:
        typed["blur_sigma"] = _pair(typed["blur_sigma"], "blur_sigma", parse_float_list)
    if "jpeg_quality" in typed:
        typed["jpeg_quality"] = _pair(typed["jpeg_quality"], "jpeg_quality", parse_int_list)
    return replace(RECIPES.get(recipe).augment, **typed)


def _augment_text(augment: dict[str, Any]) -> str:
    low, high = augment["blur_sigma"]
    qlow, qhigh = augment["jpeg_quality"]
    return (
        f"blur p={augment['blur_prob']:g} sigma {low:g}-{high:g}, JPEG p={augment['jpeg_prob']:g} quality "
        f"{qlow}-{qhigh}, flip {'on' if augment['flip'] else 'off'}"
    )


_PROTOCOLS = {
    "ours": "ours (clean centre crops at native resolution; keep the best AP)",
    "peers": "peers (CNNDetection/UnivFD: resize to 256, blur and JPEG at the middle of the training ranges with "
    "the training probabilities; keep on accuracy; lr / 10 on a plateau)",
}


def recipe_lines(event: Mapping[str, Any]) -> list[str]:
    """The ``recipe`` event as the lines printed before training."""
    settings = event["settings"]
    lines = [
        f"recipe {event['recipe']}: {event['summary']}",
        f"  batch {settings['batch_size']}, lr {settings['lr']:g}, weight decay {event['weight_decay']:g}, "
        f"{event['schedule']} schedule, patience {event['patience']}",
        f"  augmentation: {_augment_text(settings['augment'])}",
        f"  validation: {_PROTOCOLS[settings['val_protocol']]}",
    ]
    replaced = []
    for name, values in event["overridden"].items():
        if name == "augment":
            replaced += [
                f"{flag(key)} {_value(values['used'][key])} (recipe: {_value(values['recipe'][key])})"
                for key in values["used"]
                if values["used"][key] != values["recipe"][key]
            ]
        else:
            replaced.append(f"{flag(name)} {_value(values['used'])} (recipe: {_value(values['recipe'])})")
    if replaced:
        lines.append("  given options win over the recipe: " + ", ".join(replaced))
    return lines


def _value(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


class _Renderer:
    """Turns the library's training events into stderr output: layout, progress, validations.

    Progress is a bar on a terminal; otherwise (a log file, a pipe) a plain line at most every
    ``PROGRESS_INTERVAL_S``: steps, images/s (steps/s times the global batch) and time left, both
    measured on ``clock`` from the start of training.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.console = Console(stderr=True, soft_wrap=True)
        self.progress = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            disable=not self.console.is_terminal,
        )
        self.task = None
        self.clock = clock
        self.plain: PlainProgress | None = None
        self.batch_size = 0
        self.start_step = 0

    def __call__(self, update: ProgressEvent) -> None:
        kind, event = update.stage, update.detail
        if kind == "data":
            for line in event["description"]:
                self.console.print(render(line), highlight=False, markup=False)
        elif kind == "recipe":
            self.batch_size = event["settings"]["batch_size"]
            for line in recipe_lines(event):
                self.console.print(line, highlight=False, markup=False)
        elif kind == "micro_batch" and (event["automatic"] or event["micro_batch"] < event["per_process_batch"]):
            how = "chosen to fit GPU memory" if event["automatic"] else "as given"
            self.progress.console.print(
                f"micro-batches of {event['micro_batch']} images per pass ({how}); gradients accumulate to the "
                f"batch of {event['per_process_batch']} per process",
                highlight=False,
            )
        elif kind == "note":
            self.progress.console.print(f"note: {event['message']}", highlight=False, markup=False)
        elif kind == "start":
            resumed = f", resuming at step {event['start_step']}" if event["start_step"] else ""
            self.console.print(
                f"training {event['total_steps']} steps ({event['steps_per_epoch']} per epoch) on {event['device']}"
                f" x{event['world_size']}, {event['trainable_parameters']:,} trainable parameters{resumed}",
                highlight=False,
            )
            self.progress.start()
            self.task = self.progress.add_task("train", total=event["total_steps"], completed=event["start_step"], rate="")
            self.start_step = event["start_step"]
            self.plain = None if self.console.is_terminal else PlainProgress(self.clock)
        elif kind == "progress" and self.task is not None:
            self.progress.update(self.task, completed=update.done)
            self._plain_line(update.done, update.total)
        elif kind == "step" and self.task is not None:
            rate = f"{event['images_per_s']:.0f} img/s" if event.get("images_per_s") else ""
            self.progress.update(self.task, rate=f"{rate} loss {event['loss']:.4f}")
        elif kind == "eval":
            peers = event.get("protocol") == "peers"
            note = ("  (kept)" if peers else "  (best)") if event["improved"] else ""
            drop = f"  plateau: lr / 10 -> {event['lr']:g}" if event.get("lr_dropped") else ""
            stop = ("  stop: plateau at the last lr" if peers else "  early stop: no better AP") if event["stopped_early"] else ""
            self.progress.console.print(
                f"step {event['step']}: val AP {event['val_ap']:.4f}, acc@0.5 {event['val_acc']:.4f}{note}{drop}{stop}",
                highlight=False,
            )
        elif kind == "done":
            self.progress.stop()

    def _plain_line(self, step: int, total: int) -> None:
        pace = self.plain.due(step - self.start_step, total - self.start_step) if self.plain is not None else None
        if pace is not None:
            self.console.print(
                f"step {step} of {total}, {pace.rate * self.batch_size:.1f} images/s, {pace.left_text}",
                highlight=False, markup=False,
            )  # fmt: skip


def _summary_table(result: TrainResult) -> Table:
    from rich.table import Table

    table = Table(title="aigdetect train", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("validation AP", f"{result.val_ap:.4f}")
    table.add_row("calibrated threshold", f"{result.threshold:.4f}")
    for label, acc in ((f"@ {result.threshold:.4f}", result.acc_threshold), ("@ 0.5", result.acc_half)):
        table.add_row(f"accuracy {label} (real / fake / all)", f"{acc.real:.4f} / {acc.fake:.4f} / {acc.overall:.4f}")
    stopped = " early stop" if result.stopped_early else ""
    table.add_row("steps (best at)", f"{result.steps} ({result.best_step}){stopped}")
    table.add_row("images (train / val)", f"{result.train_images} / {result.val_images}")
    if result.lr_drops:
        table.add_row("learning-rate drops (plateau)", str(result.lr_drops))
    skipped = ", ".join(f"{n} {reason}" for reason, n in result.skipped.items()) or "none"
    table.add_row("unreadable files skipped", skipped)
    return table


def _print_summary(result: TrainResult) -> None:
    """The metrics table, then the files written as whole lines: a path is never cut or wrapped by us."""
    from rich.console import Console

    console = Console(soft_wrap=True)
    console.print(_summary_table(result))
    console.print(f"detector: {result.out}", highlight=False, markup=False)
    console.print(f"training state: {result.state}", highlight=False, markup=False)


OverwriteOption = Annotated[bool, typer.Option("--overwrite", help="Replace OUT when it is an earlier aigdetect checkpoint.")]


def _options(
    blur_prob: Annotated[float, _augment_option("blur_prob")] = default(AugmentConfig, "blur_prob"),
    blur_sigma: Annotated[str, _augment_option("blur_sigma")] = default_list(AugmentConfig, "blur_sigma"),
    jpeg_prob: Annotated[float, _augment_option("jpeg_prob")] = default(AugmentConfig, "jpeg_prob"),
    jpeg_quality: Annotated[str, _augment_option("jpeg_quality")] = default_list(AugmentConfig, "jpeg_quality"),
    flip: Annotated[bool, _augment_option("flip", "--flip/--no-flip")] = default(AugmentConfig, "flip"),
    probe: Annotated[bool, typer.Option("--probe", help="Fit a linear probe on frozen features (UnivFD's recipe; no blocks).")] = False,
    feature_cache: Annotated[Path | None, _probe_option("feature_cache", file_okay=False)] = default(ProbeConfig, "feature_cache"),
    views: Annotated[int, _probe_option("views")] = default(ProbeConfig, "views"),
    probe_solver: Annotated[str, _probe_option("solver", "--probe-solver")] = default(ProbeConfig, "solver"),
) -> None:
    """The augmentation and probe options of ``train``: its signature is theirs."""


@cli_errors
@with_options(_options)
def train(
    ctx: typer.Context,
    out: Annotated[Path, _train_option("out", dir_okay=False)],
    data: Annotated[Path | None, _train_option("data", file_okay=False)] = default(TrainConfig, "data"),
    real: Annotated[Path | None, _train_option("real", file_okay=False)] = default(TrainConfig, "real"),
    fake: Annotated[Path | None, _train_option("fake", file_okay=False)] = default(TrainConfig, "fake"),
    val: Annotated[Path | None, _train_option("val", file_okay=False)] = default(TrainConfig, "val"),
    val_fraction: Annotated[float | None, _train_option("val_fraction")] = default(TrainConfig, "val_fraction"),
    train_size: Annotated[int | None, _train_option("train_size")] = default(TrainConfig, "train_size"),
    steps: Annotated[int | None, _train_option("steps")] = default(TrainConfig, "steps"),
    epochs: Annotated[int | None, _train_option("epochs")] = default(TrainConfig, "epochs"),
    recipe: Annotated[str, _train_option("recipe")] = default(TrainConfig, "recipe"),
    batch_size: Annotated[int | None, _train_option("batch_size")] = default(TrainConfig, "batch_size"),
    micro_batch: Annotated[int | None, _train_option("micro_batch")] = default(TrainConfig, "micro_batch"),
    lr: Annotated[float | None, _train_option("lr")] = default(TrainConfig, "lr"),
    weight_decay: Annotated[float, _train_option("weight_decay")] = default(TrainConfig, "weight_decay"),
    schedule: Annotated[str, _train_option("schedule")] = default(TrainConfig, "schedule"),
    eval_every: Annotated[int, _train_option("eval_every")] = default(TrainConfig, "eval_every"),
    val_protocol: Annotated[str | None, _train_option("val_protocol")] = default(TrainConfig, "val_protocol"),
    patience: Annotated[int, _train_option("patience")] = default(TrainConfig, "patience"),
    log_every: Annotated[int, _train_option("log_every")] = default(TrainConfig, "log_every"),
    device: DeviceOption = default(RuntimeConfig, "device"),
    seed: Annotated[int, _train_option("seed")] = default(TrainConfig, "seed"),
    workers: WorkersOption = default(RuntimeConfig, "workers"),
    log: Annotated[Path | None, _train_option("log", dir_okay=False)] = default(TrainConfig, "log"),
    resume: Annotated[Path | None, _train_option("resume", dir_okay=False)] = default(TrainConfig, "resume"),
    model: Annotated[str, _train_option("model")] = default(TrainConfig, "model"),
    backbone_weights: Annotated[str | None, _train_option("backbone_weights")] = default(TrainConfig, "backbone_weights"),
    cache_dir: Annotated[Path | None, _train_option("cache_dir", file_okay=False)] = default(TrainConfig, "cache_dir"),
    blocks: BlocksOption = default(MoLEConfig, "blocks"),
    shared_rank: SharedRankOption = default(MoLEConfig, "shared_rank"),
    shared_alpha: SharedAlphaOption = default(MoLEConfig, "shared_alpha"),
    expert_ranks: ExpertRanksOption = default_list(MoLEConfig, "expert_ranks"),
    expert_alphas: ExpertAlphasOption = default(MoLEConfig, "expert_alphas"),
    top_k: TopKOption = default(MoLEConfig, "top_k"),
    router: RouterOption = default(MoLEConfig, "router"),
    gate_weight: GateWeightOption = default(MoLEConfig, "gate_weight"),
    lb_weight: LbWeightOption = default(MoLEConfig, "lb_weight"),
    rcl_weight: RclWeightOption = default(MoLEConfig, "rcl_weight"),
    rcl_temperature: RclTemperatureOption = default(MoLEConfig, "rcl_temperature"),
    cls_expert: ClsExpertOption = default(MoLEConfig, "cls_expert"),
    max_pixels: Annotated[int, _train_option("max_pixels")] = default(TrainConfig, "max_pixels"),
    max_bytes: Annotated[int, _train_option("max_bytes")] = default(TrainConfig, "max_bytes"),
    overwrite: OverwriteOption = False,
    **options: Any,
) -> None:
    """Train a MoLE detector on labelled real/fake folders (AdamW, lr 6e-4, blur/JPEG p=0.1).

    Example: aigdetect train --data progan/ --model vitb32 --steps 20000 --out mole.safetensors --log train.jsonl

    Example: aigdetect train --data progan/train --recipe paper --model vitl14 --out mole.safetensors"""
    given = dict(locals())
    _run(ctx, SimpleNamespace(**given.pop("options"), **given))


def _run(ctx: typer.Context, given: SimpleNamespace) -> None:
    """Build the one request, run it, render its events, then print the summary (main process only)."""
    from ..jobs.train import run

    request = TrainRequest(_config(ctx, given), overwrite=given.overwrite, command=command_line(ctx))
    renderer = _Renderer()
    try:
        result = run(request, renderer)
    finally:
        renderer.progress.stop()
    if request.config.probe is not None:
        _print_probe(result, given.out)
    elif result is not None:
        _print_summary(result)
        for path in result.skipped_examples:
            renderer.console.print(f"skipped: {path}", highlight=False, markup=False)


def _config(ctx: typer.Context, given: SimpleNamespace) -> TrainConfig:
    """The training settings typed on the command line (paths as text, blocks and lists parsed)."""
    g = given
    blocks = 0 if g.probe and ctx.get_parameter_source("blocks").name == "DEFAULT" else parse_blocks(g.blocks, g.model)
    mole = mole_config(
        blocks, g.shared_rank, g.shared_alpha, g.expert_ranks, g.expert_alphas, g.top_k, g.router,
        g.lb_weight, g.rcl_weight, g.rcl_temperature, g.cls_expert, g.gate_weight,
    )  # fmt: skip
    augment = {name: getattr(g, name) for name in ("blur_prob", "blur_sigma", "jpeg_prob", "jpeg_quality", "flip")}
    return TrainConfig(
        out=str(g.out), data=_text(g.data), real=_text(g.real), fake=_text(g.fake), val=_text(g.val),
        val_fraction=g.val_fraction, train_size=g.train_size, model=g.model, backbone_weights=g.backbone_weights,
        cache_dir=_text(g.cache_dir), recipe=g.recipe, mole=mole, augment=_augment(ctx, g.recipe, augment),
        steps=g.steps, epochs=g.epochs, batch_size=g.batch_size, micro_batch=g.micro_batch, lr=g.lr,
        weight_decay=g.weight_decay, schedule=g.schedule, eval_every=g.eval_every, val_protocol=g.val_protocol,
        patience=g.patience, log_every=g.log_every, seed=g.seed, runtime=RuntimeConfig(device=g.device, workers=g.workers),
        log=_text(g.log), resume=_text(g.resume), max_pixels=g.max_pixels, max_bytes=g.max_bytes,
        probe=ProbeConfig(_text(g.feature_cache), g.views, g.probe_solver) if g.probe else None,
    )  # fmt: skip


def _text(path: Path | None) -> str | None:
    return str(path) if path else None


def register(app: typer.Typer) -> None:
    app.command("train")(train)
