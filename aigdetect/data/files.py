"""Which files under a folder are images: one rule for train, bench and routes (scan reports every file).

A file is an image when one of the allow-listed decoders accepts its first bytes (Pillow's own
identification check, ``images.header_format``), whatever it is called: ``.heic``, ``.avif``,
``.jfif`` and misnamed files count, a text file named ``photo.jpg`` does not. Nothing is decoded
and at most ``HEADER_BYTES`` are read per file. Operating-system junk (``is_system_junk``) is
always skipped, hidden files and folders unless asked for, and ``DiscoveryConfig`` globs narrow the
rest; whatever is left out is counted, so nothing disappears silently.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputFileError
from ..fileio import open_input
from .config import DiscoveryConfig

SYSTEM_JUNK = frozenset(
    {".ds_store", "thumbs.db", "ehthumbs.db", "desktop.ini", ".spotlight-v100", ".trashes", ".fseventsd", "@eadir", "__macosx"}
)
"""Names (compared case-insensitively) that operating systems and NAS boxes leave beside photos."""


def is_system_junk(name: str) -> bool:
    """Whether a file or folder name is operating-system junk: ``SYSTEM_JUNK`` or an AppleDouble
    ``._*`` file (macOS resource forks, which copy the name of the image they belong to)."""
    return name.startswith("._") or name.lower() in SYSTEM_JUNK


def is_hidden(name: str) -> bool:
    """Whether a name is hidden by the Unix convention (a leading dot)."""
    return name.startswith(".")


def _glob_regex(glob: str) -> str:
    """A glob as a regular expression over a relative path: ``**`` crosses folders, ``*`` and ``?``
    stay within one name, ``[...]`` is a character class as in fnmatch."""
    out, i = [], 0
    while i < len(glob):
        char = glob[i]
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif char == "*":
            out.append("[^/]*")
            i += 1
        elif char == "?":
            out.append("[^/]")
            i += 1
        elif char == "[" and "]" in glob[i + 2 :]:
            end = glob.index("]", i + 2)
            body = glob[i + 1 : end]
            negate = body.startswith("!")
            body = re.sub(r"([\\^\]])", r"\\\1", body[1:] if negate else body)
            out.append(f"[{'^/' if negate else ''}{body}]")
            i = end + 1
        else:
            out.append(re.escape(char))
            i += 1
    body = "".join(out)
    return body if "/" in glob else f"(?:.*/)?{body}"


class PathFilter:
    """``DiscoveryConfig`` as a predicate over names and paths relative to a listing's root."""

    def __init__(self, config: DiscoveryConfig) -> None:
        self.hidden = config.hidden
        self.include = re.compile("|".join(f"(?:{_glob_regex(g)})" for g in config.include)) if config.include else None
        self.exclude = re.compile("|".join(f"(?:{_glob_regex(g)})" for g in config.exclude)) if config.exclude else None

    def skips(self, name: str, relative: str) -> bool:
        """Whether an entry (a file or a folder) is left out before its content is looked at."""
        if is_system_junk(name) or (is_hidden(name) and not self.hidden):
            return True
        return self.exclude is not None and self.exclude.fullmatch(relative) is not None

    def wants(self, relative: str) -> bool:
        """Whether a file that is not skipped passes the ``include`` globs."""
        return self.include is None or self.include.fullmatch(relative) is not None


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """Whether an allow-listed decoder accepts the file's first bytes (it may still fail to decode).

    Links are followed, as decoding follows them; FIFOs, devices and unreadable files are not images.
    """
    from .images import HEADER_BYTES, header_format  # Pillow and its plugins: not for light commands

    try:
        handle, _ = open_input(path, follow_symlinks=True)
    except InputFileError:
        return False
    with handle:
        try:
            prefix = os.read(handle.fileno(), HEADER_BYTES)  # unbuffered: these bytes and no more
        except OSError:
            return False
    return header_format(prefix, os.fsdecode(path)) is not None


@dataclass
class LeftOut:
    """Files a listing did not take, counted so that nothing disappears silently.

    Attributes:
        not_images: files whose first bytes no allow-listed decoder accepts (or that cannot be opened).
        skipped: entries never looked at: system junk, hidden or excluded files and folders, links
            to folders (a folder counts once).
        unreadable: folders that could not be listed.
    """

    not_images: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    unreadable: list[Path] = field(default_factory=list)

    def extend(self, other: LeftOut) -> None:
        self.not_images.extend(other.not_images)
        self.skipped.extend(other.skipped)
        self.unreadable.extend(other.unreadable)

    def describe(self) -> str | None:
        """One line saying what was left out, or None when nothing was."""
        parts = []
        if self.not_images:
            example = os.fsdecode(self.not_images[0])
            parts.append(f"{_count(self.not_images, 'file', 'files')} that no image decoder accepts (e.g. {example})")
        if self.skipped:
            kind = "system, hidden or excluded"
            parts.append(f"{_count(self.skipped, f'{kind} entry', f'{kind} entries')} skipped")
        if self.unreadable:
            example = os.fsdecode(self.unreadable[0])
            parts.append(f"{_count(self.unreadable, 'folder', 'folders')} that cannot be listed (e.g. {example})")
        return f"left out {'; '.join(parts)}" if parts else None


def _count(items: list[Path], singular: str, plural: str) -> str:
    return f"1 {singular}" if len(items) == 1 else f"{len(items)} {plural}"


@dataclass
class ImageListing:
    """The images under a folder, sorted for reproducibility, and what was left out."""

    images: list[Path] = field(default_factory=list)
    left_out: LeftOut = field(default_factory=LeftOut)


def list_images(
    folder: str | os.PathLike[str], discovery: DiscoveryConfig | None = None, *, root: str | os.PathLike[str] | None = None
) -> ImageListing:
    """The image files under ``folder`` (recursively) by content, in sorted order.

    Symbolic links to files are taken (decoding follows them); links to folders are not entered.

    Args:
        folder: where to look.
        discovery: hidden files and include / exclude globs; by default hidden entries are skipped.
        root: the folder that globs are relative to (default: ``folder``), e.g. a dataset's root.
    """
    folder = Path(folder)
    base = Path(root) if root is not None else folder
    rules = PathFilter(discovery or DiscoveryConfig())
    listing = ImageListing()
    left_out = listing.left_out

    def unreadable(error: OSError) -> None:
        left_out.unreadable.append(Path(os.fsdecode(error.filename)) if error.filename else folder)

    for current, dirs, files in os.walk(folder, onerror=unreadable, followlinks=False):
        here = Path(current)
        entered = []
        for name in sorted(dirs):
            path = here / name
            if path.is_symlink() or rules.skips(name, path.relative_to(base).as_posix()):
                left_out.skipped.append(path)
            else:
                entered.append(name)
        dirs[:] = entered
        for name in sorted(files):
            path = here / name
            relative = path.relative_to(base).as_posix()
            if rules.skips(name, relative) or not rules.wants(relative):
                left_out.skipped.append(path)
            elif is_image_file(path):
                listing.images.append(path)
            else:
                left_out.not_images.append(path)
    return listing
