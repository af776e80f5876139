"""One optimizer step's gradients, from the whole batch at once or from micro-batches that add up to it.

Splitting a batch of n images into micro-batches and adding their gradients, each weighted by its
share of the images, gives the whole batch's gradient for a loss that is a mean over images (the
BCE). Two losses are not: the load-balancing loss takes its dispatch fractions f_j over the whole
batch, and the routing contrastive loss averages each expert's tokens over the whole batch. For
those, a first pass (inference mode, one micro-batch at a time) collects the batch's dispatch
counts and per-expert token sums; the backward passes then use these totals:

- balance: each micro-batch contributes N * sum_j f_j P_j of its own tokens, with f from the whole
  batch (under torchrun, from every rank, as without micro-batches), weighted by its share;
- contrastive: the loss L(P, m) of the batch's token means m is formed once. Its gradient reaches
  the prototypes directly, and every token t through sum_j [t chose j] (dL/dm_j) / n_j, which each
  micro-batch applies to its own tokens.

The first pass costs one inference forward of the batch and runs only when one of these losses has
a weight. The per-expert sums of float32 tokens differ from the whole batch's by rounding only, so
the accumulated gradient equals the whole batch's to about 1e-7 relative.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from ..data.transforms import normalize_pixels
from ..engine.plan import autocast
from ..errors import ConfigError
from ..models.detector import Detector
from ..models.mole import RoutingRecord
from ..models.routers import (
    balance_from_counts,
    dispatch_counts,
    expert_membership,
    expert_sums,
    full_precision,
    mean_tokens,
    rcl_from_means,
)
from ..models.telemetry import routing_summary

Backward = Callable[[torch.Tensor], None]
"""Backpropagates one loss, e.g. ``lambda loss: scaler.scale(loss).backward()``."""
ShareCounts = Callable[[torch.Tensor], torch.Tensor]
"""Sums a (blocks, N) dispatch-count matrix over ranks (a collective, called once per step)."""


@dataclass
class StepOutcome:
    """What one batch's forward and backward passes report.

    Attributes:
        losses: ``loss``, ``bce``, ``lb`` and ``rcl`` of the whole batch (the balance loss with
            dispatch over every rank).
        routing: routing telemetry of the batch (of its first micro-batch when split), if asked for.
    """

    losses: dict[str, float]
    routing: dict[str, dict] | None


def micro_slices(count: int, micro: int) -> list[slice]:
    """Consecutive slices of at most ``micro`` images covering ``count`` images."""
    return [slice(start, min(start + micro, count)) for start in range(0, count, micro)]


@dataclass
class _BlockTotals:
    """What the whole-batch losses need from one adapted block, summed over micro-batches."""

    dispatch: torch.Tensor
    mass: torch.Tensor
    tokens: int
    sums: torch.Tensor | None = None
    members: torch.Tensor | None = None

    def __add__(self, other: _BlockTotals) -> _BlockTotals:
        def add(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
            return None if a is None or b is None else a + b

        return _BlockTotals(
            self.dispatch + other.dispatch, self.mass + other.mass, self.tokens + other.tokens,
            add(self.sums, other.sums), add(self.members, other.members),
        )

    def detached(self) -> _BlockTotals:
        """Ordinary tensors, usable by autograd after an inference-mode pass."""
        def copy(a: torch.Tensor | None) -> torch.Tensor | None:
            return None if a is None else a.clone()

        return replace(
            self, dispatch=self.dispatch.clone(), mass=self.mass.clone(), sums=copy(self.sums), members=copy(self.members)
        )

    @classmethod
    def of(cls, record: RoutingRecord, contrastive: bool) -> _BlockTotals:
        num_experts = record.probs.shape[-1]
        probs = record.probs.reshape(-1, num_experts)
        totals = cls(dispatch_counts(record.assignments.reshape(-1), num_experts), probs.float().sum(dim=0), probs.shape[0])
        if contrastive:
            totals.sums, totals.members = expert_sums(
                record.tokens.detach(), expert_membership(record.indices, num_experts)
            )
        return totals


def _add_totals(totals: dict[int, _BlockTotals], routing: dict[int, RoutingRecord], contrastive: bool) -> None:
    for block, record in routing.items():
        own = _BlockTotals.of(record, contrastive)
        totals[block] = totals[block] + own if block in totals else own


def _forward(detector: Detector, pixels: torch.Tensor, device: torch.device, precision: str):
    with autocast(device.type, precision):
        return detector(normalize_pixels(pixels.to(device, non_blocking=True), detector.preprocess))


def gradient_step(
    detector: Detector,
    pixels: torch.Tensor,
    labels: torch.Tensor,
    *,
    device: torch.device,
    micro_batch: int | None,
    backward: Backward,
    share_counts: ShareCounts | None = None,
    telemetry: bool = False,
    precision: str = "fp16",
) -> StepOutcome:
    """Forward and backward one batch, leaving the whole batch's gradients in the parameters.

    Args:
        detector: in training mode.
        pixels: uint8 images (n, 3, S, S), on any device.
        labels: (n,), 1 for fake.
        device: where the model runs.
        precision: the run plan's (``RuntimePlan.precision``): fp16 runs under autocast on CUDA.
        micro_batch: images per forward and backward pass; None or >= n runs the batch at once.
        backward: backpropagates a loss (through the gradient scaler when there is one).
        share_counts: under data parallelism, sums dispatch counts over ranks; called exactly once
            when the detector has adapted blocks, so every rank joins the same collective.
        telemetry: also summarise the routing (for the step record).
    """
    count = int(labels.shape[0])
    if micro_batch is None or micro_batch >= count:
        return _whole_batch(detector, pixels, labels, device, precision, backward, share_counts, telemetry)
    return _accumulated(detector, pixels, labels, device, precision, micro_batch, backward, share_counts, telemetry)


def _whole_batch(
    detector: Detector,
    pixels: torch.Tensor,
    labels: torch.Tensor,
    device: torch.device,
    precision: str,
    backward: Backward,
    share_counts: ShareCounts | None,
    telemetry: bool,
) -> StepOutcome:
    output = _forward(detector, pixels, device, precision)
    labels = labels.to(device, non_blocking=True)
    lb = None
    blocks = sorted(detector.bypasses)
    if share_counts is not None and blocks:
        num_experts = detector.mole.num_experts
        counts = share_counts(
            torch.stack([dispatch_counts(output.routing[b].assignments.reshape(-1), num_experts) for b in blocks])
        )
        lb = sum(balance_from_counts(output.routing[b].gate_probs, counts[row]) for row, b in enumerate(blocks))
    terms = detector.loss(output, labels, lb_loss=lb)
    backward(terms["loss"])
    losses = {k: float(v.detach()) for k, v in terms.items()}
    return StepOutcome(losses, routing_summary(output.routing, labels) if telemetry else None)


def _contrastive_parts(detector: Detector, totals: dict[int, _BlockTotals]) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Per block: the batch's contrastive loss with the token means held fixed (its gradient is the
    prototypes' share), and the (N, d) weight each token applies to itself for the tokens' share."""
    temperature = detector.mole.rcl_temperature
    parts = {}
    for block, total in totals.items():
        prototypes = detector.bypasses[block].router.prototypes
        means = mean_tokens(total.sums, total.members).requires_grad_()
        (gradient,) = torch.autograd.grad(rcl_from_means(prototypes.detach(), means, total.members, temperature), means)
        per_token = gradient / total.members.clamp_min(1)[:, None]
        parts[block] = (rcl_from_means(prototypes, means.detach(), total.members, temperature), per_token)
    return parts


