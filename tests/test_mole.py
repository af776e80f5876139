"""The MoLE bypass: routing, expert mixing, losses, zero-init equivalence and trainability."""

from __future__ import annotations

import pytest
import torch
from conftest import make_tiny_detector
from open_clip.transformer import QuickGELU

from aigdetect import MoLEConfig, create_detector
from aigdetect.errors import ConfigError
from aigdetect.models.backbones import build_visual, resolve_backbone
from aigdetect.models.mole import MoLEBypass, MoLEMLP
from aigdetect.models.routers import LinearRouter, load_balancing_loss


def _bypass(config: MoLEConfig, dim: int = 12, seed: int = 0) -> MoLEBypass:
    torch.manual_seed(seed)
    bypass = MoLEBypass(dim, config)
    with torch.no_grad():
        for name, param in bypass.named_parameters():
            if "lora_B" in name:
                param.normal_()
    return bypass


def _explicit(bypass: MoLEBypass, tokens: torch.Tensor) -> torch.Tensor:
    """Token-by-token reference: shared expert plus the argmax expert weighted by its probability."""
    out = torch.empty_like(tokens)
    w_g = bypass.router.weight
    for b in range(tokens.shape[0]):
        for t in range(tokens.shape[1]):
            x = tokens[b, t]
            probs = torch.softmax(w_g @ x, dim=0)
            i = int(torch.argmax(probs))
            shared, expert = bypass.shared, bypass.experts[i]
            value = shared.scaling * shared.lora_B @ (shared.lora_A @ x)
            value = value + probs[i] * expert.scaling * expert.lora_B @ (expert.lora_A @ x)
            out[b, t] = value
    return out


def test_bypass_equals_token_by_token_reference():
    bypass = _bypass(MoLEConfig(expert_alphas=(2.0, 8.0, 4.0)))
    tokens = torch.randn(2, 5, 12)
    torch.testing.assert_close(bypass(tokens), _explicit(bypass, tokens), rtol=1e-5, atol=1e-5)


def test_router_picks_argmax_and_weights_by_probability():
    router = LinearRouter(3, 3)
    with torch.no_grad():
        router.weight.copy_(torch.eye(3))
    x = torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 0.0]])
    routing = router(x)
    assert routing.indices[:, 0].tolist() == [1, 0]
    e = torch.exp(torch.tensor(1.0))
    expected = torch.tensor([e**2 / (1 + e**2 + e), e**3 / (e**3 + 2)])
    torch.testing.assert_close(routing.weights[:, 0], expected)
    torch.testing.assert_close(routing.dense_gates().sum(dim=1), expected)


def test_load_balancing_loss_hand_computed():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8], [0.2, 0.5, 0.3]])
    top1 = probs.argmax(dim=1)
    # f = (2/4, 1/4, 1/4); P = (1.6/4, 1.1/4, 1.3/4); N * sum f*P = 3 * (3.2 + 1.1 + 1.3) / 16
    assert load_balancing_loss(probs, top1).item() == pytest.approx(3 * 5.6 / 16)
    uniform = torch.full((6, 3), 1 / 3)
    assert load_balancing_loss(uniform, torch.tensor([0, 1, 2, 0, 1, 2])).item() == pytest.approx(1.0)


def test_zero_init_leaves_backbone_output_bit_identical(tiny_config):
    frozen = create_detector(tiny_config, MoLEConfig(blocks=0), backbone_weights="none", seed=3)
    adapted = create_detector(tiny_config, MoLEConfig(blocks=3), backbone_weights="none", seed=3)
    pixels = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(frozen.visual(pixels), adapted.visual(pixels))


def test_bypass_wraps_the_last_blocks_only(tiny_config):
    detector = create_detector(tiny_config, MoLEConfig(blocks=2), backbone_weights="none")
    wrapped = [isinstance(b.mlp, MoLEMLP) for b in detector.visual.transformer.resblocks]
    assert wrapped == [False, False, True, True]
    assert sorted(detector.bypasses) == [2, 3]


def test_only_adapters_and_head_train_and_all_receive_gradients():
    detector = make_tiny_detector(MoLEConfig(blocks=3))
    trainable = {name for name, p in detector.named_parameters() if p.requires_grad}
    assert trainable and all(".bypass." in name or name.startswith("head.") for name in trainable)
    assert all(not p.requires_grad for n, p in detector.visual.named_parameters() if ".bypass." not in n)
    detector.train()
    output = detector(torch.randn(8, 3, 32, 32))
    detector.loss(output, torch.tensor([0, 1] * 4))["loss"].backward()
    last = max(detector.bypasses)
    # Only the CLS token of the last block reaches the embedding, so there an expert learns
    # exactly when some image's CLS token was routed to it.
    cls_experts = set(output.routing[last].assignments[:, 0].tolist())
    for name, param in detector.named_parameters():
        if not param.requires_grad:
            continue
        learns = param.grad is not None and bool(torch.count_nonzero(param.grad))
        if f"resblocks.{last}.mlp.bypass.experts." in name:
            assert learns == (int(name.split("experts.")[1].split(".")[0]) in cls_experts), name
        else:
            assert learns, name


