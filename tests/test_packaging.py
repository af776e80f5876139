"""The declared dependency floors: torch releases before 2.13 have published security advisories
(their loaders could run code from a file), so the floor must not drop below it, and what we test
with must satisfy what we declare."""

from __future__ import annotations

import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:
    tomllib = pytest.importorskip("tomli")

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def _requirements() -> dict[str, Requirement]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    return {(r := Requirement(text)).name: r for text in project["dependencies"]}


def test_torch_floor_excludes_releases_with_advisories():
    spec = _requirements()["torch"].specifier
    assert not spec.contains("2.12.1") and not spec.contains("2.6.0")
    assert spec.contains("2.13.0")


def test_the_installed_dependencies_satisfy_the_declared_ones():
    for name, requirement in _requirements().items():
        assert requirement.specifier.contains(Version(version(name)).base_version, prereleases=True), name
