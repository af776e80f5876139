"""Benchmark suites: the test sets of the paper's Tables 1-3, where their public releases keep them
on disk, and the generator families the paper averages over.

Discovery is strict about what counts as a subset (a folder with one of the release's names and
images in the expected places) and explicit about everything else: a subset that is absent is
listed as missing, one that is present but has no usable images is skipped with a note, and a
root where nothing matches raises a ``LayoutError`` that names the expected folders.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..data.config import GENIMAGE_FOLDERS, WANG_FOLDERS, DiscoveryConfig
from ..data.files import LeftOut, list_images
from ..errors import ConfigError, InputError, LayoutError
from ..registry import Registry

Layout = Literal["wang2020", "diffusion", "genimage"]

REAL_FOLDER, FAKE_FOLDER = WANG_FOLDERS
GENIMAGE_REAL, GENIMAGE_FAKE = GENIMAGE_FOLDERS
GENIMAGE_SPLIT = "val"
# Subset folders are looked for at most this many levels below --root, so that one root can hold
# e.g. CNN/test/<subset> and diffusion_datasets/<subset> side by side.
SEARCH_DEPTH = 3


def normalize_name(name: str) -> str:
    """Folder-name key that ignores case and separators: 'SD v1.4' and 'sd_v1_4' compare equal."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


@dataclass(frozen=True)
class Subset:
    """One test set (one column of a paper table).

    Attributes:
        key: stable identifier used in results files.
        title: the paper's column name.
        family: the generator family the paper averages it into (None: no family).
        folders: on-disk names accepted for it; the first is the release's spelling.
        layout: how its images are arranged (see ``discover``).
        real_folders: for the diffusion_datasets layout, the sibling folder holding its reals.
    """

    key: str
    title: str
    family: str | None
    folders: tuple[str, ...]
    layout: Layout
    real_folders: tuple[str, ...] = ()

    def matches(self, name: str) -> bool:
        return normalize_name(name) in {normalize_name(f) for f in self.folders}


@dataclass(frozen=True)
class Suite:
    """A benchmark: its subsets in the paper's column order and its family order."""

    name: str
    title: str
    subsets: tuple[Subset, ...]
    families: tuple[str, ...]
    description: str

    def __post_init__(self) -> None:
        keys = [s.key for s in self.subsets]
        if len(set(keys)) != len(keys):
            raise ConfigError(f"suite {self.name}: duplicate subset keys in {keys}")
        unknown = {s.family for s in self.subsets if s.family is not None} - set(self.families)
        if unknown:
            raise ConfigError(f"suite {self.name}: subsets use families {sorted(unknown)} not in {self.families}")

    def family_members(self) -> dict[str, list[str]]:
        """Subset keys per family, in family order; empty when the suite has fewer than two families."""
        if len(self.families) < 2:
            return {}
        return {f: [s.key for s in self.subsets if s.family == f] for f in self.families}

    def expected_folders(self) -> list[str]:
        names = [s.folders[0] for s in self.subsets]
        reals = sorted({f for s in self.subsets for f in s.real_folders[:1]})
        return names + [f"{r} (reals)" for r in reals]


def _cnn(key: str, title: str, family: str, *folders: str) -> Subset:
    return Subset(key, title, family, folders or (key,), "wang2020")


def _diffusion(key: str, title: str, family: str, real: str) -> Subset:
    return Subset(key, title, family, (key,), "diffusion", (real,))


def _genimage(key: str, title: str, family: str, *folders: str) -> Subset:
    return Subset(key, title, family, folders, "genimage")


GAN, DEEPFAKES, LOW_LEVEL, PERCEPTUAL = "GAN", "Deepfakes", "Low-level vision", "Perceptual loss"
DIFFUSION, AUTOREGRESSIVE = "Diffusion", "Autoregressive"

