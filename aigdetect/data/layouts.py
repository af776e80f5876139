"""Finding labelled training data on disk, and choosing which images train and which validate.

Supported layouts (the conventions of the CNNDetection / UnivFD and GenImage releases):

- ``wang2020``: ``DIR/[train|val]/<category>/{0_real,1_fake}``; the split level is optional, and a
  split may hold ``{0_real,1_fake}`` directly instead of categories;
- ``plain``: ``DIR/{0_real,1_fake}``;
- ``genimage``: ``DIR/{train,val}/{ai,nature}``;
- ``folders``: two explicit folders given as ``--real`` and ``--fake``.

Detection never guesses between layouts: a root that fits none, or more than one, is refused with
the patterns it was checked against. Image files are recognised by content (``data.files``); files
that are not images, and skipped system or hidden files, are counted in ``DatasetLayout.left_out``;
whether images decode is found out (and counted) while training. System and hidden folders are
never taken for categories or splits.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError, LayoutError
from .config import GENIMAGE_FOLDERS, WANG_FOLDERS, DiscoveryConfig
from .files import LeftOut, is_hidden, is_system_junk, list_images

REAL, FAKE = 0, 1
CLASS_NAMES = ("real", "fake")
WANG_CLASSES = {name: label for label, name in enumerate(WANG_FOLDERS)}
GENIMAGE_CLASSES = {name: label for label, name in enumerate(GENIMAGE_FOLDERS)}
SPLITS = ("train", "val")


@dataclass(frozen=True)
class Sample:
    """One labelled image file: label 1 is fake, 0 is real; ``category`` is empty when there is none."""

    path: Path
    label: int
    category: str = ""


@dataclass
class DatasetLayout:
    """What was found under one root.

    Attributes:
        kind: ``wang2020``, ``plain``, ``genimage`` or ``folders``.
        pattern: the folder pattern that matched, for messages.
        root: the folder the layout was found in (for ``folders``, the real and fake folders).
        splits: samples per split; a layout without its own split puts everything under ``train``.
        ignored: sub-folders that did not fit the layout and were left out.
        left_out: files in the class folders that are not images, or were skipped.
    """

    kind: str
    pattern: str
    root: str
    splits: dict[str, list[Sample]]
    ignored: list[str] = field(default_factory=list)
    left_out: LeftOut = field(default_factory=LeftOut)

    def counts(self) -> dict[str, dict[str, dict[str, int]]]:
        """Images per split, category and class: ``{split: {category: {"real": n, "fake": n}}}``."""
        return {split: count_samples(samples) for split, samples in self.splits.items()}

    def describe(self) -> list[str]:
        lines = [f"layout: {self.kind} ({self.pattern}) at {self.root}"]
        for split, samples in self.splits.items():
            lines.extend(describe_samples(split, samples))
        if self.ignored:
            lines.append(f"ignored (not part of the layout): {', '.join(self.ignored)}")
        left_out = self.left_out.describe()
        if left_out:
            lines.append(left_out)
        return lines


def count_samples(samples: list[Sample]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for sample in samples:
        per_class = counts.setdefault(sample.category, {name: 0 for name in CLASS_NAMES})
        per_class[CLASS_NAMES[sample.label]] += 1
    return dict(sorted(counts.items()))


def describe_samples(title: str, samples: list[Sample]) -> list[str]:
    """One summary line, then one line per category when there are categories."""
    counts = count_samples(samples)
    real = sum(c["real"] for c in counts.values())
    fake = sum(c["fake"] for c in counts.values())
    named = {k: v for k, v in counts.items() if k}
    head = f"{title}: {real + fake} images ({real} real, {fake} fake)"
    if not named:
        return [head]
    lines = [f"{head} in {len(named)} categories"]
    lines.extend(f"  {name}: {c['real']} real, {c['fake']} fake" for name, c in named.items())
    return lines


def _readable_dir(path: Path, what: str) -> None:
    if not path.exists():
        raise LayoutError(f"{what} {path} does not exist")
    if not path.is_dir():
        raise LayoutError(f"{what} {path} is not a directory")
    if not os.access(path, os.R_OK | os.X_OK):
        raise LayoutError(f"cannot read {what} {path}: permission denied")


def _subdirs(path: Path) -> list[str]:
    """Sub-folders that can be categories or splits: system junk and hidden folders never are."""
    try:
        with os.scandir(path) as entries:
            names = [e.name for e in entries if e.is_dir() and not (is_system_junk(e.name) or is_hidden(e.name))]
    except OSError as exc:
        raise LayoutError(f"cannot read {path}: {exc.strerror or exc}") from None
    return sorted(names)


@dataclass
class _Found:
    """What collecting a layout gathers besides its samples."""

    root: Path
    discovery: DiscoveryConfig
    ignored: list[str] = field(default_factory=list)
    left_out: LeftOut = field(default_factory=LeftOut)


def _class_samples(folder: Path, label: int, category: str, found: _Found) -> list[Sample]:
    """All images of one class folder; a missing, unreadable or empty class folder is refused."""
    _readable_dir(folder, f"{CLASS_NAMES[label]} class folder")
    listing = list_images(folder, found.discovery, root=found.root)
    found.left_out.extend(listing.left_out)
    if not listing.images:
        left_out = listing.left_out.describe()
        raise LayoutError(f"{folder} holds no images; every class needs at least one" + (f" ({left_out})" if left_out else ""))
    return [Sample(path, label, category) for path in listing.images]


def _classes(folder: Path, names: dict[str, int], category: str, found: _Found) -> list[Sample]:
    samples: list[Sample] = []
    for name, label in names.items():
        samples.extend(_class_samples(folder / name, label, category, found))
    return samples


def _has_classes(folder: Path, names: dict[str, int]) -> bool:
    return any((folder / name).is_dir() for name in names)


def _wang_split(folder: Path, found: _Found) -> list[Sample]:
    """``{0_real,1_fake}`` directly, or one level of categories that each hold them."""
    if _has_classes(folder, WANG_CLASSES):
        return _classes(folder, WANG_CLASSES, "", found)
    samples: list[Sample] = []
    for name in _subdirs(folder):
        if _has_classes(folder / name, WANG_CLASSES):
            samples.extend(_classes(folder / name, WANG_CLASSES, name, found))
        else:
            found.ignored.append(os.path.relpath(folder / name, found.root))
    return samples


def _match_plain(root: Path) -> bool:
    return _has_classes(root, WANG_CLASSES)


def _collect_plain(root: Path, found: _Found) -> dict[str, list[Sample]]:
    found.ignored.extend(name for name in _subdirs(root) if name not in WANG_CLASSES)
    return {"train": _classes(root, WANG_CLASSES, "", found)}


def _split_dirs(root: Path) -> list[Path]:
    return [root / split for split in SPLITS if (root / split).is_dir()]


def _match_genimage(root: Path) -> bool:
    return any(_has_classes(split, GENIMAGE_CLASSES) for split in _split_dirs(root))


def _collect_genimage(root: Path, found: _Found) -> dict[str, list[Sample]]:
    found.ignored.extend(name for name in _subdirs(root) if name not in SPLITS)
    return {split.name: _classes(split, GENIMAGE_CLASSES, "", found) for split in _split_dirs(root)}


def _match_wang(root: Path) -> bool:
    if _has_classes(root, WANG_CLASSES):
        return False
    candidates = _split_dirs(root) or [root]
    for folder in candidates:
        if _has_classes(folder, WANG_CLASSES):
            return True
        if any(_has_classes(folder / name, WANG_CLASSES) for name in _subdirs(folder)):
            return True
    return False


def _collect_wang(root: Path, found: _Found) -> dict[str, list[Sample]]:
    splits = _split_dirs(root)
    if not splits:
        return {"train": _wang_split(root, found)}
    found.ignored.extend(name for name in _subdirs(root) if name not in SPLITS)
    return {split.name: _wang_split(split, found) for split in splits}


@dataclass(frozen=True)
class _LayoutRule:
    kind: str
    pattern: str
    match: Callable[[Path], bool]
    collect: Callable[[Path, _Found], dict[str, list[Sample]]]


_LAYOUTS = (
    _LayoutRule("wang2020", "DIR/[train|val]/<category>/{0_real,1_fake}", _match_wang, _collect_wang),
    _LayoutRule("plain", "DIR/{0_real,1_fake}", _match_plain, _collect_plain),
    _LayoutRule("genimage", "DIR/{train,val}/{ai,nature}", _match_genimage, _collect_genimage),
)


def detect_layout(root: str | os.PathLike[str], discovery: DiscoveryConfig | None = None) -> DatasetLayout:
    """Recognise the layout of a labelled dataset folder and list its images.

    ``discovery`` globs are matched against paths relative to ``root``.

    Raises:
        LayoutError: the root is missing or unreadable, fits no layout or more than one, a class
            folder is empty, or there are no images at all.
    """
    root = Path(root)
    _readable_dir(root, "dataset root")
    matches = [rule for rule in _LAYOUTS if rule.match(root)]
    if not matches:
        patterns = "; ".join(rule.pattern for rule in _LAYOUTS)
        raise LayoutError(
            f"{root} fits no known dataset layout (expected one of: {patterns}; or pass `real` and `fake`)"
        )
    if len(matches) > 1:
        raise LayoutError(
            f"{root} fits more than one layout ({', '.join(r.kind for r in matches)}); "
            "point `data` at a folder that fits one"
        )
    rule = matches[0]
    found = _Found(root, discovery or DiscoveryConfig())
    splits = rule.collect(root, found)
    layout = DatasetLayout(rule.kind, rule.pattern, str(root), splits, found.ignored, found.left_out)
    _check_not_empty(layout)
    return layout


def folders_layout(
    real: str | os.PathLike[str], fake: str | os.PathLike[str], discovery: DiscoveryConfig | None = None
) -> DatasetLayout:
    """The explicit ``--real DIR --fake DIR`` layout: every image under each folder, recursively
    (``discovery`` globs are relative to each folder)."""
    left_out = LeftOut()
    samples: list[Sample] = []
    for folder, label in ((Path(real), REAL), (Path(fake), FAKE)):
        found = _Found(folder, discovery or DiscoveryConfig())
        samples.extend(_class_samples(folder, label, "", found))
        left_out.extend(found.left_out)
    return DatasetLayout("folders", "`real` DIR `fake` DIR", f"{real} + {fake}", {"train": samples}, left_out=left_out)


def _check_not_empty(layout: DatasetLayout) -> None:
    for split, samples in layout.splits.items():
        if not samples:
            raise LayoutError(f"{layout.root}: the {split} split holds no images")
        labels = {s.label for s in samples}
        for label in (REAL, FAKE):
            if label not in labels:
                raise LayoutError(f"{layout.root}: the {split} split has no {CLASS_NAMES[label]} images")


def split_holdout(samples: list[Sample], fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """Hold out ``fraction`` of every (category, class) group, seeded; returns (train, val).

    Raises:
        LayoutError: too few images to leave both classes on both sides.
    """
    rng = np.random.default_rng([seed, 0x5EED])
    groups: dict[tuple[str, int], list[Sample]] = {}
    for sample in samples:
        groups.setdefault((sample.category, sample.label), []).append(sample)
    train: list[Sample] = []
    val: list[Sample] = []
    for key in sorted(groups):
        group = groups[key]
        order = rng.permutation(len(group))
        count = min(max(int(round(fraction * len(group))), 1), len(group) - 1) if len(group) > 1 else 0
        val.extend(group[i] for i in sorted(order[:count]))
        train.extend(group[i] for i in sorted(order[count:]))
    for side, chosen in (("training", train), ("validation", val)):
        if {s.label for s in chosen} != {REAL, FAKE}:
            raise LayoutError(
                f"too few images to hold out a validation set ({len(samples)} in all): "
                f"the {side} side would lack a class; "
                "pass `val` DIR or add images"
            )
    return train, val


def balanced_subset(samples: list[Sample], size: int, seed: int) -> list[Sample]:
    """``size // 2`` real and the rest fake, drawn without replacement with a seeded generator.

    Raises:
        ConfigError: a class has fewer images than its half of ``size``.
    """
    rng = np.random.default_rng([seed, 0x51CE])
    chosen: list[Sample] = []
    for label, want in ((REAL, size // 2), (FAKE, size - size // 2)):
        pool = [s for s in samples if s.label == label]
        if want > len(pool):
            raise ConfigError(
                f"`train_size` {size} needs {want} {CLASS_NAMES[label]} training images but there are only {len(pool)}"
            )
        picked = sorted(rng.choice(len(pool), size=want, replace=False))
        chosen.extend(pool[i] for i in picked)
    return chosen


@dataclass
class TrainingData:
    """The images a run trains and validates on, and where they came from.

    Attributes:
        layout: the training layout as detected (before any hold-out or sub-sampling).
        train: training samples.
        val: validation samples (both classes present).
        val_source: how the validation set was chosen, for the user and the checkpoint's provenance.
        val_layout: the layout of ``--val DIR`` when one was given.
    """

    layout: DatasetLayout
    train: list[Sample]
    val: list[Sample]
    val_source: str
    val_layout: DatasetLayout | None = None

    def describe(self) -> list[str]:
        lines = [f"layout: {self.layout.kind} ({self.layout.pattern}) at {self.layout.root}"]
        if self.layout.ignored:
            lines.append(f"ignored (not part of the layout): {', '.join(self.layout.ignored)}")
        for layout in (self.layout, self.val_layout):
            left_out = layout.left_out.describe() if layout is not None else None
            if left_out:
                lines.append(f"{left_out} in {layout.root}")
        lines.extend(describe_samples("train", self.train))
        lines.extend(describe_samples(f"val ({self.val_source})", self.val))
        return lines

    def counts(self) -> dict[str, dict[str, dict[str, int]]]:
        return {"train": count_samples(self.train), "val": count_samples(self.val)}

    def fingerprint(self) -> str:
        """A digest of the file lists, so a resumed run can tell that its data changed."""
        digest = hashlib.sha256()
        for split, samples in (("train", self.train), ("val", self.val)):
            for sample in samples:
                digest.update(f"{split}\t{sample.label}\t{sample.category}\t{os.fsdecode(sample.path)}\n".encode())
        return digest.hexdigest()


DEFAULT_VAL_FRACTION = 0.1


def sibling_val(data: str | os.PathLike[str]) -> Path | None:
    """``DIR/val`` when ``data`` is ``DIR/train``: CNNDetection's and UnivFD's training trees keep
    their validation split beside the training split, so pointing at ``train/`` still finds it."""
    root = Path(data)
    candidate = root.parent / "val"
    return candidate if root.name == "train" and candidate.is_dir() else None


def _val_samples(root: str | os.PathLike[str], discovery: DiscoveryConfig | None) -> tuple[DatasetLayout, list[Sample], bool]:
    """A validation root's layout and samples: its own val split when it has one, else all of it."""
    layout = detect_layout(root, discovery)
    split = "val" if "val" in layout.splits else "train"
    return layout, list(layout.splits[split]), split == "val"


