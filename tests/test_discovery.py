"""One discovery rule for train, bench and routes: a file is an image when an allow-listed decoder
accepts its header, whatever its name; system junk and hidden entries are skipped; what is left out
is counted and reported, never dropped silently."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from conftest import write_image
from PIL import Image

from aigdetect.data import images as images_module
from aigdetect.data.config import DiscoveryConfig
from aigdetect.data.files import PathFilter, is_system_junk, list_images
from aigdetect.data.layouts import detect_layout, folders_layout, prepare_training_data
from aigdetect.errors import ConfigError, InputError
from aigdetect.evaluation.routes import expand_images
from aigdetect.evaluation.suites import discover_pair


def _smooth(size: tuple[int, int] = (40, 32), seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : size[1], 0 : size[0]]
    base = np.stack([x * 5, y * 6, (x + y) * 3], axis=-1) + rng.integers(0, 30, 3)
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))


def _save(path: Path, fmt: str, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    _smooth(seed=seed).save(path, format=fmt)
    return path


@pytest.mark.parametrize(
    "name, junk",
    [
        (".DS_Store", True), ("._IMG_0001.jpg", True), ("Thumbs.db", True), ("thumbs.DB", True), ("desktop.ini", True),
        (".Spotlight-V100", True), (".Trashes", True), (".fseventsd", True), ("@eaDir", True), ("__MACOSX", True),
        ("IMG_0001.jpg", False), (".hidden.png", False), ("_thumbs.db", False), ("DS_Store", False),
    ],
)  # fmt: skip
def test_system_junk_names(name, junk):
    assert is_system_junk(name) is junk


@pytest.mark.parametrize(
    "glob, relative, matches",
    [
        ("*.jpg", "a.jpg", True), ("*.jpg", "deep/er/a.jpg", True), ("*.jpg", "a.JPG", False), ("*.jpg", "a.jpg/b.png", False),
        ("cam1/**", "cam1/x/y.png", True), ("cam1/**", "cam2/x.png", False), ("cam1/*", "cam1/x/y.png", False),
        ("**/thumbs/*", "a/b/thumbs/x.png", True), ("**/thumbs/*", "thumbs/x.png", True), ("img?.png", "img1.png", True),
        ("img?.png", "img10.png", False), ("[!a]*.png", "b.png", True), ("[!a]*.png", "a.png", False),
        ("[ab].png", "b.png", True), ("a+b.png", "a+b.png", True), ("a+b.png", "aab.png", False),
    ],
)  # fmt: skip
def test_glob_rules(glob, relative, matches):
    assert PathFilter(DiscoveryConfig(include=(glob,))).wants(relative) is matches


@pytest.mark.parametrize(
    "kwargs, message",
    [({"include": "*.jpg"}, "`include` must be a list of glob strings"), ({"exclude": ("",)}, "`exclude` glob ''"),
     ({"exclude": ("/abs/*",)}, "relative to the folder")],
)  # fmt: skip
def test_discovery_config_refuses_bad_globs(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        DiscoveryConfig(**kwargs)


@pytest.fixture()
def mixed(tmp_path) -> Path:
    """A folder as a camera card or a NAS share leaves it: images under any name, and debris."""
    root = tmp_path / "mixed"
    _save(root / "real.png", "PNG")
    _save(root / "photo.txt", "JPEG")  # an image with the wrong extension
    _save(root / "x.jfif", "JPEG")
    _save(root / "sub" / "deep.heic", "HEIF")
    _save(root / "sub" / "deep.avif", "AVIF")
    (root / "notes.jpg").write_text("not an image, whatever its name says")
    _save(root / "._real.png", "PNG")  # AppleDouble: skipped even though its bytes look like an image
    (root / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (root / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (root / "desktop.ini").write_text("[.ShellClassInfo]")
    _save(root / "__MACOSX" / "real.png", "PNG")
    _save(root / "@eaDir" / "real.png" / "SYNOFILE_THUMB_XL.jpg", "JPEG")
    _save(root / ".hidden" / "x.png", "PNG")
    _save(root / ".secret.png", "PNG")
    os.mkfifo(root / "pipe.png")
    (root / "linked").symlink_to(root / "sub")
    return root


def test_images_are_found_by_content_and_the_rest_is_counted(mixed):
    listing = list_images(mixed)
    assert [p.relative_to(mixed).as_posix() for p in listing.images] == [
        "photo.txt", "real.png", "x.jfif", "sub/deep.avif", "sub/deep.heic"
    ]  # fmt: skip
    assert sorted(p.name for p in listing.left_out.not_images) == ["notes.jpg", "pipe.png"]
    assert sorted(p.name for p in listing.left_out.skipped) == [
        ".DS_Store", "._real.png", ".hidden", ".secret.png", "@eaDir", "Thumbs.db", "__MACOSX", "desktop.ini", "linked"
    ]  # fmt: skip
    assert listing.left_out.describe() == (
        f"left out 2 files that no image decoder accepts (e.g. {mixed / 'notes.jpg'}); "
        "9 system, hidden or excluded entries skipped"
    )


def test_hidden_and_globs(mixed):
    shown = list_images(mixed, DiscoveryConfig(hidden=True))
    names = {p.relative_to(mixed).as_posix() for p in shown.images}
    assert {".hidden/x.png", ".secret.png"} <= names and "._real.png" not in names and "__MACOSX/real.png" not in names
    narrowed = list_images(mixed, DiscoveryConfig(include=("*.png", "*.heic"), exclude=("sub/*.avif",)))
    assert [p.relative_to(mixed).as_posix() for p in narrowed.images] == ["real.png", "sub/deep.heic"]
    pruned = list_images(mixed, DiscoveryConfig(exclude=("sub",)))
    assert mixed / "sub" in pruned.left_out.skipped and not any("sub" in p.parts for p in pruned.images)


def test_listing_reads_headers_only_and_never_decodes(tmp_path, monkeypatch):
    folder = tmp_path / "many"
    folder.mkdir()
    png = (_save(tmp_path / "one.png", "PNG")).read_bytes()
    for i in range(300):
        (folder / f"{i:03d}.dat").write_bytes(png if i % 3 else b"text " * 100)
    reads: list[int] = []
    real_read = os.read

    def counted(fd: int, size: int) -> bytes:
        reads.append(size)
        return real_read(fd, size)

    def never(*args, **kwargs):
        raise AssertionError("an image was opened for decoding")

    monkeypatch.setattr(os, "read", counted)
    monkeypatch.setattr(Image, "open", never)
    monkeypatch.setattr(images_module, "open_image", never)
    listing = list_images(folder)
    assert len(listing.images) == 200 and len(listing.left_out.not_images) == 100
    assert len(reads) == 300 and max(reads) == images_module.HEADER_BYTES == 16


def test_training_layout_counts_heic_and_reports_what_it_left_out(tmp_path):
    root = tmp_path / "data"
    for i in range(3):
        _save(root / "0_real" / f"r{i}.HEIC", "HEIF", seed=i)
        _save(root / "1_fake" / f"f{i}.avif", "AVIF", seed=10 + i)
    (root / "0_real" / "readme.txt").write_text("about the photos")
    (root / "1_fake" / ".DS_Store").write_bytes(b"\x00")
    _save(root / "__MACOSX" / "1_fake" / "._f0.avif", "PNG")
    layout = detect_layout(root)
    assert layout.kind == "plain" and layout.counts() == {"train": {"": {"real": 3, "fake": 3}}}
    assert layout.ignored == []  # __MACOSX is never a category, split or stray folder
    assert f"left out 1 file that no image decoder accepts (e.g. {root / '0_real' / 'readme.txt'}); 1 system, hidden or " \
           "excluded entry skipped" in layout.describe()  # fmt: skip
    prepared = prepare_training_data(data=root, val_fraction=0.34)
    assert any(line.startswith("left out 1 file") and line.endswith(f"in {root}") for line in prepared.describe())
    only_real = DiscoveryConfig(exclude=("*.txt",))
    assert detect_layout(root, only_real).left_out.not_images == []
    with pytest.raises(InputError, match=r"holds no images; every class needs at least one \(left out 4 system"):
        folders_layout(root / "0_real", root / "1_fake", DiscoveryConfig(exclude=("*.avif",)))


def test_bench_folder_takes_avif_and_notes_the_rest(tmp_path):
    for i in range(2):
        _save(tmp_path / "real" / f"r{i}.jpg", "JPEG", seed=i)
        _save(tmp_path / "fake" / f"f{i}.avif", "AVIF", seed=5 + i)
    (tmp_path / "fake" / "prompt.txt").write_text("a cat")
    found = discover_pair(tmp_path / "real", tmp_path / "fake", "avif")
    assert [p.name for p in found.found[0].fake] == ["f0.avif", "f1.avif"]
    assert found.notes == [f"avif: left out 1 file that no image decoder accepts (e.g. {tmp_path / 'fake' / 'prompt.txt'})"]
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.jpg").write_text("x")
    with pytest.raises(InputError, match=r"`fake` .* holds no image files \(left out 1 file that no image decoder accepts"):
        discover_pair(tmp_path / "real", tmp_path / "texts", "x")


def test_routes_expand_folders_by_content(mixed, tmp_path):
    single = write_image(tmp_path / "given.bin", fmt="PNG")
    listing = expand_images([mixed / "sub", single])
    assert listing.images == [mixed / "sub" / "deep.avif", mixed / "sub" / "deep.heic", single]
    assert listing.left_out.describe() is None
