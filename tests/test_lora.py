"""LoRA expert arithmetic against explicit matrix products."""

from __future__ import annotations

import torch

from aigdetect.models.lora import LoRAExpert


def test_output_is_scaled_low_rank_product():
    torch.manual_seed(0)
    expert = LoRAExpert(6, 5, rank=2, alpha=3.0)
    with torch.no_grad():
        expert.lora_B.copy_(torch.randn(5, 2))
    x = torch.randn(4, 6)
    expected = torch.stack([(3.0 / 2) * expert.lora_B @ (expert.lora_A @ row) for row in x])
    torch.testing.assert_close(expert(x), expected)
    torch.testing.assert_close(expert(x), x @ expert.delta_weight().t())


def test_fresh_expert_is_a_no_op_and_keeps_input_dtype():
    expert = LoRAExpert(8, 8, rank=4, alpha=4.0)
    x = torch.randn(3, 8, dtype=torch.float64)
    out = expert(x)
    assert out.dtype == torch.float64
    assert torch.count_nonzero(out) == 0
    assert expert.scaling == 1.0
