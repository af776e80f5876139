"""Training recipes (`--recipe paper`) and the peers' validation protocol (CNNDetection / UnivFD)."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image
from scipy.ndimage import gaussian_filter
from typer.testing import CliRunner

from aigdetect import load_detector
from aigdetect.cli import app
from aigdetect.data.config import AugmentConfig
from aigdetect.data.images import decode_image
from aigdetect.data.synthetic import write_synthetic_dataset
from aigdetect.data.transforms import PeersValidation, normalize, resize_shorter
from aigdetect.engine.runtime import RuntimeConfig
from aigdetect.errors import ConfigError
from aigdetect.metrics import average_precision
from aigdetect.models.checkpoint import read_checkpoint
from aigdetect.training.config import RECIPES, TrainConfig
from aigdetect.training.state import Progress
from aigdetect.training.train import peers_rule, train

TINY = Path(__file__).parent / "assets" / "tiny.json"
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_paper_recipe_sets_every_value_and_given_settings_win():
    paper = TrainConfig(out="m.safetensors", data="d", recipe="paper")
    assert (paper.batch_size, paper.lr, paper.val_protocol) == (1024, 6e-4, "peers")
    assert paper.augment == AugmentConfig(blur_prob=0.1, blur_sigma=(0.0, 3.0), jpeg_prob=0.1, jpeg_quality=(30, 100))
    assert paper.recipe_overrides() == {}
    default = TrainConfig(out="m.safetensors", data="d")
    assert (default.recipe, default.batch_size, default.lr, default.val_protocol) == ("default", 64, 6e-4, "ours")
    mine = TrainConfig(out="m.safetensors", data="d", recipe="paper", batch_size=256, augment=AugmentConfig(flip=False))
    assert mine.batch_size == 256 and mine.lr == 6e-4 and mine.val_protocol == "peers"
    overrides = mine.recipe_overrides()
    assert set(overrides) == {"batch_size", "augment"} and overrides["batch_size"] == (1024, 256)
    event = mine.resolved_recipe()
    assert event["overridden"]["batch_size"] == {"recipe": 1024, "used": 256}
    assert event["overridden"]["augment"]["used"]["flip"] is False and event["settings"]["val_protocol"] == "peers"
    with pytest.raises(ConfigError, match="unknown `recipe` 'fast'; choose one of default, paper"):
        TrainConfig(out="m.safetensors", data="d", recipe="fast")
    with pytest.raises(ConfigError, match="`val_protocol` must be one of ours, peers"):
        TrainConfig(out="m.safetensors", data="d", val_protocol="theirs")
    with pytest.raises(ConfigError, match="`micro_batch` must be >= 1"):
        TrainConfig(out="m.safetensors", data="d", micro_batch=0)


def test_recipe_config_round_trips_and_older_configs_still_load():
    paper = TrainConfig(out="m.safetensors", data="d", recipe="paper", batch_size=32, micro_batch=8)
    assert TrainConfig.from_dict(json.loads(json.dumps(paper.to_dict()))) == paper
    older = paper.to_dict()
    for key in ("recipe", "val_protocol", "micro_batch"):
        older.pop(key)
    restored = TrainConfig.from_dict(older)
    assert (restored.recipe, restored.val_protocol, restored.batch_size, restored.micro_batch) == ("default", "ours", 32, None)
    # The micro-batch is a runtime setting: a resumed run may change it.
    assert paper.differences(TrainConfig(out="m.safetensors", data="d", recipe="paper", batch_size=32, micro_batch=4)) == []
    assert [d.split(":")[0] for d in paper.differences(restored)] == ["recipe", "val_protocol"]


@pytest.mark.parametrize("shape", [(300, 400), (400, 300), (256, 256), (200, 700), (256, 300), (31, 517)])
def test_resize_shorter_matches_torchvision_on_pil(shape: tuple[int, int]):
    array = np.random.default_rng(shape[0]).integers(0, 256, (*shape, 3), dtype=np.uint8)
    expected = np.asarray(TF.resize(Image.fromarray(array), 256, interpolation=T.InterpolationMode.BILINEAR))
    assert np.array_equal(resize_shorter(array, 256), expected)


def _their_val_view(array: np.ndarray, sigma: float, quality: int, crop: int, load: int) -> np.ndarray:
    """CNNDetection / UnivFD's validation transform with blur and JPEG both drawn: custom_resize,
    data_augment (scipy blur into uint8, PIL JPEG), CenterCrop."""
    image = TF.resize(Image.fromarray(array), load, interpolation=T.InterpolationMode.BILINEAR)
    img = np.array(image)
    for channel in range(3):
        gaussian_filter(img[:, :, channel], output=img[:, :, channel], sigma=sigma)
    out = io.BytesIO()
    Image.fromarray(img).save(out, format="jpeg", quality=quality)
    img = np.array(Image.open(out))
    return np.array(T.CenterCrop(crop)(Image.fromarray(img)))


def test_peers_view_takes_the_middle_of_the_training_ranges():
    view = PeersValidation.from_augment(RECIPES.get("paper").augment, 224)
    assert (view.blur_sigma, view.jpeg_quality, view.load_size) == (1.5, 65, 256)
    assert (view.blur_prob, view.jpeg_prob) == (0.1, 0.1)
    assert PeersValidation.from_augment(AugmentConfig(jpeg_quality=(30, 99)), 32).jpeg_quality == 64
    array = np.random.default_rng(1).integers(0, 256, (300, 360, 3), dtype=np.uint8)
    always = PeersValidation.from_augment(AugmentConfig(blur_prob=1.0, jpeg_prob=1.0), 224)
    got = always(array, np.random.default_rng(0))
    assert np.array_equal(got, _their_val_view(array, 1.5, 65, 224, 256))
    never = PeersValidation.from_augment(AugmentConfig(blur_prob=0.0, jpeg_prob=0.0), 224)
    expected = np.asarray(T.CenterCrop(224)(TF.resize(Image.fromarray(array), 256)))
    assert np.array_equal(never(array, np.random.default_rng(0)), expected)


class _TheirEarlyStopping:
    """CNNDetection's earlystop.EarlyStopping (delta is negative there: improvement needs a gain)."""

    def __init__(self, patience: int, delta: float) -> None:
        self.patience, self.delta = patience, delta
        self.counter, self.best_score, self.early_stop = 0, None, False

    def __call__(self, score: float) -> bool:
        """Returns whether the model was saved as 'best'."""
        if self.best_score is None:
            self.best_score = score
            return True
        if score < self.best_score - self.delta:
            self.counter += 1
            self.early_stop = self.counter >= self.patience
            return False
        self.best_score, self.counter = score, 0
        return True


