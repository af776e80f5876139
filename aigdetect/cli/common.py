"""What every command shares: error-to-exit-code mapping, common options, detector loading."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from ..config import MoLEConfig
from ..errors import AigdetectError, ConfigError
from ..models.detector import Detector
from ..models.factory import load_detector
from ..models.zoo import BACKBONES, DEFAULT_DETECTOR, DETECTORS, builtin_path

F = TypeVar("F", bound=Callable[..., Any])

DEBUG_ENV = "AIGDETECT_DEBUG"


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print a one-line error to stderr and return the Exit to raise."""
    typer.echo(f"error: {' '.join(str(message).split())}", err=True)
    return typer.Exit(code)


def cli_errors(func: F) -> F:
    """Turn library errors into one line and an exit code: 2 for the user's input, 1 for our bugs."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except AigdetectError as exc:
            raise fail(str(exc), exc.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None
        except Exception as exc:
            if os.environ.get(DEBUG_ENV):
                raise
            detail = str(exc).splitlines()[0] if str(exc) else ""
            raise fail(
                f"internal error: {type(exc).__name__}: {detail} (set {DEBUG_ENV}=1 for the traceback)", 1
            ) from None

    return wrapper  # type: ignore[return-value]


ModelOption = Annotated[
    str,
    typer.Option(
        "--model",
        help=f"Backbone ({', '.join(BACKBONES.names())}) or the path of an open_clip model-config JSON.",
    ),
]
BackboneWeightsOption = Annotated[
    str | None,
    typer.Option(
        "--backbone-weights",
        help="Backbone weights file (OpenAI .pt, open_clip state dict, safetensors), or 'none' for random weights. "
        "Default: the open_clip / Hugging Face cache, then a download.",
    ),
]
CheckpointOption = Annotated[
    Path | None,
    typer.Option("--checkpoint", help=f"Detector checkpoint (.safetensors). Default: the built-in {DEFAULT_DETECTOR}."),
]
DeviceOption = Annotated[str, typer.Option("--device", help="auto, cuda or cpu.")]
BatchSizeOption = Annotated[int | None, typer.Option("--batch-size", min=1, help="Images per batch (default: 128 on CUDA, 16 on CPU).")]
WorkersOption = Annotated[int | None, typer.Option("--workers", min=0, help="Decoding worker processes (default: one per core, up to 16).")]
CacheDirOption = Annotated[
    Path | None, typer.Option("--cache-dir", help="Where open_clip and Hugging Face keep downloaded weights.")
]


def detector_options(
    checkpoint: Path | None,
    model: str | None,
    backbone_weights: str | None,
    cache_dir: Path | None,
) -> Detector:
    """Load the detector named by ``--checkpoint`` / ``--model`` (a built-in name or backbone)."""
    cache = str(cache_dir) if cache_dir else None
    if checkpoint is not None:
        detector = load_detector(checkpoint, backbone_weights=backbone_weights, cache_dir=cache)
        if model and model not in (detector.source.name, detector.name):
            raise ConfigError(
                f"--model {model} conflicts with the checkpoint's backbone ({detector.source.label()}); drop --model"
            )
        return detector
    name = model or DEFAULT_DETECTOR
    if builtin_path(name) is None:
        matches = [d.name for d in DETECTORS.list() if d.backbone == name]
        if not matches:
            builtins = ", ".join(d.name for d in DETECTORS.list())
            raise ConfigError(
                f"no built-in detector for {name!r} (built-ins: {builtins}); pass --checkpoint FILE from 'aigdetect train'"
            )
        name = matches[0]
    return load_detector(name, backbone_weights=backbone_weights, cache_dir=cache)


def parse_int_list(text: str, option: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"{option} takes comma-separated integers, got {text!r}") from None


def parse_float_list(text: str, option: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"{option} takes comma-separated numbers, got {text!r}") from None


BlocksOption = Annotated[int, typer.Option("--blocks", min=0, help="Adapt the last N transformer blocks (0: linear probe).")]
SharedRankOption = Annotated[int, typer.Option("--shared-rank", help="Rank of the shared LoRA expert.")]
SharedAlphaOption = Annotated[float | None, typer.Option("--shared-alpha", help="Alpha of the shared expert (default: its rank).")]
ExpertRanksOption = Annotated[str, typer.Option("--expert-ranks", help="Comma-separated ranks of the routed experts.")]
ExpertAlphasOption = Annotated[
    str | None, typer.Option("--expert-alphas", help="Comma-separated alphas of the routed experts (default: their ranks).")
]
TopKOption = Annotated[int, typer.Option("--top-k", min=1, help="Routed experts per token.")]
RouterOption = Annotated[str, typer.Option("--router", help="linear (the paper's) or proto (prototypes + contrastive loss).")]
LbWeightOption = Annotated[
    float | None, typer.Option("--lb-weight", help="Load-balancing weight lambda (default 0.01 linear, 0 proto).")
]
RclWeightOption = Annotated[float, typer.Option("--rcl-weight", help="Routing contrastive loss weight (proto router).")]
RclTemperatureOption = Annotated[float, typer.Option("--rcl-temperature", help="Temperature of the prototype gate and RCL.")]
ClsExpertOption = Annotated[bool, typer.Option("--cls-expert/--no-cls-expert", help="Give the CLS token its own LoRA expert.")]


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
) -> MoLEConfig:
    return MoLEConfig(
        blocks=blocks,
        shared_rank=shared_rank,
        shared_alpha=float(shared_alpha if shared_alpha is not None else shared_rank),
        expert_ranks=parse_int_list(expert_ranks, "--expert-ranks"),
        expert_alphas=parse_float_list(expert_alphas, "--expert-alphas") if expert_alphas else None,
        top_k=top_k,
        router=router,  # type: ignore[arg-type]
        lb_weight=lb_weight,
        rcl_weight=rcl_weight,
        rcl_temperature=rcl_temperature,
        cls_expert=cls_expert,
    )
