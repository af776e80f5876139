"""Expert-routing maps: which routed LoRA expert each image patch is sent to, in every adapted block.

A map is drawn on the centre crop the detector actually scores, one panel per adapted block, under a
title naming the file, the detector's score and its verdict at the calibrated threshold. Each patch
is tinted with its top-1 expert's colour, and a small opaque square at the patch centre carries the
exact legend colour, so the expert can be read back from the PNG whatever the image is beneath. The
same grids, their expert counts, the score and verdict, and the PNG's panel boxes go into a JSON
document.
"""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.config import DEFAULT_MAX_PIXELS, DiscoveryConfig
from ..data.crops import center_crop
from ..data.files import ImageListing, list_images
from ..data.images import decode_image
from ..data.transforms import eval_tensor
from ..errors import ConfigError, ImageDecodeError, InputError
from ..models.detector import Detector
from ..models.telemetry import gate_entropy
from ..outputs import write_output

ROUTES_JSON = "routes.json"
OVERLAY_ALPHA = 0.45
# Each patch is drawn as SUBCELLS x SUBCELLS cells; the middle one is opaque (the readable mark).
SUBCELLS = 5
DPI = 100
GAP_PX = 16
TITLE_PX = 40
HEADER_LINE_PX = 20
HEADER_CHAR_PX = 8
VERDICTS = ("real", "ai-generated")
"""The detector's own verdict, by its score against its calibrated threshold (score > t is AI-generated)."""
LEGEND_ROW_PX = 26
LEGEND_COLUMNS = 6


def expert_colours(num_experts: int) -> list[str]:
    """Distinct, fixed colours for experts 0..N-1 (tab10, then tab20, then evenly spaced hues)."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    if num_experts <= 10:
        palette = colormaps["tab10"].colors
    elif num_experts <= 20:
        palette = colormaps["tab20"].colors
    else:
        palette = [colormaps["hsv"](i / num_experts) for i in range(num_experts)]
    return [to_hex(colour) for colour in palette[:num_experts]]


@dataclass
class BlockRoutes:
    """Top-1 routing of one image's patches in one adapted block.

    Attributes:
        block: resblock index of the adapted block.
        grid: top-1 expert id of each patch, shape (rows, cols), laid out as the patches lie in the crop.
        num_experts: how many routed experts the block has.
        cls: the router's top-1 expert for the CLS token; None when a dedicated CLS expert took it.
        entropy: mean gate entropy over the patches, in nats (log N is a uniform gate).
    """

    block: int
    grid: np.ndarray
    num_experts: int
    cls: int | None
    entropy: float

    @property
    def counts(self) -> np.ndarray:
        return np.bincount(self.grid.ravel(), minlength=self.num_experts)

    @property
    def utilisation(self) -> np.ndarray:
        """Share of the image's patches per expert (the CLS token is not a patch and is left out)."""
        return self.counts / self.grid.size


@dataclass
class ImageRoutes:
    """The outcome for one input image: its maps and PNG, or the reason it could not be read."""

    path: str
    png: str | None = None
    width: int | None = None
    height: int | None = None
    score: float | None = None
    verdict: str | None = None
    blocks: list[BlockRoutes] = field(default_factory=list)
    panels: dict[int, tuple[int, int, int, int]] = field(default_factory=dict)
    error_reason: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def patch_grid(detector: Detector) -> tuple[int, int]:
    """(rows, cols) of the backbone's patch grid: image_size / patch_size per side."""
    vision = detector.source.config["vision_cfg"]
    size = detector.image_size
    patch = vision.get("patch_size")
    patch = int(patch[0] if isinstance(patch, (list, tuple)) else patch)
    if size % patch:
        raise ConfigError(f"image size {size} is not a multiple of the patch size {patch}; no patch grid to draw")
    return size // patch, size // patch


def require_routing(detector: Detector) -> None:
    """Refuse a detector without MoLE blocks: a linear probe routes nothing, so there is no map to draw."""
    if not detector.bypasses:
        raise InputError(
            f"detector {detector.name} has no adapted blocks (a linear probe routes nothing); "
            "routing maps need a checkpoint trained with `blocks` 1 or more"
        )


def verdict_for(score: float, threshold: float) -> str:
    return VERDICTS[int(score > threshold)]


