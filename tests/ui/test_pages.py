"""The dashboard's pages, server side: every page answers, under the strict CSP, with only
local assets; sign-in when auth is on; a scoped key's numbers are its org's only."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from server_payloads import encode, export_request, llm_span
from serverkit import InProcess, make_settings, open_in_process
from starlette.datastructures import QueryParams
from test_docs_offline import CONTENT_TYPES as DOCS_CONTENT_TYPES
from test_docs_offline import assert_strict_page_headers

from mentatlab.ui.pages import VIEWS, view_state

STATIC = Path(__file__).resolve().parents[2] / "src" / "mentatlab" / "ui" / "static"
CONTENT_TYPES = {**DOCS_CONTENT_TYPES, ".svg": "image/svg+xml"}
_ASSET = re.compile(r'<(?:script|link)\b[^>]*\b(?:src|href)="([^"]+)"')
_LINK = re.compile(r'\bhref="([^"]+)"')
_IMPORT = re.compile(r'from "\./([^"]+)"')
_INLINE = re.compile(r"<script(?![^>]*\bsrc=)|<style|\sstyle=|\son[a-z]+=", re.IGNORECASE)


def _assets_of(html: str) -> set[str]:
    return set(_ASSET.findall(html))


async def _check_page(client: httpx.AsyncClient, path: str, status: int = 200) -> str:
    response = await client.get(path)
    assert response.status_code == status, (path, response.text[:300])
    assert response.headers["content-type"].startswith("text/html")
    assert_strict_page_headers(response)
    html: str = response.text
    assert not _INLINE.search(html), f"inline code on {path} would need a nonce"
    for url in [*_LINK.findall(html), *_assets_of(html)]:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc, f"{path} links outside: {url}"
    return html


async def test_every_page_answers_with_a_strict_csp_and_local_assets(
        app_client: InProcess) -> None:
    assets: set[str] = set()
    for view in VIEWS:
        html = await _check_page(app_client.client, view.path + "?range=1h&model=gpt-4o")
        assert f'href="{view.path}?range=1h&amp;model=gpt-4o" aria-current="page"' in html
        assets |= _assets_of(html)
        if not view.built:
            assert "Coming soon" in html and view.summary in html
    assert 'id="trace"' in await _check_page(app_client.client, "/traces/0af7651916cd43dd")
    assert {"/static/dashboard.css", "/static/theme.js", "/static/overview.js",
            "/static/vendor/echarts/echarts.min.js", "/static/favicon.svg"} <= assets
    for url in sorted(assets):
        assert url.startswith("/static/"), url
        response = await app_client.client.get(url)
        assert response.status_code == 200, url
        assert CONTENT_TYPES[Path(url).suffix] in response.headers["content-type"], url
        for module in _IMPORT.findall(response.text):  # ES-module imports are local too
            assert (await app_client.client.get(f"/static/{module}")).status_code == 200


def test_the_dashboard_scripts_name_no_external_host() -> None:
    for script in [*STATIC.glob("*.js"), *STATIC.glob("*.css")]:
        assert not re.search(r"https?://", script.read_text()), script.name


@pytest.mark.parametrize("name", ["htmx", "echarts"])
def test_the_vendored_files_are_the_ones_the_readme_names(name: str) -> None:
    folder = STATIC / "vendor" / name
    readme = (folder / "README.md").read_text()
    sums = dict(re.findall(r"^\| (\S+) \| ([0-9a-f]{64}) \|$", readme, re.MULTILINE))
    assert set(sums) == {p.name for p in folder.iterdir()} - {"README.md"}
    assert "LICENSE" in sums
    for file, digest in sums.items():
        assert hashlib.sha256((folder / file).read_bytes()).hexdigest() == digest, file


async def test_the_overview_hands_range_and_filters_to_its_script(
        app_client: InProcess) -> None:
    html = await _check_page(app_client.client,
                             "/?range=7d&project=acme&status=error&agent=bad%2Cvalue")
    assert 'data-filter="project_id=acme,status=error"' in html, "a bad value is dropped"
    assert 'data-bucket="day"' in html
    start = re.search(r'data-start="([^"]+)"', html)
    end = re.search(r'data-end="([^"]+)"', html)
    assert start and end
    span = datetime.fromisoformat(end[1]) - datetime.fromisoformat(start[1])
    assert span.days == 7
    range_link = 'href="/?range=24h&amp;project=acme&amp;status=error"'
    assert range_link in html, "range links keep filters"
    assert "OTEL_EXPORTER_OTLP_ENDPOINT=http://testserver" in html, "the empty state's snippet"


def test_view_state_drops_what_the_picker_cannot_produce() -> None:
    now = datetime(2026, 12, 6, 12, tzinfo=UTC)
    state = view_state(QueryParams("range=2y&status=weird&model=gpt-4o&agent="), now)
    assert (state.range, state.filters, state.bucket) == ("24h", {"model": "gpt-4o"}, "hour")
    assert state.end == now and (now - state.start).total_seconds() == 86_400
    assert state.query(range="15m", model=None) == "?range=15m"
    assert view_state(QueryParams(""), now).query() == "?range=24h"


async def _ingest(env: InProcess, key: str, num_spans: int) -> None:
    body, headers = encode(export_request([llm_span() for _ in range(num_spans)]))
    response = await env.client.post("/v1/traces", content=body,
                                     headers={**headers, "x-api-key": key})
    assert response.status_code == 200, response.text


async def test_with_auth_on_pages_sign_in_and_a_scoped_key_sees_its_org_only(
        _isolated_data_dir: Path) -> None:
    async with open_in_process(make_settings(_isolated_data_dir, auth_required=True)) as env:
        control = env.state.control
        for org in ("acme", "other"):
            control.create_org(org.title(), org)
        await _ingest(env, control.create_api_key("acme", None, "i", role="ingest").key, 2)
        await _ingest(env, control.create_api_key("other", None, "i", role="ingest").key, 3)
        read_key = control.create_api_key("acme", None, "r", role="read").key
        ingest_key = control.create_api_key("acme", None, "i2", role="ingest").key
        c = env.client
        for view in VIEWS:  # unauthenticated: the sign-in page, never the view
            html = await _check_page(c, view.path, 401)
            assert 'action="/auth/key"' in html and "/static/signin.js" in html
            assert 'id="overview"' not in html
        response = await c.get("/", headers={"x-api-key": ingest_key})
        assert response.status_code == 403 and "Not allowed" in response.text
        assert_strict_page_headers(response)
        signed_in = await c.post("/auth/key", json={"key": read_key},
                                 headers={"origin": "http://testserver"})
        assert signed_in.status_code == 200, signed_in.text
        html = await _check_page(c, "/")
        assert 'id="overview"' in html
        # the numbers the page's script fetches, with the same cookie
        overview = (await c.get("/api/v1/overview")).json()
        assert overview["requests"] == 2 and overview["num_spans"] == 2
        agents = (await c.get("/api/v1/cost", params={"group_by": "org_id"})).json()
        assert [row["org_id"] for row in agents["rows"]] == ["acme"]
        trend = (await c.get("/api/v1/cost", params={"group_by": "", "bucket": "day"})).json()
        assert sum(row["requests"] for row in trend["rows"]) == 2


def test_view_state_reads_the_zone_the_custom_range_and_the_new_filters() -> None:
    now = datetime(2026, 12, 6, 12, tzinfo=UTC)
    state = view_state(QueryParams(
        "range=custom&from=2026-12-01T00:00&to=2026-12-02T00:00&tz=Asia/Kolkata"
        "&org=acme&workflow=triage&provider=openai"), now)
    assert state.tz == "Asia/Kolkata" and state.custom
    assert state.start == datetime(2026, 11, 30, 18, 30, tzinfo=UTC), "local midnight"
    assert state.end - state.start == timedelta(days=1) and state.bucket == "hour"
    assert state.api_filter == "org_id=acme,workflow_id=triage,provider=openai"
    assert state.query(range="1h") == \
        "?range=1h&org=acme&workflow=triage&provider=openai&tz=Asia%2FKolkata"
    assert "from=2026-12-01T00%3A00&to=2026-12-02T00%3A00" in state.query()
    # unknown zone, from after to, unreadable from: dropped, the default range instead
    for bad in ("tz=Mars/Olympus", "range=custom&from=2026-12-02T00:00&to=2026-12-01T00:00",
                "range=custom&from=yesterday"):
        dropped = view_state(QueryParams(bad), now)
        assert (dropped.range, dropped.tz) == ("24h", "UTC"), bad
    # the remembered zone (cookie) applies when the URL names none
    assert view_state(QueryParams(""), now, remembered_tz="Europe/Berlin").tz == "Europe/Berlin"
    assert view_state(QueryParams("tz=UTC"), now, remembered_tz="Europe/Berlin").tz == "UTC"
    assert view_state(QueryParams(""), now, remembered_tz="nowhere").tz == "UTC"
    long_range = view_state(QueryParams("range=custom&from=2026-10-01T00:00"), now)
    assert long_range.bucket == "day" and long_range.end == now


def test_a_picker_window_starts_on_a_whole_hour_or_minute() -> None:
    """Whole hours and minutes come from the aggregates (a partial hour older than the
    minute tier would be read from raw spans)."""
    now = datetime(2026, 12, 6, 12, 34, 56, 789_000, tzinfo=UTC)
    month = view_state(QueryParams("range=30d"), now)
    assert month.start == datetime(2026, 11, 6, 12, tzinfo=UTC) and month.end == now
    hour = view_state(QueryParams("range=1h"), now)
    assert hour.start == datetime(2026, 12, 6, 11, 34, tzinfo=UTC)