def prepare_training_data(
    *,
    data: str | os.PathLike[str] | None = None,
    real: str | os.PathLike[str] | None = None,
    fake: str | os.PathLike[str] | None = None,
    val: str | os.PathLike[str] | None = None,
    val_fraction: float | None = None,
    train_size: int | None = None,
    seed: int = 0,
    discovery: DiscoveryConfig | None = None,
) -> TrainingData:
    """Find the training images and choose the validation set.

    Validation comes from ``val`` (its own ``val`` split when it has one, else all of it), else
    from a held-out ``val_fraction`` of the training images when that is given, else from the
    layout's own ``val`` split, else, when ``data`` is a ``train`` folder, from the ``val`` folder
    beside it, else from a held-out 10%. ``train_size`` then draws a balanced, seeded subset of
    what is left for training. ``discovery`` chooses which files are looked at.
    """
    layout = folders_layout(real, fake, discovery) if data is None else detect_layout(data, discovery)
    train = list(layout.splits["train"]) if "train" in layout.splits else []
    if not train:
        raise LayoutError(f"{layout.root} has a val split but no train split to train on")
    val_layout = None
    beside = sibling_val(data) if data is not None and val is None and val_fraction is None else None
    if val is not None:
        val_layout, held, own = _val_samples(val, discovery)
        source = f"`val` {val}" + (" (its val split)" if own else "")
    elif val_fraction is None and "val" in layout.splits:
        held = list(layout.splits["val"])
        source = "the layout's val split"
    elif beside is not None:
        val_layout, held, own = _val_samples(beside, discovery)
        source = f"the val folder beside train: {beside}" + (" (its val split)" if own else "")
    else:
        fraction = DEFAULT_VAL_FRACTION if val_fraction is None else val_fraction
        train, held = split_holdout(train, fraction, seed)
        source = f"held out {fraction:g} of the training images, seed {seed}"
    if train_size is not None:
        train = balanced_subset(train, train_size, seed)
    return TrainingData(layout=layout, train=train, val=held, val_source=source, val_layout=val_layout)
