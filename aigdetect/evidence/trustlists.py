"""Which certificates vouch for a C2PA signature: the bundled C2PA trust lists, a replacement, extra anchors.

By default a signature is checked against the official **C2PA Trust List** (the certificate
authorities the C2PA conformance programme admits for signers) and the **C2PA TSA Trust List** (the
time-stamping authorities), both shipped in ``trust/`` with their attribution and dates. A signer
whose chain ends at one of them is *trusted*; a signature time-stamped by a listed authority while its
certificate was valid stays trusted after the certificate expires (the C2PA library checks time-stamp
certificates against the same anchors). ``--c2pa-trust-list`` replaces the signer list (a newer
download), ``--c2pa-trust`` adds anchors (a newsroom's own CA).

Every PEM file is parsed in one pass over its lines and checked before a read starts, and the whole
set must fit the C2PA library's settings string, which its C layer caps at ``MAX_SETTINGS_BYTES``:
a larger set would be accepted here and then fail every read.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ..errors import ConfigError, InputFileError
from ..fileio import open_input, read_capped

TRUST_DIR = Path(__file__).with_name("trust")
MAX_SETTINGS_BYTES = 1 << 20
"""The longest string c2pa-python's C layer accepts (``MAX_CSTRING_LEN``), the settings JSON with every anchor included."""
SETTINGS_RESERVE = 4096
"""Room kept in that string for the reading settings other than the anchors."""
_BEGIN, _END = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"


@dataclass(frozen=True)
class TrustList:
    """A set of anchor certificates and where it came from.

    Attributes:
        label: how reports name it, e.g. ``C2PA Trust List of 2026-08-05`` or ``anchors in newsroom.pem``.
        pem: the certificates, re-encoded as plain PEM blocks (no text between them).
        count: how many certificates.
    """

    label: str
    pem: str
    count: int


@dataclass(frozen=True)
class Anchors:
    """The anchors one reading uses: the signer list, the time-stamping list, and extra anchors."""

    signers: TrustList
    timestamps: TrustList
    extra: TrustList | None = None

    def settings(self) -> dict[str, str]:
        """The ``trust`` section of c2pa-python's settings."""
        section = {"trust_anchors": self.signers.pem + self.timestamps.pem}
        if self.extra is not None:
            section["user_anchors"] = self.extra.pem
        return section

    def describe(self) -> str:
        """One line naming every list in use, for the scan summary and ``inspect``."""
        lists = [self.signers.label, self.timestamps.label] + ([self.extra.label] if self.extra else [])
        return ", ".join(lists)


def parse_pem(text: str, name: str) -> list[bytes]:
    """The DER certificates of a PEM text, in one pass over its lines (text outside the blocks is ignored).

    Raises:
        ConfigError: a block opened and never closed, a stray end line, a body that is not base64
            of one DER structure, or no certificate at all.
    """
    certificates: list[bytes] = []
    body: list[str] | None = None
    opened_at = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line == _BEGIN:
            if body is not None:
                raise ConfigError(f"{name}: the certificate opened on line {opened_at} has no END line before line {number}")
            body, opened_at = [], number
        elif line == _END:
            if body is None:
                raise ConfigError(f"{name}: line {number} ends a certificate that was never begun")
            der = _der(body)
            if der is None:
                raise ConfigError(f"{name}: certificate {len(certificates) + 1} (line {opened_at}) is not valid base64 DER")
            certificates.append(der)
            body = None
        elif body is not None:
            body.append(line)
    if body is not None:
        raise ConfigError(f"{name}: the certificate opened on line {opened_at} has no END line")
    if not certificates:
        raise ConfigError(f"{name}: no PEM certificate in the file")
    return certificates


def _der(lines: list[str]) -> bytes | None:
    """The DER bytes of a PEM body when they are one SEQUENCE whose length covers them exactly, as a certificate is."""
    try:
        der = base64.b64decode("".join(lines), validate=True)
    except binascii.Error:
        return None
    if len(der) < 2 or der[0] != 0x30:
        return None
    if der[1] < 0x80:
        return der if 2 + der[1] == len(der) else None
    size = der[1] & 0x7F
    fits = 0 < size <= 4 and 2 + size + int.from_bytes(der[2 : 2 + size], "big") == len(der)
    return der if fits else None


def _encode(certificates: list[bytes]) -> str:
    blocks = []
    for der in certificates:
        body = base64.b64encode(der).decode("ascii")
        lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
        blocks.append(f"{_BEGIN}\n{lines}\n{_END}\n")
    return "".join(blocks)


def load_pem_file(path: str | os.PathLike[str], option: str) -> TrustList:
    """A user's PEM file of anchors, read under the settings cap and checked.

    Raises:
        ConfigError: missing, unreadable, over ``MAX_SETTINGS_BYTES``, not ASCII, or not well-formed PEM.
    """
    name = os.fsdecode(path)
    where = f"`{option}` {name}"
    try:
        handle, info = open_input(path, follow_symlinks=True)
        with handle:
            if info.st_size > MAX_SETTINGS_BYTES:
                raise ConfigError(_too_large(where, info.st_size))
            data = read_capped(handle, MAX_SETTINGS_BYTES, name)
    except InputFileError as exc:
        if exc.reason == "too-large":
            raise ConfigError(_too_large(where, None)) from None
        raise ConfigError(f"{where}: {exc.reason}: {exc.detail}") from None
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not a PEM file (non-ASCII bytes)") from None
    certificates = parse_pem(text, where)
    return TrustList(f"anchors in {os.path.basename(name)}", _encode(certificates), len(certificates))


def _too_large(where: str, size: int | None) -> str:
    got = f" is {size} bytes," if size is not None else " is"
    return f"{where}{got} over {MAX_SETTINGS_BYTES} bytes, the most the C2PA library accepts for all its trust anchors"


@cache
def bundled() -> tuple[TrustList, TrustList]:
    """The shipped (signer list, time-stamping list), as ``trust/lists.json`` describes them."""
    facts = json.loads((TRUST_DIR / "lists.json").read_text(encoding="utf-8"))
    lists = []
    for key in ("signers", "timestamps"):
        item = facts["lists"][key]
        certificates = parse_pem((TRUST_DIR / item["file"]).read_text(encoding="ascii"), item["file"])
        lists.append(TrustList(f"{item['name']} of {item['issued']}", _encode(certificates), len(certificates)))
    return lists[0], lists[1]


def build_anchors(trust_list: str | None = None, extra: str | None = None) -> Anchors:
    """The anchors for reading: the bundled lists, ``trust_list`` in place of the signer list, plus ``extra``.

    Raises:
        ConfigError: an unusable file, or a set too large for the C2PA library's settings.
    """
    signers, timestamps = bundled()
    if trust_list is not None:
        signers = load_pem_file(trust_list, "c2pa_trust_list")
    anchors = Anchors(signers, timestamps, load_pem_file(extra, "c2pa_trust") if extra is not None else None)
    size = len(json.dumps(anchors.settings()).encode("utf-8")) + SETTINGS_RESERVE
    if size > MAX_SETTINGS_BYTES:
        raise ConfigError(
            f"the C2PA trust anchors ({anchors.describe()}) need {size} bytes of settings, over {MAX_SETTINGS_BYTES}, "
            "the most the C2PA library accepts"
        )
    return anchors
