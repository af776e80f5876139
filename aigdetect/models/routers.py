"""Token routers for the MoLE bypass and their auxiliary losses.

``LinearRouter`` is the paper's G(x) = softmax(W_g x). ``PrototypeRouter`` follows ProMoE: a token's
affinity to expert j is the cosine to a learnable prototype P_j; the chosen experts are the k most
similar prototypes, and each chosen expert's output is scaled either by that cosine (``identity``,
what ProMoE's released code does) or by softmax(cos / tau) (``softmax``).

Routing always runs in float32, also under autocast: an fp16 matmul would choose experts on logits
rounded to about three decimal digits, so a token near a tie could switch experts with the precision.
Nothing here reads a value back to the host, so a forward pass never waits on the device.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .config import LINEAR, PROTO, MoLEConfig, RouterSpec

# Logit given to experts that received no token: exp() of it is exactly 0 in float32, so they drop
# out of the contrastive softmax without a host-side check.
_ABSENT = -1e30


@dataclass
class Routing:
    """Routing decision for a flat batch of T tokens over N experts.

    Attributes:
        probs: gate distribution over experts, shape (T, N), float32 (telemetry and load balancing).
        indices: chosen experts, best first, shape (T, k).
        weights: the factor each chosen expert's output is scaled by, shape (T, k).
    """

    probs: torch.Tensor
    indices: torch.Tensor
    weights: torch.Tensor

    def dense_gates(self) -> torch.Tensor:
        """(T, N) matrix holding each chosen expert's gate weight and zero elsewhere."""
        return torch.zeros_like(self.probs).scatter(1, self.indices, self.weights.to(self.probs.dtype))


def full_precision(x: torch.Tensor) -> AbstractContextManager:
    """Autocast switched off for ``x``'s device, so that float32 operands stay float32."""
    return torch.autocast(device_type=x.device.type, enabled=False)


class Router(nn.Module, ABC):
    """A token router: its ``spec`` says what its kind implies; a forward pass returns a ``Routing``."""

    spec: ClassVar[RouterSpec]

    @classmethod
    @abstractmethod
    def from_config(cls, dim: int, config: MoLEConfig) -> Router:
        """The router ``config`` asks for, over tokens of width ``dim``."""

    def contrastive_loss(self, tokens: torch.Tensor, routing: Routing, temperature: float) -> torch.Tensor:
        """The routing contrastive loss of a training batch; a router without one returns 0."""
        return routing.probs.new_zeros(())


class LinearRouter(Router):
    """G(x) = softmax(W_g x) with W_g of shape (N, d) and no bias, as in CLIPMoLE eq. 1."""

    spec = LINEAR

    @classmethod
    def from_config(cls, dim: int, config: MoLEConfig) -> LinearRouter:
        return cls(dim, config.num_experts, config.top_k)

    def __init__(self, dim: int, num_experts: int, top_k: int = 1) -> None:
        super().__init__()
        self.top_k = top_k
        self.weight = nn.Parameter(torch.empty(num_experts, dim))
        nn.init.normal_(self.weight, std=dim**-0.5)

    def forward(self, x: torch.Tensor) -> Routing:
        with full_precision(x):
            probs = (x.float() @ self.weight.float().t()).softmax(dim=-1)
        weights, indices = probs.topk(self.top_k, dim=-1)
        return Routing(probs=probs, indices=indices, weights=weights)


class PrototypeRouter(Router):
    """Cosine affinity to learnable prototypes P (N, d); the k most similar prototypes are chosen.

    Args:
        dim: token width d.
        num_experts: N.
        top_k: experts per token.
        temperature: tau of the softmax gate distribution.
        gate_weight: ``identity`` scales a chosen expert by cos(x, P_j), ``softmax`` by
            softmax(cos / tau)_j. Either way ``probs`` is softmax(cos / tau).
    """

    spec = PROTO

    @classmethod
    def from_config(cls, dim: int, config: MoLEConfig) -> PrototypeRouter:
        return cls(dim, config.num_experts, config.top_k, config.rcl_temperature, str(config.gate_weight))

    def __init__(
        self, dim: int, num_experts: int, top_k: int = 1, temperature: float = 0.07, gate_weight: str = "identity"
    ) -> None:
        super().__init__()
        self.top_k = top_k
        self.temperature = temperature
        self.gate_weight = gate_weight
        self.prototypes = nn.Parameter(torch.randn(num_experts, dim) * dim**-0.5)

    def affinity(self, x: torch.Tensor) -> torch.Tensor:
        with full_precision(x):
            return F.normalize(x.float(), dim=-1) @ F.normalize(self.prototypes.float(), dim=-1).t()

    def forward(self, x: torch.Tensor) -> Routing:
        cosines = self.affinity(x)
        probs = (cosines / self.temperature).softmax(dim=-1)
        if self.gate_weight == "softmax":
            weights, indices = probs.topk(self.top_k, dim=-1)
        else:
            weights, indices = cosines.topk(self.top_k, dim=-1)
        return Routing(probs=probs, indices=indices, weights=weights)

    def contrastive_loss(self, tokens: torch.Tensor, routing: Routing, temperature: float) -> torch.Tensor:
        return routing_contrastive_loss(tokens, self.prototypes, routing.indices, temperature)


