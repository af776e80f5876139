"""Options built from the config dataclasses: their help text and defaults are read, never restated.

Library messages and field help name a setting in backticks (`batch_size`); on the command line
that setting is a flag, so ``render`` turns the name into the flag the user types (``--batch-size``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from ..engine.runtime import BACKENDS, RuntimeConfig
from ..errors import ConfigError
from ..evidence.config import EvidenceConfig
from ..models.choice import DetectorChoice
from ..models.config import MoLEConfig
from ..scan.config import ScanConfig
from ..settings import field_default, field_help

_FLAGS = {"output_format": "--format", "export_format": "--format"}
_SETTING = re.compile(r"`([a-z][a-z0-9_]*)`")


def flag(name: str) -> str:
    """The command-line flag of a setting: ``batch_size`` -> ``--batch-size``."""
    return _FLAGS.get(name, "--" + name.replace("_", "-"))


def render(text: str) -> str:
    """Show every `setting` named in a library message or field help as its flag."""
    return _SETTING.sub(lambda match: flag(match.group(1)), text)


def option(cls: type, name: str, *declarations: str, **kwargs: Any) -> Any:
    """A ``typer.Option`` for one field of a config dataclass, with that field's help."""
    return typer.Option(*(declarations or (flag(name),)), help=render(field_help(cls, name)), **kwargs)


def default(cls: type, name: str) -> Any:
    """The field's default, as the CLI parameter's default."""
    return field_default(cls, name)


def default_list(cls: type, name: str) -> str:
    """A tuple default written the way the option takes it: comma-separated."""
    return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in field_default(cls, name))


def completer(values: Sequence[str], separator: str | None = None) -> Callable[[str], list[str]]:
    """Shell completion of an option's fixed values; with ``separator``, of the last item of a list
    (``--fail-on likely-ai,co`` completes to ``likely-ai,conflict``)."""

    def complete(incomplete: str) -> list[str]:
        done, _, last = incomplete.rpartition(separator) if separator else ("", "", incomplete)
        prefix = done + separator if separator and done else ""
        return [prefix + value for value in values if value.startswith(last)]

    return complete


DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
"""What ``--device`` completes to (``cuda:N`` too is accepted)."""

CheckpointOption = Annotated[Path | None, option(DetectorChoice, "checkpoint", dir_okay=False)]
DetectorModelOption = Annotated[str | None, option(DetectorChoice, "model")]
BackboneWeightsOption = Annotated[str | None, option(DetectorChoice, "backbone_weights")]
CacheDirOption = Annotated[Path | None, option(DetectorChoice, "cache_dir", file_okay=False)]
AllowRandomBackboneOption = Annotated[bool, option(DetectorChoice, "allow_random_backbone")]
DeviceOption = Annotated[str, option(RuntimeConfig, "device", autocompletion=completer(DEVICE_CHOICES))]
BatchSizeOption = Annotated[int | None, option(RuntimeConfig, "batch_size")]
WorkersOption = Annotated[int | None, option(RuntimeConfig, "workers")]
BackendOption = Annotated[str, option(RuntimeConfig, "backend", autocompletion=completer(BACKENDS))]
PrecisionOption = Annotated[str, option(RuntimeConfig, "precision")]
GpuDecodeOption = Annotated[bool, option(RuntimeConfig, "gpu_decode")]
C2paTrustOption = Annotated[Path | None, option(EvidenceConfig, "c2pa_trust", dir_okay=False)]
C2paTrustListOption = Annotated[Path | None, option(EvidenceConfig, "c2pa_trust_list", dir_okay=False)]
C2paRemoteOption = Annotated[bool, option(EvidenceConfig, "c2pa_remote")]
WatermarksOption = Annotated[bool, option(EvidenceConfig, "watermarks")]


def evidence_config(trust: Path | None, trust_list: Path | None, remote: bool, watermarks: bool) -> EvidenceConfig:
    """The evidence settings of ``scan`` and ``inspect`` from their options."""
    return EvidenceConfig(
        c2pa_trust=str(trust) if trust else None,
        c2pa_trust_list=str(trust_list) if trust_list else None,
        c2pa_remote=remote,
        watermarks=watermarks,
    )


