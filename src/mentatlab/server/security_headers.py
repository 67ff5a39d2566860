"""Response headers of the HTML pages the server sends (``/docs``, later the dashboard).

The Content-Security-Policy lets a page load scripts, styles, images and connections from
this origin only, so an external request cannot slip in unnoticed. Pages keep their scripts
in static files; an inline ``<script>`` or ``<style>`` needs the response's nonce.
"""

from __future__ import annotations

import os
import secrets

from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

__all__ = ["StaticAssets", "content_security_policy", "new_nonce", "page_headers"]

NOSNIFF = {"X-Content-Type-Options": "nosniff"}


def new_nonce() -> str:
    """A fresh CSP nonce for one response: 128 random bits, URL-safe base64 (22 chars)."""
    return secrets.token_urlsafe(16)


def content_security_policy(nonce: str | None = None) -> str:
    """The page policy: same origin only; ``nonce`` also allows inline scripts and styles.

    Args:
        nonce: from :func:`new_nonce`, fresh per response; None allows no inline code.

    Returns:
        The ``Content-Security-Policy`` header value.
    """
    inline = f" 'nonce-{nonce}'" if nonce else ""
    return "; ".join((
        "default-src 'self'",
        f"script-src 'self'{inline}",
        f"style-src 'self'{inline}",
        "img-src 'self' data:",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "object-src 'none'",
    ))


def page_headers(nonce: str | None = None) -> dict[str, str]:
    """The headers of an HTML page: CSP, nosniff and a same-origin referrer policy.

    Args:
        nonce: passed to :func:`content_security_policy`.
    """
    return {"Content-Security-Policy": content_security_policy(nonce),
            "Referrer-Policy": "same-origin", **NOSNIFF}


class StaticAssets(StaticFiles):
    """Static files answered with ``X-Content-Type-Options: nosniff``.

    So a browser runs a script or applies a stylesheet only when its content type says so.
    """

    def file_response(self, full_path: str | os.PathLike[str], stat_result: os.stat_result,
                      scope: Scope, status_code: int = 200) -> Response:
        """The file's response with the nosniff header added."""
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(NOSNIFF)
        return response