ROUTER_CLASSES: dict[str, type[Router]] = {cls.spec.name: cls for cls in (LinearRouter, PrototypeRouter)}
"""Every router kind's class: the one table from a config's ``router`` name to its behaviour."""


def router_for(dim: int, config: MoLEConfig) -> Router:
    """The router ``config`` names, for tokens of width ``dim``."""
    return ROUTER_CLASSES[config.router].from_config(dim, config)


def dispatch_counts(top1: torch.Tensor, num_experts: int) -> torch.Tensor:
    """How many tokens each expert received as their argmax, shape (N,), float32."""
    return F.one_hot(top1, num_experts).float().sum(dim=0)


def balance_from_counts(probs: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """N * sum_j f_j * P_j with f_j = counts_j / sum(counts) and P_j the mean gate mass of ``probs``.

    Data-parallel training passes counts summed over every rank, and gradient accumulation counts
    over every micro-batch: with gradients weighted by each part's share of the images, that
    optimises exactly the loss of the whole batch.
    """
    fraction = counts / counts.sum().clamp_min(1)
    mass = probs.float().mean(dim=0)
    return probs.shape[-1] * (fraction * mass).sum()


def load_balancing_loss(probs: torch.Tensor, top1: torch.Tensor) -> torch.Tensor:
    """Switch-Transformer balance loss N * sum_j f_j * P_j over a flat batch of tokens.

    Args:
        probs: gate distribution, shape (T, N).
        top1: index of each token's argmax expert, shape (T,).

    Returns:
        A scalar that equals 1 when dispatch and gate mass are both uniform.
    """
    return balance_from_counts(probs, dispatch_counts(top1, probs.shape[-1]))


def expert_membership(indices: torch.Tensor, num_experts: int) -> torch.Tensor:
    """(T, N) float matrix: 1 where expert j is among a token's chosen experts (``indices`` (T,) or (T, k))."""
    if indices.dim() == 1:
        indices = indices[:, None]
    return torch.zeros(indices.shape[0], num_experts, device=indices.device).scatter_(1, indices, 1.0)


def expert_sums(tokens: torch.Tensor, membership: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per expert, the float32 sum of its tokens (N, d) and how many tokens it has (N,)."""
    with full_precision(tokens):
        return membership.t() @ tokens.float(), membership.sum(dim=0)


def rcl_from_means(
    prototypes: torch.Tensor, means: torch.Tensor, counts: torch.Tensor, temperature: float
) -> torch.Tensor:
    """InfoNCE between the normalised prototypes and the normalised means of their tokens.

    Experts with ``counts`` 0 take no part; with fewer than two used experts the loss is exactly 0
    (a row whose only candidate is its own positive has cross-entropy 0), so no host check is needed.
    """
    with full_precision(means):
        used = counts > 0
        logits = F.normalize(prototypes.float(), dim=-1) @ F.normalize(means.float(), dim=-1).t() / temperature
        logits = torch.where(used[None, :], logits, logits.new_tensor(_ABSENT))
        target = torch.arange(logits.shape[0], device=logits.device)
        rows = F.cross_entropy(logits, target, reduction="none")
        return (rows * used).sum() / used.sum().clamp_min(1)


def mean_tokens(sums: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Per-expert token means from their sums; an expert without tokens gets a zero vector."""
    return sums / counts.clamp_min(1)[:, None]


def routing_contrastive_loss(
    tokens: torch.Tensor, prototypes: torch.Tensor, indices: torch.Tensor, temperature: float
) -> torch.Tensor:
    """ProMoE's routing contrastive loss: InfoNCE between prototypes and the mean of their tokens.

    A token counts towards every expert it was routed to (its top-k, as ProMoE's released code
    does); with top-1 that is its single expert. Only experts that received at least one token take
    part, so an unused prototype neither contributes nor produces a NaN; with fewer than two used
    experts there is nothing to contrast and the loss is 0.

    Args:
        tokens: routed tokens, shape (T, d).
        prototypes: expert prototypes, shape (N, d).
        indices: each token's chosen experts, shape (T, k), or its top-1 expert, shape (T,).
        temperature: softmax temperature tau.
    """
    sums, counts = expert_sums(tokens, expert_membership(indices, prototypes.shape[0]))
    return rcl_from_means(prototypes, mean_tokens(sums, counts), counts, temperature)
