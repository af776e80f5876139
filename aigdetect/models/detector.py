"""The detector every command uses: a frozen CLIP vision tower, MoLE bypasses, and a linear head."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..config import MoLEConfig
from ..errors import CheckpointError
from .backbones import BackboneSource
from .mole import RoutingRecord, inject_mole

ADAPTER_PREFIX = "adapters."
HEAD_PREFIX = "head."


@dataclass
class DetectorOutput:
    """Logits for a batch plus the auxiliary losses summed over adapted blocks.

    Attributes:
        logits: real/fake logits, shape (B,); sigmoid gives the probability of AI-generated.
        lb_loss: sum over blocks of the load-balancing loss (unweighted).
        rcl_loss: sum over blocks of the routing contrastive loss (unweighted).
        routing: per-block routing records keyed by resblock index.
    """

    logits: torch.Tensor
    lb_loss: torch.Tensor
    rcl_loss: torch.Tensor
    routing: dict[int, RoutingRecord] = field(default_factory=dict)


class Detector(nn.Module):
    """CLIP ViT image encoder (frozen) + MoLE bypasses in its last blocks + Linear(output_dim, 1).

    With ``mole.blocks == 0`` this is a linear probe on frozen CLIP features, which is UnivFD.
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
    ) -> None:
        super().__init__()
        self.source = source
        self.mole = mole
        self.threshold = threshold
        self.name = name or f"mole-{source.label()}-b{mole.blocks}"
        self.provenance = dict(provenance or {})
        self.visual = visual
        self.visual.requires_grad_(False)
        self.bypasses = inject_mole(self.visual, mole) if mole.blocks else {}
        for bypass in self.bypasses.values():
            bypass.requires_grad_(True)
        self.head = nn.Linear(self.visual.output_dim, 1)

    @property
    def image_size(self) -> int:
        return self.source.image_size

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def train(self, mode: bool = True) -> Detector:
        """Keep the frozen backbone in eval mode (dropout off) whatever mode the adapters are in."""
        super().train(mode)
        self.visual.eval()
        for bypass in self.bypasses.values():
            bypass.train(mode)
        return self

    def forward(self, pixels: torch.Tensor) -> DetectorOutput:
        """Score normalised pixels of shape (B, 3, S, S) where S is the backbone's image size."""
        features = self.visual(pixels)
        logits = self.head(features.to(self.head.weight.dtype)).squeeze(-1)
        zero = logits.new_zeros((), dtype=torch.float32)
        routing = {i: b.last for i, b in self.bypasses.items() if b.last is not None}
        lb = sum((r.lb_loss for r in routing.values()), zero)
        rcl = sum((r.rcl_loss for r in routing.values()), zero)
        return DetectorOutput(logits=logits, lb_loss=lb, rcl_loss=rcl, routing=routing)

    def loss(
        self, output: DetectorOutput, labels: torch.Tensor, lb_loss: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """BCE + lambda * sum L_lb + rcl_weight * sum L_rcl; labels are 1 for fake, 0 for real.

        ``lb_loss`` replaces the batch's own balance loss, e.g. one counted over every rank.
        """
        lb = output.lb_loss if lb_loss is None else lb_loss
        bce = nn.functional.binary_cross_entropy_with_logits(output.logits.float(), labels.float())
        total = bce + self.mole.lb_weight * lb
        if self.mole.router == "proto":
            total = total + self.mole.rcl_weight * output.rcl_loss
        return {"loss": total, "bce": bce, "lb": lb.detach(), "rcl": output.rcl_loss.detach()}

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
        own = self.adapter_state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        shapes = [k for k in own if k in state and state[k].shape != own[k].shape]
        if missing or unexpected or shapes:
            parts = []
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
                if keys:
                    parts.append(f"{label}: {', '.join(keys[:3])}" + (f" (+{len(keys) - 3} more)" if len(keys) > 3 else ""))
            raise CheckpointError(f"{origin} does not match its detector config: " + "; ".join(parts))
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

    @torch.inference_mode()
    def score(
        self,
        images: Sequence[str | os.PathLike[str] | Image.Image | np.ndarray],
        batch_size: int = 32,
    ) -> np.ndarray:
        """Probability of AI-generated for each image, using the evaluation preprocessing.

        Args:
            images: paths, PIL images or HxWx3 uint8 arrays.
            batch_size: images per forward pass.

        Raises:
            ImageDecodeError: a path could not be decoded.
        """
        from ..data.images import decode_center, to_rgb_array
        from ..data.transforms import eval_tensor

        was_training = self.training
        self.eval()
        scores = []
        for start in range(0, len(images), batch_size):
            chunk = []
            for item in images[start : start + batch_size]:
                if isinstance(item, (str, os.PathLike)):
                    array = decode_center(item, self.image_size).array
                elif isinstance(item, Image.Image):
                    array = to_rgb_array(item)
                else:
                    array = np.asarray(item, dtype=np.uint8)
                chunk.append(eval_tensor(array, self.image_size))
            logits = self(torch.stack(chunk).to(self.device)).logits
            scores.append(torch.sigmoid(logits.float()).cpu().numpy())
        self.train(was_training)
        return np.concatenate(scores) if scores else np.zeros(0, dtype=np.float32)

    @classmethod
    def load(
        cls,
        checkpoint_or_name: str | os.PathLike[str],
        *,
        backbone_weights: str | os.PathLike[str] | None = None,
        device: str | torch.device = "cpu",
        cache_dir: str | None = None,
    ) -> Detector:
        """Load a built-in detector by name (see ``list_detectors``) or a checkpoint file."""
        from .checkpoint import load_detector
        from .zoo import builtin_path

        path = builtin_path(str(checkpoint_or_name)) or checkpoint_or_name
        detector = load_detector(path, backbone_weights=backbone_weights, cache_dir=cache_dir)
        return detector.to(device)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write adapters, head and config to one safetensors file (atomically)."""
        from .checkpoint import save_detector

        save_detector(self, path)


def create_detector(
    model: str | os.PathLike[str],
    mole: MoLEConfig | None = None,
    *,
    backbone_weights: str | os.PathLike[str] | None = None,
    cache_dir: str | None = None,
    seed: int = 0,
) -> Detector:
    """Build a fresh detector from a backbone name or config JSON and a MoLE config.

    The backbone's random init (with ``backbone_weights="none"``) and the adapters' init both come
    from ``seed``, so two calls with the same arguments give identical detectors.
    """
    from .backbones import load_backbone, resolve_backbone

    source = resolve_backbone(model)
    visual = load_backbone(source, backbone_weights, cache_dir=cache_dir, seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        return Detector(visual, source, mole or MoLEConfig())


def parameter_summary(model: str | os.PathLike[str], mole: MoLEConfig) -> dict[str, float]:
    """Trainable and total parameter counts of a detector, built on the meta device (no weights, no memory)."""
    from .backbones import build_visual, resolve_backbone

    source = resolve_backbone(model)
    with torch.device("meta"):
        return Detector(build_visual(source), source, mole).parameter_counts()
