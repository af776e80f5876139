"""The MoLE bypass (shared + routed LoRA experts) and its injection into a CLIP ViT's last blocks."""

from __future__ import annotations

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


def inject_mole(visual: nn.Module, config: MoLEConfig) -> dict[int, MoLEBypass]:
    """Wrap the MLP of each of the last ``config.blocks`` resblocks of an open_clip VisionTransformer.

    Returns:
        The bypasses keyed by resblock index.

    Raises:
        ConfigError: the model has no ``transformer.resblocks`` with an ``mlp``, or too few blocks.
    """
    transformer = getattr(visual, "transformer", None)
    blocks = getattr(transformer, "resblocks", None)
    if blocks is None or not all(hasattr(block, "mlp") for block in blocks):
        raise ConfigError(
            "MoLE needs a ViT with transformer.resblocks[i].mlp (open_clip VisionTransformer); "
            f"{type(visual).__name__} has none"
        )
    config.validate_depth(len(blocks))
    dim = transformer.width
    batch_first = getattr(transformer, "batch_first", True)
    bypasses: dict[int, MoLEBypass] = {}
    for index in range(len(blocks) - config.blocks, len(blocks)):
        block = blocks[index]
        if isinstance(block.mlp, MoLEMLP):
            raise ConfigError(f"resblock {index} already carries a MoLE bypass")
        block.mlp = MoLEMLP(block.mlp, dim, config, batch_first)
        bypasses[index] = block.mlp.bypass
    return bypasses
