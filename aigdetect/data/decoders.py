"""Which of Pillow's decoders an input may reach, and why the others are left out.

A format is allowed when Pillow (or a library it bundles) decodes it in this process, the size of
the decoded frame is known from the header (so ``images`` can refuse it before decoding), and the
file carries a signature Pillow checks before anything else is parsed. Each format left out has
its reason written in ``EXCLUDED``; ``describe_unsupported`` quotes it, so a user whose file Pillow
recognises learns the format and the reason rather than "not an image".
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from PIL import Image

DECODERS: tuple[str, ...] = (
    "JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "AVIF", "HEIF", "PPM",
    "PSD", "JPEG2000", "ICO", "CUR", "ICNS", "DDS", "SGI", "BLP", "PCX", "DCX", "QOI",
    "SUN", "MSP", "PIXAR", "FTEX", "XPM", "XVTHUMB", "FLI",
)  # fmt: skip
"""Decoders tried for every input, in this order (MPO is read by the JPEG plugin)."""

NAMED_ONLY: dict[str, tuple[str, ...]] = {"TGA": (".tga", ".icb", ".vda", ".vst")}
"""Formats without a signature, tried only for files carrying one of their extensions: a TGA header
is a handful of small numbers that many other files would pass as well."""

EXCLUDED: dict[str, str] = {
    "EPS": "Pillow renders EPS and PostScript by running Ghostscript, an external program",
    "WMF": "Pillow draws WMF/EMF through an application-registered handler (Windows GDI), not a decoder of its own",
    "FITS": "Pillow inflates a compressed FITS image whole, with no bound on the output",
    "BUFR": "Pillow only identifies BUFR; decoding needs an application-registered handler",
    "GRIB": "Pillow only identifies GRIB; decoding needs an application-registered handler",
    "HDF5": "Pillow only identifies HDF5; decoding needs an application-registered handler",
    "MPEG": "Pillow only identifies MPEG video; it has no decoder for it",
    "XBM": "its signature is any file starting with '/*' or '#define', so C sources would be read as images",
    "DIB": "its signature is one small integer (a header size), which arbitrary binary files match",
    "GBR": "its signature is two small integers, which arbitrary binary files match",
    "MCIDAS": "its signature is eight bytes of zeros and a 4, which arbitrary binary files match",
    "IM": "Pillow parses IM, IPTC, PCD and SPIDER headers without any signature check first",
    "IMT": "Pillow parses IM, IPTC, PCD and SPIDER headers without any signature check first",
    "IPTC": "Pillow parses IM, IPTC, PCD and SPIDER headers without any signature check first",
    "PCD": "Pillow parses IM, IPTC, PCD and SPIDER headers without any signature check first",
    "SPIDER": "Pillow parses IM, IPTC, PCD and SPIDER headers without any signature check first",
}
"""Formats Pillow knows that no input reaches, with the reason (also listed in the README)."""

NOT_AN_IMAGE = "not an image, or a format Pillow cannot decode"


def decoders_for(name: str | None) -> tuple[str, ...]:
    """The decoders tried for a file called ``name``: ``DECODERS``, then a ``NAMED_ONLY`` format
    whose extension the name carries."""
    lowered = (name or "").lower()
    return DECODERS + tuple(fmt for fmt, suffixes in NAMED_ONLY.items() if lowered.endswith(suffixes))


def signature_format(prefix: bytes, formats: tuple[str, ...]) -> str | None:
    """The first of ``formats`` whose signature check accepts ``prefix``, without parsing any more.

    A format with no signature check (``NAMED_ONLY``) is taken as it stands: the caller chose it
    from the file's name.
    """
    Image.init()
    for name in formats:
        entry = Image.OPEN.get(name)
        if entry is not None and (entry[1] is None or _accepts(entry[1], prefix)):
            return name
    return None


def _accepts(check: Callable[[bytes], bool | str], prefix: bytes) -> bool:
    """A plugin's signature check, with a prefix too short for it counted as a mismatch (as
    ``Image.open`` counts it)."""
    try:
        return bool(check(prefix))
    except (IndexError, TypeError, struct.error):
        return False


def describe_unsupported(prefix: bytes) -> str:
    """Why a file no allowed decoder accepted is unsupported: the excluded format Pillow recognises
    from its signature, with the reason, or ``NOT_AN_IMAGE``."""
    Image.init()
    for name, reason in EXCLUDED.items():
        entry = Image.OPEN.get(name)
        if entry is not None and entry[1] is not None and _accepts(entry[1], prefix):
            return f"{name} (by its signature) is outside the allow-list of decoders: {reason}"
    return NOT_AN_IMAGE
