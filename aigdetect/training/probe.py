"""``train --probe``: a linear head on frozen features (UnivFD's recipe, MoLE with no adapted blocks).

The backbone never changes, so its features are extracted once per image and view into a
``FeatureCache`` and the head is fitted on them: a second fit with other hyper-parameters, or on a
subset, reads the cache and decodes no image. View 0 is the evaluation centre crop; views 1..K are
seeded training augmentations (blur and JPEG draws, random crop, flip), the same at every run, so
that their features can be cached too. Validation reports AP and accuracy on every view.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.config import AugmentConfig
from ..data.crops import center_crop
from ..data.images import decode_image
from ..data.layouts import Sample, prepare_training_data
from ..data.transforms import normalize_pixels, to_chw, train_view
from ..errors import ImageDecodeError, InputError, InputFileError
from ..fileio import json_safe, open_input
from ..metrics import accuracy, average_precision, calibrate_threshold
from ..models.config import MoLEConfig
from ..models.detector import Detector
from ..models.factory import create_detector, save_detector
from ..progress import ProgressCallback, ProgressEvent
from ..version import __version__
from .config import ProbeConfig, TrainConfig
from .feature_cache import FeatureCache, backbone_fingerprint, content_sha256

EXTRACT_BATCH = 32
LBFGS_ITERATIONS_PER_EPOCH = 10


@dataclass
class Extraction:
    """Features of a set of images, every view: ``features`` (images, views, d) with ``ok`` marking
    the images that decoded; ``decoded`` counts the images decoded (0 when the cache had them all)."""

    features: torch.Tensor
    ok: torch.Tensor
    decoded: int = 0
    failed: list[str] = field(default_factory=list)


def view_name(view: int, augment: AugmentConfig, seed: int) -> str:
    """The cache key of a view: the centre crop, or an augmentation draw of this seed and augmentation."""
    if view == 0:
        return "center"
    return f"aug{view}:{seed}:" + json.dumps([augment.blur_prob, augment.blur_sigma, augment.jpeg_prob,
                                              augment.jpeg_quality, augment.flip])  # fmt: skip


def view_pixels(array: np.ndarray, view: int, size: int, augment: AugmentConfig, seed: int, content: str) -> np.ndarray:
    """View ``view`` of an image, seeded by the image's content so that it is the same in every run."""
    if view == 0:
        return center_crop(array, size)
    rng = np.random.default_rng([seed, view, int(content[:15], 16)])
    return train_view(array, size, augment, rng)


@torch.inference_mode()
def _features(detector: Detector, crops: list[np.ndarray]) -> np.ndarray:
    pixels = torch.stack([to_chw(c) for c in crops]).to(detector.device)
    return detector.visual(normalize_pixels(pixels, detector.preprocess)).float().cpu().numpy()


def extract(
    detector: Detector,
    samples: Sequence[Sample],
    views: int,
    augment: AugmentConfig,
    seed: int,
    cache: FeatureCache | None,
    *,
    max_pixels: int,
    max_bytes: int,
) -> Extraction:
    """Frozen features of every image and view, from the cache where it has them.

    An image is hashed from the bytes it is decoded from (one open handle), so an entry always
    describes those bytes; a file that cannot be read or decoded is marked in ``ok`` and named in
    ``failed``.
    """
    count = views + 1
    names = [view_name(v, augment, seed) for v in range(count)]
    size = detector.image_size
    dim = detector.head.in_features
    out = torch.zeros(len(samples), count, dim)
    ok = torch.ones(len(samples), dtype=torch.bool)
    result = Extraction(out, ok)
    pending: list[tuple[int, int, str, np.ndarray]] = []

    def flush() -> None:
        computed = _features(detector, [crop for *_, crop in pending])
        for (index, view, content, _), features in zip(pending, computed):
            out[index, view] = torch.from_numpy(features)
            if cache is not None:
                cache.put(content, names[view], features)
        pending.clear()

    for index, sample in enumerate(samples):
        try:
            handle, _ = open_input(sample.path, follow_symlinks=True)
            with handle:
                content = content_sha256(handle)
                missing = []
                for view in range(count):
                    cached = cache.get(content, names[view]) if cache is not None else None
                    if cached is None:
                        missing.append(view)
                    else:
                        out[index, view] = torch.from_numpy(np.array(cached))
                if missing:
                    handle.seek(0)
                    array = decode_image(handle, max_pixels, max_bytes).array
                    result.decoded += 1
                    pending.extend((index, v, content, view_pixels(array, v, size, augment, seed, content)) for v in missing)
        except (ImageDecodeError, InputFileError, MemoryError):
            ok[index] = False
            result.failed.append(str(sample.path))
            continue
        if len(pending) >= EXTRACT_BATCH:
            flush()
    if pending:
        flush()
    return result


