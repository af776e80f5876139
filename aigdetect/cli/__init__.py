"""The ``aigdetect`` command line: parses options, calls the library, renders results.

This package is the only place that prints or exits. Each command lives in its own module, and no
module here imports torch, open_clip or matplotlib at import time: ``-h``, ``--version`` and shell
completion stay instant, and a command loads the library only when it runs.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from ..version import __version__
from . import bench, export, info, inspect, report, routes, scan, serve, train
from .common import OneLineGroup

app = typer.Typer(
    name="aigdetect",
    cls=OneLineGroup,
    help="Tell AI-generated images from real photographs (CLIP + mixture of low-rank experts).",
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"aigdetect {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Also print how the run computes (its runtime plan) on stderr.")
    ] = False,
) -> None:
    """Tell AI-generated images from real photographs (CLIP + mixture of low-rank experts)."""
    if verbose:
        _log_to_stderr()


def _log_to_stderr() -> None:
    """The library's informational lines (the runtime plan), one per line on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("aigdetect")
    logger.handlers = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False


for module in (scan, inspect, serve, report, train, bench, info, routes, export):
    module.register(app)


def main() -> None:
    app(prog_name="aigdetect")
