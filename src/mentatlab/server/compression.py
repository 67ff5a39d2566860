"""Compressed answers: gzip for pages, JSON and static assets, and browser caching of assets.

The dashboard's first load is mostly vendored JavaScript (ECharts alone is about 1.1 MB,
about 370 kB gzipped), so two things keep it small:

* :func:`install_compression` adds Starlette's ``GZipMiddleware`` for every HTTP answer of
  at least :data:`COMPRESS_MIN_BYTES` to a client that sends ``Accept-Encoding: gzip``.
  It only touches *responses*: the OTLP receiver still reads gzip *request* bodies itself
  (``Content-Encoding: gzip``), WebSockets (``/api/v1/live``) pass through untouched, and
  ``text/event-stream`` and already-encoded answers are left alone (Starlette's defaults).
* :class:`CompressedStaticAssets` answers a static file gzipped from an in-memory copy
  compressed once per file version (path, size, mtime), so a cold page load does not pay
  for compressing ECharts again, and tells the browser how long to keep it:
  :data:`VENDOR_CACHE_CONTROL` for ``vendor/`` (pinned third-party files, so a second view
  does not fetch ECharts again), :data:`OWN_CACHE_CONTROL` for the dashboard's own scripts
  and styles (revalidated by ETag: a 304 without a body, so an upgrade shows at once).
"""

from __future__ import annotations

import gzip
import os
import threading
from typing import Final

import anyio.to_thread
from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import FileResponse, Response
from starlette.types import Scope

from mentatlab.server.security_headers import StaticAssets

__all__ = ["COMPRESS_MIN_BYTES", "OWN_CACHE_CONTROL", "VENDOR_CACHE_CONTROL",
           "CompressedStaticAssets", "install_compression"]

COMPRESS_MIN_BYTES: Final = 1024
"""Answers smaller than this (bytes) are sent as they are: gzip would not pay for itself."""
VENDOR_CACHE_CONTROL: Final = "public, max-age=86400"
"""``Cache-Control`` of ``/static/vendor/*``: pinned third-party files, kept one day."""
OWN_CACHE_CONTROL: Final = "no-cache"
"""``Cache-Control`` of the dashboard's own assets: kept, but revalidated (ETag) each use."""
_COMPRESSIBLE: Final = ("text/", "application/javascript", "application/json",
                        "image/svg+xml", "application/xml")
"""Content types worth compressing (images other than SVG are compressed already)."""
_GZIP_LEVEL: Final = 9
"""Compressed once per file version, so the smallest output is worth the time (~60 ms/MB)."""


def install_compression(app: FastAPI) -> None:
    """Gzip ``app``'s HTTP answers of at least :data:`COMPRESS_MIN_BYTES` when asked to."""
    app.add_middleware(GZipMiddleware, minimum_size=COMPRESS_MIN_BYTES)


class CompressedStaticAssets(StaticAssets):
    """Static files, gzipped from a per-version in-memory copy, with ``Cache-Control``.

    A file answers gzipped when the request accepts gzip, its type compresses
    (text, JavaScript, JSON, SVG) and it has at least :data:`COMPRESS_MIN_BYTES`; range
    and ``HEAD`` requests get the file as it is. Either way it carries its ETag (the same
    for both encodings, with ``Vary: Accept-Encoding``), so ``If-None-Match`` answers 304.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._gzipped: dict[tuple[str, int, int], bytes] = {}
        self._lock = threading.Lock()

    def file_response(self, full_path: str | os.PathLike[str], stat_result: os.stat_result,
                      scope: Scope, status_code: int = 200) -> Response:
        """The file's answer (or 304) with its ``Cache-Control`` and ``Vary``."""
        response = super().file_response(full_path, stat_result, scope, status_code)
        vendor = f"{os.sep}vendor{os.sep}" in os.fspath(full_path)
        response.headers["Cache-Control"] = VENDOR_CACHE_CONTROL if vendor else OWN_CACHE_CONTROL
        response.headers.add_vary_header("Accept-Encoding")
        return response

    async def get_response(self, path: str, scope: Scope) -> Response:
        """The answer for ``path``, gzipped (compressed off the event loop) when worth it."""
        response = await super().get_response(path, scope)
        request = Headers(scope=scope)
        if (not isinstance(response, FileResponse) or response.status_code != 200
                or response.stat_result is None or scope.get("method") != "GET"
                or "range" in request or "gzip" not in request.get("accept-encoding", "")
                or response.stat_result.st_size < COMPRESS_MIN_BYTES
                or not response.headers.get("content-type", "").startswith(_COMPRESSIBLE)):
            return response
        body = await anyio.to_thread.run_sync(self._gzip, os.fspath(response.path),
                                              response.stat_result)
        headers = {k: v for k, v in response.headers.items()
                   if k not in ("content-length", "accept-ranges")}
        headers["Content-Encoding"] = "gzip"
        return Response(body, headers=headers)  # nosniff and the ETag kept

    def _gzip(self, path: str, stat_result: os.stat_result) -> bytes:
        """The gzipped bytes of ``path`` as it is now (compressed once per version)."""
        key = (path, stat_result.st_size, stat_result.st_mtime_ns)
        with self._lock:
            cached = self._gzipped.get(key)
        if cached is None:
            with open(path, "rb") as file:
                cached = gzip.compress(file.read(), compresslevel=_GZIP_LEVEL, mtime=0)
            with self._lock:
                self._gzipped = {k: v for k, v in self._gzipped.items() if k[0] != path}
                self._gzipped[key] = cached
        return cached