def route_image(detector: Detector, array: np.ndarray) -> tuple[float, list[BlockRoutes]]:
    """Score and route one (H, W, 3) uint8 image through the detector with the evaluation crop.

    Returns:
        The score (probability of AI-generated, as ``scan`` gives it) and one ``BlockRoutes`` per
        adapted block, in block order.

    Raises:
        InputError: the detector has no adapted blocks.
        ConfigError: the backbone's token count does not match its patch grid (CLS + rows x cols).
    """
    require_routing(detector)
    rows, cols = patch_grid(detector)
    was_training = detector.training
    detector.eval()
    pixels = eval_tensor(array, detector.preprocess)[None].to(detector.device)
    with torch.inference_mode():
        output = detector(pixels)
    detector.train(was_training)
    routing = output.routing
    score = float(torch.sigmoid(output.logits.float())[0])
    blocks = []
    for index, record in sorted(routing.items()):
        tokens = record.assignments[0].cpu().numpy()
        probs = record.probs[0].float().cpu()
        first_patch = 1 if record.cls_routed else 0
        patches = tokens[first_patch:]
        if patches.size != rows * cols:
            raise ConfigError(
                f"block {index} routed {patches.size} patch tokens but the patch grid is {rows}x{cols}; "
                "routing maps support plain ViTs (one CLS token followed by the patches)"
            )
        entropy = gate_entropy(probs[first_patch:])
        blocks.append(
            BlockRoutes(
                block=index,
                grid=patches.reshape(rows, cols).astype(np.int64),
                num_experts=record.probs.shape[-1],
                cls=int(tokens[0]) if record.cls_routed else None,
                entropy=entropy,
            )
        )
    return score, blocks


def _overlay(grid: np.ndarray, colours: Sequence[str]) -> np.ndarray:
    """RGBA image of the grid: a translucent tint per patch with an opaque centre cell."""
    from matplotlib.colors import to_rgb

    palette = np.array([to_rgb(c) for c in colours])
    rgba = np.concatenate([palette[grid], np.full((*grid.shape, 1), OVERLAY_ALPHA)], axis=-1)
    rgba = rgba.repeat(SUBCELLS, axis=0).repeat(SUBCELLS, axis=1)
    middle = SUBCELLS // 2
    rgba[middle::SUBCELLS, middle::SUBCELLS, 3] = 1.0
    return rgba


def _panel_title(routes: BlockRoutes) -> str:
    cls = "dedicated expert" if routes.cls is None else f"expert {routes.cls}"
    return f"block {routes.block}\nCLS \u2192 {cls}"


def image_title(name: str, score: float, verdict: str, threshold: float) -> str:
    """The map's title: which file, the detector's score and its verdict at the threshold."""
    return f"{name}: score {score:.4f}, {verdict} (threshold {threshold:.4f})"


