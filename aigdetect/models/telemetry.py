"""Routing telemetry: how each adapted block spreads tokens over its experts, split by class.

Collapsed routing (every token to one expert) is the failure the load-balancing and routing
contrastive losses exist to prevent, so training logs these figures for every block.
"""

from __future__ import annotations

import torch

from .mole import RoutingRecord


def gate_entropy(probs: torch.Tensor) -> float:
    """Mean entropy of gate distributions (..., N) in nats; log N means the gate is uniform."""
    probs = probs.float()
    return float(-(probs * probs.clamp_min(1e-12).log()).sum(-1).mean())


def _shares(assignments: torch.Tensor, num_experts: int) -> list[float]:
    if assignments.numel() == 0:
        return [float("nan")] * num_experts
    counts = torch.bincount(assignments.reshape(-1), minlength=num_experts).float()
    return (counts / counts.sum()).tolist()


def routing_summary(routing: dict[int, RoutingRecord], labels: torch.Tensor | None = None) -> dict[str, dict]:
    """Per adapted block: token share per expert, mean routing entropy, and shares for reals and fakes.

    Args:
        routing: the ``DetectorOutput.routing`` of one forward pass.
        labels: per-image labels (1 fake, 0 real) of that batch, to split the shares by class.

    Returns:
        ``{"block<i>": {"utilisation": [...], "entropy": float, "share_real": [...], "share_fake": [...]}}``;
        the entropy is in nats, averaged over tokens (log N means the gate is uniform). Class shares
        are NaN for a class absent from the batch, and are left out when no labels are given.
    """
    summary: dict[str, dict] = {}
    for index, record in sorted(routing.items()):
        num_experts = record.probs.shape[-1]
        block = {"utilisation": _shares(record.assignments, num_experts), "entropy": gate_entropy(record.probs)}
        if labels is not None:
            labels = labels.to(record.assignments.device).reshape(-1)
            block["share_real"] = _shares(record.assignments[labels == 0], num_experts)
            block["share_fake"] = _shares(record.assignments[labels == 1], num_experts)
        summary[f"block{index}"] = block
    return summary
