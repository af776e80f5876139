"""File discovery for ``scan``: every entry under the given paths, each exactly once, in byte order.

Unlike dataset listing (``data.files``), nothing is filtered by extension: a file that is not an
image is scanned too and reported as unsupported, so a result accounts for the whole tree. Entries
that cannot be scored at all (symlinks that are not followed, loops, unreadable folders, FIFOs)
are returned with a ``problem`` instead of being dropped.
"""

from __future__ import annotations

import heapq
import os
import stat
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ..data.config import DiscoveryConfig
from ..data.files import PathFilter
from ..data.objects import is_url
from ..errors import InputError
from ..results.paths import display_path, sort_key

NOT_FOLLOWED = ("symlink", "symbolic link, not followed (pass --follow-symlinks)")


class WalkRules:
    """Which entries inside folders a scan leaves out (system junk, hidden entries, globs), counted.

    Paths named on the command line are always scanned; the rules apply to what is found inside them,
    with globs matched against the path relative to the folder named.
    """

    def __init__(self, discovery: DiscoveryConfig | None = None) -> None:
        self.filter = PathFilter(discovery or DiscoveryConfig())
        self.skipped = 0

    def leaves_out(self, root: str, path: str, name: str, is_file: bool) -> bool:
        relative = os.path.relpath(path, root).replace(os.sep, "/")
        if self.filter.skips(name, relative) or (is_file and not self.filter.wants(relative)):
            self.skipped += 1
            return True
        return False


@dataclass(frozen=True)
class FoundFile:
    """One entry to report: a regular file to score, or something to report as an error.

    Attributes:
        path: the path as found (a str; undecodable bytes are kept via surrogate escapes).
        size: bytes, for resume matching; None when unknown.
        mtime_ns: modification time in nanoseconds, for resume matching; None when unknown.
        problem: ``(reason, detail)`` when the entry cannot be scored.
        follow: the path is (or may be) a symbolic link that the walk decided to follow; any other
            file is read without following links, so one swapped for a link after the walk is refused.
        version: an object's ETag or version id (``sources``); empty for a local file.
    """

    path: str
    size: int | None = None
    mtime_ns: int | None = None
    problem: tuple[str, str] | None = None
    follow: bool = False
    version: str = ""


def require_paths(paths: Iterable[str]) -> None:
    """Fail fast on a PATH that does not exist, before any model is loaded (URLs are checked by their listing)."""
    for path in paths:
        if not is_url(path) and not os.path.exists(path):
            broken = " (a broken symbolic link)" if os.path.islink(path) else ""
            raise InputError(f"PATH not found: {display_path(path)}{broken}")


def _special(path: str, info: os.stat_result) -> FoundFile:
    mode = info.st_mode
    kind = "fifo" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode) else "device"
    return FoundFile(path, info.st_size, info.st_mtime_ns, problem=("unsupported", f"not a regular file ({kind})"))


def _file(path: str, info: os.stat_result, follow: bool = False) -> FoundFile:
    if stat.S_ISREG(info.st_mode):
        return FoundFile(path, info.st_size, info.st_mtime_ns, follow=follow)
    return _special(path, info)


def _not_followed(path: str, info: os.stat_result) -> FoundFile:
    return FoundFile(path, info.st_size, info.st_mtime_ns, problem=NOT_FOLLOWED)


_Pending = tuple[str, os.stat_result, frozenset[tuple[int, int]], str]


