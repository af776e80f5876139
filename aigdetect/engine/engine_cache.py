"""A cache of exported and converted models, so that a scan pays for export once per detector.

An entry is a folder named after its key, holding the model files and a manifest with the full key
and each file's size and SHA-256. An entry is used only when its manifest is readable, names
exactly the expected key and files, and every file hashes to what it says; anything else (a
crash half-way, a disk error, another runtime version, an edited file) is rebuilt, never trusted.
Entries are built in a private temporary folder and renamed into place, so a reader never sees a
half-built one. The hash guards against corruption and stale files, not against someone who can
write to the cache: such a person could rewrite the manifest too.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import AigdetectError, InputError
from ..fileio import open_input, read_capped
from ..version import __version__

CACHE_ENV = "AIGDETECT_CACHE_DIR"
ENGINES_FOLDER = "engines"
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "aigdetect-engine-cache/1"
MAX_MANIFEST_BYTES = 64 * 1024
_HASH_CHUNK = 1 << 20


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where engine entries live: ``cache_dir``, else ``$AIGDETECT_CACHE_DIR``, else the user cache.

    The returned folder is ``<cache>/engines``; the other two locations are the aigdetect cache
    folder itself (``platformdirs.user_cache_dir("aigdetect")`` by default).
    """
    if cache_dir is None:
        cache_dir = os.environ.get(CACHE_ENV) or None
    if cache_dir is None:
        from platformdirs import user_cache_dir

        cache_dir = user_cache_dir("aigdetect")
    return Path(cache_dir) / ENGINES_FOLDER


@dataclass(frozen=True)
class EntryKey:
    """Everything a cached model depends on; any change gives another entry.

    Attributes:
        fingerprint: the detector's fingerprint (the hex part of ``detector_id``).
        engine: what the files are for (``onnx``, ``onnxruntime``, ``openvino``).
        precision: the precision baked into the files (``fp32``, ``int8``).
        runtime: the versions of the tools that wrote the files, e.g. ``torch-2.14.1+opset18``.
        aigdetect: the aigdetect version, whose model code shaped the exported graph.
    """

    fingerprint: str
    engine: str
    precision: str
    runtime: str
    aigdetect: str = __version__

    def folder_name(self) -> str:
        text = "-".join((self.fingerprint, self.engine, self.precision, self.runtime, self.aigdetect))
        return re.sub(r"[^A-Za-z0-9._+-]", "_", text)

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a regular file, read without following a final link."""
    handle, _ = open_input(path)
    digest = hashlib.sha256()
    with handle:
        for chunk in iter(lambda: handle.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _manifest(folder: Path, key: EntryKey, files: tuple[str, ...]) -> dict:
    return {
        "format": MANIFEST_FORMAT,
        "key": key.to_dict(),
        "files": {name: {"size": (folder / name).stat().st_size, "sha256": file_sha256(folder / name)} for name in files},
    }


def entry_is_valid(folder: Path, key: EntryKey, files: tuple[str, ...]) -> bool:
    """Whether ``folder`` holds exactly ``files`` for ``key``, each matching its manifest's hash."""
    try:
        handle, _ = open_input(folder / MANIFEST_NAME)
        with handle:
            manifest = json.loads(read_capped(handle, MAX_MANIFEST_BYTES, MANIFEST_NAME))
        if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
            return False
        if manifest.get("key") != key.to_dict():
            return False
        recorded = manifest.get("files")
        if not isinstance(recorded, dict) or sorted(recorded) != sorted(files):
            return False
        for name in files:
            expected = recorded[name]
            if not isinstance(expected, dict) or (folder / name).lstat().st_size != expected.get("size"):
                return False
            if file_sha256(folder / name) != expected.get("sha256"):
                return False
    except (OSError, ValueError, AigdetectError):
        return False
    return True


def cached_entry(
    key: EntryKey,
    files: tuple[str, ...],
    build: Callable[[Path], None],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """The folder of a valid entry for ``key``, built with ``build(folder)`` when missing or invalid.

    Args:
        key: what the entry must have been built from.
        files: names ``build`` writes into the folder it is given; all of them are hashed.
        build: writes ``files`` into an empty folder.
        cache_dir: overrides the cache location (see ``cache_root``).

    Raises:
        InputError: the cache folder cannot be written.
    """
    root = cache_root(cache_dir)
    final = root / key.folder_name()
    if entry_is_valid(final, key, files):
        return final
    try:
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".build-", dir=root))
    except OSError as exc:
        raise InputError(f"cannot write the engine cache at {root}: {exc.strerror or exc}; set {CACHE_ENV} to a writable folder") from None
    try:
        build(staging)
        manifest = json.dumps(_manifest(staging, key, files), indent=2, sort_keys=True)
        (staging / MANIFEST_NAME).write_text(manifest + "\n", encoding="utf-8")
        _install(staging, final)
    except OSError as exc:
        raise InputError(f"cannot write the engine cache at {root}: {exc.strerror or exc}; set {CACHE_ENV} to a writable folder") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    if not entry_is_valid(final, key, files):
        raise InputError(f"the engine cache entry {final} changed while it was written; run again")
    return final


def _install(staging: Path, final: Path) -> None:
    """Move a built entry into place; an invalid entry already there is moved aside and deleted.

    A valid entry that another process installed in the meantime wins, and ours is discarded.
    """
    if final.is_symlink() or final.is_file():
        final.unlink()
    elif final.exists():
        trash = Path(tempfile.mkdtemp(prefix=".stale-", dir=final.parent))
        os.rename(final, trash / final.name)
        shutil.rmtree(trash, ignore_errors=True)
    try:
        os.rename(staging, final)
    except OSError:
        if not final.is_dir():
            raise