def _token_term(record: RoutingRecord, per_token: torch.Tensor) -> torch.Tensor:
    """sum over this micro-batch's tokens of x_t . (sum_j [t chose j] w_j): its gradient is the
    tokens' share of the whole batch's contrastive-loss gradient."""
    with full_precision(record.tokens):
        membership = expert_membership(record.indices, per_token.shape[0])
        return ((membership @ per_token) * record.tokens.float()).sum()


def _balance_value(total: _BlockTotals, dispatch: torch.Tensor) -> torch.Tensor:
    fraction = dispatch / dispatch.sum().clamp_min(1)
    return dispatch.shape[-1] * (fraction * total.mass / max(total.tokens, 1)).sum()


def _accumulated(
    detector: Detector,
    pixels: torch.Tensor,
    labels: torch.Tensor,
    device: torch.device,
    precision: str,
    micro: int,
    backward: Backward,
    share_counts: ShareCounts | None,
    telemetry: bool,
) -> StepOutcome:
    mole = detector.mole
    count = int(labels.shape[0])
    blocks = sorted(detector.bypasses)
    contrastive = mole.router_spec.contrastive
    slices = micro_slices(count, micro)
    needs_totals = bool(blocks) and (mole.lb_weight > 0 or (contrastive and mole.rcl_weight > 0))
    dispatch = parts = None
    if needs_totals:
        first: dict[int, _BlockTotals] = {}
        with torch.inference_mode():
            for part in slices:
                _add_totals(first, _forward(detector, pixels[part], device, precision).routing, contrastive)
        first = {block: total.detached() for block, total in first.items()}
        dispatch = torch.stack([first[b].dispatch for b in blocks])
        if share_counts is not None:
            dispatch = share_counts(dispatch)
        parts = _contrastive_parts(detector, first) if contrastive else None
    running: dict[int, _BlockTotals] = {}
    bce = torch.zeros((), device=device)
    routing = None
    for index, part in enumerate(slices):
        share = (part.stop - part.start) / count
        output = _forward(detector, pixels[part], device, precision)
        chunk_labels = labels[part].to(device, non_blocking=True)
        lb = rcl = None
        if dispatch is not None:
            lb = sum(balance_from_counts(output.routing[b].gate_probs, dispatch[row]) for row, b in enumerate(blocks))
        if parts is not None:
            rcl = sum(_token_term(output.routing[b], per_token) for b, (_, per_token) in parts.items())
            if index == 0:
                rcl = rcl + sum(fixed for fixed, _ in parts.values())
            rcl = rcl / share
        terms = detector.loss(output, chunk_labels, lb_loss=lb, rcl_loss=rcl)
        backward(terms["loss"] * share)
        bce = bce + terms["bce"].detach() * share
        _add_totals(running, output.routing, contrastive)
        if telemetry and index == 0:
            routing = routing_summary(output.routing, chunk_labels)
    if blocks and dispatch is None:
        dispatch = torch.stack([running[b].dispatch for b in blocks])
        if share_counts is not None:
            dispatch = share_counts(dispatch)
    lb_value = sum((_balance_value(running[b], dispatch[row]) for row, b in enumerate(blocks)), torch.zeros((), device=device))
    rcl_value = torch.zeros((), device=device)
    if contrastive:
        for block in blocks:
            total = running[block]
            prototypes = detector.bypasses[block].router.prototypes.detach()
            rcl_value = rcl_value + rcl_from_means(
                prototypes, mean_tokens(total.sums, total.members), total.members, mole.rcl_temperature
            )
    losses = {"loss": float(detector.total_loss(bce, lb_value, rcl_value)), "bce": float(bce), "lb": float(lb_value),
              "rcl": float(rcl_value)}  # fmt: skip
    return StepOutcome(losses, routing)


def fit_micro_batch(
    detector: Detector, pixels: torch.Tensor, labels: torch.Tensor, device: torch.device, precision: str = "fp16"
) -> int:
    """The largest micro-batch whose training step fits in the device's memory: the whole batch,
    halved (rounding up) after each out-of-memory error, tried on the batch's first images.

    The trial's gradients are discarded; nothing else (optimizer, scaler, random state) is touched.

    Raises:
        ConfigError: not even one image fits.
    """
    size = int(labels.shape[0])
    while True:
        try:
            output = _forward(detector, pixels[:size], device, precision)
            detector.loss(output, labels[:size].to(device))["loss"].backward()
        except torch.OutOfMemoryError:
            fits = False
        else:
            fits = True
        output = None
        for param in detector.trainable_parameters():
            param.grad = None
        if fits:
            return size
        if device.type == "cuda":
            torch.cuda.empty_cache()
        if size == 1:
            raise ConfigError(f"a training step on a single image does not fit in the memory of {device}")
        size = (size + 1) // 2