SUITES: Registry[Suite] = Registry(
    "suite",
    (
        Suite(
            name="univfd",
            title="UnivFD test sets (Tables 1 and 2)",
            subsets=(
                _cnn("progan", "ProGAN", GAN),
                _cnn("cyclegan", "CycleGAN", GAN),
                _cnn("biggan", "BigGAN", GAN),
                _cnn("stylegan", "StyleGAN", GAN),
                _cnn("gaugan", "GauGAN", GAN),
                _cnn("stargan", "StarGAN", GAN),
                _cnn("deepfake", "Deepfakes", DEEPFAKES, "deepfake", "deepfakes"),
                _cnn("sitd", "SITD", LOW_LEVEL, "seeingdark", "sitd"),
                _cnn("san", "SAN", LOW_LEVEL),
                _cnn("crn", "CRN", PERCEPTUAL),
                _cnn("imle", "IMLE", PERCEPTUAL),
                _diffusion("guided", "Guided", DIFFUSION, "imagenet"),
                _diffusion("ldm_200", "LDM 200 steps", DIFFUSION, "laion"),
                _diffusion("ldm_200_cfg", "LDM 200 w/CFG", DIFFUSION, "laion"),
                _diffusion("ldm_100", "LDM 100 steps", DIFFUSION, "laion"),
                _diffusion("glide_100_27", "GLIDE 100-27", DIFFUSION, "laion"),
                _diffusion("glide_50_27", "GLIDE 50-27", DIFFUSION, "laion"),
                _diffusion("glide_100_10", "GLIDE 100-10", DIFFUSION, "laion"),
                _diffusion("dalle", "DALL-E", AUTOREGRESSIVE, "laion"),
            ),
            families=(GAN, DEEPFAKES, LOW_LEVEL, PERCEPTUAL, DIFFUSION, AUTOREGRESSIVE),
            description="CNNDetection test set (<subset>/[category/]0_real|1_fake) and UnivFD's "
            "diffusion_datasets (<subset>/[1_fake], reals in imagenet/ for guided, laion/ for the rest)",
        ),
        Suite(
            name="genimage",
            title="GenImage (Table 3)",
            subsets=(
                _genimage("biggan", "BigGAN", GAN, "BigGAN", "imagenet_ai_0419_biggan"),
                _genimage("adm", "ADM", DIFFUSION, "ADM", "imagenet_ai_0508_adm"),
                _genimage("glide", "GLIDE", DIFFUSION, "glide", "imagenet_glide"),
                _genimage("midjourney", "Midjourney", DIFFUSION, "Midjourney", "imagenet_midjourney"),
                _genimage(
                    "sdv14", "SD v1.4", DIFFUSION, "stable_diffusion_v_1_4", "imagenet_ai_0419_sdv4", "sd_v1_4", "sdv1.4"
                ),
                _genimage(
                    "sdv15", "SD v1.5", DIFFUSION, "stable_diffusion_v_1_5", "imagenet_ai_0424_sdv5", "sd_v1_5", "sdv1.5"
                ),
                _genimage("vqdm", "VQDM", DIFFUSION, "VQDM", "imagenet_ai_0419_vqdm"),
                _genimage("wukong", "Wukong", DIFFUSION, "wukong", "imagenet_ai_0424_wukong"),
            ),
            families=(GAN, DIFFUSION),
            description="GenImage release (<generator>/[imagenet_*/]val/ai|nature)",
        ),
        Suite(
            name="dalle2",
            title="DALL-E 2 test set of DIRE (Table 3)",
            subsets=(
                Subset("dalle2", "DALL-E 2", DIFFUSION, ("dalle2", "dalle_2", "dall-e-2"), "diffusion", ("real",)),
            ),
            families=(DIFFUSION,),
            description="0_real and 1_fake directly under --root or under a dalle2/ folder, or DIRE's "
            "<split>/<domain>/{real,dalle2} (fakes in dalle2/, reals in the real/ beside it)",
        ),
    ),
)


def folder_suite(name: str) -> Suite:
    """The one-subset suite of ``bench folder --name NAME``."""
    if not name.strip():
        raise ConfigError("`name` must not be empty")
    key = re.sub(r"[^A-Za-z0-9_.-]+", "_", name.strip()).strip("_") or "folder"
    subset = Subset(key, name.strip(), None, (key,), "wang2020")
    return Suite("folder", "Folder pair", (subset,), (), "any --real and --fake folders")


@dataclass
class SubsetFiles:
    """The images found for one subset: reals first, then fakes (the order UnivFD scores them in)."""

    subset: Subset
    real: list[Path]
    fake: list[Path]
    location: str
    left_out: LeftOut = field(default_factory=LeftOut)