def _their_loop(accuracies: list[float], patience: int, lr: float) -> list[tuple[bool, float, bool]]:
    """CNNDetection's train.py around validation: per validation, (saved as best, lr after, stopped)."""
    stopper = _TheirEarlyStopping(patience, -0.001)
    outcome = []
    for acc in accuracies:
        saved = stopper(acc)
        stopped = False
        if stopper.early_stop:
            lr /= 10.0
            if lr < 1e-6:
                stopped = True
            else:
                stopper = _TheirEarlyStopping(patience, -0.002)
        outcome.append((saved, lr, stopped))
        if stopped:
            break
    return outcome


def _our_loop(accuracies: list[float], patience: int, lr: float) -> list[tuple[bool, float, bool]]:
    progress, outcome = Progress(), []
    for acc in accuracies:
        saved, _ = peers_rule(progress, acc, patience=patience, lr=lr, last_step=False)
        rate = lr
        for _ in range(progress.lr_drops):
            rate /= 10.0
        if progress.finished:
            rate /= 10.0
        outcome.append((saved, rate, progress.finished))
        if progress.finished:
            break
    return outcome


@pytest.mark.parametrize("seed", range(8))
def test_peers_rule_follows_cnndetection_training_loop(seed: int):
    rng = random.Random(seed)
    accuracies, acc = [], 0.8
    for _ in range(60):  # plateaus, small gains below and above the margins, and falls
        acc = min(1.0, max(0.0, acc + rng.choice([0.0, 0.0, 0.0005, 0.0015, 0.0025, 0.01, -0.01])))
        accuracies.append(acc)
    patience = rng.choice([1, 2, 3, 5])
    lr = rng.choice([6e-4, 1e-3, 1e-5, 5e-6])
    ours, theirs = _our_loop(accuracies, patience, lr), _their_loop(accuracies, patience, lr)
    assert [o[0] for o in ours] == [t[0] for t in theirs]
    assert [o[2] for o in ours] == [t[2] for t in theirs]
    assert [o[1] for o in ours] == pytest.approx([t[1] for t in theirs], rel=1e-12)


def test_peers_rule_boundaries():
    progress = Progress()
    assert peers_rule(progress, 0.5, patience=2, lr=1e-3, last_step=False) == (True, False)
    assert peers_rule(progress, 0.5009, patience=2, lr=1e-3, last_step=False) == (False, False)
    assert peers_rule(progress, 0.5012, patience=2, lr=1e-3, last_step=False) == (True, False)
    assert peers_rule(progress, 0.3, patience=2, lr=1e-3, last_step=False) == (False, False)
    assert peers_rule(progress, 0.3, patience=2, lr=1e-3, last_step=True) == (False, False)  # never at the end
    assert peers_rule(progress, 0.3, patience=2, lr=1e-3, last_step=False) == (False, True)
    assert progress.lr_drops == 1 and progress.reference is None and progress.stale == 0
    assert peers_rule(progress, 0.1, patience=2, lr=1e-3, last_step=False) == (True, False)  # first after a drop
    assert peers_rule(progress, 0.1019, patience=2, lr=1e-3, last_step=False) == (False, False)  # margin now 0.002
    assert peers_rule(Progress(), 0.5, patience=0, lr=1e-3, last_step=False) == (True, False)


