"""Configuration of the MoLE bypass, validated on creation so bad values fail before any model is built."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from .errors import ConfigError

RouterKind = Literal["linear", "proto"]
ROUTERS: tuple[str, ...] = ("linear", "proto")


def check_known_keys(cls: type, data: dict[str, Any], label: str) -> None:
    """Refuse keys a config dataclass does not have, e.g. from a checkpoint of a newer version."""
    unknown = set(data) - {f.name for f in fields(cls)}
    if unknown:
        raise ConfigError(f"unknown {label} keys: {', '.join(sorted(unknown))}")


@dataclass(frozen=True)
class MoLEConfig:
    """Mixture of low-rank experts, as in CLIPMoLE §3.2, plus the optional ProMoE-style router.

    Attributes:
        blocks: how many of the last transformer blocks get a bypass; 0 gives a linear probe (UnivFD).
        shared_rank: rank of the shared LoRA expert that every token passes through.
        shared_alpha: LoRA scaling constant of the shared expert (scaling = alpha / rank).
        expert_ranks: ranks of the separate, routed experts.
        expert_alphas: scaling constants of the routed experts; defaults to their ranks (scaling 1).
        top_k: how many routed experts each token is sent to.
        router: ``linear`` (softmax over W_g x, the paper) or ``proto`` (cosine to learnable prototypes).
        lb_weight: lambda of the Switch load-balancing loss; defaults to 0.01 for ``linear``, 0 for ``proto``.
        rcl_weight: weight of the routing contrastive loss (``proto`` only).
        rcl_temperature: temperature of both the prototype gate and the routing contrastive loss.
        cls_expert: send the CLS token to a dedicated LoRA expert instead of the router.
    """

    blocks: int = 3
    shared_rank: int = 8
    shared_alpha: float = 8.0
    expert_ranks: tuple[int, ...] = (4, 8, 16)
    expert_alphas: tuple[float, ...] | None = None
    top_k: int = 1
    router: RouterKind = "linear"
    lb_weight: float | None = None
    rcl_weight: float = 1.0
    rcl_temperature: float = 0.07
    cls_expert: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "expert_ranks", tuple(int(r) for r in self.expert_ranks))
        if self.expert_alphas is None:
            object.__setattr__(self, "expert_alphas", tuple(float(r) for r in self.expert_ranks))
        else:
            object.__setattr__(self, "expert_alphas", tuple(float(a) for a in self.expert_alphas))
        if self.lb_weight is None:
            object.__setattr__(self, "lb_weight", 0.01 if self.router == "linear" else 0.0)
        if self.blocks < 0:
            raise ConfigError(f"blocks must be >= 0, got {self.blocks}")
        if self.shared_rank <= 0:
            raise ConfigError(f"shared_rank must be > 0, got {self.shared_rank}")
        if not self.expert_ranks or any(r <= 0 for r in self.expert_ranks):
            raise ConfigError(f"expert_ranks must be a non-empty list of positive ranks, got {list(self.expert_ranks)}")
        if len(self.expert_alphas) != len(self.expert_ranks):
            raise ConfigError(
                f"expert_alphas has {len(self.expert_alphas)} values but there are {len(self.expert_ranks)} experts"
            )
        if self.shared_alpha <= 0 or any(a <= 0 for a in self.expert_alphas):
            raise ConfigError("LoRA alpha values must be > 0")
        if not 1 <= self.top_k <= len(self.expert_ranks):
            raise ConfigError(f"top_k must be between 1 and the number of experts ({len(self.expert_ranks)}), got {self.top_k}")
        if self.router not in ROUTERS:
            raise ConfigError(f"router must be one of {', '.join(ROUTERS)}, got {self.router!r}")
        if self.lb_weight < 0 or self.rcl_weight < 0:
            raise ConfigError("loss weights must be >= 0")
        if self.rcl_temperature <= 0:
            raise ConfigError(f"rcl_temperature must be > 0, got {self.rcl_temperature}")

    @property
    def num_experts(self) -> int:
        return len(self.expert_ranks)

    def validate_depth(self, depth: int) -> None:
        """Refuse a bypass on more blocks than the backbone has."""
        if self.blocks > depth:
            raise ConfigError(f"blocks={self.blocks} exceeds the backbone's depth of {depth} transformer blocks")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["expert_ranks"] = list(self.expert_ranks)
        data["expert_alphas"] = list(self.expert_alphas)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MoLEConfig:
        check_known_keys(cls, data, "MoLE config")
        values = dict(data)
        for key in ("expert_ranks", "expert_alphas"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        return cls(**values)
