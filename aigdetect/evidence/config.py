"""What the evidence readers may do, and how much of a file they may read: one validated config.

The caps bound every allocation a hostile file can ask for. The defaults sit well above what real
generators write (an AUTOMATIC1111 ``parameters`` chunk is a few kB, a ComfyUI workflow tens to
hundreds of kB, a C2PA manifest with thumbnails a few hundred kB) and well below what hurts a scan.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from ..errors import ConfigError
from .trustlists import Anchors, build_anchors

MAX_REMOTE_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class EvidenceConfig:
    """Which evidence to read and the size caps that keep hostile metadata cheap.

    Creating a config loads the trust anchors (the bundled C2PA lists, and ``c2pa_trust_list`` and
    ``c2pa_trust`` when given) and checks them at once, so a missing or bad trust file fails before
    a scan starts rather than once per file.

    Raises:
        ConfigError: a cap that is not a positive integer, or an unusable trust file.
    """

    c2pa_trust: str | None = field(
        default=None,
        metadata={"help": "PEM file of extra trust anchors for C2PA signatures (a newsroom's own CA), added to the trust list."},
    )
    c2pa_trust_list: str | None = field(
        default=None,
        metadata={
            "help": "PEM file that replaces the bundled C2PA Trust List (a newer download); the bundled C2PA TSA Trust "
            "List stays."
        },
    )
    c2pa_remote: bool = field(
        default=False,
        metadata={
            "help": "Fetch C2PA manifests stored remotely (http or https only, capped in size and time); off by "
            "default, so that no file can make a scan touch the network."
        },
    )
    remote_timeout_s: float = field(default=10.0, metadata={"help": "seconds allowed to fetch one remote C2PA manifest"})
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
    max_remote_bytes: int = field(default=16 << 20, metadata={"help": "largest remote C2PA manifest fetched, in bytes"})
    anchors: Anchors = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for flag in ("watermarks", "c2pa_remote"):
            if not isinstance(getattr(self, flag), bool):
                raise ConfigError(f"{flag} must be true or false, got {getattr(self, flag)!r}")
        timeout = self.remote_timeout_s
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= MAX_REMOTE_TIMEOUT_S:
            raise ConfigError(f"remote_timeout_s must be a number of seconds in (0, {MAX_REMOTE_TIMEOUT_S:g}], got {timeout!r}")
        for item in fields(self):
            if item.name.startswith("max_"):
                value = getattr(self, item.name)
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ConfigError(f"{item.name} must be a positive integer, got {value!r}")
        object.__setattr__(self, "anchors", build_anchors(self.c2pa_trust_list, self.c2pa_trust))

    @property
    def trust_pem(self) -> str | None:
        """The anchors the user chose (a replacement list, extra anchors), None when only the bundled lists are used."""
        chosen = [a.pem for a in (self.anchors.extra,) if a is not None]
        if self.c2pa_trust_list is not None:
            chosen.insert(0, self.anchors.signers.pem)
        return "".join(chosen) or None
