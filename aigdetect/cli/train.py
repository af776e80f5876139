"""``aigdetect train``: the paper's recipe on the user's data, with progress and a summary."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..data.config import AugmentConfig
from ..engine.runtime import RuntimeConfig
from ..engine.train_config import TrainConfig
from ..errors import ConfigError
from ..models.config import MoLEConfig
from .common import cli_errors
from .options import (
    BlocksOption,
    ClsExpertOption,
    DeviceOption,
    ExpertAlphasOption,
    ExpertRanksOption,
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
    mole_config,
    option,
    parse_float_list,
    parse_int_list,
    render,
)

if TYPE_CHECKING:
    from rich.table import Table

    from ..engine.train import TrainResult


def _train_option(name: str, *declarations: str, **kwargs) -> object:
    return option(TrainConfig, name, *declarations, **kwargs)


def _augment_option(name: str, *declarations: str) -> object:
    return option(AugmentConfig, name, *declarations)


def _pair(text: str, setting: str, parse: Any) -> tuple:
    values = parse(text, setting)
    if len(values) != 2:
        raise ConfigError(f"`{setting}` takes two comma-separated values LOW,HIGH, got {text!r}")
    return tuple(values)


class _Renderer:
    """Turns the library's training events into stderr output: layout, a progress bar, validations."""

    def __init__(self) -> None:
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

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind == "data":
            for line in event["description"]:
                self.console.print(render(line), highlight=False, markup=False)
        elif kind == "start":
            resumed = f", resuming at step {event['start_step']}" if event["start_step"] else ""
            self.console.print(
                f"training {event['total_steps']} steps ({event['steps_per_epoch']} per epoch) on {event['device']}"
                f" x{event['world_size']}, {event['trainable_parameters']:,} trainable parameters{resumed}",
                highlight=False,
            )
            self.progress.start()
            self.task = self.progress.add_task(
                "train", total=event["total_steps"], completed=event["start_step"], rate=""
            )
        elif kind == "progress" and self.task is not None:
            self.progress.update(self.task, completed=event["step"])
        elif kind == "step" and self.task is not None:
            rate = f"{event['images_per_s']:.0f} img/s" if event.get("images_per_s") else ""
            self.progress.update(self.task, rate=f"{rate} loss {event['loss']:.4f}")
        elif kind == "eval":
            note = "  (best)" if event["improved"] else ""
            stop = "  early stop: no better AP" if event["stopped_early"] else ""
            self.progress.console.print(
                f"step {event['step']}: val AP {event['val_ap']:.4f}, acc@0.5 {event['val_acc']:.4f}{note}{stop}",
                highlight=False,
            )
        elif kind == "done":
            self.progress.stop()


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
    skipped = ", ".join(f"{n} {reason}" for reason, n in result.skipped.items()) or "none"
    table.add_row("unreadable files skipped", skipped)
    table.add_row("detector", result.out)
    table.add_row("training state", result.state)
    return table


@cli_errors
def train(
    out: Annotated[Path, _train_option("out", dir_okay=False)],
    data: Annotated[Path | None, _train_option("data", file_okay=False)] = default(TrainConfig, "data"),
    real: Annotated[Path | None, _train_option("real", file_okay=False)] = default(TrainConfig, "real"),
    fake: Annotated[Path | None, _train_option("fake", file_okay=False)] = default(TrainConfig, "fake"),
    val: Annotated[Path | None, _train_option("val", file_okay=False)] = default(TrainConfig, "val"),
    val_fraction: Annotated[float | None, _train_option("val_fraction")] = default(TrainConfig, "val_fraction"),
    train_size: Annotated[int | None, _train_option("train_size")] = default(TrainConfig, "train_size"),
    steps: Annotated[int | None, _train_option("steps")] = default(TrainConfig, "steps"),
    epochs: Annotated[int | None, _train_option("epochs")] = default(TrainConfig, "epochs"),
    batch_size: Annotated[int, _train_option("batch_size")] = default(TrainConfig, "batch_size"),
    lr: Annotated[float, _train_option("lr")] = default(TrainConfig, "lr"),
    weight_decay: Annotated[float, _train_option("weight_decay")] = default(TrainConfig, "weight_decay"),
    schedule: Annotated[str, _train_option("schedule")] = default(TrainConfig, "schedule"),
    eval_every: Annotated[int, _train_option("eval_every")] = default(TrainConfig, "eval_every"),
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
    lb_weight: LbWeightOption = default(MoLEConfig, "lb_weight"),
    rcl_weight: RclWeightOption = default(MoLEConfig, "rcl_weight"),
    rcl_temperature: RclTemperatureOption = default(MoLEConfig, "rcl_temperature"),
    cls_expert: ClsExpertOption = default(MoLEConfig, "cls_expert"),
    blur_prob: Annotated[float, _augment_option("blur_prob")] = default(AugmentConfig, "blur_prob"),
    blur_sigma: Annotated[str, _augment_option("blur_sigma")] = default_list(AugmentConfig, "blur_sigma"),
    jpeg_prob: Annotated[float, _augment_option("jpeg_prob")] = default(AugmentConfig, "jpeg_prob"),
    jpeg_quality: Annotated[str, _augment_option("jpeg_quality")] = default_list(AugmentConfig, "jpeg_quality"),
    flip: Annotated[bool, _augment_option("flip", "--flip/--no-flip")] = default(AugmentConfig, "flip"),
    max_pixels: Annotated[int, _train_option("max_pixels")] = default(TrainConfig, "max_pixels"),
    max_bytes: Annotated[int, _train_option("max_bytes")] = default(TrainConfig, "max_bytes"),
) -> None:
    """Train a MoLE detector on labelled real/fake folders (AdamW, lr 6e-4, blur/JPEG p=0.1).

    Example: aigdetect train --data progan/ --model vitb32 --steps 20000 --out mole.safetensors --log train.jsonl
    """
    config = TrainConfig(
        out=str(out),
        data=str(data) if data else None,
        real=str(real) if real else None,
        fake=str(fake) if fake else None,
        val=str(val) if val else None,
        val_fraction=val_fraction,
        train_size=train_size,
        model=model,
        backbone_weights=backbone_weights,
        cache_dir=str(cache_dir) if cache_dir else None,
        mole=mole_config(
            blocks, shared_rank, shared_alpha, expert_ranks, expert_alphas, top_k, router, lb_weight, rcl_weight,
            rcl_temperature, cls_expert,
        ),
        augment=AugmentConfig(
            blur_prob=blur_prob,
            blur_sigma=_pair(blur_sigma, "blur_sigma", parse_float_list),
            jpeg_prob=jpeg_prob,
            jpeg_quality=_pair(jpeg_quality, "jpeg_quality", parse_int_list),
            flip=flip,
        ),
        steps=steps,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        schedule=schedule,
        eval_every=eval_every,
        patience=patience,
        log_every=log_every,
        seed=seed,
        runtime=RuntimeConfig(device=device, workers=workers),
        log=str(log) if log else None,
        resume=str(resume) if resume else None,
        max_pixels=max_pixels,
        max_bytes=max_bytes,
    )
    from rich.console import Console

    from ..engine.distributed import is_main_process
    from ..engine.train import train as train_detector

    renderer = _Renderer()
    try:
        result = train_detector(config, renderer, command=shlex.join(["aigdetect", *sys.argv[1:]]))
    finally:
        renderer.progress.stop()
    if is_main_process():
        Console().print(_summary_table(result))
        for path in result.skipped_examples:
            renderer.console.print(f"skipped: {path}", highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    app.command("train")(train)
