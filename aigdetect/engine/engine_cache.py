"""A cache of exported and converted models, so that a scan pays for export once per detector.

An entry is a folder named after the SHA-256 of its key (the full SHA-256 of the detector's
weights and configs, the engine, precision and tool versions), holding the model files and a
manifest with the full key and each file's size and SHA-256, sealed at build time with an HMAC
whose key (``SEAL_KEY_NAME``, random, 0600) only this cache holds. An entry is used only when its
seal, key, file list and every file's hash match; anything else (a crash half-way, a disk error,
another runtime version, an edited file, an entry planted or copied in with a manifest that
matches its files) is rebuilt, never trusted. Entries are built in a private temporary folder and
renamed into place, so a reader never sees a half-built one.

The cache folders are created 0700, whatever the umask, and a cache owned by another user or
writable by other users is refused: whoever can write there chooses the graph that scores. A
process running as you can still read the seal key; the seal stops entries that were not built by
this cache, not your own account.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import shutil
import stat
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
MANIFEST_FORMAT = "aigdetect-engine-cache/2"
MAX_MANIFEST_BYTES = 64 * 1024
SEAL_KEY_NAME = "seal.key"
SEAL_KEY_BYTES = 32
_HASH_CHUNK = 1 << 20
_PRIVATE = 0o700


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
        detector: the full SHA-256 of the detector's configs and every value of its weights.
        engine: what the files are for (``onnx``, ``onnxruntime``, ``openvino``).
        precision: the precision baked into the files (``fp32``, ``int8``).
        runtime: the versions of the tools that wrote the files, e.g. ``torch-2.14.1+opset18``.
        aigdetect: the aigdetect version, whose model code shaped the exported graph.
    """

    detector: str
    engine: str
    precision: str
    runtime: str
    aigdetect: str = __version__

    def folder_name(self) -> str:
        """The SHA-256 of the whole key: any change of any field gives another folder."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

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


def _refuse(folder: Path, why: str) -> InputError:
    return InputError(f"the engine cache {folder} {why}; set {CACHE_ENV} to a folder of your own, or fix it (chmod 700)")


def _check_private(folder: Path) -> None:
    """Refuse a cache folder that another user owns or that other users can write to."""
    info = folder.stat()
    if not stat.S_ISDIR(info.st_mode):
        raise _refuse(folder, "is not a folder")
    if info.st_uid != os.geteuid():
        raise _refuse(folder, f"belongs to another user (uid {info.st_uid})")
    if info.st_mode & 0o022:
        raise _refuse(folder, f"is writable by other users (mode {stat.S_IMODE(info.st_mode):o})")


def private_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """``cache_root(cache_dir)``, its missing folders created 0700 whatever the umask, it and the
    cache folder above it checked with ``_check_private``.

    Raises:
        InputError: a folder cannot be created, belongs to another user or is writable by others.
    """
    root = cache_root(cache_dir)
    missing = [folder for folder in (root, *root.parents) if not folder.exists()]
    try:
        for folder in reversed(missing):
            folder.mkdir(mode=_PRIVATE, exist_ok=True)
            os.chmod(folder, _PRIVATE)
        for folder in (root.parent, root):
            _check_private(folder)
    except OSError as exc:
        raise InputError(f"cannot write the engine cache at {root}: {exc.strerror or exc}; set {CACHE_ENV} to a writable folder") from None
    return root


def seal_key(root: Path) -> bytes:
    """The cache's secret seal key, created (random, 0600) on first use.

    Raises:
        InputError: the key is not a private regular file of the right size.
    """
    path = root / SEAL_KEY_NAME
    nofollow = getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | nofollow, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "wb") as out:
            out.write(secrets.token_bytes(SEAL_KEY_BYTES))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | nofollow)
    except OSError as exc:
        raise _refuse(path, f"cannot be read ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
            raise _refuse(path, "is not a private file of yours")
        key = handle.read(SEAL_KEY_BYTES + 1)
    if len(key) != SEAL_KEY_BYTES:
        raise _refuse(path, f"is not {SEAL_KEY_BYTES} bytes long")
    return key


def _seal(manifest: dict, key: bytes) -> str:
    body = {name: value for name, value in manifest.items() if name != "seal"}
    return hmac.new(key, json.dumps(body, sort_keys=True).encode(), hashlib.sha256).hexdigest()


def _manifest(folder: Path, key: EntryKey, files: tuple[str, ...], seal: bytes) -> dict:
    manifest = {
        "format": MANIFEST_FORMAT,
        "key": key.to_dict(),
        "files": {name: {"size": (folder / name).stat().st_size, "sha256": file_sha256(folder / name)} for name in files},
    }
    return {**manifest, "seal": _seal(manifest, seal)}


def entry_is_valid(folder: Path, key: EntryKey, files: tuple[str, ...], seal: bytes) -> bool:
    """Whether ``folder`` holds exactly ``files`` for ``key``, each matching its manifest's hash,
    under a manifest sealed with ``seal`` (``seal_key``)."""
    try:
        handle, _ = open_input(folder / MANIFEST_NAME)
        with handle:
            manifest = json.loads(read_capped(handle, MAX_MANIFEST_BYTES, MANIFEST_NAME))
        if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
            return False
        if not isinstance(manifest.get("seal"), str) or not hmac.compare_digest(manifest["seal"], _seal(manifest, seal)):
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
    rebuild: bool = False,
) -> Path:
    """The folder of a valid entry for ``key``, built with ``build(folder)`` when missing or invalid.

    Args:
        key: what the entry must have been built from.
        files: names ``build`` writes into the folder it is given; all of them are hashed.
        build: writes ``files`` into an empty folder.
        cache_dir: overrides the cache location (see ``cache_root``).
        rebuild: build anew even over a valid entry (one the runtime could not load).

    Raises:
        InputError: the cache folder cannot be written, belongs to another user or is writable
            by others.
    """
    root = private_root(cache_dir)
    seal = seal_key(root)
    final = root / key.folder_name()
    if not rebuild and entry_is_valid(final, key, files, seal):
        return final
    try:
        staging = Path(tempfile.mkdtemp(prefix=".build-", dir=root))
    except OSError as exc:
        raise InputError(f"cannot write the engine cache at {root}: {exc.strerror or exc}; set {CACHE_ENV} to a writable folder") from None
    try:
        build(staging)
        manifest = json.dumps(_manifest(staging, key, files, seal), indent=2, sort_keys=True)
        (staging / MANIFEST_NAME).write_text(manifest + "\n", encoding="utf-8")
        _install(staging, final)
    except OSError as exc:
        raise InputError(f"cannot write the engine cache at {root}: {exc.strerror or exc}; set {CACHE_ENV} to a writable folder") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    if not entry_is_valid(final, key, files, seal):
        raise InputError(f"the engine cache entry {final} changed while it was written; run again")
    return final


def _install(staging: Path, final: Path) -> None:
    """Move a built entry into place; an entry already there is moved aside and deleted.

    An entry that another process installed in the meantime wins, and ours is discarded.
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