def test_loss_combines_bce_and_weighted_balance_loss():
    detector = make_tiny_detector(MoLEConfig(blocks=2, lb_weight=0.5))
    output = detector(torch.randn(3, 3, 32, 32))
    labels = torch.tensor([1, 0, 1])
    losses = detector.loss(output, labels)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(output.logits, labels.float())
    lb = sum(r.lb_loss for r in output.routing.values())
    torch.testing.assert_close(losses["loss"], bce + 0.5 * lb)


def test_openai_backbones_use_quick_gelu():
    for name in ("vitb32", "vitb16", "vitl14"):
        source = resolve_backbone(name)
        assert source.config["quick_gelu"] is True
        visual = build_visual(source, meta=True)
        assert isinstance(visual.transformer.resblocks[0].mlp.gelu, QuickGELU)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"blocks": -1},
        {"shared_rank": 0},
        {"expert_ranks": ()},
        {"expert_ranks": (4, 0)},
        {"top_k": 4},
        {"expert_alphas": (1.0,)},
        {"router": "mlp"},
        {"rcl_temperature": 0.0},
    ],
)
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(ConfigError):
        MoLEConfig(**kwargs)


def test_config_rejects_more_blocks_than_depth(tiny_config):
    with pytest.raises(ConfigError, match="exceeds the backbone's depth of 4"):
        create_detector(tiny_config, MoLEConfig(blocks=5), backbone_weights="none")


def test_config_round_trips_through_dict():
    config = MoLEConfig(blocks=2, expert_ranks=(2, 6), top_k=2, router="proto", cls_expert=True)
    assert MoLEConfig.from_dict(config.to_dict()) == config
    assert config.lb_weight == 0.0 and MoLEConfig().lb_weight == 0.01


@pytest.mark.parametrize("router", ["linear", "proto"])
def test_losses_only_in_training_and_routing_in_every_mode(router: str):
    detector = make_tiny_detector(MoLEConfig(router=router, top_k=2))
    pixels = torch.randn(3, 3, 32, 32)
    detector.train()
    trained = detector(pixels)
    assert trained.lb_loss is not None and trained.rcl_loss is not None and trained.lb_loss > 0
    assert all(r.lb_loss is not None and r.gate_probs is not None for r in trained.routing.values())
    with torch.no_grad():
        reference = detector(pixels).logits  # same kernels as the eval passes below (autograd off)
    torch.testing.assert_close(reference, trained.logits.detach(), rtol=0, atol=1e-6)
    detector.eval()
    with torch.no_grad():
        evaluated = detector(pixels)
    with torch.inference_mode():
        inferred = detector(pixels)
    for output in (evaluated, inferred):
        assert output.lb_loss is None and output.rcl_loss is None
        assert torch.equal(output.logits, reference)
        assert set(output.routing) == set(trained.routing) == {1, 2, 3}
        for block, record in output.routing.items():
            assert record.lb_loss is None and record.rcl_loss is None and record.gate_probs is None
            assert record.tokens is None  # an eval forward keeps no activations alive
            assert torch.equal(record.assignments, trained.routing[block].assignments)
            assert torch.equal(record.indices, trained.routing[block].indices)
    with pytest.raises(ConfigError, match="training-mode forward"):
        detector.loss(evaluated, torch.tensor([0.0, 1.0, 1.0]))
    detector.train()
    for no_autograd in (torch.no_grad, torch.inference_mode):
        with no_autograd():
            assert detector(pixels).lb_loss is None


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("router", ["linear", "proto"])
def test_routing_stays_float32_under_autocast(router: str, dtype: torch.dtype):
    bypass = _bypass(MoLEConfig(router=router, top_k=2), dim=64)
    tokens = torch.randn(4096, 64, generator=torch.Generator().manual_seed(1))
    reference = bypass.router(tokens)
    with torch.autocast("cpu", dtype=dtype):
        routed = bypass.router(tokens)
    assert routed.probs.dtype == torch.float32 and routed.weights.dtype == torch.float32
    assert torch.equal(routed.probs, reference.probs) and torch.equal(routed.indices, reference.indices)
    # What it guards against: a low-precision product picks other experts for some tokens.
    with torch.autocast("cpu", dtype=dtype):
        low = (tokens.float() @ torch.randn(64, 3, generator=torch.Generator().manual_seed(2))).argmax(-1)
    exact = (tokens @ torch.randn(64, 3, generator=torch.Generator().manual_seed(2))).argmax(-1)
    assert (low != exact).any()


@pytest.mark.parametrize("router", ["linear", "proto"])
@pytest.mark.parametrize("training", [False, True])
def test_bypass_forward_traces_without_a_host_sync(router: str, training: bool):
    """fullgraph tracing fails on any device-to-host read (int(), .item(), data-dependent branches)."""
    bypass = _bypass(MoLEConfig(router=router, top_k=2)).train(training)
    tokens = torch.randn(2, 5, 12)
    expected = bypass(tokens)
    traced = torch.compile(bypass, fullgraph=True, backend="eager")
    torch.testing.assert_close(traced(tokens), expected)
