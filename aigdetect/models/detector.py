"""The detector every command uses: a frozen CLIP vision tower, MoLE bypasses, and a linear head."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..data.preprocess import PreprocessConfig
from ..errors import CheckpointError, ConfigError
from .backbones import BackboneSource
from .config import MoLEConfig
from .mole import RoutingRecord, computes_losses, inject_mole
from .state_keys import key_problems

ADAPTER_PREFIX = "adapters."
HEAD_PREFIX = "head."


@dataclass
class DetectorOutput:
    """Logits for a batch plus the auxiliary losses summed over adapted blocks.

    Attributes:
        logits: real/fake logits, shape (B,); sigmoid gives the probability of AI-generated.
        lb_loss: sum over blocks of the load-balancing loss (unweighted); None outside training.
        rcl_loss: sum over blocks of the routing contrastive loss (unweighted); None outside training.
        routing: per-block routing records keyed by resblock index (kept in every mode).
    """

    logits: torch.Tensor
    lb_loss: torch.Tensor | None
    rcl_loss: torch.Tensor | None
    routing: dict[int, RoutingRecord] = field(default_factory=dict)


class Detector(nn.Module):
    """A ViT image encoder (frozen) + MoLE bypasses in its last blocks + Linear(features, 1).

    With ``mole.blocks == 0`` this is a linear probe on frozen CLIP features, which is UnivFD. The
    detector carries its preprocessing (the backbone's by default), which every caller reads.
    """

    def __init__(
        self,
        visual: nn.Module,
        source: BackboneSource,
        mole: MoLEConfig,
        *,
        threshold: float = 0.5,
        name: str | None = None,
        provenance: dict[str, Any] | None = None,
        preprocess: PreprocessConfig | None = None,
    ) -> None:
        super().__init__()
        self.preprocess = preprocess or source.preprocess
        if self.preprocess.size != source.image_size:
            raise ConfigError(
                f"preprocessing size {self.preprocess.size} is not the {source.label()} backbone's input size {source.image_size}"
            )
        self.source = source
        self.mole = mole
        self.threshold = threshold
        self.name = name or f"mole-{source.label()}-b{mole.blocks}"
        self.provenance = dict(provenance or {})
        self.file_identity: str | None = None
        """The id of the checkpoint file this detector was loaded from (see ``identity.detector_id``)."""
        self.visual = visual
        self.visual.requires_grad_(False)
        self.bypasses = inject_mole(self.visual, mole) if mole.blocks else {}
        for bypass in self.bypasses.values():
            bypass.requires_grad_(True)
        self.head = nn.Linear(source.kind.output_dim(source.config, self.visual), 1)

    @property
    def image_size(self) -> int:
        return self.preprocess.size

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def train(self, mode: bool = True) -> Detector:
        """Keep the frozen backbone in eval mode (dropout off) whatever mode the adapters are in."""
        super().train(mode)
        if mode:
            self.file_identity = None  # training changes the weights: they are no longer the file's
        self.visual.eval()
        for bypass in self.bypasses.values():
            bypass.train(mode)
        return self

    def forward(self, pixels: torch.Tensor) -> DetectorOutput:
        """Score normalised pixels of shape (B, 3, S, S) where S is the backbone's image size.

        The auxiliary losses are computed only by a training-mode forward with autograd on (not
        under ``no_grad`` or ``inference_mode``); every forward records the routing (for telemetry
        and routing maps).
        """
        features = self.visual(pixels)
        logits = self.head(features.to(self.head.weight.dtype)).squeeze(-1)
        routing = {i: b.last for i, b in self.bypasses.items() if b.last is not None}
        if not computes_losses(self):
            return DetectorOutput(logits=logits, lb_loss=None, rcl_loss=None, routing=routing)
        zero = logits.new_zeros((), dtype=torch.float32)
        lb = sum((r.lb_loss for r in routing.values() if r.lb_loss is not None), zero)
        rcl = sum((r.rcl_loss for r in routing.values() if r.rcl_loss is not None), zero)
        return DetectorOutput(logits=logits, lb_loss=lb, rcl_loss=rcl, routing=routing)

    def loss(
        self,
        output: DetectorOutput,
        labels: torch.Tensor,
        lb_loss: torch.Tensor | None = None,
        rcl_loss: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """BCE + lambda * sum L_lb + rcl_weight * sum L_rcl; labels are 1 for fake, 0 for real.

        ``lb_loss`` and ``rcl_loss`` replace the batch's own terms, e.g. a balance loss counted
        over every rank or every micro-batch.

        Raises:
            ConfigError: the output comes from a forward that computed no losses (eval mode, or no autograd).
        """
        lb = output.lb_loss if lb_loss is None else lb_loss
        rcl = output.rcl_loss if rcl_loss is None else rcl_loss
        if lb is None or rcl is None:
            raise ConfigError("the auxiliary losses exist only after a training-mode forward with autograd on")
        bce = nn.functional.binary_cross_entropy_with_logits(output.logits.float(), labels.float())
        return {"loss": self.total_loss(bce, lb, rcl), "bce": bce, "lb": lb.detach(), "rcl": rcl.detach()}

    def total_loss(self, bce: torch.Tensor, lb: torch.Tensor, rcl: torch.Tensor) -> torch.Tensor:
        """The training objective from its terms: BCE + lambda * L_lb, + rcl_weight * L_rcl for the
        prototype router (the only one with a contrastive term); the one formula that ``loss`` and
        gradient accumulation (``training.accumulate``) both use."""
        total = bce + self.mole.lb_weight * lb
        if self.mole.router_spec.contrastive:
            total = total + self.mole.rcl_weight * rcl
        return total

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        """Only what training changes: the bypasses (keyed by resblock index) and the head."""
        state = {f"{HEAD_PREFIX}{k}": v for k, v in self.head.state_dict().items()}
        for index, bypass in self.bypasses.items():
            state.update({f"{ADAPTER_PREFIX}{index}.{k}": v for k, v in bypass.state_dict().items()})
        return {k: v.detach().contiguous() for k, v in state.items()}

    def load_adapter_state_dict(self, state: dict[str, torch.Tensor], origin: str) -> None:
        """Load adapters and head strictly; name missing, unexpected and mis-shaped keys."""
        problems = key_problems(self.adapter_state_dict(), state)
        if problems:
            raise CheckpointError(f"{origin} does not match its detector config: " + "; ".join(problems))
        self.file_identity = None
        self.head.load_state_dict({k[len(HEAD_PREFIX):]: v for k, v in state.items() if k.startswith(HEAD_PREFIX)})
        for index, bypass in self.bypasses.items():
            prefix = f"{ADAPTER_PREFIX}{index}."
            bypass.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})

    def backbone_state_dict(self) -> dict[str, torch.Tensor]:
        """The frozen backbone's tensors under open_clip's own key names (MoLE wrappers removed)."""
        state = {}
        for key, value in self.visual.state_dict().items():
            if ".bypass." in key:
                continue
            state[key.replace(".mlp.base.", ".mlp.")] = value.detach().contiguous()
        return state

    def parameter_counts(self) -> dict[str, float]:
        """Trainable, total (frozen + trainable) and their ratio in percent, as in Table 4."""
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        total = sum(p.numel() for p in self.parameters())
        return {"trainable_params": trainable, "total_params": total, "trainable_percent": 100.0 * trainable / total}
