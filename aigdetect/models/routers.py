"""Token routers for the MoLE bypass and their auxiliary losses.

``LinearRouter`` is the paper's G(x) = softmax(W_g x). ``PrototypeRouter`` follows ProMoE: a token's
affinity to expert j is the cosine to a learnable prototype P_j, and the gate is softmax(cos / tau), so
gate weights stay comparable to the linear router's and top-k > 1 sums a proper distribution's mass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class Routing:
    """Routing decision for a flat batch of T tokens over N experts.

    Attributes:
        probs: gate distribution over experts, shape (T, N), float32.
        indices: chosen experts, best first, shape (T, k).
        weights: gate weight of each chosen expert, shape (T, k).
    """

    probs: torch.Tensor
    indices: torch.Tensor
    weights: torch.Tensor

    def dense_gates(self) -> torch.Tensor:
        """(T, N) matrix holding each chosen expert's gate weight and zero elsewhere."""
        return torch.zeros_like(self.probs).scatter(1, self.indices, self.weights)


def _select(probs: torch.Tensor, top_k: int) -> Routing:
    weights, indices = probs.topk(top_k, dim=-1)
    return Routing(probs=probs, indices=indices, weights=weights)


class LinearRouter(nn.Module):
    """G(x) = softmax(W_g x) with W_g of shape (N, d) and no bias, as in CLIPMoLE eq. 1."""

    def __init__(self, dim: int, num_experts: int, top_k: int = 1) -> None:
        super().__init__()
        self.top_k = top_k
        self.weight = nn.Parameter(torch.empty(num_experts, dim))
        nn.init.normal_(self.weight, std=dim**-0.5)

    def forward(self, x: torch.Tensor) -> Routing:
        logits = x.float() @ self.weight.float().t()
        return _select(logits.softmax(dim=-1), self.top_k)


class PrototypeRouter(nn.Module):
    """Cosine affinity to learnable prototypes P (N, d); gate = softmax(cos(x, P_j) / tau)."""

    def __init__(self, dim: int, num_experts: int, top_k: int = 1, temperature: float = 0.07) -> None:
        super().__init__()
        self.top_k = top_k
        self.temperature = temperature
        self.prototypes = nn.Parameter(torch.randn(num_experts, dim) * dim**-0.5)

    def affinity(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x.float(), dim=-1) @ F.normalize(self.prototypes.float(), dim=-1).t()

    def forward(self, x: torch.Tensor) -> Routing:
        return _select((self.affinity(x) / self.temperature).softmax(dim=-1), self.top_k)


def dispatch_counts(top1: torch.Tensor, num_experts: int) -> torch.Tensor:
    """How many tokens each expert received as their argmax, shape (N,), float32."""
    return F.one_hot(top1, num_experts).float().sum(dim=0)


def balance_from_counts(probs: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """N * sum_j f_j * P_j with f_j = counts_j / sum(counts) and P_j the mean gate mass of ``probs``.

    Data-parallel training passes counts summed over every rank: with gradients averaged by batch
    share, that optimises exactly the single-process loss of the global batch.
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


def routing_contrastive_loss(
    tokens: torch.Tensor, prototypes: torch.Tensor, top1: torch.Tensor, temperature: float
) -> torch.Tensor:
    """ProMoE's routing contrastive loss: InfoNCE between prototypes and the mean of their tokens.

    Only experts that received at least one token take part, so an unused prototype neither
    contributes nor produces a NaN; with fewer than two used experts there is nothing to contrast.

    Args:
        tokens: routed tokens, shape (T, d).
        prototypes: expert prototypes, shape (N, d).
        top1: each token's assigned expert, shape (T,).
        temperature: softmax temperature tau.
    """
    num_experts = prototypes.shape[0]
    onehot = F.one_hot(top1, num_experts).float()
    counts = onehot.sum(dim=0)
    used = counts > 0
    if int(used.sum()) < 2:
        return tokens.new_zeros((), dtype=torch.float32)
    means = (onehot.t() @ tokens.float())[used] / counts[used, None]
    logits = F.normalize(prototypes.float()[used], dim=-1) @ F.normalize(means, dim=-1).t() / temperature
    target = torch.arange(logits.shape[0], device=logits.device)
    return F.cross_entropy(logits, target)
