"""Dataset layout detection, hold-out splits and balanced sub-sampling."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_image

from aigdetect.data import layouts
from aigdetect.data.layouts import (
    Sample,
    balanced_subset,
    detect_layout,
    folders_layout,
    prepare_training_data,
    split_holdout,
)
from aigdetect.errors import ConfigError, LayoutError


def _fill(folder: Path, count: int, seed: int = 0) -> None:
    for i in range(count):
        write_image(folder / f"img{i:03d}.png", size=(8, 8), seed=seed + i)


def _wang(root: Path, splits=("train", "val"), categories=("car", "cat"), per=(3, 2)) -> None:
    for split in splits:
        for category in categories:
            _fill(root / split / category / "0_real", per[0])
            _fill(root / split / category / "1_fake", per[1])


def test_wang2020_with_splits_and_categories(tmp_path):
    _wang(tmp_path)
    found = detect_layout(tmp_path)
    assert found.kind == "wang2020"
    assert found.counts() == {
        split: {"car": {"real": 3, "fake": 2}, "cat": {"real": 3, "fake": 2}} for split in ("train", "val")
    }
    text = "\n".join(found.describe())
    assert "wang2020" in text and "train: 10 images (6 real, 4 fake) in 2 categories" in text
    assert "car: 3 real, 2 fake" in text


def test_wang2020_categories_without_split_level(tmp_path):
    _wang(tmp_path / "x", splits=("train",))
    found = detect_layout(tmp_path / "x" / "train")
    assert found.kind == "wang2020" and set(found.splits) == {"train"}
    assert found.counts()["train"]["cat"] == {"real": 3, "fake": 2}


def test_wang2020_split_holding_classes_directly(tmp_path):
    _fill(tmp_path / "train" / "0_real", 2)
    _fill(tmp_path / "train" / "1_fake", 2)
    found = detect_layout(tmp_path)
    assert found.kind == "wang2020" and found.counts() == {"train": {"": {"real": 2, "fake": 2}}}


def test_plain_layout_and_ignored_folders(tmp_path):
    _fill(tmp_path / "0_real", 2)
    _fill(tmp_path / "1_fake", 3)
    (tmp_path / "notes").mkdir()
    (tmp_path / "0_real" / "readme.txt").write_text("not an image")
    found = detect_layout(tmp_path)
    assert found.kind == "plain"
    assert found.counts() == {"train": {"": {"real": 2, "fake": 3}}}
    assert found.ignored == ["notes"]
    assert any("ignored" in line and "notes" in line for line in found.describe())


def test_genimage_layout(tmp_path):
    for split in ("train", "val"):
        _fill(tmp_path / split / "nature", 2)
        _fill(tmp_path / split / "ai", 1)
    found = detect_layout(tmp_path)
    assert found.kind == "genimage"
    assert found.counts() == {"train": {"": {"real": 2, "fake": 1}}, "val": {"": {"real": 2, "fake": 1}}}
    labels = {s.path.parent.name: s.label for s in found.splits["train"]}
    assert labels == {"nature": 0, "ai": 1}


def test_explicit_real_and_fake_folders(tmp_path):
    _fill(tmp_path / "r" / "nested", 2)
    _fill(tmp_path / "f", 1)
    found = folders_layout(tmp_path / "r", tmp_path / "f")
    assert found.kind == "folders" and found.counts() == {"train": {"": {"real": 2, "fake": 1}}}


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda root: (_fill(root / "0_real", 2), (root / "1_fake").mkdir()), "1_fake holds no images"),
        (lambda root: _fill(root / "train" / "car" / "0_real", 2), "1_fake does not exist"),
        (lambda root: (root / "photos").mkdir(), "fits no known dataset layout"),
        (lambda root: None, "fits no known dataset layout"),
        (
            lambda root: (_fill(root / "0_real", 1), _fill(root / "1_fake", 1), _fill(root / "train" / "ai", 1)),
            "more than one layout",
        ),
    ],
    ids=["empty-class", "missing-class", "no-images", "empty-root", "ambiguous"],
)
def test_refusals(tmp_path, build, message):
    build(tmp_path)
    with pytest.raises(LayoutError, match=message):
        detect_layout(tmp_path)


def test_missing_root_file_root_and_unreadable_root(tmp_path, monkeypatch):
    with pytest.raises(LayoutError, match="does not exist"):
        detect_layout(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(LayoutError, match="not a directory"):
        detect_layout(tmp_path / "file")
    _fill(tmp_path / "d" / "0_real", 1)
    _fill(tmp_path / "d" / "1_fake", 1)
    monkeypatch.setattr(layouts.os, "access", lambda path, mode: Path(path) != tmp_path / "d")
    with pytest.raises(LayoutError, match="permission denied"):
        detect_layout(tmp_path / "d")


def _samples(per_group: int) -> list[Sample]:
    return [
        Sample(Path(f"{cat}/{label}/{i}.png"), label, cat)
        for cat in ("a", "b")
        for label in (0, 1)
        for i in range(per_group)
    ]


def test_holdout_is_stratified_seeded_and_disjoint():
    samples = _samples(10)
    train, val = split_holdout(samples, 0.2, seed=3)
    assert sorted(map(str, (s.path for s in train + val))) == sorted(map(str, (s.path for s in samples)))
    assert not {s.path for s in train} & {s.path for s in val}
    for cat in ("a", "b"):
        for label in (0, 1):
            assert sum(1 for s in val if s.category == cat and s.label == label) == 2
    assert split_holdout(samples, 0.2, seed=3) == (train, val)
    assert split_holdout(samples, 0.2, seed=4)[1] != val


def test_holdout_refuses_when_a_side_would_lack_a_class():
    samples = [Sample(Path("r.png"), 0), Sample(Path("f.png"), 1)]
    with pytest.raises(LayoutError, match="too few images"):
        split_holdout(samples, 0.5, seed=0)


def test_balanced_subset_counts_and_refusal():
    samples = _samples(10)
    chosen = balanced_subset(samples, 9, seed=1)
    assert [s.label for s in chosen].count(0) == 4 and [s.label for s in chosen].count(1) == 5
    assert len({s.path for s in chosen}) == 9
    assert balanced_subset(samples, 9, seed=1) == chosen
    with pytest.raises(ConfigError, match="needs 21 real"):
        balanced_subset(samples, 42, seed=1)


def test_validation_source_priority(tmp_path):
    _wang(tmp_path / "data", per=(10, 10))
    _fill(tmp_path / "extra" / "0_real", 2)
    _fill(tmp_path / "extra" / "1_fake", 2)
    own = prepare_training_data(data=tmp_path / "data")
    assert own.val_source == "the layout's val split" and len(own.val) == 40 and len(own.train) == 40
    given = prepare_training_data(data=tmp_path / "data", val=tmp_path / "extra")
    assert len(given.val) == 4 and len(given.train) == 40 and "`val`" in given.val_source
    held = prepare_training_data(data=tmp_path / "data", val_fraction=0.3, seed=2)
    assert len(held.val) == 12 and len(held.train) == 28 and "held out 0.3" in held.val_source
    assert not {s.path for s in held.train} & {s.path for s in held.val}


def test_a_train_folder_validates_on_the_val_folder_beside_it(tmp_path):
    # UnivFD's / CNNDetection's tree: DIR/train/<category>/... and DIR/val/<category>/...
    _wang(tmp_path / "progan", categories=("car", "cat", "dog"), per=(4, 3))
    for i in range(2):
        write_image(tmp_path / "progan" / "val" / "dog" / "1_fake" / f"extra{i}.png", size=(8, 8), seed=50 + i)
    prepared = prepare_training_data(data=tmp_path / "progan" / "train", seed=0)
    val_root = tmp_path / "progan" / "val"
    assert prepared.val_source == f"the val folder beside train: {val_root}"
    assert len(prepared.train) == 21 and len(prepared.val) == 23
    assert all(val_root in s.path.parents for s in prepared.val)
    assert all((tmp_path / "progan" / "train") in s.path.parents for s in prepared.train)
    assert prepared.counts()["val"]["dog"] == {"real": 4, "fake": 5}
    # An explicit fraction still holds out from the training images; a folder not named train has no sibling rule.
    held = prepare_training_data(data=tmp_path / "progan" / "train", val_fraction=0.25, seed=0)
    assert "held out 0.25" in held.val_source and all(val_root not in s.path.parents for s in held.val)
    _wang(tmp_path / "other", splits=("trainset", "val"))
    assert "held out 0.1" in prepare_training_data(data=tmp_path / "other" / "trainset").val_source


def test_a_val_folder_beside_train_that_fits_no_layout_is_refused(tmp_path):
    _wang(tmp_path / "d", splits=("train",))
    (tmp_path / "d" / "val" / "notes").mkdir(parents=True)
    with pytest.raises(LayoutError, match="fits no known dataset layout"):
        prepare_training_data(data=tmp_path / "d" / "train")


def test_default_holdout_then_balanced_subset(tmp_path):
    _fill(tmp_path / "0_real", 20)
    _fill(tmp_path / "1_fake", 20)
    prepared = prepare_training_data(data=tmp_path, train_size=10, seed=0)
    assert len(prepared.val) == 4 and "held out 0.1" in prepared.val_source
    assert [s.label for s in prepared.train].count(0) == 5 and len(prepared.train) == 10
    assert not {s.path for s in prepared.train} & {s.path for s in prepared.val}
    lines = prepared.describe()
    assert lines[0].startswith("layout: plain") and any(line.startswith("train: 10 images") for line in lines)


def test_fingerprint_follows_the_file_lists(tmp_path):
    _fill(tmp_path / "0_real", 4)
    _fill(tmp_path / "1_fake", 4)
    before = prepare_training_data(data=tmp_path, seed=0).fingerprint()
    assert prepare_training_data(data=tmp_path, seed=0).fingerprint() == before
    write_image(tmp_path / "1_fake" / "new.png", size=(8, 8))
    assert prepare_training_data(data=tmp_path, seed=0).fingerprint() != before