CompileOption = Annotated[bool, option(RuntimeConfig, "compile")]


def detector_choice(
    checkpoint: Path | None,
    model: str | None,
    backbone_weights: str | None,
    cache_dir: Path | None,
    allow_random_backbone: bool,
) -> DetectorChoice:
    return DetectorChoice(
        checkpoint=str(checkpoint) if checkpoint is not None else None,
        model=model,
        backbone_weights=backbone_weights,
        cache_dir=str(cache_dir) if cache_dir is not None else None,
        allow_random_backbone=allow_random_backbone,
    )


def parse_int_list(text: str, setting: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"`{setting}` takes comma-separated integers, got {text!r}") from None


def parse_float_list(text: str, setting: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"`{setting}` takes comma-separated numbers, got {text!r}") from None


BandsOption = Annotated[str | None, option(ScanConfig, "bands", metavar="LOW,HIGH")]


def parse_bands(text: str | None) -> tuple[float, float] | None:
    """``--bands LOW,HIGH`` as two numbers (their order and range are the config's to check)."""
    if not text:
        return None
    values = parse_float_list(text, "bands")
    if len(values) != 2:
        raise ConfigError(f"`bands` takes two numbers LOW,HIGH, got {text!r}")
    return values[0], values[1]


BlocksOption = Annotated[str, option(MoLEConfig, "blocks", metavar="N|all")]
SharedRankOption = Annotated[int, option(MoLEConfig, "shared_rank")]
SharedAlphaOption = Annotated[float | None, option(MoLEConfig, "shared_alpha")]
ExpertRanksOption = Annotated[str, option(MoLEConfig, "expert_ranks")]
ExpertAlphasOption = Annotated[str | None, option(MoLEConfig, "expert_alphas")]
TopKOption = Annotated[int, option(MoLEConfig, "top_k")]
RouterOption = Annotated[str, option(MoLEConfig, "router")]
GateWeightOption = Annotated[str | None, option(MoLEConfig, "gate_weight")]
LbWeightOption = Annotated[float | None, option(MoLEConfig, "lb_weight")]
RclWeightOption = Annotated[float, option(MoLEConfig, "rcl_weight")]
RclTemperatureOption = Annotated[float, option(MoLEConfig, "rcl_temperature")]
ClsExpertOption = Annotated[bool, option(MoLEConfig, "cls_expert", "--cls-expert/--no-cls-expert")]


def parse_blocks(text: str | int, model: str) -> int:
    """``--blocks``: a count, or ``all`` for every transformer block of ``model``'s vision tower."""
    value = str(text).strip().lower()
    if value == "all":
        from ..models.backbones import backbone_depth

        return backbone_depth(model)
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"`blocks` takes a number of blocks or 'all', got {text!r}") from None


def mole_config(
    blocks: int,
    shared_rank: int,
    shared_alpha: float | None,
    expert_ranks: str,
    expert_alphas: str | None,
    top_k: int,
    router: str,
    lb_weight: float | None,
    rcl_weight: float,
    rcl_temperature: float,
    cls_expert: bool,
    gate_weight: str | None = None,
) -> MoLEConfig:
    """The MoLE options, parsed into the config that validates them (``blocks`` already resolved)."""
    return MoLEConfig(
        blocks=blocks,
        shared_rank=shared_rank,
        shared_alpha=shared_alpha,
        expert_ranks=parse_int_list(expert_ranks, "expert_ranks"),
        expert_alphas=parse_float_list(expert_alphas, "expert_alphas") if expert_alphas else None,
        top_k=top_k,
        router=router,  # type: ignore[arg-type]
        gate_weight=gate_weight,
        lb_weight=lb_weight,
        rcl_weight=rcl_weight,
        rcl_temperature=rcl_temperature,
        cls_expert=cls_expert,
    )
