"""The service's settings, validated once: where it listens, who may call it, and how much it takes in.

Secure by default: it listens on the loopback interface, and listening anywhere else needs a
bearer token (``token_file``) unless ``no_token`` says on purpose that the network is trusted.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field

from ..errors import ConfigError, InputError
from ..fileio import open_input, read_capped

MAX_TOKEN_BYTES = 4096
MIN_TOKEN_CHARS = 16


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServeConfig:
    """How ``aigdetect serve`` listens, authenticates, takes uploads and batches them.

    Raises:
        ConfigError: a value out of range, or a non-loopback host without a token or `no_token`.
    """

    host: str = field(
        default="127.0.0.1", metadata={"help": "Address to listen on; anything but loopback needs `token_file` or `no_token`."}
    )
    port: int = field(default=8000, metadata={"help": "TCP port to listen on (0 picks a free one)."})
    token_file: str | None = field(
        default=None, metadata={"help": "File holding the bearer token every API call must send (Authorization: Bearer ...)."}
    )
    no_token: bool = field(default=False, metadata={"help": "Listen beyond loopback without a token (a trusted network only)."})
    max_upload_mb: float = field(default=50.0, metadata={"help": "Largest request body, in MiB; a bigger upload gets 413."})
    max_files: int = field(default=16, metadata={"help": "Most files in one request."})
    max_batch: int = field(default=32, metadata={"help": "A batch closes at this many files, across requests."})
    max_wait_ms: float = field(default=10.0, metadata={"help": "...or this long after its first file arrived, in milliseconds."})
    max_queue: int = field(
        default=256, metadata={"help": "Files waiting to be scored, at most; a request that does not fit gets 429."}
    )
    read_timeout_s: float = field(
        default=30.0,
        metadata={"help": "A client that sends nothing for this long, in seconds, gets 408 and its upload is dropped."},
    )
    drain_timeout_s: float = field(default=60.0, metadata={"help": "On SIGTERM, how long requests in flight may take to finish."})
    token: str | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"`port` must be between 0 and 65535, got {self.port}")
        for name in ("max_files", "max_batch", "max_queue"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"`{name}` must be a positive integer, got {value!r}")
        for name in ("max_upload_mb", "read_timeout_s", "drain_timeout_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"`{name}` must be positive, got {getattr(self, name)!r}")
        if not self.max_wait_ms >= 0:
            raise ConfigError(f"`max_wait_ms` must be 0 or more, got {self.max_wait_ms!r}")
        if self.token_file is not None and self.no_token:
            raise ConfigError("`token_file` and `no_token` contradict each other; give one")
        if self.token_file is None and not self.no_token and not _loopback(self.host):
            raise ConfigError(
                f"listening on {self.host} exposes the service beyond this machine: give `token_file`, "
                "or `no_token` on a network you trust"
            )
        if self.token_file is not None:
            object.__setattr__(self, "token", read_token(self.token_file))

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * (1 << 20))


def read_token(path: str | os.PathLike[str]) -> str:
    """The bearer token in ``path``: its text without surrounding white space, printable ASCII, long enough.

    Raises:
        ConfigError: an unreadable file, or a token that is empty, short, too long or not printable ASCII.
    """
    name = os.fsdecode(path)
    try:
        handle, _ = open_input(path, follow_symlinks=True)
        with handle:
            raw = read_capped(handle, MAX_TOKEN_BYTES, name)
    except InputError as exc:
        raise ConfigError(f"`token_file`: {exc}") from None
    token = raw.decode("ascii", errors="replace").strip()
    if len(token) < MIN_TOKEN_CHARS or not all(33 <= ord(c) < 127 for c in token):
        raise ConfigError(
            f"`token_file` {name} must hold one token of at least {MIN_TOKEN_CHARS} printable ASCII characters without spaces"
        )
    return token