class _Walker:
    """Depth-first walk with explicit stacks (depth is unlimited) that enters each real folder once.

    Real folders are all walked before symlinked ones, so a file reachable both ways is listed
    under its real path, and a link into the scanned tree is reported rather than walked again.
    """

    def __init__(self, recursive: bool, follow_symlinks: bool, rules: WalkRules) -> None:
        self.recursive = recursive
        self.follow_symlinks = follow_symlinks
        self.rules = rules
        self.entered: dict[tuple[int, int], str] = {}
        self.found: list[FoundFile] = []
        self.folders: list[_Pending] = []
        self.links: deque[_Pending] = deque()

    def add_root(self, path: str) -> None:
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            self.folders.append((path, info, frozenset(), path))
        else:
            self.found.append(_file(path, info, follow=True))

    def run(self) -> list[FoundFile]:
        while self.folders or self.links:
            if self.folders:
                self.folder(*self.folders.pop())
            else:
                self.linked_folder(*self.links.popleft())
        return self.found

    def linked_folder(self, path: str, info: os.stat_result, ancestors: frozenset[tuple[int, int]], root: str) -> None:
        key = (info.st_dev, info.st_ino)
        if key not in self.entered:
            self.folder(path, info, ancestors, root)
            return
        target = display_path(self.entered[key])
        if key in ancestors:
            self.found.append(FoundFile(path, problem=("symlink-loop", f"links back to {target}, which contains it; not entered")))
        else:
            self.found.append(FoundFile(path, problem=("duplicate", f"links to {target}, which is scanned already; not entered")))

    def folder(self, path: str, info: os.stat_result, ancestors: frozenset[tuple[int, int]], root: str) -> None:
        key = (info.st_dev, info.st_ino)
        if key in self.entered:
            return
        self.entered[key] = path
        try:
            with os.scandir(path) as listing:
                entries = sorted(listing, key=lambda e: sort_key(e.name), reverse=True)
        except OSError as exc:
            self.found.append(FoundFile(path, problem=("unreadable", f"folder cannot be listed: {exc.strerror or exc}")))
            return
        inside = ancestors | {key}
        for entry in entries:
            try:
                if not self.rules.leaves_out(root, entry.path, entry.name, not _leads_to_folder(entry)):
                    self.entry(entry, inside, root)
            except OSError as exc:
                self.found.append(FoundFile(entry.path, problem=("unreadable", exc.strerror or str(exc))))

    def entry(self, entry: os.DirEntry[str], ancestors: frozenset[tuple[int, int]], root: str) -> None:
        if entry.is_symlink():
            self.link(entry.path, ancestors, root)
        elif entry.is_dir(follow_symlinks=False):
            if self.recursive:
                self.folders.append((entry.path, entry.stat(follow_symlinks=False), ancestors, root))
        else:
            self.found.append(_file(entry.path, entry.stat(follow_symlinks=False)))

    def link(self, path: str, ancestors: frozenset[tuple[int, int]], root: str) -> None:
        if not self.follow_symlinks:
            self.found.append(_not_followed(path, os.lstat(path)))
            return
        try:
            info = os.stat(path)
        except FileNotFoundError:
            self.found.append(FoundFile(path, problem=("missing", "broken symbolic link: its target does not exist")))
            return
        except OSError as exc:
            self.found.append(FoundFile(path, problem=("symlink-loop", f"symbolic link cannot be resolved: {exc.strerror or exc}")))
            return
        if not stat.S_ISDIR(info.st_mode):
            self.found.append(_file(path, info, follow=True))
        elif self.recursive:
            self.links.append((path, info, ancestors, root))


