"""What the evidence readers may do, and how much of a file they may read: one validated config.

The caps bound every allocation a hostile file can ask for. The defaults sit well above what real
generators write (an AUTOMATIC1111 ``parameters`` chunk is a few kB, a ComfyUI workflow tens to
hundreds of kB, a C2PA manifest with thumbnails a few hundred kB) and well below what hurts a scan.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass, field, fields

from ..errors import ConfigError, InputFileError
from ..fileio import open_input, read_capped

_PEM_BLOCK = re.compile(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.DOTALL)
MAX_TRUST_BYTES = 4 << 20
"""A PEM file of trust anchors larger than this is refused (the C2PA trust list is about 100 kB)."""


@dataclass(frozen=True)
class EvidenceConfig:
    """Which evidence to read and the size caps that keep hostile metadata cheap.

    Creating a config with ``c2pa_trust`` reads and checks that file at once, so a missing or bad
    trust file fails before a scan starts rather than once per image.

    Raises:
        ConfigError: a cap that is not a positive integer, or an unusable trust file.
    """

    c2pa_trust: str | None = field(
        default=None,
        metadata={"help": "PEM file of trust anchors for C2PA signatures; without it signatures are checked but untrusted."},
    )
    watermarks: bool = field(
        default=False,
        metadata={
            "help": "Decode the Stable Diffusion and SDXL invisible watermarks (needs the watermarks extra; decodes "
            "every image whole, about 1.5 s per 12-megapixel photo on one core)."
        },
    )
    max_xmp_bytes: int = field(default=1 << 20, metadata={"help": "largest XMP packet parsed, in bytes"})
    max_exif_bytes: int = field(default=1 << 20, metadata={"help": "largest EXIF block parsed, in bytes"})
    max_text_chunk_bytes: int = field(
        default=2 << 20, metadata={"help": "largest single PNG text chunk read (after decompression), in bytes"}
    )
    max_text_total_bytes: int = field(default=8 << 20, metadata={"help": "most PNG text read from one file, in bytes"})
    max_json_depth: int = field(default=64, metadata={"help": "deepest JSON nesting parsed from a text chunk or manifest"})
    max_c2pa_bytes: int = field(default=16 << 20, metadata={"help": "largest embedded C2PA manifest store read, in bytes"})
    max_sidecar_bytes: int = field(default=16 << 20, metadata={"help": "largest .c2pa sidecar file read, in bytes"})
    trust_pem: str | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.watermarks, bool):
            raise ConfigError(f"watermarks must be true or false, got {self.watermarks!r}")
        for item in fields(self):
            if item.name.startswith("max_"):
                value = getattr(self, item.name)
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ConfigError(f"{item.name} must be a positive integer, got {value!r}")
        if self.c2pa_trust is not None:
            object.__setattr__(self, "trust_pem", load_trust_anchors(self.c2pa_trust))


def load_trust_anchors(path: str | os.PathLike[str]) -> str:
    """The PEM text of a trust-anchor file, checked: readable, at most 4 MiB, well-formed certificates.

    Each certificate must at least be base64 of one DER structure: the C2PA library itself accepts
    anything at first and would only fail, or trust nothing, once per file.

    Raises:
        ConfigError: the file is missing, unreadable, too large, or holds no well-formed certificate.
    """
    name = os.fsdecode(path)
    try:
        handle, _ = open_input(path, follow_symlinks=True)
        with handle:
            data = read_capped(handle, MAX_TRUST_BYTES, name)
    except InputFileError as exc:
        raise ConfigError(f"`c2pa_trust` {name}: {exc.reason}: {exc.detail}") from None
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise ConfigError(f"`c2pa_trust` {name}: not a PEM file (non-ASCII bytes)") from None
    blocks = _PEM_BLOCK.findall(text)
    if not blocks:
        raise ConfigError(f"`c2pa_trust` {name}: no PEM certificate in the file")
    for number, block in enumerate(blocks, 1):
        if not _is_der_sequence(block):
            raise ConfigError(f"`c2pa_trust` {name}: certificate {number} is not valid base64 DER")
    return text


def _is_der_sequence(block: str) -> bool:
    """Whether a PEM body decodes to one DER SEQUENCE whose length covers exactly the bytes (as a certificate does)."""
    try:
        der = base64.b64decode("".join(block.split()), validate=True)
    except binascii.Error:
        return False
    if len(der) < 2 or der[0] != 0x30:
        return False
    if der[1] < 0x80:
        return 2 + der[1] == len(der)
    size = der[1] & 0x7F
    return 0 < size <= 4 and 2 + size + int.from_bytes(der[2 : 2 + size], "big") == len(der)