def render_routes(
    crop: np.ndarray,
    blocks: Sequence[BlockRoutes],
    colours: Sequence[str],
    labels: Sequence[str],
    path: str | os.PathLike[str],
    title: str = "",
) -> dict[int, tuple[int, int, int, int]]:
    """Draw one panel per block (crop + expert overlay) with a legend and write a PNG atomically.

    Args:
        crop: the square uint8 crop the detector scored.
        blocks: the routes to draw, one panel each.
        colours: hex colour of each expert id.
        labels: legend text of each expert id.
        path: the PNG to write.
        title: drawn above the panels, wrapped (never cut) to the figure's width, and stored as
            the PNG's ``Title`` text chunk.

    Returns:
        Each block's panel as (left, top, width, height) in PNG pixels, so a reader can locate patches.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    rows, cols = blocks[0].grid.shape
    panel = max(256, 20 * max(rows, cols))
    legend_rows = -(-len(colours) // LEGEND_COLUMNS)
    width = len(blocks) * panel + (len(blocks) + 1) * GAP_PX
    heading = textwrap.wrap(title, width=max(20, width // HEADER_CHAR_PX), break_on_hyphens=False) if title else []
    header = len(heading) * HEADER_LINE_PX + (GAP_PX // 2 if heading else 0)
    top = header + TITLE_PX
    height = top + panel + GAP_PX + legend_rows * LEGEND_ROW_PX
    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, facecolor="white")
    FigureCanvasAgg(figure)
    for line, text in enumerate(heading):
        figure.text(0.5, 1 - (GAP_PX // 2 + (line + 0.5) * HEADER_LINE_PX) / height, text, ha="center", va="center", fontsize=10)
    size = crop.shape[0]
    boxes = {}
    for position, routes in enumerate(blocks):
        left = GAP_PX + position * (panel + GAP_PX)
        axes = figure.add_axes((left / width, 1 - (top + panel) / height, panel / width, panel / height))
        axes.imshow(crop, interpolation="nearest", extent=(0, size, size, 0))
        axes.imshow(_overlay(routes.grid, colours), interpolation="nearest", extent=(0, size, size, 0))
        axes.vlines(np.linspace(0, size, cols + 1), 0, size, colors="white", linewidth=0.6, alpha=0.7)
        axes.hlines(np.linspace(0, size, rows + 1), 0, size, colors="white", linewidth=0.6, alpha=0.7)
        axes.set_xlim(0, size)
        axes.set_ylim(size, 0)
        axes.set_axis_off()
        axes.set_title(_panel_title(routes), fontsize=9)
        boxes[routes.block] = (left, top, panel, panel)
    handles = [Patch(facecolor=c, edgecolor="none", label=label) for c, label in zip(colours, labels)]
    figure.legend(
        handles=handles, loc="lower center", ncol=min(len(handles), LEGEND_COLUMNS), frameon=False, fontsize=9
    )
    metadata = {"Title": title} if title else None
    write_output(path, lambda tmp: figure.savefig(tmp, format="png", dpi=DPI, facecolor="white", metadata=metadata))
    return boxes


def expand_images(images: Sequence[str | os.PathLike[str]], discovery: DiscoveryConfig | None = None) -> ImageListing:
    """Folders stand for the images inside them (by content, recursively, sorted; what else they
    hold is counted in ``left_out``); files are kept as given."""
    expanded = ImageListing()
    for image in map(Path, images):
        if image.is_dir():
            listing = list_images(image, discovery)
            expanded.images.extend(listing.images)
            expanded.left_out.extend(listing.left_out)
        else:
            expanded.images.append(image)
    return expanded


def map_names(paths: Sequence[Path]) -> list[str]:
    """<stem>.png per image; a repeated stem gets -2, -3, ... in input order so no map is overwritten."""
    names, taken = [], set()
    for path in paths:
        name, suffix = f"{path.stem}.png", 2
        while name.lower() in taken:
            name, suffix = f"{path.stem}-{suffix}.png", suffix + 1
        taken.add(name.lower())
        names.append(name)
    return names


def _image_entry(result: ImageRoutes) -> dict[str, Any]:
    if not result.ok:
        return {"path": result.path, "error_reason": result.error_reason, "error": result.error}
    return {
        "path": result.path,
        "file": os.path.basename(result.path),
        "png": result.png,
        "width": result.width,
        "height": result.height,
        "score": result.score,
        "verdict": result.verdict,
        "blocks": [
            {
                "block": b.block,
                "cls": b.cls,
                "grid": b.grid.tolist(),
                "counts": b.counts.tolist(),
                "utilisation": b.utilisation.tolist(),
                "entropy": b.entropy,
                "panel": list(result.panels[b.block]),
            }
            for b in result.blocks
        ],
    }


def routes_document(detector: Detector, results: Sequence[ImageRoutes], colours: Sequence[str]) -> dict[str, Any]:
    """The routes.json content: router settings, legend, overall utilisation per block, and every image."""
    mole = detector.mole
    totals: dict[int, np.ndarray] = {}
    for result in results:
        for b in result.blocks:
            totals[b.block] = totals.get(b.block, 0) + b.counts
    rows, cols = patch_grid(detector)
    return {
        "detector": detector.name,
        "threshold": detector.threshold,
        "router": mole.router,
        "top_k": mole.top_k,
        "cls_expert": mole.cls_expert,
        "expert_ranks": list(mole.expert_ranks),
        "colours": list(colours),
        "image_size": detector.image_size,
        "patch_grid": [rows, cols],
        "blocks": sorted(detector.bypasses),
        "utilisation": {f"block{i}": (c / c.sum()).tolist() for i, c in sorted(totals.items())},
        "images": [_image_entry(r) for r in results],
    }


def map_routes(
    detector: Detector,
    paths: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    on_image: Callable[[ImageRoutes], None] | None = None,
) -> dict[str, Any]:
    """Write OUT/<image-stem>.png for each image and OUT/routes.json for all of them.

    An image that cannot be decoded becomes an error entry in the JSON rather than stopping the run.

    Args:
        detector: a detector with at least one adapted block.
        paths: image files, mapped in this order.
        out_dir: created when missing.
        max_pixels: decoding refuses larger images (see ``decode_image``).
        on_image: called with each image's outcome as soon as it is known.

    Returns:
        The document written to routes.json.

    Raises:
        InputError: the detector has no adapted blocks.
    """
    require_routing(detector)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    mole = detector.mole
    colours = expert_colours(mole.num_experts)
    labels = [f"expert {i} (rank {r})" for i, r in enumerate(mole.expert_ranks)]
    paths = [Path(p) for p in paths]
    results = []
    for path, png in zip(paths, map_names(paths)):
        result = ImageRoutes(path=os.fsdecode(path))
        try:
            decoded = decode_image(path, max_pixels=max_pixels)
        except ImageDecodeError as exc:
            result.error_reason, result.error = exc.reason, str(exc)
        else:
            result.width, result.height = decoded.width, decoded.height
            result.score, result.blocks = route_image(detector, decoded.array)
            result.verdict = verdict_for(result.score, detector.threshold)
            crop = center_crop(decoded.array, detector.image_size)
            title = image_title(path.name, result.score, result.verdict, detector.threshold)
            result.panels = render_routes(crop, result.blocks, colours, labels, out / png, title)
            result.png = png
        results.append(result)
        if on_image is not None:
            on_image(result)
    document = routes_document(detector, results, colours)
    text = json.dumps(document, indent=1)
    write_output(out / ROUTES_JSON, lambda tmp: Path(tmp).write_text(text + "\n"))
    return document