def _leads_to_folder(entry: os.DirEntry[str]) -> bool:
    """Whether an entry is a folder or a link to one; a link that cannot be resolved (a loop) is
    not, so that it reaches the rules as a file and becomes its own row."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def walk_paths(
    paths: Iterable[str],
    *,
    recursive: bool = True,
    follow_symlinks: bool = False,
    listed: Iterable[str] = (),
    rules: WalkRules | None = None,
) -> list[FoundFile]:
    """List every entry under ``paths`` and ``listed``, sorted by the bytes of the path, each path once.

    Symbolic links named on the command line are followed; links met inside folders are reported
    as ``symlink`` rows unless ``follow_symlinks``. With ``follow_symlinks``, each real folder is
    entered once (real folders first): a link back to an ancestor is a ``symlink-loop`` row and a link
    to a folder scanned already is a ``duplicate`` row, so the walk always ends. ``listed`` paths
    (from a list file) are treated like PATHs, except that one that is missing becomes a ``missing`` row.

    Raises:
        InputError: a PATH does not exist.
    """
    paths = list(paths)
    require_paths(paths)
    walker = _Walker(recursive, follow_symlinks, rules or WalkRules())
    for path in paths:
        walker.add_root(path)
    for path in listed:
        if os.path.exists(path):
            walker.add_root(path)
        else:
            broken = "a broken symbolic link" if os.path.islink(path) else "no such file"
            walker.found.append(FoundFile(path, problem=("missing", f"listed, but {broken}")))
    unique = {f.path: f for f in reversed(walker.run())}
    return sorted(unique.values(), key=lambda f: sort_key(f.path))


def _listing(path: str) -> Iterator[os.DirEntry[str] | FoundFile]:
    """A folder's entries in the order their paths sort (a folder's name counts with its ``/``), or
    the one ``unreadable`` entry of a folder that cannot be listed."""
    try:
        with os.scandir(path) as listing:
            entries = sorted(listing, key=lambda e: os.fsencode(e.name) + (b"/" if e.is_dir(follow_symlinks=False) else b""))
    except OSError as exc:
        return iter([FoundFile(path, problem=("unreadable", f"folder cannot be listed: {exc.strerror or exc}"))])
    return iter(entries)


def _tree(root: str, info: os.stat_result, recursive: bool, rules: WalkRules) -> Iterator[FoundFile]:
    """Every entry under one folder, in the byte order of the paths, without holding the tree.

    Depth first, each folder's entries sorted with a folder's name counting as ``name/``: that
    visits the paths in exactly the order a sort of all of them would give. A folder reached twice
    (a bind mount inside itself) is entered once.
    """
    entered = {(info.st_dev, info.st_ino)}
    stack = [_listing(root)]
    while stack:
        entry = next(stack[-1], None)
        if entry is None:
            stack.pop()
            continue
        if isinstance(entry, FoundFile):
            yield entry
            continue
        try:
            folder_entry = entry.is_dir(follow_symlinks=False)
            if rules.leaves_out(root, entry.path, entry.name, not folder_entry):
                continue
            if entry.is_symlink():
                yield _not_followed(entry.path, entry.stat(follow_symlinks=False))
            elif folder_entry:
                folder = entry.stat(follow_symlinks=False)
                if recursive and (folder.st_dev, folder.st_ino) not in entered:
                    entered.add((folder.st_dev, folder.st_ino))
                    stack.append(_listing(entry.path))
            else:
                yield _file(entry.path, entry.stat(follow_symlinks=False))
        except OSError as exc:
            yield FoundFile(entry.path, problem=("unreadable", exc.strerror or str(exc)))


def walk_stream(
    paths: Iterable[str], *, recursive: bool = True, listed: Iterable[str] = (), rules: WalkRules | None = None
) -> Iterator[FoundFile]:
    """The entries of ``walk_paths`` without following links in folders, streamed: the same rows in
    the same order, while memory stays that of the deepest folder, not of the whole tree.

    Raises:
        InputError: a PATH does not exist (checked before the first entry).
    """
    paths = list(paths)
    require_paths(paths)
    loose: list[FoundFile] = []
    trees: list[Iterator[FoundFile]] = []
    for path, is_listed in [*((p, False) for p in paths), *((p, True) for p in listed)]:
        if is_listed and not os.path.exists(path):
            broken = "a broken symbolic link" if os.path.islink(path) else "no such file"
            loose.append(FoundFile(path, problem=("missing", f"listed, but {broken}")))
            continue
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            trees.append(_tree(path, info, recursive, rules or WalkRules()))
        else:
            loose.append(_file(path, info, follow=True))
    loose.sort(key=lambda f: sort_key(f.path))
    last = None
    for found in heapq.merge(iter(loose), *trees, key=lambda f: sort_key(f.path)):
        if found.path != last:
            last = found.path
            yield found
