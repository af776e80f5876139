"""Where a scan's entries come from: local paths (``walk``) and objects in stores, listed through fsspec.

A URL names one object or a prefix; every object under a prefix becomes one entry, as a file in a
folder does, with the size, time and version (ETag or version id) of its listing, so ``resume``
sees a changed object and the fetch refuses one that changed since. The discovery rules (hidden
entries, globs) apply to the path under the prefix. Local and remote entries are merged in the byte
order of their paths, the order of every output.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from typing import Any

from ..data.objects import filesystem, full_url, is_url, mtime_ns, version
from ..errors import ConfigError, InputError
from ..results.paths import display_path, sort_key
from .walk import FoundFile, WalkRules, walk_paths, walk_stream

_DIRECTORY = "directory"


def split_urls(paths: Iterable[str]) -> tuple[list[str], list[str]]:
    """(local paths, URLs) of the PATHs, each in the order given."""
    paths = list(paths)
    return [p for p in paths if not is_url(p)], [p for p in paths if is_url(p)]


def _found(fs: Any, path: str, info: dict[str, Any]) -> FoundFile:
    return FoundFile(full_url(fs, path), int(info.get("size") or 0), mtime_ns(info), version=version(info))


def list_objects(url: str, *, recursive: bool, rules: WalkRules, storage_options: dict[str, Any] | None) -> list[FoundFile]:
    """Every object under ``url`` (or the object itself), in path order.

    Raises:
        InputError: the URL names nothing, or its listing is refused (credentials, a missing bucket).
    """
    fs, root = filesystem(url, storage_options)
    try:
        if not fs.isdir(root):
            return [_found(fs, root, fs.info(root))]
        listing = fs.find(root, maxdepth=None if recursive else 1, detail=True)
    except FileNotFoundError:
        raise InputError(f"PATH not found: {display_path(url)}") from None
    except PermissionError:
        raise InputError(f"{display_path(url)}: listing refused (403); check the credentials") from None
    except TypeError as exc:  # s3fs and others check their options when the first request is made
        raise ConfigError(f"cannot open {display_path(url)} with these `storage_options` ({exc})") from None
    except OSError as exc:
        raise InputError(f"{display_path(url)}: cannot list ({' '.join(str(exc).split())[:200]})") from None
    found = []
    for path, info in listing.items():
        if info.get("type") == _DIRECTORY:
            continue
        name = path.rstrip("/").rsplit("/", 1)[-1]
        if not rules.leaves_out(root, path, name, True):
            found.append(_found(fs, path, info))
    return sorted(found, key=lambda f: sort_key(f.path))


def entries(paths: Iterable[str], *, listed: Iterable[str] = (), recursive: bool = True, follow_symlinks: bool = False,
            rules: WalkRules, storage_options: dict[str, Any] | None = None) -> Iterator[FoundFile]:  # fmt: skip
    """Every entry of a scan, local and remote, once each, in path order."""
    local, urls = split_urls(paths)
    listed_local, listed_urls = split_urls(listed)
    if follow_symlinks:
        walked: Iterator[FoundFile] = iter(
            walk_paths(local, recursive=recursive, follow_symlinks=True, listed=listed_local, rules=rules)
        )
    else:
        walked = walk_stream(local, recursive=recursive, listed=listed_local, rules=rules)
    if not urls and not listed_urls:
        yield from walked
        return
    remote = [f for url in (*urls, *listed_urls) for f in list_objects(url, recursive=recursive, rules=rules,
                                                                     storage_options=storage_options)]  # fmt: skip
    remote.sort(key=lambda f: sort_key(f.path))
    last = None
    for found in heapq.merge(walked, iter(remote), key=lambda f: sort_key(f.path)):
        if found.path != last:
            last = found.path
            yield found
