"""``/docs`` works with no internet: same-origin assets only, under a strict CSP."""

from __future__ import annotations

import hashlib
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from serverkit import InProcess, make_settings, open_in_process

from mentatlab.server.security_headers import content_security_policy, new_nonce

VENDOR = (Path(__file__).resolve().parents[2] / "src" / "mentatlab" / "ui" / "static"
          / "vendor" / "swagger-ui")
CONTENT_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}
PAGES = ("/docs", "/docs/oauth2-redirect")


class _Page(HTMLParser):
    """Every ``src``/``href`` of a page, and its inline scripts and styles."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.urls += [v for k, v in attrs if k in ("src", "href") and v is not None]
        if tag == "style" or "style" in found or (tag == "script" and "src" not in found):
            self.inline.append(tag)
        self.inline += [k for k in found if k.startswith("on")]  # onload= etc.


def _parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def _directives(policy: str) -> dict[str, list[str]]:
    parts = (d.split() for d in policy.split(";") if d.strip())
    return {name: sources for name, *sources in parts}


def assert_strict_page_headers(response: httpx.Response) -> None:
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    csp = _directives(response.headers["content-security-policy"])
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"] and csp["style-src"] == ["'self'"]
    assert csp["img-src"] == ["'self'", "data:"] and csp["connect-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"] and csp["base-uri"] == ["'none'"]
    assert csp["object-src"] == ["'none'"] and csp["form-action"] == ["'self'"]
    sources = {s for values in csp.values() for s in values}
    assert sources <= {"'self'", "'none'", "data:"}, "no host, scheme-wide or unsafe source"


async def test_docs_pages_load_only_same_origin_assets_under_a_strict_csp(
        app_client: InProcess) -> None:
    assets: set[str] = set()
    for path in PAGES:
        response = await app_client.client.get(path)
        assert response.status_code == 200 and response.headers["content-type"].startswith(
            "text/html")
        assert_strict_page_headers(response)
        page = _parse(response.text)
        assert page.inline == [], "inline code would need 'unsafe-inline' or a nonce"
        assert page.urls
        for url in page.urls:
            parts = urlsplit(url)
            assert not parts.scheme and not parts.netloc and url.startswith("/static/"), url
        assets.update(page.urls)
    assert {"/static/docs-init.js", "/static/vendor/swagger-ui/swagger-ui-bundle.js",
            "/static/vendor/swagger-ui/swagger-ui.css",
            "/static/vendor/swagger-ui/oauth2-redirect.js"} <= assets
    for url in sorted(assets):
        response = await app_client.client.get(url)
        assert response.status_code == 200, url
        assert CONTENT_TYPES[Path(url).suffix] in response.headers["content-type"], url
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.content == (VENDOR.parents[1] / url.removeprefix("/static/")).read_bytes()


async def test_the_init_script_reads_the_openapi_document_the_server_serves(
        app_client: InProcess) -> None:
    page = (await app_client.client.get("/docs")).text
    openapi_url = re.search(r'data-openapi-url="([^"]+)"', page)
    assert openapi_url is not None and openapi_url[1] == "/openapi.json"
    document = (await app_client.client.get(openapi_url[1])).json()
    assert document["info"]["title"] == "MentatLab" and "/api/v1/cost" in document["paths"]
    assert not any(p.startswith(("/docs", "/static")) for p in document["paths"])
    init = (await app_client.client.get("/static/docs-init.js")).text
    assert "dataset.openapiUrl" in init and "validatorUrl: null" in init
    assert "http" not in init.replace("window.location", ""), "no external URL in the init"


async def test_redoc_is_gone_and_a_missing_asset_is_a_clean_404(app_client: InProcess) -> None:
    assert (await app_client.client.get("/redoc")).status_code == 404
    missing = await app_client.client.get("/static/vendor/swagger-ui/nope.js")
    assert missing.status_code == 404 and missing.json()["ok"] is False


async def test_docs_and_static_assets_are_public_with_auth_on(_isolated_data_dir: Path) -> None:
    async with open_in_process(make_settings(_isolated_data_dir, auth_required=True)) as env:
        assert (await env.client.get("/api/v1/overview")).status_code == 401
        for path in (*PAGES, "/openapi.json", "/static/docs-init.js",
                     "/static/vendor/swagger-ui/swagger-ui-bundle.js"):
            assert (await env.client.get(path)).status_code == 200, path


def test_the_vendored_files_are_the_ones_the_readme_names() -> None:
    readme = (VENDOR / "README.md").read_text()
    sums = dict(re.findall(r"^\| (\S+) \| ([0-9a-f]{64}) \|$", readme, re.MULTILINE))
    assert set(sums) == {p.name for p in VENDOR.iterdir()} - {"README.md"}
    for name, digest in sums.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name


def test_a_nonce_allows_inline_code_for_that_response_only() -> None:
    nonce = new_nonce()
    assert len(nonce) >= 22 and nonce != new_nonce()
    csp = _directives(content_security_policy(nonce))
    assert csp["script-src"] == csp["style-src"] == ["'self'", f"'nonce-{nonce}'"]
    assert _directives(content_security_policy())["script-src"] == ["'self'"]
