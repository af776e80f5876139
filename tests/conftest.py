"""Shared fixtures: a tiny random-weight ViT detector and images written on the fly."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image

from aigdetect import MoLEConfig, create_detector, save_detector

pytest_plugins = ["cloud_fixtures"]

TINY_CONFIG = Path(__file__).parent / "assets" / "tiny.json"


@pytest.fixture(scope="session")
def tiny_config() -> Path:
    return TINY_CONFIG


def make_tiny_detector(mole: MoLEConfig | None = None, seed: int = 0, perturb_b: bool = True):
    """A tiny detector; with ``perturb_b`` the zero-initialised B matrices get small random values
    so that the bypasses actually change the output (as after training)."""

    detector = create_detector(TINY_CONFIG, mole or MoLEConfig(), backbone_weights="none", seed=seed)
    return perturb_lora_b(detector, seed) if perturb_b else detector


def perturb_lora_b(detector, seed: int):
    """Give the zero-initialised B matrices small seeded random values, in place."""
    import torch

    generator = torch.Generator().manual_seed(seed + 7)
    with torch.no_grad():
        for name, param in detector.named_parameters():
            if param.requires_grad and "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.05)
    return detector


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models train fastest on one thread, and a shared CI machine is not slowed by spinning threads."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture()
def tiny_detector():
    return make_tiny_detector()


@pytest.fixture()
def tiny_checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.safetensors"
    save_detector(make_tiny_detector(), path)
    return path


def load_benchmark(name: str) -> ModuleType:
    """A script of ``benchmarks/`` imported as a module, so that a test can call its ``main``."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def write_image(path: Path, size: tuple[int, int] = (48, 40), seed: int = 0, fmt: str | None = None) -> Path:
    """Write a random RGB image of (width, height); the format follows the suffix unless given."""
    rng = np.random.default_rng(seed)
    array = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt)
    return path


@pytest.fixture(autouse=True)
def _engine_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Exported engines go to a folder of the test session, never to the user's cache."""
    monkeypatch.setenv("AIGDETECT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "aigdetect-cache"))