@dataclass
class Discovery:
    """What a root holds for a suite: usable subsets in suite order, missing ones, and notes."""

    suite: Suite
    root: str
    found: list[SubsetFiles] = field(default_factory=list)
    missing: list[Subset] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _folders(root: Path, depth: int, stop: Iterable[Subset]) -> list[Path]:
    """Directories up to ``depth`` below root, breadth first and sorted; matched subset folders are not entered."""
    stop = tuple(stop)
    found: list[Path] = []
    level = [root]
    for _ in range(depth):
        following: list[Path] = []
        for folder in level:
            try:
                with os.scandir(folder) as entries:
                    children = sorted(Path(e.path) for e in entries if e.is_dir())
            except OSError:
                continue
            for child in children:
                found.append(child)
                if not any(s.matches(child.name) for s in stop):
                    following.append(child)
        level = following
    return found


def _split_labelled(folder: Path, discovery: DiscoveryConfig, left_out: LeftOut) -> tuple[list[Path], list[Path], list[Path]]:
    """Images below ``folder`` split by a 0_real / 1_fake path component (UnivFD's must_contain),
    plus all images, so one walk serves every layout; what was not taken goes to ``left_out``."""
    listing = list_images(folder, discovery)
    left_out.extend(listing.left_out)
    real, fake = [], []
    for path in listing.images:
        parts = path.relative_to(folder).parts
        if REAL_FOLDER in parts:
            real.append(path)
        elif FAKE_FOLDER in parts:
            fake.append(path)
    return real, fake, listing.images


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix() or "."
    except ValueError:
        return str(path)


def _sibling(folder: Path, names: tuple[str, ...]) -> Path | None:
    wanted = {normalize_name(n) for n in names}
    try:
        siblings = sorted(p for p in folder.parent.iterdir() if p.is_dir() and normalize_name(p.name) in wanted)
    except OSError:
        return None
    return siblings[0] if siblings else None


def _genimage_split(folder: Path) -> Path | None:
    """The ``val`` folder holding ai/ and nature/, at the subset folder or one level below it."""
    candidates = [folder / GENIMAGE_SPLIT]
    try:
        candidates += [c / GENIMAGE_SPLIT for c in sorted(folder.iterdir()) if c.is_dir()]
    except OSError:
        return None
    for split in candidates:
        if (split / GENIMAGE_FAKE).is_dir() and (split / GENIMAGE_REAL).is_dir():
            return split
    return None


def _collect(subset: Subset, folder: Path, root: Path, discovery: DiscoveryConfig) -> SubsetFiles | str:
    """Images of one subset from its folder, or a note saying why there are none."""
    where = _relative(folder, root)
    left_out = LeftOut()
    if subset.layout == "wang2020":
        real, fake, _ = _split_labelled(folder, discovery, left_out)
        if not real and not fake:
            return f"{subset.title}: skipped, no images under {REAL_FOLDER}/ or {FAKE_FOLDER}/ in {where}"
    elif subset.layout == "diffusion":
        real, fake, everything = _split_labelled(folder, discovery, left_out)
        if not (real and fake):
            # The release's shape: fakes here (loose or under 1_fake/), reals in a sibling folder.
            fake = fake or ([] if real else everything)
            real_folder = _sibling(folder, subset.real_folders)
            if real_folder is None:
                return f"{subset.title}: skipped, its reals folder {subset.real_folders[0]}/ is not beside {where}"
            real_labelled, _, real_everything = _split_labelled(real_folder, discovery, left_out)
            real = real_labelled or real_everything
            where = f"{where} + {_relative(real_folder, root)}"
    else:
        split = _genimage_split(folder)
        if split is None:
            return f"{subset.title}: skipped, no {GENIMAGE_SPLIT}/{GENIMAGE_FAKE} and {GENIMAGE_SPLIT}/{GENIMAGE_REAL} in {where}"
        real_listing, fake_listing = (list_images(split / name, discovery) for name in (GENIMAGE_REAL, GENIMAGE_FAKE))
        real, fake = real_listing.images, fake_listing.images
        left_out.extend(real_listing.left_out)
        left_out.extend(fake_listing.left_out)
        where = _relative(split, root)
    if not real or not fake:
        note = left_out.describe()
        return (
            f"{subset.title}: skipped, {len(real)} real and {len(fake)} fake images in {where} (both are needed)"
            + (f"; {note}" if note else "")
        )
    return SubsetFiles(subset, real, fake, where, left_out)


