"""``aigdetect info`` and ``aigdetect models``: what a detector would train, and what ships built in."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ..engine.train_config import TrainConfig
from ..models.config import MoLEConfig
from ..models.zoo import DETECTORS
from .common import cli_errors
from .options import (
    BlocksOption,
    ClsExpertOption,
    ExpertAlphasOption,
    ExpertRanksOption,
    LbWeightOption,
    RclTemperatureOption,
    RclWeightOption,
    RouterOption,
    SharedAlphaOption,
    SharedRankOption,
    TopKOption,
    default,
    default_list,
    mole_config,
    option,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")]


@cli_errors
def info(
    model: Annotated[str, option(TrainConfig, "model")] = default(TrainConfig, "model"),
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
    as_json: JsonOption = False,
) -> None:
    """Count the parameters a MoLE detector trains (needs no weights; compare with Table 4).

    Example: aigdetect info --model vitb32 --blocks 3 --json
    """
    from rich.console import Console
    from rich.table import Table

    from ..models.factory import parameter_summary

    config = mole_config(
        blocks, shared_rank, shared_alpha, expert_ranks, expert_alphas, top_k, router, lb_weight, rcl_weight,
        rcl_temperature, cls_expert,
    )
    counts = parameter_summary(model, config)
    if as_json:
        typer.echo(json.dumps({**counts, "model": model, "blocks": blocks}))
        return
    table = Table(title=f"{model}, last {blocks} blocks adapted")
    table.add_column("trainable")
    table.add_column("total")
    table.add_column("trainable %")
    table.add_row(f"{counts['trainable_params']:,}", f"{counts['total_params']:,}", f"{counts['trainable_percent']:.3f}")
    Console().print(table)


@cli_errors
def models(as_json: JsonOption = False) -> None:
    """List the built-in detectors and where their weights come from.

    Example: aigdetect models
    """
    from rich.console import Console
    from rich.table import Table

    entries = DETECTORS.list()
    if as_json:
        typer.echo(json.dumps([e.__dict__ for e in entries]))
        return
    table = Table(title="Built-in detectors")
    for column in ("name", "backbone", "adapted blocks", "description", "source", "license"):
        table.add_column(column, overflow="fold")
    for e in entries:
        table.add_row(e.name, e.backbone, str(e.adapted_blocks), e.summary, e.source, e.license)
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command("info")(info)
    app.command("models")(models)
