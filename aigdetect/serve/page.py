"""The drop-a-file page: the scan report's base template, styles and verdict labels, and a script
that posts each file to this service and draws its report like the report's detail view.

Its script and style are allowed by their hashes; the only requests the policy lets it make are
to this service (``connect-src 'self'``), and previews are ``data:`` URIs read in the browser.
"""

from __future__ import annotations

from functools import lru_cache

from ..report.html import asset, content_security_policy, render, script_json
from ..report.scan_page import LABELS
from ..results.schema import ERROR_KIND
from ..version import __version__

PREVIEW_BYTES = 20 << 20
"""Files larger than this get no preview (the browser would hold their whole data: URI)."""
PARALLEL = 4
"""Uploads the page has in flight at once; the service batches them together."""


@lru_cache(maxsize=1)
def drop_page() -> tuple[str, str]:
    """The page's HTML and the Content-Security-Policy header to send with it."""
    css = asset("report.css") + asset("scan.css") + asset("serve.css")
    js = asset("dom.js") + asset("serve.js")
    policy = content_security_policy(scripts=(js,), styles=(css,)) + "; connect-src 'self'"
    data = {
        "labels": {**LABELS, ERROR_KIND: "could not be scored"},
        "classes": {kind: kind for kind in LABELS},
        "preview_bytes": PREVIEW_BYTES,
        "parallel": PARALLEL,
    }
    html = render("serve.html.j2", csp=policy, version=__version__, title="aigdetect", heading="aigdetect",
                  subtitle="Drop images to see the verdict, its reasons, the evidence and the Content Credentials.",
                  css=css, js=js, data=script_json(data))  # fmt: skip
    return html, policy + "; frame-ancestors 'none'"
