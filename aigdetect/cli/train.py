"""``aigdetect train``: the paper's recipe on the user's data, with progress and a summary."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ..data.transforms import AugmentConfig
from ..engine import distributed
from ..engine.train import TrainResult
from ..engine.train import train as run_training
from ..engine.train_config import DEFAULT_EPOCHS, SCHEDULES, TrainConfig
from ..errors import ConfigError
from .common import (
    BackboneWeightsOption,
    BlocksOption,
    CacheDirOption,
    ClsExpertOption,
    DeviceOption,
    ExpertAlphasOption,
    ExpertRanksOption,
    LbWeightOption,
    ModelOption,
    RclTemperatureOption,
    RclWeightOption,
    RouterOption,
    SharedAlphaOption,
    SharedRankOption,
    TopKOption,
    WorkersOption,
    cli_errors,
    mole_config,
    parse_float_list,
    parse_int_list,
)

OutOption = Annotated[
    Path, typer.Option("--out", dir_okay=False, help="Where to write the trained detector (.safetensors).")
]
DataOption = Annotated[
    Path | None,
    typer.Option(
        "--data",
        file_okay=False,
        help="Dataset root: DIR/\\[train|val]/<category>/{0_real,1_fake}, DIR/{0_real,1_fake} "
        "or DIR/{train,val}/{ai,nature}.",
    ),
]
RealOption = Annotated[
    Path | None, typer.Option("--real", file_okay=False, help="Folder of real images (with --fake, instead of --data).")
]
FakeOption = Annotated[Path | None, typer.Option("--fake", file_okay=False, help="Folder of AI-generated images.")]
ValOption = Annotated[
    Path | None,
    typer.Option(
        "--val",
        file_okay=False,
        help="Validation dataset root (default: the layout's val split, else a held-out fraction).",
    ),
]
ValFractionOption = Annotated[
    float | None,
    typer.Option(
        "--val-fraction",
        help="Hold out this fraction of the training images for validation (default 0.1 without a val split).",
    ),
]
TrainSizeOption = Annotated[
    int | None, typer.Option("--train-size", help="Train on a balanced, seeded subset of N images.")
]
StepsOption = Annotated[int | None, typer.Option("--steps", help="Optimizer steps to run.")]
EpochsOption = Annotated[
    int | None,
    typer.Option("--epochs", help=f"Passes over the training set (default {DEFAULT_EPOCHS} unless --steps)."),
]
TrainBatchOption = Annotated[
    int, typer.Option("--batch-size", min=1, help="Global batch size, split over torchrun processes.")
]
LrOption = Annotated[float, typer.Option("--lr", help="AdamW learning rate (the paper's 6e-4).")]
WeightDecayOption = Annotated[float, typer.Option("--weight-decay", help="AdamW weight decay.")]
ScheduleOption = Annotated[str, typer.Option("--schedule", help=f"Learning-rate schedule: {' or '.join(SCHEDULES)}.")]
EvalEveryOption = Annotated[
    int, typer.Option("--eval-every", min=0, help="Validate (and save the state) every N steps; 0: each epoch.")
]
PatienceOption = Annotated[
    int, typer.Option("--patience", min=0, help="Stop after N validations without a better AP; 0: never.")
]
LogEveryOption = Annotated[int, typer.Option("--log-every", min=1, help="Write a step record to --log every N steps.")]
SeedOption = Annotated[int, typer.Option("--seed", help="Seed of initialisation, shuffling, splits and augmentation.")]
LogOption = Annotated[
    Path | None, typer.Option("--log", dir_okay=False, help="Append step and validation records to this JSONL file.")
]
ResumeOption = Annotated[
    Path | None,
    typer.Option("--resume", dir_okay=False, help="Continue the run saved in this .state.safetensors file."),
]
BlurProbOption = Annotated[float, typer.Option("--blur-prob", help="Probability of Gaussian blur per training image.")]
BlurSigmaOption = Annotated[str, typer.Option("--blur-sigma", help="Blur sigma range LOW,HIGH (uniform).")]
JpegProbOption = Annotated[
    float, typer.Option("--jpeg-prob", help="Probability of JPEG re-encoding per training image.")
]
JpegQualityOption = Annotated[
    str, typer.Option("--jpeg-quality", help="JPEG quality range LOW,HIGH (uniform integers).")
]
FlipOption = Annotated[bool, typer.Option("--flip/--no-flip", help="Random horizontal flips.")]


def _pair(text: str, option: str, parse: Any) -> tuple:
    values = parse(text, option)
    if len(values) != 2:
        raise ConfigError(f"{option} takes two comma-separated values LOW,HIGH, got {text!r}")
    return tuple(values)


class _Renderer:
    """Turns the library's training events into stderr output: layout, a progress bar, validations."""

    def __init__(self) -> None:
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
                self.console.print(line, highlight=False, markup=False)
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
    out: OutOption,
    data: DataOption = None,
    real: RealOption = None,
    fake: FakeOption = None,
    val: ValOption = None,
    val_fraction: ValFractionOption = None,
    train_size: TrainSizeOption = None,
    steps: StepsOption = None,
    epochs: EpochsOption = None,
    batch_size: TrainBatchOption = 64,
    lr: LrOption = 6e-4,
    weight_decay: WeightDecayOption = 0.01,
    schedule: ScheduleOption = "constant",
    eval_every: EvalEveryOption = 0,
    patience: PatienceOption = 5,
    log_every: LogEveryOption = 10,
    device: DeviceOption = "auto",
    seed: SeedOption = 0,
    workers: WorkersOption = None,
    log: LogOption = None,
    resume: ResumeOption = None,
    model: ModelOption = "vitb32",
    backbone_weights: BackboneWeightsOption = None,
    cache_dir: CacheDirOption = None,
    blocks: BlocksOption = 3,
    shared_rank: SharedRankOption = 8,
    shared_alpha: SharedAlphaOption = None,
    expert_ranks: ExpertRanksOption = "4,8,16",
    expert_alphas: ExpertAlphasOption = None,
    top_k: TopKOption = 1,
    router: RouterOption = "linear",
    lb_weight: LbWeightOption = None,
    rcl_weight: RclWeightOption = 1.0,
    rcl_temperature: RclTemperatureOption = 0.07,
    cls_expert: ClsExpertOption = False,
    blur_prob: BlurProbOption = 0.1,
    blur_sigma: BlurSigmaOption = "0,3",
    jpeg_prob: JpegProbOption = 0.1,
    jpeg_quality: JpegQualityOption = "30,100",
    flip: FlipOption = True,
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
            blur_sigma=_pair(blur_sigma, "--blur-sigma", parse_float_list),
            jpeg_prob=jpeg_prob,
            jpeg_quality=_pair(jpeg_quality, "--jpeg-quality", parse_int_list),
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
        device=device,
        workers=workers,
        log=str(log) if log else None,
        resume=str(resume) if resume else None,
    )
    renderer = _Renderer()
    try:
        result = run_training(config, renderer, command=shlex.join(["aigdetect", *sys.argv[1:]]))
    finally:
        renderer.progress.stop()
    if distributed.is_main_process():
        Console().print(_summary_table(result))
        for path in result.skipped_examples:
            renderer.console.print(f"skipped: {path}", highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    app.command("train")(train)