def _outermost(paths: list[Path]) -> list[Path]:
    return [p for p in paths if not any(o != p and o in p.parents for o in paths)]


def discover(suite: Suite, root: str | os.PathLike[str], discovery: DiscoveryConfig | None = None) -> Discovery:
    """Find the suite's subsets under ``root``.

    A one-subset suite (dalle2) also accepts ``root`` itself as the subset folder: holding
    ``0_real``/``1_fake``, or holding the fakes with its reals in a ``real`` folder beside it. Files
    are taken by content (``data.files``); each subset's files that are not images, or were skipped
    (system, hidden or excluded by ``discovery``, whose globs are relative to each subset folder),
    become a note.

    Raises:
        InputError: root is not a directory.
        LayoutError: nothing under root matches the suite, or a subset's folder name occurs twice
            with images in both places (the run would otherwise pick one silently).
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"`root` {root} is not a directory")
    found = Discovery(suite, str(root))
    folders = _folders(root, SEARCH_DEPTH, suite.subsets)
    for subset in suite.subsets:
        matches = _outermost([f for f in folders if subset.matches(f.name)])
        if not matches and len(suite.subsets) == 1 and subset.layout in ("wang2020", "diffusion"):
            matches = [root]
        outcomes = [_collect(subset, folder, root, discovery or DiscoveryConfig()) for folder in matches]
        usable = [o for o in outcomes if isinstance(o, SubsetFiles)]
        if len(usable) > 1:
            places = ", ".join(o.location for o in usable)
            raise LayoutError(f"{subset.title} was found in several places under {root} ({places}); point `root` at one tree")
        if usable:
            found.found.append(usable[0])
            left_out = usable[0].left_out.describe()
            if left_out:
                found.notes.append(f"{subset.title}: {left_out}")
        elif outcomes:
            found.notes.extend(o for o in outcomes if isinstance(o, str))
        else:
            found.missing.append(subset)
    if not found.found:
        raise LayoutError(_no_layout_message(suite, root, found.notes))
    return found


def _no_layout_message(suite: Suite, root: Path, notes: list[str]) -> str:
    try:
        entries = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())
    except OSError:
        entries = []
    shown = ", ".join(entries[:12]) + (f" (+{len(entries) - 12} more)" if len(entries) > 12 else "")
    message = (
        f"{root} does not look like the {suite.name} layout: expected {suite.description}, "
        f"with folders such as {', '.join(suite.expected_folders())}; found: {shown or 'nothing'}"
    )
    return message + (f"; {'; '.join(notes)}" if notes else "")


def discover_pair(
    real: str | os.PathLike[str], fake: str | os.PathLike[str], name: str, discovery: DiscoveryConfig | None = None
) -> Discovery:
    """The ``bench folder`` case: every image under ``real`` is real, every image under ``fake`` is fake.

    Files are taken by content; the ones left out become a note (see ``discover``).

    Raises:
        InputError: a folder is missing, holds no images, or lies inside the other.
    """
    suite = folder_suite(name)
    folders = {"real": Path(real), "fake": Path(fake)}
    images: dict[str, list[Path]] = {}
    for option, folder in folders.items():
        if not folder.is_dir():
            raise InputError(f"`{option}` {folder} is not a directory")
    real_dir, fake_dir = (folders[o].resolve() for o in ("real", "fake"))
    if real_dir == fake_dir or real_dir in fake_dir.parents or fake_dir in real_dir.parents:
        raise InputError(f"`real` {real} and `fake` {fake} overlap; each image must have one label")
    left_out = LeftOut()
    for option, folder in folders.items():
        listing = list_images(folder, discovery)
        images[option] = listing.images
        left_out.extend(listing.left_out)
        if not listing.images:
            note = listing.left_out.describe()
            raise InputError(f"`{option}` {folder} holds no image files" + (f" ({note})" if note else ""))
    location = f"{folders['real']} + {folders['fake']}"
    found = SubsetFiles(suite.subsets[0], images["real"], images["fake"], location, left_out)
    note = left_out.describe()
    notes = [f"{suite.subsets[0].title}: {note}"] if note else []
    return Discovery(suite, f"{folders['real']} | {folders['fake']}", [found], notes=notes)

