"""The ops page, server side: its script and stylesheet, the live interval and filter it
hands them, who may open it, and a CSP that lets its WebSockets connect to this host."""

from __future__ import annotations

from pathlib import Path

import pytest
from serverkit import InProcess, make_settings, open_in_process
from test_pages import _check_page

from mentatlab.access.roles import Permission
from mentatlab.access.routes import ROUTE_PERMISSIONS
from mentatlab.server.security_headers import content_security_policy
from mentatlab.ui.pages import OPS_FEED_ROWS


async def test_ops_answers_with_its_script_and_no_coming_page(app_client: InProcess) -> None:
    html = await _check_page(app_client.client, "/ops?range=1h&project=acme&status=error")
    assert 'src="/static/ops.js"' in html and 'href="/static/ops.css"' in html
    assert "Coming soon" not in html and 'id="ops"' in html and 'aria-busy="true"' in html
    assert 'data-filter="project_id=acme,status=error"' in html
    assert f'data-feed-rows="{OPS_FEED_ROWS}"' in html
    for asset in ("/static/ops.js", "/static/ops.css"):
        assert (await app_client.client.get(asset)).status_code == 200


@pytest.mark.parametrize(("every", "interval_s"), [
    ("", 5), ("1", 1), ("15", 15), ("60", 60), ("7", 5), ("0", 5), ("-1", 5), ("abc", 5)])
async def test_the_live_interval_comes_from_the_url(app_client: InProcess, every: str,
                                                    interval_s: int) -> None:
    html = await _check_page(app_client.client, f"/ops?every={every}&range=1h")
    assert f'data-interval="{interval_s}"' in html
    assert f'<option value="{interval_s}" selected>' in html
    # the interval form keeps the rest of the view state
    assert '<input type="hidden" name="range" value="1h">' in html


def test_the_matrix_names_the_ops_routes() -> None:
    assert ROUTE_PERMISSIONS[("GET", "/ops")] == Permission.READ_SPANS
    assert ROUTE_PERMISSIONS[("WS", "/api/v1/live")] == Permission.READ_SPANS
    assert ROUTE_PERMISSIONS[("WS", "/api/v1/live/stats")] == Permission.READ_USAGE


def test_the_csp_lets_pages_open_websockets_to_this_host_only() -> None:
    # CSP Level 3: 'self' also matches ws: and wss: on this host (Chromium honours it:
    # tests/ui/test_ops_browser.py fails on any console error, CSP refusals included)
    directives = dict(d.split(" ", 1) for d in content_security_policy().split("; "))
    assert directives["connect-src"] == "'self'"


async def test_with_auth_on_a_read_key_sees_ops_and_an_ingest_key_does_not(
        _isolated_data_dir: Path) -> None:
    async with open_in_process(make_settings(_isolated_data_dir, auth_required=True)) as env:
        control = env.state.control
        control.create_org("Acme", "acme")
        read_key = control.create_api_key("acme", None, "r", role="read").key
        ingest_key = control.create_api_key("acme", None, "i", role="ingest").key
        assert 'action="/auth/key"' in await _check_page(env.client, "/ops", 401)
        refused = await env.client.get("/ops", headers={"x-api-key": ingest_key})
        assert refused.status_code == 403 and 'id="ops"' not in refused.text
        allowed = await env.client.get("/ops", headers={"x-api-key": read_key})
        assert allowed.status_code == 200 and 'id="ops"' in allowed.text
        assert 'data-read-usage="yes"' in allowed.text
        assert 'data-read-alerts="yes"' in allowed.text
