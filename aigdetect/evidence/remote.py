"""Fetch a remote C2PA manifest, only when asked (``EvidenceConfig.c2pa_remote``), and only within caps.

A file decides where a remote manifest lives, so fetching it lets the file make the scan connect
somewhere: this is off by default. When on, the URL must be ``http`` or ``https`` (redirects too),
the whole fetch has a timeout, and the body is refused past ``max_remote_bytes`` whatever its
declared length. The C2PA library never touches the network itself: the bytes fetched here are
handed to it as an external manifest, which it verifies against the file like a sidecar.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from .config import EvidenceConfig
from .findings import MetadataError, clean_text

_SCHEMES = ("http", "https")
_CHUNK = 1 << 16


def check_url(url: str) -> str:
    """``url`` when it is an http(s) URL with a host.

    Raises:
        MetadataError: ``refused`` for any other scheme (file, ftp, data, ...) or no host.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in _SCHEMES or not parts.hostname:
        raise MetadataError("refused", f"remote C2PA manifest at {clean_text(url, 160)}: only http and https URLs are fetched")
    return url


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        check_url(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def fetch_manifest(url: str, config: EvidenceConfig) -> bytes:
    """The bytes at ``url``, at most ``config.max_remote_bytes``, within ``config.remote_timeout_s`` per operation.

    Raises:
        MetadataError: ``refused`` (not http(s)), ``too-large`` (over the cap) or ``unreadable``
            (connection, HTTP status, timeout).
    """
    check_url(url)
    name = clean_text(url, 160)
    opener = urllib.request.build_opener(_HttpOnlyRedirects)
    request = urllib.request.Request(url, headers={"Accept": "application/c2pa"})
    try:
        with opener.open(request, timeout=config.remote_timeout_s) as response:
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > config.max_remote_bytes:
                raise MetadataError(
                    "too-large", f"remote C2PA manifest at {name} is {declared} bytes, over {config.max_remote_bytes}"
                )
            body = bytearray()
            while chunk := response.read(_CHUNK):
                body += chunk
                if len(body) > config.max_remote_bytes:
                    raise MetadataError("too-large", f"remote C2PA manifest at {name} is over {config.max_remote_bytes} bytes")
            return bytes(body)
    except urllib.error.HTTPError as exc:
        raise MetadataError("unreadable", f"remote C2PA manifest at {name}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise MetadataError("unreadable", f"remote C2PA manifest at {name}: {clean_text(str(reason), 120)}") from None
