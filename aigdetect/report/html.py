"""What every report page shares: the Jinja environment, safe JSON for a script element, the CSP, the write.

Pages are self-contained and inert towards their data. Text reaches the HTML only through Jinja's
autoescaping; data for the page's script goes in a ``type="application/json"`` element encoded so
that nothing in it can end that element; the page's own CSS and JavaScript are allowed by their
SHA-256 hashes in a Content-Security-Policy that forbids everything else (no network, no other
script, images only from ``data:`` URIs).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from ..outputs import write_output

_SCRIPT_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def script_json(value: Any) -> str:
    """JSON that is safe inside ``<script type="application/json">``: no ``<``, ``>``, ``&`` or line separators.

    Those characters can only occur inside JSON strings, where their ``\\uXXXX`` escapes mean the
    same, so ``JSON.parse`` gives back exactly ``value`` while ``</script>`` or ``<!--`` cannot appear.
    Non-ASCII text is escaped too, so a lone surrogate cannot make the page unwritable.
    """
    return json.dumps(value, ensure_ascii=True, allow_nan=False, separators=(",", ":")).translate(_SCRIPT_ESCAPES)


def csp_hash(text: str) -> str:
    """The CSP source expression allowing one inline script or style element with exactly this text."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def content_security_policy(*, scripts: tuple[str, ...] = (), styles: tuple[str, ...] = ()) -> str:
    """A policy that allows only the given inline scripts and styles, and images from data: URIs."""
    script_src = " ".join(csp_hash(s) for s in scripts) or "'none'"
    style_src = " ".join(csp_hash(s) for s in styles) or "'none'"
    return (
        f"default-src 'none'; script-src {script_src}; style-src {style_src}; img-src data:; base-uri 'none'; form-action 'none'"
    )


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The one template environment: autoescaping on for every template, undefined names are errors."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("aigdetect.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def asset(name: str) -> str:
    """A static file of the templates folder (CSS, JavaScript), as text."""
    return (resources.files("aigdetect.report") / "templates" / name).read_text(encoding="utf-8")


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)


def write_page(out: str | os.PathLike[str], html: str) -> int:
    """Write the page through the output guard (atomically for a file); return its size in bytes."""
    payload = html.encode("utf-8")
    write_output(out, lambda name: Path(name).write_bytes(payload))
    return len(payload)
