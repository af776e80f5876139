"""CLI wiring: help for every command, version, completions, and one-line errors with exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from aigdetect.cli import app
from aigdetect.cli.completions import SHELLS, render
from aigdetect.version import __version__

runner = CliRunner()
COMPLETIONS = Path(__file__).resolve().parents[1] / "completions"


def _command_paths() -> list[list[str]]:
    root = typer.main.get_command(app)
    paths = []

    def walk(command, prefix: list[str]) -> None:
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(sub, [*prefix, name])
        else:
            paths.append(prefix)

    walk(root, [])
    return paths


def test_every_command_has_help_with_an_example():
    paths = _command_paths()
    names = {p[0] for p in paths}
    assert {"info", "models"} <= names
    for path in paths:
        result = runner.invoke(app, [*path, "-h"])
        assert result.exit_code == 0, (path, result.output)
        assert "Example" in result.output, path


def test_version_flag_and_module_entry_point():
    assert runner.invoke(app, ["--version"]).stdout.strip() == f"aigdetect {__version__}"
    completed = subprocess.run(
        [sys.executable, "-m", "aigdetect", "--version"], capture_output=True, text=True, check=True
    )
    assert completed.stdout.strip() == f"aigdetect {__version__}"


def test_models_lists_builtins_with_provenance():
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0
    assert '"name": "univfd-vitl14"' in result.stdout and "Ojha" in result.stdout
    table = runner.invoke(app, ["models"], env={"COLUMNS": "200"})
    assert "univfd-vitl14" in table.stdout and "MIT" in table.stdout


def test_bad_option_values_exit_2_without_traceback():
    result = runner.invoke(app, ["info", "--model", "vit-huge"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: unknown model 'vit-huge'; choose one of vitb16, vitb32, vitl14, an open_clip model "
        "(open_clip.list_models(), NAME or NAME:TAG), hf-hub:ORG/NAME, timm:NAME, or a config JSON path"
    ]
    result = runner.invoke(app, ["info", "--top-k", "5"])
    assert result.exit_code == 2 and "--top-k must be between 1 and" in result.stderr
    assert "Traceback" not in result.output


def test_internal_errors_exit_1_with_one_line(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr("aigdetect.models.factory.parameter_summary", broken)
    monkeypatch.delenv("AIGDETECT_DEBUG", raising=False)
    result = runner.invoke(app, ["info"])
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: internal error: RuntimeError: boom (set AIGDETECT_DEBUG=1 for the traceback)"


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_completion_scripts_are_current(shell):
    assert (COMPLETIONS / SHELLS[shell]).read_text() == render(shell), "run: python -m aigdetect.cli.completions completions/"


def test_completion_suggests_subcommands():
    env = {**os.environ, "_AIGDETECT_COMPLETE": "complete_bash", "COMP_WORDS": "aigdetect mod", "COMP_CWORD": "1"}
    completed = subprocess.run([sys.executable, "-m", "aigdetect"], env=env, capture_output=True, text=True)
    assert completed.stdout.split() == ["models"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["scna"], "error: No such command 'scna'. Did you mean 'scan'? (see 'aigdetect -h')"),
        (["info", "--nope"], "error: No such option: --nope"),
        (["scan", "--batch-size", "x", "p"], "error: Invalid value for '--batch-size'"),
        (["scan", "--batch-size", "0", "p"], "error: --batch-size must be between 1 and 65536, got 0"),
        (["info", "extra"], "error: Got unexpected extra argument(s) (extra) (see 'aigdetect info -h')"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(args, message):
    result = runner.invoke(app, args)
    lines = result.stderr.splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith(message), result.output


def test_a_real_process_gets_the_same_one_line_usage_error_and_help_without_arguments():
    wrong = subprocess.run([sys.executable, "-m", "aigdetect", "info", "--top-k"], capture_output=True, text=True)
    lines = wrong.stderr.splitlines()
    assert wrong.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: Option '--top-k' requires an argument.")
    bare = subprocess.run([sys.executable, "-m", "aigdetect"], capture_output=True, text=True)
    assert bare.returncode == 0 and bare.stdout.startswith("Usage: aigdetect") and "scan" in bare.stdout
