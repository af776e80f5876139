"""``aigdetect info`` and ``aigdetect models``: what a detector would train, and what ships built in."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ..models.factory import parameter_summary
from ..models.zoo import DETECTORS
from .common import (
    BlocksOption,
    ClsExpertOption,
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
    cli_errors,
    mole_config,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")]


@cli_errors
def info(
    model: ModelOption = "vitb32",
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
    as_json: JsonOption = False,
) -> None:
    """Count the parameters a MoLE detector trains (needs no weights; compare with Table 4).

    Example: aigdetect info --model vitb32 --blocks 3 --json
    """
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