def _peers_config(tmp_path: Path, data: Path, **overrides) -> TrainConfig:
    values = dict(
        out=str(tmp_path / "m.safetensors"), data=str(data), model=str(TINY), backbone_weights="none",
        recipe="paper", batch_size=8, steps=14, eval_every=1, patience=1, lr=1e-5, seed=0,
        augment=AugmentConfig(blur_prob=1.0, jpeg_prob=1.0, jpeg_quality=(60, 90)), log=str(tmp_path / "log.jsonl"),
        runtime=RuntimeConfig(device="cpu", workers=0),
    )
    values.update(overrides)
    return TrainConfig(**values)


@pytest.fixture(scope="module")
def peers_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("peers")
    write_synthetic_dataset(root, "wang2020", per_class=8, size=48, seed=2, val_per_class=4)
    return root


def test_peers_protocol_drops_the_rate_on_plateaus_and_keeps_as_they_do(tmp_path: Path, peers_data: Path):
    result = train(_peers_config(tmp_path, peers_data))
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    evals = [r for r in records if r["event"] == "eval"]
    assert all(r["protocol"] == "peers" for r in evals)
    replay, progress = [], Progress()
    for record in evals:
        replay.append(peers_rule(progress, record["val_acc"], patience=1, lr=1e-5, last_step=record["step"] >= 14))
    assert [(r["improved"], r["lr_dropped"]) for r in evals] == replay
    assert result.lr_drops == progress.lr_drops >= 1 and result.stopped_early == progress.finished
    kept = [r["step"] for r in evals if r["improved"]]
    assert result.best_step == kept[-1]
    steps = [r for r in records if r["event"] == "step"]
    for record in steps:
        drops = sum(1 for r in evals if r["lr_dropped"] and r["step"] < record["step"])
        assert record["lr"] == pytest.approx(1e-5 * 0.1**drops)


def test_peers_validation_scores_the_resized_blurred_compressed_views(tmp_path: Path, peers_data: Path):
    result = train(_peers_config(tmp_path, peers_data, steps=2, patience=0))
    detector = load_detector(result.out).eval()
    files = sorted((peers_data / "val").rglob("*.png"))
    labels = np.array([1 if p.parent.name == "1_fake" else 0 for p in files])
    size = detector.image_size
    views = [_their_val_view(decode_image(p).array, 1.5, 75, size, round(size * 256 / 224)) for p in files]
    with torch.no_grad():
        scores = torch.sigmoid(detector(torch.stack([normalize(v, detector.preprocess) for v in views])).logits).numpy()
    assert average_precision(labels, scores) == pytest.approx(result.val_ap, abs=1e-6)
    _, meta = read_checkpoint(result.out)
    assert meta["provenance"]["train_config"]["val_protocol"] == "peers"


def test_cli_prints_the_recipe_and_what_options_replaced(tmp_path: Path, peers_data: Path):
    result = CliRunner().invoke(app, [
        "train", "--data", str(peers_data), "--model", str(TINY), "--backbone-weights", "none", "--recipe", "paper",
        "--batch-size", "8", "--micro-batch", "3", "--blur-prob", "0.2", "--steps", "2", "--workers", "0",
        "--device", "cpu", "--out", str(tmp_path / "m.safetensors"),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "recipe paper: CLIPMoLE" in result.output
    assert "given options win over the recipe: --batch-size 8 (recipe: 1024), --blur-prob 0.2 (recipe: 0.1)" in result.output
    assert "validation: peers" in result.output
    assert "micro-batches of 3 images per pass (as given)" in result.output
    config = read_checkpoint(tmp_path / "m.safetensors")[1]["provenance"]["train_config"]
    assert (config["recipe"], config["batch_size"], config["micro_batch"], config["lr"]) == ("paper", 8, 3, 6e-4)
    assert config["augment"] == {"blur_prob": 0.2, "blur_sigma": [0.0, 3.0], "jpeg_prob": 0.1, "jpeg_quality": [30, 100], "flip": True}


def test_paper_recipe_caps_epochs_as_its_peers_so_their_stopping_rule_ends_the_run(tmp_path: Path, peers_data: Path):
    assert TrainConfig(out="m.safetensors", data="d", recipe="paper").epochs == 100
    assert TrainConfig(out="m.safetensors", data="d").epochs == 10
    assert TrainConfig(out="m.safetensors", data="d", recipe="paper", epochs=3).epochs == 3
    assert TrainConfig(out="m.safetensors", data="d", recipe="paper", steps=5).epochs is None
    # 16 training images in batches of 8: 2 steps per epoch, 200 steps in the recipe's 100 epochs.
    # lr 1e-5 is divided once (1e-6 is not below 1e-6); the next plateau would take it to 1e-7: stop.
    result = train(_peers_config(tmp_path, peers_data, steps=None))
    assert result.total_steps == 200
    assert result.stopped_early and result.lr_drops == 1 and result.steps < result.total_steps
    evals = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    evals = [r for r in evals if r["event"] == "eval"]
    assert evals[-1]["step"] == result.steps and evals[-1]["stopped_early"]