def fit_head(head: nn.Linear, x: torch.Tensor, y: torch.Tensor, config: TrainConfig, solver: str) -> int:
    """Fit the head on features ``x`` (N, d) and labels ``y`` (N,), seeded; returns the steps taken.

    adamw: ``epochs`` passes of shuffled mini-batches of ``batch_size`` at ``lr`` and ``weight_decay``.
    lbfgs: L-BFGS on the full batch's mean logistic loss plus ``weight_decay / 2 * |w|^2``.
    """
    epochs = int(config.epochs or 1)
    if solver == "lbfgs":
        optimizer = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=LBFGS_ITERATIONS_PER_EPOCH * epochs,
                                      line_search_fn="strong_wolfe")  # fmt: skip

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            loss = nn.functional.binary_cross_entropy_with_logits(head(x).squeeze(-1), y)
            loss = loss + 0.5 * config.weight_decay * head.weight.pow(2).sum()
            loss.backward()
            return loss

        optimizer.step(closure)
        return int(optimizer.state[optimizer.param_groups[0]["params"][0]].get("n_iter", 0))
    optimizer = torch.optim.AdamW(head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    steps = 0
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), config.batch_size):
            batch = order[start : start + config.batch_size]
            optimizer.zero_grad()
            nn.functional.binary_cross_entropy_with_logits(head(x[batch]).squeeze(-1), y[batch]).backward()
            optimizer.step()
            steps += 1
    return steps


def _labels(samples: Sequence[Sample]) -> torch.Tensor:
    return torch.tensor([float(s.label) for s in samples])


@torch.inference_mode()
def view_metrics(head: nn.Linear, extraction: Extraction, labels: torch.Tensor) -> list[dict[str, float]]:
    """AP and accuracy at 0.5 of the head on each view of the validation images that decoded."""
    kept = labels[extraction.ok].numpy()
    rows = []
    for view in range(extraction.features.shape[1]):
        scores = torch.sigmoid(head(extraction.features[extraction.ok, view]).squeeze(-1)).numpy()
        rows.append({"view": view, "ap": average_precision(kept, scores), "acc": accuracy(kept, scores, 0.5).overall})
    return rows


def fit_probe(config: TrainConfig, on_event: ProgressCallback | None = None, command: str | None = None) -> dict[str, Any]:
    """Extract (or read) the features, fit the head, validate on every view, calibrate, save the
    detector and append the summary to ``config.log``.

    Returns:
        The summary: per-view metrics, threshold, images decoded, cache statistics, timings.

    Raises:
        LayoutError: the data folders do not fit a layout or lack a class.
        InputError: no training or no validation image could be read, or the cache cannot be written.
    """
    probe = config.probe or ProbeConfig()
    augment = config.augment or AugmentConfig()
    started = time.perf_counter()
    data = prepare_training_data(data=config.data, real=config.real, fake=config.fake, val=config.val,
                                 val_fraction=config.val_fraction, train_size=config.train_size, seed=config.seed)  # fmt: skip
    report = on_event or (lambda event: None)
    report(ProgressEvent("data", 0, 0, detail={"event": "data", "layout": data.layout.kind, "description": data.describe(),
                                                "counts": data.counts()}))
    detector = create_detector(config.model, MoLEConfig(blocks=0), backbone_weights=config.backbone_weights,
                               cache_dir=config.cache_dir, seed=config.seed).eval()  # fmt: skip
    cache = None
    if probe.feature_cache is not None:
        cache = FeatureCache(probe.feature_cache, backbone_fingerprint(detector), detector.head.in_features, probe.cache_bytes)
    options = {"max_pixels": config.max_pixels, "max_bytes": config.max_bytes}
    train = extract(detector, data.train, probe.views, augment, config.seed, cache, **options)
    val = extract(detector, data.val, probe.views, augment, config.seed, cache, **options)
    extracted = time.perf_counter()
    if not train.ok.any() or not val.ok.any():
        raise InputError("no training or no validation image could be read: nothing to fit or validate a probe on")
    labels = _labels(data.train)
    x = train.features[train.ok].reshape(-1, train.features.shape[-1])
    y = labels[train.ok].repeat_interleave(probe.views + 1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        steps = fit_head(detector.head, x, y, config, probe.solver)
    views = view_metrics(detector.head, val, _labels(data.val))
    kept = _labels(data.val)[val.ok].numpy()
    with torch.inference_mode():
        clean = torch.sigmoid(detector.head(val.features[val.ok, 0]).squeeze(-1)).numpy()
    detector.threshold = calibrate_threshold(kept, clean)
    evicted = cache.evict() if cache is not None else 0
    summary = {
        "solver": probe.solver, "views": views, "steps": steps, "threshold": detector.threshold,
        "train_images": len(data.train), "val_images": len(data.val), "decoded": train.decoded + val.decoded,
        "failed": train.failed + val.failed, "cache_hits": cache.stats.hits if cache else 0,
        "cache_writes": cache.stats.writes if cache else 0, "evicted": evicted,
        "extract_s": extracted - started, "fit_s": time.perf_counter() - extracted,
    }  # fmt: skip
    detector.name = f"probe-{detector.source.label()}"
    detector.provenance = {
        "trained_with": f"aigdetect {__version__}", "command": command, "probe": {k: summary[k] for k in ("solver", "views", "steps")},
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "train_images": len(data.train),
    }  # fmt: skip
    save_detector(detector, config.out)
    if config.log:
        Path(config.log).parent.mkdir(parents=True, exist_ok=True)
        with open(config.log, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(json_safe({"event": "probe", "command": command, **summary}), allow_nan=False) + "\n")
    report(ProgressEvent("done", 0, 0, detail={"event": "done", **summary}))
    return summary
