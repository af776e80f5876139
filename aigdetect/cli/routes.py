"""``aigdetect routes``: draw which routed expert each image patch goes to, per adapted block."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..engine.runtime import RuntimeConfig
from .common import cli_errors, fail
from .options import BackboneWeightsOption, CacheDirOption, DeviceOption, default, detector_choice


@cli_errors
def routes(
    images: Annotated[list[Path], typer.Argument(metavar="IMAGE", help="Image files, or folders of images, to map.", show_default=False)],
    checkpoint: Annotated[
        Path, typer.Option("--checkpoint", dir_okay=False, help="Detector checkpoint (.safetensors) with adapted MoLE blocks.")
    ],
    out: Annotated[Path, typer.Option("--out", file_okay=False, help="Folder for <image-stem>.png maps and routes.json.")],
    backbone_weights: BackboneWeightsOption = None,
    device: DeviceOption = default(RuntimeConfig, "device"),
    cache_dir: CacheDirOption = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace maps and routes.json in OUT from an earlier run.")] = False,
) -> None:
    """Draw each image's per-patch expert routing, one panel per adapted block, and write routes.json.

    Example: aigdetect routes photo.jpg samples/ --checkpoint run/detector.safetensors --out maps/
    """
    from ..engine.infer import resolve_device
    from ..errors import InputError
    from ..evaluation.routes import ROUTES_JSON, expand_images, map_names, map_routes, require_routing
    from ..models.factory import load_chosen
    from ..outputs import FIGURE, ROUTES_DOCUMENT, Output, OutputError, check_outputs

    listing = expand_images(images)
    left_out = listing.left_out.describe()
    if left_out:
        typer.echo(f"note: {left_out}", err=True)
    paths = listing.images
    if not paths:
        raise InputError("no images to map: the folders given contain no image files")
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise OutputError(f"`out` {out} is not a folder; give a folder for the maps")
    planned = [Output.of(out / name, FIGURE, "out") for name in map_names(paths)] + [Output.of(out / ROUTES_JSON, ROUTES_DOCUMENT, "out")]
    check_outputs(planned, overwrite=overwrite, reads=[*images, checkpoint])
    detector = load_chosen(detector_choice(checkpoint, None, backbone_weights, cache_dir, False))
    require_routing(detector)
    detector.to(resolve_device(device))

    def report(result) -> None:
        if not result.ok:
            typer.echo(f"warning: {' '.join(str(result.error).split())}", err=True)

    document = map_routes(detector, paths, out, on_image=report)
    mapped = sum(1 for entry in document["images"] if "error" not in entry)
    typer.echo(f"mapped {mapped} of {len(paths)} images into {out} ({ROUTES_JSON})", err=True)
    for block, shares in document["utilisation"].items():
        typer.echo(f"{block} expert shares: " + " ".join(f"{share:.3f}" for share in shares), err=True)
    if not mapped:
        raise fail(f"none of the {len(paths)} images could be read; see the warnings above")


def register(app: typer.Typer) -> None:
    app.command("routes")(routes)
