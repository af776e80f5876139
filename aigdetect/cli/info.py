"""``aigdetect info`` and ``aigdetect models``: what a detector would train, and what ships built in."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ..models.config import MoLEConfig
from ..models.zoo import DETECTORS
from ..training.config import TrainConfig
from .common import cli_errors
from .options import (
    BlocksOption,
    ClsExpertOption,
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
    default,
    default_list,
    mole_config,
    option,
    parse_blocks,
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
    gate_weight: GateWeightOption = default(MoLEConfig, "gate_weight"),
    lb_weight: LbWeightOption = default(MoLEConfig, "lb_weight"),
    rcl_weight: RclWeightOption = default(MoLEConfig, "rcl_weight"),
    rcl_temperature: RclTemperatureOption = default(MoLEConfig, "rcl_temperature"),
    cls_expert: ClsExpertOption = default(MoLEConfig, "cls_expert"),
    as_json: JsonOption = False,
) -> None:
    """Count the parameters a MoLE detector trains (needs no weights; compare with Table 4).

    Example: aigdetect info --model vitb32 --blocks all --json
    """
    from rich.console import Console
    from rich.table import Table

    from ..models.factory import parameter_summary

    depth = parse_blocks(blocks, model)
    config = mole_config(
        depth, shared_rank, shared_alpha, expert_ranks, expert_alphas, top_k, router, lb_weight, rcl_weight,
        rcl_temperature, cls_expert, gate_weight,
    )
    counts = parameter_summary(model, config)
    if as_json:
        typer.echo(json.dumps({**counts, "model": model, "blocks": depth}))
        return
    console = Console(soft_wrap=True)
    console.print(f"model: {model}", highlight=False, markup=False)
    table = Table(title=f"last {depth} blocks adapted")
    table.add_column("trainable")
    table.add_column("total")
    table.add_column("trainable %")
    table.add_row(f"{counts['trainable_params']:,}", f"{counts['total_params']:,}", f"{counts['trainable_percent']:.3f}")
    console.print(table)


BackbonesOption = Annotated[
    bool, typer.Option("--backbones", help="List the backbones `--model` can build offline and whose weights are cached.")
]


def _backbones(as_json: bool) -> None:
    """One whole line per backbone: names and cache paths are copied by users, never cut or wrapped."""
    from ..models.catalog import list_backbones

    entries = list_backbones()
    if as_json:
        typer.echo(json.dumps([e.__dict__ for e in entries]))
        return
    typer.echo("Backbones that build offline (--model NAME); timm:NAME also takes any timm ViT")
    for e in entries:
        typer.echo(f"{e.name}  {e.family}, {e.image_size} px, weights: {e.weights or 'not cached'}")


@cli_errors
def models(as_json: JsonOption = False, backbones: BackbonesOption = False) -> None:
    """List the built-in detectors and where their weights come from (or, with --backbones, the backbones).

    Example: aigdetect models --backbones
    """
    from rich.console import Console
    from rich.table import Table

    if backbones:
        return _backbones(as_json)
    entries = DETECTORS.list()
    if as_json:
        typer.echo(json.dumps([e.__dict__ for e in entries]))
        return
    # The short fields fit a table at 80 columns; descriptions and sources, which hold names and
    # paths a user copies, follow as whole lines that the terminal wraps (never cut, never split).
    console = Console(soft_wrap=True)
    table = Table(title="Built-in detectors")
    for column in ("name", "backbone", "adapted blocks", "license"):
        table.add_column(column, no_wrap=column == "name")
    for e in entries:
        table.add_row(e.name, e.backbone, str(e.adapted_blocks), e.license)
    console.print(table)
    for e in entries:
        console.print(f"{e.name}: {e.summary}", highlight=False, markup=False)
        console.print(f"  source: {e.source}", highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    app.command("info")(info)
    app.command("models")(models)
