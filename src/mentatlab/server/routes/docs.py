"""``/docs``: Swagger UI from the vendored assets under ``/static``, so it works offline.

The page has no inline code: ``/static/docs-init.js`` starts Swagger UI and reads the
OpenAPI URL from a ``data-`` attribute, so the Content-Security-Policy allows scripts and
styles from this origin only (:mod:`mentatlab.server.security_headers`). The vendored
files and how to update them: ``src/mentatlab/ui/static/vendor/swagger-ui/README.md``.
"""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from mentatlab.server.security_headers import page_headers

__all__ = ["STATIC_PATH", "router"]

STATIC_PATH = "/static"
"""Where ``src/mentatlab/ui/static`` is mounted (server/app.py)."""
_SWAGGER = f"{STATIC_PATH}/vendor/swagger-ui"
_OAUTH2_REDIRECT = "/docs/oauth2-redirect"

router = APIRouter(include_in_schema=False)


@router.get("/docs", response_class=HTMLResponse)
async def swagger_ui(request: Request) -> HTMLResponse:
    """The Swagger UI page for this server's OpenAPI document."""
    root = escape(request.scope.get("root_path", ""))
    openapi_url = escape(root + (request.app.openapi_url or ""))
    page = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{escape(request.app.title)} API</title>
<link rel="icon" type="image/png" href="{root}{_SWAGGER}/favicon-32x32.png">
<link rel="stylesheet" href="{root}{_SWAGGER}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{openapi_url}"
     data-oauth2-redirect-url="{root}{_OAUTH2_REDIRECT}"></div>
<script src="{root}{_SWAGGER}/swagger-ui-bundle.js"></script>
<script src="{root}{STATIC_PATH}/docs-init.js"></script>
</body>
</html>
"""
    return HTMLResponse(page, headers=page_headers())


@router.get(_OAUTH2_REDIRECT, response_class=HTMLResponse)
async def swagger_ui_oauth2_redirect(request: Request) -> HTMLResponse:
    """Where an OAuth2 sign-in started from Swagger UI returns (Swagger UI's own page)."""
    root = escape(request.scope.get("root_path", ""))
    page = f"""<!doctype html>
<html lang="en">
<body>
<script src="{root}{_SWAGGER}/oauth2-redirect.js"></script>
</body>
</html>
"""
    return HTMLResponse(page, headers=page_headers())
