"""The cost explorer's page, server side: its breakdown (``?by=&cross=&top=``) read from the
URL with unknown values dropped, every dimension of the cost API offered, the trace links'
parameters, strict CSP and local assets; who may open it."""

from __future__ import annotations

import html as html_lib
import json
import re
from pathlib import Path

import pytest
from serverkit import InProcess, make_settings, open_in_process
from starlette.datastructures import QueryParams
from test_pages import _check_page

from mentatlab.access.roles import Permission
from mentatlab.access.routes import ROUTE_PERMISSIONS
from mentatlab.analytics.query import GROUP_BY_COLUMNS
from mentatlab.ui.pages import FILTERS, _cost_view


def _data(html: str, name: str) -> str:
    found = re.search(rf'\bdata-{name}="([^"]*)"', html)
    assert found, f"data-{name} on the view"
    return html_lib.unescape(found.group(1))


async def test_cost_answers_with_its_script_style_and_no_coming_page(
        app_client: InProcess) -> None:
    html = await _check_page(app_client.client, "/cost?range=7d&project=acme")
    assert 'src="/static/cost.js"' in html and 'href="/static/cost.css"' in html
    assert "Coming soon" not in html and 'id="cost"' in html
    for asset in ("cost.js", "cost.css"):
        assert (await app_client.client.get(f"/static/{asset}")).status_code == 200
    assert _data(html, "filter") == "project_id=acme"
    assert (_data(html, "by"), _data(html, "cross"), _data(html, "top")) == (
        "agent_id", "model", "8"), "agent × model, top 8 by default"
    # the breakdown form keeps the range and filters
    assert '<input type="hidden" name="range" value="7d">' in html
    assert '<input type="hidden" name="project" value="acme">' in html
    assert _data(html, "models") == "/models?range=7d&project=acme"


async def test_every_dimension_of_the_cost_api_is_offered(app_client: InProcess) -> None:
    html = await _check_page(app_client.client, "/cost")
    select = html[html.index('name="by"'):html.index("</select>", html.index('name="by"'))]
    assert re.findall(r'<option value="([a-z_]+)"', select) == list(GROUP_BY_COLUMNS)
    assert '<option value="agent_id" selected>Agent</option>' in select


@pytest.mark.parametrize(("query", "expected"), [
    ("by=customer&cross=project&top=3", ("customer_id", "project_id", 3)),
    ("by=model&cross=model&top=20", ("model", "agent_id", 20)),
    ("by=agent_id&cross=agent", ("agent_id", "model", 8)),
    ("by=colour&cross=%3Cscript%3E&top=7", ("agent_id", "model", 8)),
    ("top=-1", ("agent_id", "model", 8)),
])
def test_the_breakdown_comes_from_the_url_and_stale_values_fall_back(
        query: str, expected: tuple[str, str, int]) -> None:
    assert _cost_view(QueryParams(query)) == expected


async def test_trace_links_use_the_filter_bar_or_the_canonical_name(
        app_client: InProcess) -> None:
    html = await _check_page(app_client.client, "/cost?by=customer_id&cross=project_id&top=3")
    params = json.loads(_data(html, "trace-params"))
    assert set(params) == set(GROUP_BY_COLUMNS)
    for name, field in FILTERS.items():
        assert params[field] == name, "a filter-bar field links with its URL parameter"
    assert params["customer_id"] == "customer_id", "no filter-bar field: the canonical name"
    assert '<option value="3" selected>3</option>' in html
    assert "Customer × project" in html


def test_the_matrix_names_the_pages_permission() -> None:
    assert ROUTE_PERMISSIONS[("GET", "/cost")] == Permission.READ_USAGE


async def test_with_auth_on_a_read_key_sees_cost_and_an_ingest_key_does_not(
        _isolated_data_dir: Path) -> None:
    async with open_in_process(make_settings(_isolated_data_dir, auth_required=True)) as env:
        control = env.state.control
        control.create_org("Acme", "acme")
        keys = {role: control.create_api_key("acme", None, role, role=role).key
                for role in ("read", "ingest")}
        assert 'action="/auth/key"' in await _check_page(env.client, "/cost", 401)
        refused = await env.client.get("/cost", headers={"x-api-key": keys["ingest"]})
        assert refused.status_code == 403 and 'id="cost"' not in refused.text
        read = await env.client.get("/cost", headers={"x-api-key": keys["read"]})
        assert read.status_code == 200 and 'data-read-spans="yes"' in read.text
