"""The MoLE bypass (shared + routed LoRA experts) and its injection into a ViT's last blocks.

Blocks are found by structure: the longest list of modules whose ``mlp`` one of the block families
recognises (open_clip's ``c_fc -> gelu -> c_proj``, timm's ``fc1 -> act -> fc2``), whatever the
tower calls its attributes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError
from .config import MoLEConfig
from .lora import LoRAExpert
from .routers import Router, Routing, load_balancing_loss, router_for


@dataclass
class RoutingRecord:
    """What one bypass did in its last forward pass, for losses, telemetry and routing maps.

    Attributes:
        assignments: top-1 expert of every routed token, shape (batch, routed tokens).
        probs: gate distribution of every routed token, shape (batch, routed tokens, N).
        lb_loss: load-balancing loss over the batch's routed tokens; None outside training (see
            ``computes_losses``).
        rcl_loss: routing contrastive loss (zero for the linear router); None outside training.
        cls_routed: whether the CLS token went through the router (False with ``cls_expert``).
        gate_probs: the flat (tokens, N) gate distribution with its graph, so that data-parallel
            training and gradient accumulation can recompute the balance loss from dispatch counts
            of the whole batch; None outside training.
        indices: each routed token's chosen experts, best first, shape (tokens, k).
        tokens: the flat (tokens, d) router input, kept only while the bypass is in training mode
            (the routing contrastive loss of a batch split into micro-batches is rebuilt from it).
    """

    assignments: torch.Tensor
    probs: torch.Tensor
    lb_loss: torch.Tensor | None
    rcl_loss: torch.Tensor | None
    cls_routed: bool
    gate_probs: torch.Tensor | None = None
    indices: torch.Tensor | None = None
    tokens: torch.Tensor | None = None


def computes_losses(module: nn.Module) -> bool:
    """Auxiliary losses belong to training only: an eval-mode forward, or one without autograd
    (no_grad, inference_mode), skips them."""
    return module.training and torch.is_grad_enabled()


class MoLEBypass(nn.Module):
    """Delta W x = (alpha/r) B A x + sum over chosen i of G_i(x) (alpha_i/r_i) B_i A_i x.

    The routed experts are evaluated as one concatenated low-rank product whose rank columns are
    masked per token by the gate. That equals dispatching each token to its chosen experts only,
    without gather/scatter, and costs two thin matmuls of total rank sum(r_i).
    """

    def __init__(self, dim: int, config: MoLEConfig) -> None:
        super().__init__()
        self.config = config
        self.shared = LoRAExpert(dim, dim, config.shared_rank, config.shared_alpha)
        self.experts = nn.ModuleList(
            LoRAExpert(dim, dim, rank, alpha) for rank, alpha in zip(config.expert_ranks, config.expert_alphas)
        )
        self.router: Router = router_for(dim, config)
        self.cls_expert = LoRAExpert(dim, dim, config.shared_rank, config.shared_alpha) if config.cls_expert else None
        segment = torch.cat([torch.full((e.rank,), i) for i, e in enumerate(self.experts)])
        self.register_buffer("_segment", segment, persistent=False)
        self.register_buffer(
            "_column_scaling", torch.tensor([e.scaling for e in self.experts])[segment], persistent=False
        )
        self.last: RoutingRecord | None = None

    def routed(self, tokens: torch.Tensor, routing: Routing) -> torch.Tensor:
        """Sum of the chosen experts' outputs, each weighted by its gate value; tokens are (T, d)."""
        a = torch.cat([e.lora_A for e in self.experts]).to(tokens.dtype)
        b = torch.cat([e.lora_B for e in self.experts], dim=1).to(tokens.dtype)
        column_weight = routing.dense_gates()[:, self._segment] * self._column_scaling
        return ((tokens @ a.t()) * column_weight.to(tokens.dtype)) @ b.t()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Bypass output for batch-first tokens x of shape (B, L, d), CLS at position 0."""
        batch, length, dim = x.shape
        delta = self.shared(x)
        routed_part = x[:, 1:] if self.cls_expert is not None else x
        flat = routed_part.reshape(-1, dim)
        routing = self.router(flat)
        routed = self.routed(flat, routing).reshape(routed_part.shape)
        if self.cls_expert is not None:
            routed = torch.cat([self.cls_expert(x[:, :1]), routed], dim=1)
        top1 = routing.indices[:, 0]
        lb = rcl = None
        training = computes_losses(self)
        if training:
            lb = load_balancing_loss(routing.probs, top1)
            rcl = self.router.contrastive_loss(flat, routing, self.config.rcl_temperature)
        self.last = RoutingRecord(
            assignments=top1.detach().reshape(batch, -1),
            probs=routing.probs.detach().reshape(batch, -1, self.config.num_experts),
            lb_loss=lb,
            rcl_loss=rcl,
            cls_routed=self.cls_expert is None,
            gate_probs=routing.probs if training else None,
            indices=routing.indices.detach(),
            tokens=flat if self.training else None,
        )
        return delta + routed


class MoLEMLP(nn.Module):
    """Wraps a frozen transformer MLP so that the block computes MLP(x) + Delta W x."""

    def __init__(self, base: nn.Module, dim: int, config: MoLEConfig, batch_first: bool) -> None:
        super().__init__()
        self.base = base
        self.bypass = MoLEBypass(dim, config)
        self.batch_first = batch_first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        tokens = x if self.batch_first else x.transpose(0, 1)
        delta = self.bypass(tokens)
        if not self.batch_first:
            delta = delta.transpose(0, 1)
        return out + delta.to(out.dtype)


@dataclass(frozen=True)
class BlockFamily:
    """A kind of transformer block: the names of its MLP's two projections, and its token layout.

    Attributes:
        name: what errors and listings call it.
        first: the MLP's input projection (``d -> hidden``).
        last: the MLP's output projection (``hidden -> d``).
    """

    name: str
    first: str
    last: str

    def matches(self, mlp: nn.Module) -> bool:
        first, last = getattr(mlp, self.first, None), getattr(mlp, self.last, None)
        return isinstance(first, nn.Linear) and isinstance(last, nn.Linear) and first.in_features == last.out_features

    def width(self, mlp: nn.Module) -> int:
        return getattr(mlp, self.first).in_features


BLOCK_FAMILIES = (BlockFamily("open_clip", "c_fc", "c_proj"), BlockFamily("timm", "fc1", "fc2"))


@dataclass(frozen=True)
class Blocks:
    """The transformer blocks of a tower, in order, with their family and token layout."""

    blocks: Sequence[nn.Module]
    family: BlockFamily
    batch_first: bool
    class_token: bool


def _mlp_family(block: nn.Module) -> BlockFamily | None:
    mlp = getattr(block, "mlp", None)
    if isinstance(mlp, MoLEMLP):
        mlp = mlp.base
    return next((f for f in BLOCK_FAMILIES if mlp is not None and f.matches(mlp)), None)


def _has_class_token(visual: nn.Module) -> bool:
    """open_clip's ViT keeps ``class_embedding``; timm's ``cls_token`` is None when it has none."""
    return any(hasattr(m, "class_embedding") or getattr(m, "cls_token", None) is not None for m in visual.modules())


def find_blocks(visual: nn.Module) -> Blocks:
    """The longest ``ModuleList`` (or ``Sequential``: timm's ViT) of blocks whose every MLP one family recognises.

    Raises:
        ConfigError: the tower has no such list.
    """
    best: tuple[nn.Module, nn.ModuleList, BlockFamily] | None = None
    for owner in visual.modules():
        for child in owner.children():
            if not isinstance(child, (nn.ModuleList, nn.Sequential)) or not len(child):
                continue
            families = {_mlp_family(block) for block in child}
            family = families.pop() if len(families) == 1 else None
            if family is not None and (best is None or len(child) > len(best[1])):
                best = (owner, child, family)
    if best is None:
        names = ", ".join(f"mlp.{f.first}/mlp.{f.last}" for f in BLOCK_FAMILIES)
        raise ConfigError(f"MoLE needs a ViT whose blocks have an MLP ({names}); {type(visual).__name__} has none")
    owner, blocks, family = best
    return Blocks(blocks, family, bool(getattr(owner, "batch_first", True)), _has_class_token(visual))


def inject_mole(visual: nn.Module, config: MoLEConfig) -> dict[int, MoLEBypass]:
    """Wrap the MLP of each of the last ``config.blocks`` blocks of a ViT (see ``find_blocks``).

    Returns:
        The bypasses keyed by block index.

    Raises:
        ConfigError: the model has no blocks MoLE recognises, too few, or no class token for
            ``cls_expert``.
    """
    found = find_blocks(visual)
    blocks = found.blocks
    config.validate_depth(len(blocks))
    if config.cls_expert and not found.class_token:
        raise ConfigError("`cls_expert` sends the class token to its own expert, but this tower has no class token")
    bypasses: dict[int, MoLEBypass] = {}
    for index in range(len(blocks) - config.blocks, len(blocks)):
        block = blocks[index]
        if isinstance(block.mlp, MoLEMLP):
            raise ConfigError(f"block {index} already carries a MoLE bypass")
        block.mlp = MoLEMLP(block.mlp, found.family.width(block.mlp), config, found.batch_first)
        bypasses[index] = block.mlp.bypass
    return bypasses
