"""A single low-rank expert: the building block shared by the MoLE bypass and its CLS expert."""

from __future__ import annotations

import math

import torch
from torch import nn


class LoRAExpert(nn.Module):
    """Low-rank map x -> (alpha / rank) * B A x.

    B starts at zero, so a fresh expert contributes nothing and the frozen backbone's output is
    unchanged until training moves it; A gets Kaiming-uniform init so gradients reach B at once.
    """

    def __init__(self, in_features: int, out_features: int, rank: int, alpha: float) -> None:
        super().__init__()
        self.rank = rank
        self.alpha = alpha
        self.scaling = alpha / rank
        self.lora_A = nn.Parameter(torch.empty(rank, in_features))
        self.lora_B = nn.Parameter(torch.zeros(out_features, rank))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.lora_A.to(x.dtype)
        b = self.lora_B.to(x.dtype)
        return (x @ a.t() @ b.t()) * self.scaling

    def delta_weight(self) -> torch.Tensor:
        """The dense update (alpha / rank) * B A that this expert adds to a d_out x d_in weight."""
        return self.lora_B @ self.lora_A * self.scaling

    def extra_repr(self) -> str:
        return f"rank={self.rank}, alpha={self.alpha}, in={self.lora_A.shape[1]}, out={self.lora_B.shape[0]}"
