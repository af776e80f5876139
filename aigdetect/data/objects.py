"""Objects in stores reached through fsspec (``s3://``, ``gs://``, ``az://``, ``hf://``, ``https://``):
how one is fetched for a decode worker, with the caps applied before any byte comes over the wire.

An object is fetched in one ranged GET of at most the size its listing gave plus one byte, and
only when that size is within the cap; a short read, a longer one, or metadata that moved on
since the listing become an error reason of the row (``truncated``, ``changed``), as do 403
(``forbidden``) and 404 (``missing``). Throttling (S3's SlowDown, 503) is retried with
exponential backoff by the store's own client (s3fs and botocore's adaptive retries, which
``filesystem`` turns on). fsspec is imported only when a URL is scanned (``aigdetect[cloud]``).
"""

from __future__ import annotations

import io
import re
from datetime import datetime
from typing import Any

from ..errors import ConfigError, InputFileError

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
S3_RETRIES = {"retries": {"max_attempts": 10, "mode": "adaptive"}}
"""botocore's client-side rate limiting and backoff on throttling, unless the caller sets its own."""


def is_url(path: str) -> bool:
    """Whether a PATH names an object in a store (``scheme://...``) rather than a local file."""
    return bool(_URL.match(path))


def filesystem(url: str, storage_options: dict[str, Any] | None = None) -> tuple[Any, str]:
    """The fsspec filesystem of ``url`` and the path within it. Credentials come from each store's
    usual environment (``AWS_*`` with ``AWS_ENDPOINT_URL``, ``GOOGLE_APPLICATION_CREDENTIALS``,
    ``AZURE_STORAGE_*``, ``HF_TOKEN``), then ``storage_options``.

    Raises:
        ConfigError: fsspec or the store's package is missing, or the options do not fit the store.
    """
    try:
        import fsspec.core
    except ImportError:
        raise ConfigError("scanning URLs needs fsspec: pip install 'aigdetect[cloud]'") from None
    options = dict(storage_options or {})
    if url.startswith(("s3://", "s3a://")):
        options.setdefault("config_kwargs", S3_RETRIES)
    try:
        return fsspec.core.url_to_fs(url, **options)
    except ImportError as exc:
        raise ConfigError(
            f"{url.split('://')[0]}:// needs {exc.name or 'its fsspec package'}: pip install 'aigdetect[cloud]'"
        ) from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"cannot open {url} with these `storage_options` ({exc})") from None


def full_url(fs: Any, path: str) -> str:
    """The URL of an object of ``fs`` (fsspec lists paths without their scheme)."""
    return path if is_url(path) else fs.unstrip_protocol(path)


def mtime_ns(info: dict[str, Any]) -> int | None:
    """The modification time of an object's metadata, whatever the store calls it."""
    for key in ("LastModified", "last_modified", "mtime", "updated", "created"):
        value = info.get(key)
        if isinstance(value, datetime):
            return int(value.timestamp() * 1_000_000) * 1000
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return int(value * 1_000_000_000)
    return None


def version(info: dict[str, Any]) -> str:
    """What tells one version of an object from the next: its version id, else its ETag or hash."""
    for key in ("VersionId", "version_id", "ETag", "etag", "md5Hash", "blob_id", "lfs", "oid"):
        value = info.get(key)
        if value:
            return str(value).strip('"')[:200]
    return ""


def _failure(url: str, exc: BaseException) -> InputFileError:
    if isinstance(exc, FileNotFoundError):
        return InputFileError(url, "missing", "no such object (404)")
    if isinstance(exc, PermissionError):
        return InputFileError(url, "forbidden", "access denied (403)")
    return InputFileError(url, "unreadable", " ".join(str(exc).split())[:300] or type(exc).__name__)


def fetch_object(url: str, size: int | None, listed_version: str, max_bytes: int,
                 storage_options: dict[str, Any] | None = None) -> io.BytesIO:  # fmt: skip
    """Fetch an object whose listing gave ``size`` and ``listed_version``, refusing it before the GET
    when it is larger than ``max_bytes``.

    Raises:
        InputFileError: reasons ``too-large``, ``missing`` (404), ``forbidden`` (403), ``truncated``
            (fewer bytes than listed, the object unchanged), ``changed`` (another version since the
            listing) or ``unreadable`` (the store failed after its retries).
    """
    fs, path = filesystem(url, storage_options)
    try:
        if size is None:
            info = fs.info(path)
            size, listed_version = int(info.get("size") or 0), version(info)
        if size > max_bytes:
            raise InputFileError(url, "too-large", f"{size} bytes, more than the {max_bytes} allowed")
        data = fs.cat_file(path, start=0, end=size + 1) if size else b""
        if len(data) != size:
            fs.invalidate_cache(path)
            now = fs.info(path)
            if int(now.get("size") or 0) != size or (listed_version and version(now) != listed_version):
                raise InputFileError(url, "changed", "the object changed after it was listed; scan it again")
            raise InputFileError(url, "truncated", f"{len(data)} bytes read of the {size} listed")
    except InputFileError:
        raise
    except Exception as exc:  # the store's client raises its own types (botocore, aiohttp, azure)
        raise _failure(url, exc) from None
    return io.BytesIO(data)
