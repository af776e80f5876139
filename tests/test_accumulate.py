"""Gradient accumulation: micro-batches give the whole batch's gradients and step, losses included."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import make_tiny_detector

from aigdetect.data.synthetic import write_synthetic_dataset
from aigdetect.data.transforms import normalize_pixels
from aigdetect.engine.runtime import RuntimeConfig
from aigdetect.errors import ConfigError
from aigdetect.models.checkpoint import read_checkpoint
from aigdetect.models.config import MoLEConfig
from aigdetect.models.factory import create_detector
from aigdetect.training.accumulate import fit_micro_batch, gradient_step, micro_slices
from aigdetect.training.config import TrainConfig
from aigdetect.training.train import train

TINY = Path(__file__).parent / "assets" / "tiny.json"
CPU = torch.device("cpu")

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MOLES = {
    "linear-lb": MoLEConfig(lb_weight=1.0),
    "proto-top2": MoLEConfig(router="proto", top_k=2, lb_weight=0.5, rcl_weight=2.0),
    "proto-cls": MoLEConfig(router="proto", cls_expert=True, rcl_temperature=0.2),
    "no-aux": MoLEConfig(lb_weight=0.0),
}


def _batch(count: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=generator)
    return pixels, (torch.arange(count) % 2).float()


def _gradients(mole: MoLEConfig, micro: int | None, pixels, labels) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    detector = make_tiny_detector(mole, seed=3).train()
    outcome = gradient_step(detector, pixels, labels, device=CPU, micro_batch=micro, backward=lambda loss: loss.backward())
    return {n: p.grad.clone() for n, p in detector.named_parameters() if p.grad is not None}, outcome.losses


def _naive_gradients(mole: MoLEConfig, micro: int, pixels, labels) -> dict[str, torch.Tensor]:
    """Each micro-batch's own loss (its own dispatch fractions and token means), weighted by its share."""
    detector = make_tiny_detector(mole, seed=3).train()
    for part in micro_slices(len(labels), micro):
        output = detector(normalize_pixels(pixels[part], detector.preprocess))
        (detector.loss(output, labels[part])["loss"] * (part.stop - part.start) / len(labels)).backward()
    return {n: p.grad.clone() for n, p in detector.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("name", sorted(MOLES))
def test_the_loss_is_one_formula_for_whole_and_accumulated_batches(name: str):
    """BCE + lb_weight * L_lb, + rcl_weight * L_rcl for the prototype router alone (hand-computed),
    and the accumulated step's reported loss is that formula of its reported terms."""
    mole = MOLES[name]
    detector = make_tiny_detector(mole, seed=3)
    bce, lb, rcl = torch.tensor(0.7), torch.tensor(0.25), torch.tensor(1.5)
    expected = 0.7 + mole.lb_weight * 0.25 + (mole.rcl_weight * 1.5 if mole.router == "proto" else 0.0)
    assert float(detector.total_loss(bce, lb, rcl)) == pytest.approx(expected, rel=1e-6)
    pixels, labels = _batch()
    _, losses = _gradients(mole, 3, pixels, labels)
    terms = [torch.tensor(losses[key]) for key in ("bce", "lb", "rcl")]
    assert losses["loss"] == pytest.approx(float(detector.total_loss(*terms)), rel=1e-6)


def test_micro_slices_cover_the_batch_in_order():
    assert micro_slices(8, 3) == [slice(0, 3), slice(3, 6), slice(6, 8)]
    assert micro_slices(4, 4) == [slice(0, 4)] and micro_slices(1, 5) == [slice(0, 1)]


@pytest.mark.parametrize("name", sorted(MOLES))
@pytest.mark.parametrize("micro", [1, 3, 4])
def test_micro_batches_give_the_whole_batch_gradient_and_losses(name: str, micro: int):
    mole = MOLES[name]
    pixels, labels = _batch()
    whole, whole_losses = _gradients(mole, None, pixels, labels)
    split, split_losses = _gradients(mole, micro, pixels, labels)
    assert whole.keys() == split.keys()
    for key in whole:
        torch.testing.assert_close(split[key], whole[key], rtol=0, atol=1e-6, msg=key)
    assert split_losses == pytest.approx(whole_losses, abs=1e-6)
    if name != "no-aux":
        # The sensitivity the test relies on: per-micro-batch balance and contrastive losses differ.
        naive = _naive_gradients(mole, micro, pixels, labels)
        assert max(float((naive[k] - whole[k]).abs().max()) for k in whole) > 1e-4


def test_telemetry_comes_from_the_first_micro_batch():
    pixels, labels = _batch()
    detector = make_tiny_detector(MOLES["linear-lb"], seed=3).train()
    outcome = gradient_step(
        detector, pixels, labels, device=CPU, micro_batch=4, backward=lambda loss: loss.backward(), telemetry=True
    )
    first = make_tiny_detector(MOLES["linear-lb"], seed=3).train()
    expected = gradient_step(
        first, pixels[:4], labels[:4], device=CPU, micro_batch=None, backward=lambda loss: None, telemetry=True
    )
    assert outcome.routing == expected.routing and set(outcome.routing) == {"block1", "block2", "block3"}


def test_counts_are_shared_exactly_once_per_step():
    """Under torchrun every rank must join the same collectives, whichever path its step takes."""
    pixels, labels = _batch()
    for mole in MOLES.values():
        for micro in (None, 3):
            calls = []

            def share(counts: torch.Tensor) -> torch.Tensor:
                calls.append(tuple(counts.shape))
                return counts

            detector = make_tiny_detector(mole, seed=3).train()
            gradient_step(detector, pixels, labels, device=CPU, micro_batch=micro, backward=lambda loss: loss.backward(),
                          share_counts=share)  # fmt: skip
            assert calls == [(3, 3)], (mole, micro)


def test_shared_counts_set_the_dispatch_fractions():
    """Doubling another rank's counts into this rank's: the balance gradient follows the shared counts."""
    pixels, labels = _batch()
    mole = MoLEConfig(lb_weight=1.0)
    results = {}
    for micro in (None, 3):
        detector = make_tiny_detector(mole, seed=3).train()
        gradient_step(detector, pixels, labels, device=CPU, micro_batch=micro, backward=lambda loss: loss.backward(),
                      share_counts=lambda counts: counts * torch.tensor([1.0, 2.0, 3.0]))  # fmt: skip
        results[micro] = {n: p.grad.clone() for n, p in detector.named_parameters() if p.grad is not None}
    for key in results[None]:
        torch.testing.assert_close(results[3][key], results[None][key], rtol=0, atol=1e-6)
    plain, _ = _gradients(mole, None, pixels, labels)
    assert max(float((plain[k] - results[None][k]).abs().max()) for k in plain) > 1e-5


def test_fit_micro_batch_halves_after_out_of_memory():
    detector = make_tiny_detector(MoLEConfig(), seed=3).train()
    sizes = []

    def limited(module, args):
        sizes.append(args[0].shape[0])
        if args[0].shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    handle = detector.visual.register_forward_pre_hook(limited)
    pixels, labels = _batch(7)
    assert fit_micro_batch(detector, pixels, labels, CPU) == 2
    assert sizes == [7, 4, 2]
    assert all(p.grad is None for p in detector.parameters())
    handle.remove()
    detector.visual.register_forward_pre_hook(lambda module, args: (_ for _ in ()).throw(torch.OutOfMemoryError("x")))
    with pytest.raises(ConfigError, match="single image does not fit"):
        fit_micro_batch(detector, pixels, labels, CPU)


def _adapters(path: Path) -> dict[str, torch.Tensor]:
    tensors, _ = read_checkpoint(path)
    return {k: v for k, v in tensors.items() if k.startswith(("adapters.", "head."))}


@pytest.mark.parametrize("steps", [1, 2])
@pytest.mark.parametrize("mole", [MOLES["linear-lb"], MOLES["proto-top2"]], ids=["linear", "proto"])
def test_training_with_micro_batches_steps_like_the_whole_batch(tmp_path: Path, mole: MoLEConfig, steps: int):
    data = tmp_path / "data"
    write_synthetic_dataset(data, "wang2020", per_class=8, size=40, seed=4, val_per_class=3)
    # One undecodable file in the first batch: micro-batches are cut from the images that decoded.
    (data / "train" / "photo" / "0_real" / "zz-broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    outs = {}
    for micro in (None, 3):
        out = tmp_path / f"micro{micro}" / "m.safetensors"
        config = TrainConfig(  # one batch is the whole training set, so every step meets the broken file
            out=str(out), data=str(data), model=str(TINY), backbone_weights="none", mole=mole, steps=steps, batch_size=33,
            micro_batch=micro, lr=3e-3, eval_every=1, patience=0, seed=5, log=str(out.with_suffix(".jsonl")),
            runtime=RuntimeConfig(device="cpu", workers=0),
        )
        result = train(config)
        assert sum(result.skipped.values()) == 1
        outs[micro] = (config.state_path, out.with_suffix(".jsonl"))
    whole, split = _adapters(outs[None][0]), _adapters(outs[3][0])
    start = create_detector(TINY, mole, backbone_weights="none", seed=5).adapter_state_dict()
    assert max(float((whole[k] - start[k]).abs().max()) for k in whole) > 1e-3
    for key in whole:
        torch.testing.assert_close(split[key], whole[key], rtol=0, atol=1e-6, msg=key)
    logs = [[json.loads(line) for line in log.read_text().splitlines()] for _, log in outs.values()]
    steps = [[r for r in records if r["event"] == "step"] for records in logs]
    for a, b in zip(*steps):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-6) and a["lb"] == pytest.approx(b["lb"], abs=1e-6)
    micro_event = next(r for r in logs[1] if r["event"] == "micro_batch")
    assert (micro_event["micro_batch"], micro_event["per_process_batch"], micro_event["automatic"]) == (3, 33, False)
