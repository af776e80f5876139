"""The prototype router, its routing contrastive loss, the CLS expert and routing telemetry."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import make_tiny_detector

from aigdetect import MoLEConfig, load_detector, save_detector
from aigdetect.errors import ConfigError
from aigdetect.models.checkpoint import read_checkpoint, write_checkpoint
from aigdetect.models.mole import MoLEBypass, RoutingRecord
from aigdetect.models.routers import (
    ROUTER_CLASSES,
    LinearRouter,
    PrototypeRouter,
    routing_contrastive_loss,
)
from aigdetect.models.telemetry import routing_summary

# Three 2-d tokens and three prototypes; the third prototype points away from every token.
TOKENS = torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
PROTOTYPES = torch.tensor([[3.0, 4.0], [0.0, 2.0], [-1.0, -1.0]])
# Worked by hand at tau = 0.5. Token 0 goes to expert 0 (cosines 0.6, 0, -0.71), tokens 1 and 2 to
# expert 1 (cosines 0.8, 1, -0.71). Normalised means: m0 = (1, 0), m1 = (0, 1). Normalised
# prototypes: p0 = (0.6, 0.8), p1 = (0, 1). Logits p_i . m_j / tau: row 0 = (1.2, 1.6), row 1 = (0, 2).
# Cross-entropy with the diagonal as target: row 0 gives log(1 + e^0.4), row 1 gives log(1 + e^-2).
RCL_BY_HAND = (math.log(1 + math.exp(0.4)) + math.log(1 + math.exp(-2.0))) / 2


def _bypass(dim: int, seed: int = 0, **overrides) -> MoLEBypass:
    """A bypass whose B matrices are random, so every expert changes the output."""
    torch.manual_seed(seed)
    values = {"expert_ranks": (2, 3, 4), "shared_rank": 2, "shared_alpha": 4.0, "router": "proto"}
    values.update(overrides)
    bypass = MoLEBypass(dim, MoLEConfig(**values))
    with torch.no_grad():
        for name, param in bypass.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn_like(param) * 0.3)
    return bypass


def _lora(expert, x: torch.Tensor) -> torch.Tensor:
    """(alpha / r) B A x written out as explicit matrix products, one token at a time."""
    return expert.alpha / expert.rank * (expert.lora_B @ (expert.lora_A @ x))


@pytest.mark.parametrize("gate_weight", ["identity", "softmax"])
def test_gate_distribution_is_softmax_of_cosine_over_temperature(gate_weight: str):
    router = PrototypeRouter(2, 2, top_k=1, temperature=0.5, gate_weight=gate_weight)
    with torch.no_grad():
        router.prototypes.copy_(torch.tensor([[1.0, 0.0], [0.0, 3.0]]))
    routing = router(torch.tensor([[2.0, 0.0], [1.0, 3.0]]))
    e2 = math.exp(2.0)
    # token 0: cosines (1, 0) -> softmax(2, 0); token 1: cosines (0.316, 0.949) -> softmax(0.632, 1.897).
    c1 = (1 / math.sqrt(10), 3 / math.sqrt(10))
    s1 = math.exp(2 * c1[1]) / (math.exp(2 * c1[0]) + math.exp(2 * c1[1]))
    expected = torch.tensor([[e2 / (e2 + 1), 1 / (e2 + 1)], [1 - s1, s1]])
    torch.testing.assert_close(routing.probs, expected)
    assert routing.indices[:, 0].tolist() == [0, 1]
    # identity scales a chosen expert by its cosine (ProMoE's code), softmax by its gate probability.
    weights = [1.0, c1[1]] if gate_weight == "identity" else [e2 / (e2 + 1), s1]
    torch.testing.assert_close(routing.weights[:, 0], torch.tensor(weights))


def test_proto_defaults_to_identity_and_linear_to_softmax():
    assert MoLEConfig(router="proto").gate_weight == "identity"
    assert MoLEConfig().gate_weight == "softmax"
    assert MoLEConfig(router="proto", gate_weight="softmax").gate_weight == "softmax"
    with pytest.raises(ConfigError, match="`gate_weight` identity"):
        MoLEConfig(router="linear", gate_weight="identity")
    with pytest.raises(ConfigError, match="`gate_weight` must be one of identity, softmax"):
        MoLEConfig(router="proto", gate_weight="sigmoid")


def test_rcl_matches_hand_computed_value():
    loss = routing_contrastive_loss(TOKENS, PROTOTYPES, torch.tensor([0, 1, 1]), temperature=0.5)
    assert loss.item() == pytest.approx(RCL_BY_HAND, rel=1e-6)


def test_bypass_routes_and_computes_rcl_as_by_hand():
    bypass = _bypass(2, expert_ranks=(1, 1, 1), shared_rank=1, rcl_temperature=0.5)
    with torch.no_grad():
        bypass.router.prototypes.copy_(PROTOTYPES)
    bypass(TOKENS[None])
    assert bypass.last.assignments.tolist() == [[0, 1, 1]]
    assert bypass.last.rcl_loss.item() == pytest.approx(RCL_BY_HAND, rel=1e-6)


def test_unused_prototype_gives_finite_loss_and_gradients():
    bypass = _bypass(2, expert_ranks=(1, 1, 1), shared_rank=1, rcl_temperature=0.5, top_k=2)
    with torch.no_grad():
        bypass.router.prototypes.copy_(PROTOTYPES)
    out = bypass(TOKENS[None])
    assert 2 not in bypass.last.assignments
    loss = out.square().sum() + bypass.last.rcl_loss + bypass.last.lb_loss
    loss.backward()
    assert torch.isfinite(loss)
    for name, param in bypass.named_parameters():
        assert param.grad is None or torch.isfinite(param.grad).all(), name
    assert torch.isfinite(bypass.router.prototypes.grad[2]).all()


def test_rcl_with_top_k_counts_a_token_for_each_of_its_experts():
    # ProMoE's use_top_k_for_routing_contrastive: token t joins the mean of every expert in its top-k.
    # Top-2 choices: token 0 -> {0, 2}, token 1 -> {1, 0}, token 2 -> {1, 0}. Means: m0 = mean of all
    # three tokens, m1 = mean of tokens 1 and 2, m2 = token 0.
    indices = torch.tensor([[0, 2], [1, 0], [1, 0]])
    loss = routing_contrastive_loss(TOKENS, PROTOTYPES, indices, temperature=0.5)
    means = torch.stack([TOKENS.mean(0), TOKENS[1:].mean(0), TOKENS[0]])
    logits = F.normalize(PROTOTYPES, dim=-1) @ F.normalize(means, dim=-1).t() / 0.5
    assert loss.item() == pytest.approx(F.cross_entropy(logits, torch.arange(3)).item(), rel=1e-6)
    # Top-1 of the same choices is the hand-computed case above.
    assert routing_contrastive_loss(TOKENS, PROTOTYPES, indices[:, 0], 0.5).item() == pytest.approx(RCL_BY_HAND, rel=1e-6)


def _rcl_by_gathering(tokens, prototypes, indices, temperature):
    """The loss as first written: gather the used experts, then cross-entropy (needs their count on the host)."""
    membership = torch.zeros(tokens.shape[0], prototypes.shape[0]).scatter_(1, indices.reshape(tokens.shape[0], -1), 1.0)
    counts = membership.sum(0)
    used = counts > 0
    if int(used.sum()) < 2:
        return torch.zeros(())
    means = (membership.t() @ tokens)[used] / counts[used, None]
    logits = F.normalize(prototypes[used], dim=-1) @ F.normalize(means, dim=-1).t() / temperature
    return F.cross_entropy(logits, torch.arange(int(used.sum())))


@pytest.mark.parametrize("seed", range(6))
def test_rcl_without_host_sync_equals_gathering_the_used_experts(seed: int):
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randn(12, 6, generator=generator)
    prototypes = torch.randn(5, 6, generator=generator, requires_grad=True)
    indices = torch.randint(0, 3 if seed % 2 else 5, (12, 1 + seed % 3), generator=generator)  # some experts unused
    loss = routing_contrastive_loss(tokens, prototypes, indices, 0.2)
    reference = _rcl_by_gathering(tokens, prototypes, indices, 0.2)
    assert loss.item() == pytest.approx(reference.item(), rel=1e-6, abs=1e-7)
    (grad,) = torch.autograd.grad(loss, prototypes)
    (expected,) = torch.autograd.grad(reference, prototypes, allow_unused=True) if reference.requires_grad else (None,)
    torch.testing.assert_close(grad, expected if expected is not None else torch.zeros_like(grad), rtol=1e-5, atol=1e-7)
    # Traced whole with no graph break: nothing reads a device value back to the host.
    traced = torch.compile(routing_contrastive_loss, fullgraph=True, backend="eager")
    assert traced(tokens, prototypes, indices, 0.2).item() == pytest.approx(loss.item(), rel=1e-6)


def test_single_used_expert_has_nothing_to_contrast():
    same_direction = torch.tensor([[1.0, 0.1], [2.0, 0.3], [3.0, 0.2]])
    loss = routing_contrastive_loss(same_direction, PROTOTYPES, torch.tensor([0, 0, 0]), temperature=0.5)
    assert loss.item() == 0.0


def test_gradients_reach_prototypes_through_the_gate():
    bypass = _bypass(8)
    bypass(torch.randn(2, 5, 8)).square().sum().backward()
    grad = bypass.router.prototypes.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_gradients_reach_prototypes_through_rcl():
    bypass = _bypass(8)
    bypass(torch.randn(2, 5, 8))
    assert bypass.last.assignments.unique().numel() >= 2
    bypass.last.rcl_loss.backward()
    grad = bypass.router.prototypes.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_detector_loss_trains_every_prototype():
    detector = make_tiny_detector(MoLEConfig(router="proto", cls_expert=True))
    torch.manual_seed(0)
    output = detector(torch.randn(3, 3, 32, 32))
    loss = detector.loss(output, torch.tensor([0.0, 1.0, 1.0]))
    assert output.rcl_loss > 0
    loss["loss"].backward()
    for bypass in detector.bypasses.values():
        grad = bypass.router.prototypes.grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in detector.trainable_parameters())


@pytest.mark.parametrize("gate_weight", ["identity", "softmax"])
@pytest.mark.parametrize("cls_expert", [False, True])
@pytest.mark.parametrize("top_k", [1, 2, 3])
def test_topk_output_equals_per_token_loop(top_k: int, cls_expert: bool, gate_weight: str):
    bypass = _bypass(8, top_k=top_k, cls_expert=cls_expert, rcl_temperature=0.3, gate_weight=gate_weight)
    x = torch.randn(2, 5, 8)
    with torch.no_grad():
        out = bypass(x)
        prototypes = bypass.router.prototypes
        for b in range(2):
            for t in range(5):
                token = x[b, t]
                expected = _lora(bypass.shared, token)
                if cls_expert and t == 0:
                    expected = expected + _lora(bypass.cls_expert, token)
                else:
                    cosines = torch.stack([F.cosine_similarity(token, p, dim=0) for p in prototypes])
                    gates = torch.softmax(cosines / 0.3, dim=0) if gate_weight == "softmax" else cosines
                    for j in sorted(range(3), key=lambda j: -cosines[j].item())[:top_k]:
                        expected = expected + gates[j] * _lora(bypass.experts[j], token)
                torch.testing.assert_close(out[b, t], expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("router", ["linear", "proto"])
def test_cls_expert_takes_only_the_cls_token(router: str):
    bypass = _bypass(8, router=router, cls_expert=True)
    seen: list[torch.Tensor] = []
    bypass.router.register_forward_hook(lambda module, args, output: seen.append(args[0].detach().clone()))
    x = torch.randn(2, 5, 8)
    with torch.no_grad():
        before = bypass(x)
        torch.testing.assert_close(seen[0], x[:, 1:].reshape(-1, 8))
        assert bypass.last.assignments.shape == (2, 4) and not bypass.last.cls_routed
        for b in range(2):
            torch.testing.assert_close(before[b, 0], _lora(bypass.shared, x[b, 0]) + _lora(bypass.cls_expert, x[b, 0]))

        bypass.cls_expert.lora_B.add_(torch.randn_like(bypass.cls_expert.lora_B))
        after_cls = bypass(x)
        changed = (after_cls - before).abs().amax(dim=-1) > 1e-6
        assert changed[:, 0].all() and not changed[:, 1:].any()

        for expert in bypass.experts:
            expert.lora_B.add_(torch.randn_like(expert.lora_B))
        after_routed = bypass(x)
        changed = (after_routed - after_cls).abs().amax(dim=-1) > 1e-6
        assert not changed[:, 0].any() and changed[:, 1:].all()


def test_without_cls_expert_the_router_sees_every_token():
    bypass = _bypass(8)
    bypass(torch.randn(2, 5, 8))
    assert bypass.cls_expert is None and bypass.last.cls_routed
    assert bypass.last.assignments.shape == (2, 5)


def test_routing_summary_against_hand_computed_shares():
    assignments = torch.tensor([[0, 0, 1], [2, 2, 2]])
    half = [0.5, 0.5, 0.0]
    probs = torch.tensor([[half, half, half], [[1.0, 0.0, 0.0]] * 3])
    record = RoutingRecord(assignments, probs, torch.zeros(()), torch.zeros(()), cls_routed=True)
    summary = routing_summary({7: record}, labels=torch.tensor([0, 1]))
    block = summary["block7"]
    # 6 tokens: expert 0 twice, expert 1 once, expert 2 three times; entropy ln 2 for 3 tokens, 0 for 3.
    assert block["utilisation"] == pytest.approx([2 / 6, 1 / 6, 3 / 6])
    assert block["entropy"] == pytest.approx(math.log(2) / 2)
    assert block["share_real"] == pytest.approx([2 / 3, 1 / 3, 0.0])
    assert block["share_fake"] == pytest.approx([0.0, 0.0, 1.0])

    only_fakes = routing_summary({7: record}, labels=torch.tensor([1, 1]))["block7"]
    assert all(math.isnan(v) for v in only_fakes["share_real"])
    assert "share_real" not in routing_summary({7: record})["block7"]


@pytest.mark.parametrize(
    "mole",
    [
        MoLEConfig(router="linear", top_k=2),
        MoLEConfig(router="proto", top_k=2, rcl_weight=3.0, rcl_temperature=0.2, lb_weight=0.05),
        MoLEConfig(router="proto", cls_expert=True, expert_ranks=(2, 4), rcl_temperature=0.1),
    ],
    ids=["linear", "proto", "proto-cls"],
)
def test_checkpoint_round_trip_keeps_router_and_its_parameters(tmp_path, mole: MoLEConfig):
    detector = make_tiny_detector(mole)
    router_type = LinearRouter if mole.router == "linear" else PrototypeRouter
    torch.manual_seed(0)
    with torch.no_grad():
        for bypass in detector.bypasses.values():
            assert isinstance(bypass.router, router_type)
            for param in bypass.router.parameters():
                param.add_(torch.randn_like(param))
    pixels = torch.randn(2, 3, 32, 32)
    path = tmp_path / "router.safetensors"
    save_detector(detector, path)

    loaded = load_detector(path)
    detector.eval()
    loaded.eval()
    with torch.no_grad():
        expected = detector(pixels).logits
        assert torch.equal(loaded(pixels).logits, expected)
        assert not torch.equal(make_tiny_detector(mole)(pixels).logits, expected)
    assert loaded.mole == mole
    for index, bypass in loaded.bypasses.items():
        assert isinstance(bypass.router, router_type)
        if mole.router == "proto":
            assert bypass.router.temperature == mole.rcl_temperature
        assert (bypass.cls_expert is not None) == mole.cls_expert

    _, meta = read_checkpoint(path)
    recorded = meta["mole"]
    assert recorded["router"] == mole.router
    for key in ("top_k", "rcl_weight", "rcl_temperature", "lb_weight", "cls_expert", "expert_ranks", "gate_weight"):
        assert recorded[key] == pytest.approx(getattr(mole, key)), key


def test_checkpoint_saved_before_gate_weight_keeps_softmax_gates(tmp_path):
    """Files written before `gate_weight` existed scaled proto experts by softmax; they still do."""
    mole = MoLEConfig(router="proto", top_k=2)
    assert mole.gate_weight == "identity"
    old_style = make_tiny_detector(MoLEConfig(router="proto", top_k=2, gate_weight="softmax"))
    path = tmp_path / "old.safetensors"
    save_detector(old_style, path)
    tensors, meta = read_checkpoint(path)
    del meta["mole"]["gate_weight"]
    write_checkpoint(path, tensors, meta)
    assert "gate_weight" not in read_checkpoint(path)[1]["mole"]

    loaded = load_detector(path).eval()
    assert loaded.mole.gate_weight == "softmax"
    assert all(b.router.gate_weight == "softmax" for b in loaded.bypasses.values())
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = old_style.eval()(pixels).logits
        assert torch.equal(loaded(pixels).logits, expected)
        identity = make_tiny_detector(mole).eval()
        identity.load_adapter_state_dict(old_style.adapter_state_dict(), "test")
        assert not torch.allclose(identity(pixels).logits, expected)
    # Saved again, the file now names its gate.
    save_detector(loaded, tmp_path / "again.safetensors")
    assert read_checkpoint(tmp_path / "again.safetensors")[1]["mole"]["gate_weight"] == "softmax"


@pytest.mark.parametrize(
    ("router", "router_class", "gate_weight", "lb_weight", "total"),
    # total_loss(bce=1, lb=2, rcl=3) with rcl_weight 0.5: 1 + 0.01 * 2 for linear; 1 + 0 * 2 + 0.5 * 3 for proto
    [("linear", LinearRouter, "softmax", 0.01, 1.02), ("proto", PrototypeRouter, "identity", 0.0, 2.5)],
)
def test_each_router_kind_carries_its_defaults_and_losses(router, router_class, gate_weight, lb_weight, total):
    """What a kind implies (default gate and balance weights, a contrastive term or none) comes from
    its router class's spec: the config, the bypass and the loss formula all agree on it."""
    config = MoLEConfig(router=router, expert_ranks=(2, 3), rcl_weight=0.5)
    assert (config.gate_weight, config.lb_weight) == (gate_weight, lb_weight)
    assert ROUTER_CLASSES[router] is router_class and router_class.spec is config.router_spec
    torch.manual_seed(0)
    bypass = MoLEBypass(2, config)
    assert type(bypass.router) is router_class
    detector = make_tiny_detector(config)
    loss = detector.total_loss(torch.tensor(1.0), torch.tensor(2.0), torch.tensor(3.0))
    assert loss.item() == pytest.approx(total)
    routing = bypass.router(TOKENS)
    rcl = bypass.router.contrastive_loss(TOKENS, routing, 0.5)
    if router_class.spec.contrastive:
        assert rcl.item() == pytest.approx(
            routing_contrastive_loss(TOKENS, bypass.router.prototypes, routing.indices, 0.5).item()
        )
    else:
        assert rcl.item() == 0.0


def test_a_linear_router_refuses_the_identity_gate_and_an_unknown_kind_is_named():
    with pytest.raises(ConfigError, match="needs `router` proto"):
        MoLEConfig(router="linear", gate_weight="identity")
    with pytest.raises(ConfigError, match="`router` must be one of linear, proto, got 'cosine'"):
        MoLEConfig(router="cosine")
