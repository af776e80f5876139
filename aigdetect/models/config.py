"""Configuration of the MoLE bypass, validated on creation so bad values fail before any model is built."""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ..errors import ConfigError
from ..settings import check_known_keys, require_finite

RouterKind = Literal["linear", "proto"]
GATE_WEIGHTS: tuple[str, ...] = ("identity", "softmax")


@dataclass(frozen=True)
class RouterSpec:
    """What a router kind implies for its config and its losses, without building it (no torch).

    The router classes of ``models.routers`` carry their spec as ``spec``; everything that depends on
    the kind reads it here instead of comparing names.

    Attributes:
        name: the kind's name (``router`` in a config, ``--router`` on the command line).
        gate_weights: the ways a chosen expert's output may be scaled; the first is the default.
        lb_weight: the default weight of the load-balancing loss.
        contrastive: whether the router has a routing contrastive loss (and ``rcl_weight`` applies).
    """

    name: str
    gate_weights: tuple[str, ...]
    lb_weight: float
    contrastive: bool


LINEAR = RouterSpec("linear", gate_weights=("softmax",), lb_weight=0.01, contrastive=False)
PROTO = RouterSpec("proto", gate_weights=("identity", "softmax"), lb_weight=0.0, contrastive=True)
ROUTER_SPECS: dict[str, RouterSpec] = {spec.name: spec for spec in (LINEAR, PROTO)}
ROUTERS: tuple[str, ...] = tuple(ROUTER_SPECS)

MAX_RANK = 1024
"""LoRA ranks above this exceed the width of every released CLIP ViT (1664 at most) by design of
the method; the bound keeps a checkpoint's config from asking for gigabytes of adapters."""
MAX_EXPERTS = 64


def _integer(name: str, value: object) -> int:
    """An integral value as an int (numpy integers included); anything else, bools too, is refused."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise ConfigError(f"`{name}` must be an integer, got {str(value)[:40]!r}")
    return int(value)


@dataclass(frozen=True)
class MoLEConfig:
    """Mixture of low-rank experts, as in CLIPMoLE §3.2, plus the optional ProMoE-style router.

    Each field's help text (its metadata) is what ``aigdetect train -h`` and ``info -h`` show.
    """

    blocks: int = field(
        default=3,
        metadata={"help": "Adapt the last N transformer blocks (0: a linear probe, UnivFD; 'all' on the command line: every block)."},
    )
    shared_rank: int = field(default=8, metadata={"help": "Rank of the shared LoRA expert that every token passes through."})
    shared_alpha: float | None = field(
        default=None, metadata={"help": "LoRA alpha of the shared expert (scaling alpha/rank); default: its rank."}
    )
    expert_ranks: tuple[int, ...] = field(default=(4, 8, 16), metadata={"help": "Ranks of the routed experts."})
    expert_alphas: tuple[float, ...] | None = field(
        default=None, metadata={"help": "Alphas of the routed experts; default: their ranks (scaling 1)."}
    )
    top_k: int = field(default=1, metadata={"help": "Routed experts per token."})
    router: RouterKind = field(
        default="linear", metadata={"help": "linear (softmax over W_g x, the paper's) or proto (ProMoE prototypes)."}
    )
    gate_weight: str | None = field(
        default=None,
        metadata={
            "help": "How a chosen expert's output is scaled: identity (the raw cosine, as ProMoE's code) or softmax "
            "(softmax(cos/tau)); default identity for proto, softmax (the only choice) for linear."
        },
    )
    lb_weight: float | None = field(
        default=None, metadata={"help": "Load-balancing loss weight lambda; default 0.01 for linear, 0 for proto."}
    )
    rcl_weight: float = field(default=1.0, metadata={"help": "Routing contrastive loss weight (proto router)."})
    rcl_temperature: float = field(
        default=0.07, metadata={"help": "Temperature of the prototype gate and the routing contrastive loss."}
    )
    cls_expert: bool = field(default=False, metadata={"help": "Send the CLS token to its own LoRA expert."})

    def __post_init__(self) -> None:
        for name in ("blocks", "shared_rank", "top_k"):
            object.__setattr__(self, name, _integer(name, getattr(self, name)))
        if not isinstance(self.expert_ranks, (list, tuple)) or len(self.expert_ranks) > MAX_EXPERTS:
            raise ConfigError(f"`expert_ranks` must list 1 to {MAX_EXPERTS} ranks")
        object.__setattr__(self, "expert_ranks", tuple(_integer("expert_ranks", r) for r in self.expert_ranks))
        if self.shared_alpha is None:
            object.__setattr__(self, "shared_alpha", float(self.shared_rank))
        if self.expert_alphas is None:
            object.__setattr__(self, "expert_alphas", tuple(float(r) for r in self.expert_ranks))
        else:
            object.__setattr__(self, "expert_alphas", tuple(float(a) for a in self.expert_alphas))
        spec = ROUTER_SPECS.get(self.router)  # type: ignore[call-overload]
        if spec is None:
            raise ConfigError(f"`router` must be one of {', '.join(ROUTERS)}, got {self.router!r}")
        if self.gate_weight is None:
            object.__setattr__(self, "gate_weight", spec.gate_weights[0])
        if self.lb_weight is None:
            object.__setattr__(self, "lb_weight", spec.lb_weight)
        for name in ("shared_alpha", "lb_weight", "rcl_weight", "rcl_temperature"):
            require_finite(name, getattr(self, name))
        for alpha in self.expert_alphas:
            require_finite("expert_alphas", alpha)
        if self.blocks < 0:
            raise ConfigError(f"`blocks` must be >= 0, got {self.blocks}")
        if not 0 < self.shared_rank <= MAX_RANK:
            raise ConfigError(f"`shared_rank` must be between 1 and {MAX_RANK}, got {self.shared_rank}")
        if not self.expert_ranks or any(not 0 < r <= MAX_RANK for r in self.expert_ranks):
            raise ConfigError(
                f"`expert_ranks` must be a non-empty list of ranks between 1 and {MAX_RANK}, got {list(self.expert_ranks)}"
            )
        if len(self.expert_alphas) != len(self.expert_ranks):
            raise ConfigError(
                f"`expert_alphas` has {len(self.expert_alphas)} values but there are {len(self.expert_ranks)} experts"
            )
        if self.shared_alpha <= 0 or any(a <= 0 for a in self.expert_alphas):
            raise ConfigError("LoRA alpha values (`shared_alpha`, `expert_alphas`) must be > 0")
        if not 1 <= self.top_k <= len(self.expert_ranks):
            raise ConfigError(
                f"`top_k` must be between 1 and the number of experts ({len(self.expert_ranks)}), got {self.top_k}"
            )
        if self.gate_weight not in GATE_WEIGHTS:
            raise ConfigError(f"`gate_weight` must be one of {', '.join(GATE_WEIGHTS)}, got {self.gate_weight!r}")
        if self.gate_weight not in spec.gate_weights:
            raise ConfigError("`gate_weight` identity scales by a prototype's cosine: it needs `router` proto")
        if self.lb_weight < 0 or self.rcl_weight < 0:
            raise ConfigError("loss weights (`lb_weight`, `rcl_weight`) must be >= 0")
        if self.rcl_temperature <= 0:
            raise ConfigError(f"`rcl_temperature` must be > 0, got {self.rcl_temperature}")

    @property
    def router_spec(self) -> RouterSpec:
        """What this config's router kind implies (defaults, which losses it has)."""
        return ROUTER_SPECS[self.router]

    @property
    def num_experts(self) -> int:
        return len(self.expert_ranks)

    def validate_depth(self, depth: int) -> None:
        """Refuse a bypass on more blocks than the backbone has."""
        if self.blocks > depth:
            raise ConfigError(f"`blocks`={self.blocks} exceeds the backbone's depth of {depth} transformer blocks")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["expert_ranks"] = list(self.expert_ranks)
        data["expert_alphas"] = list(self.expert_alphas)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MoLEConfig:
        """Rebuild a saved config. One saved before ``gate_weight`` existed scaled experts by softmax:
        it keeps doing so, whatever today's default for its router."""
        check_known_keys(cls, data, "MoLE config")
        values = dict(data)
        values.setdefault("gate_weight", "softmax")
        for key in ("expert_ranks", "expert_alphas"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        return cls(**values)
