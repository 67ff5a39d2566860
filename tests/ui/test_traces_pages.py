"""The trace list and trace pages, server side: the script gets the range, filters, search,
order and page from the URL (bad values dropped), links keep them, and a read key without
``read_spans`` gets the not-allowed page; strict CSP and local assets."""

from __future__ import annotations

import html as html_lib
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from serverkit import InProcess, make_settings, open_in_process
from test_pages import _check_page

from mentatlab.access.roles import Permission
from mentatlab.access.routes import ROUTE_PERMISSIONS


def _data(html: str, name: str) -> str:
    marker = f'data-{name}="'
    start = html.index(marker) + len(marker)
    return html_lib.unescape(html[start:html.index('"', start)])


def _href(html: str, text: str) -> str:
    end = html.index(f">{text}</a>")
    start = html.rindex('href="', 0, end) + len('href="')
    return html_lib.unescape(html[start:html.index('"', start)])


@pytest.mark.parametrize(("path", "script"), [("/traces", "traces.js"),
                                              ("/traces/0af7651916cd43dd0af7651916cd43dd",
                                               "trace.js")])
async def test_the_views_answer_with_their_script_and_no_coming_page(
        app_client: InProcess, path: str, script: str) -> None:
    html = await _check_page(app_client.client, path + "?range=7d&project=acme")
    assert f'src="/static/{script}"' in html and "Coming soon" not in html
    assert f'href="/static/{script.replace(".js", ".css")}"' in html
    for asset in (script, script.replace(".js", ".css")):
        assert (await app_client.client.get(f"/static/{asset}")).status_code == 200


async def test_the_list_hands_its_state_to_the_script_and_keeps_it_in_links(
        app_client: InProcess) -> None:
    html = await _check_page(
        app_client.client, "/traces?range=7d&project=acme&status=error&q=support+agent"
        "&sort=cost&min_cost=0.05&min_duration_ms=250&offset=50")
    # status is the trace's status (the API's `status`), the rest the span filter
    assert _data(html, "filter") == "project_id=acme" and _data(html, "status") == "error"
    assert _data(html, "q") == "support agent" and _data(html, "sort") == "cost"
    assert _data(html, "min-cost") == "0.05" and _data(html, "min-duration-ms") == "250"
    assert _data(html, "offset") == "50" and _data(html, "limit") == "50"
    # a row's link carries the whole list state, so the trace page's way back finds it
    assert parse_qs(_data(html, "link-query")) == {
        "range": ["7d"], "project": ["acme"], "status": ["error"], "q": ["support agent"],
        "sort": ["cost"], "min_cost": ["0.05"], "min_duration_ms": ["250"], "offset": ["50"]}
    newest = parse_qs(urlsplit(_href(html, "Newest")).query)
    assert "sort" not in newest and "offset" not in newest and newest["q"] == ["support agent"]
    assert parse_qs(urlsplit(_href(html, "Longest")).query)["sort"] == ["duration"]
    assert "offset" not in parse_qs(urlsplit(_href(html, "← Previous")).query)
    assert parse_qs(urlsplit(_href(html, "Next →")).query)["offset"] == ["100"]
    assert 'name="q" value="support agent"' in html


@pytest.mark.parametrize("query", [
    "sort=name", "min_cost=lots", "min_duration_ms=-5", "offset=-1", "offset=x", "limit=0",
    "limit=100000", "q=%00bad", "status=maybe"])
async def test_a_bad_list_parameter_is_dropped_not_refused(
        app_client: InProcess, query: str) -> None:
    html = await _check_page(app_client.client, f"/traces?{query}")
    assert _data(html, "sort") == "start_time" and _data(html, "offset") == "0"
    assert _data(html, "limit") == "50" and _data(html, "q") == ""
    assert _data(html, "min-cost") == "" and _data(html, "min-duration-ms") == ""
    assert _data(html, "status") == ""


async def test_the_trace_page_links_back_to_the_list_it_came_from(
        app_client: InProcess) -> None:
    html = await _check_page(app_client.client,
                             "/traces/0AF7651916CD43DD0AF7651916CD43DD?range=1h&sort=cost")
    assert _data(html, "trace-id") == "0AF7651916CD43DD0AF7651916CD43DD"
    assert _href(html, "← All traces") == "/traces?range=1h&sort=cost"
    # whatever the id, the page renders: the API's 400/404 becomes its error state
    bad = await _check_page(app_client.client, "/traces/%3Cb%3Ebold")
    assert "<b>bold" not in bad and "&lt;b&gt;bold" in bad
    assert 'id="error"' in bad


def test_the_matrix_names_the_views_permissions() -> None:
    for route in (("GET", "/traces"), ("GET", "/traces/{trace_id}"),
                  ("GET", "/api/v1/traces/{trace_id}/spans/{span_id}")):
        assert ROUTE_PERMISSIONS[route] == Permission.READ_SPANS


async def test_with_auth_on_a_read_key_sees_the_traces_and_an_ingest_key_does_not(
        _isolated_data_dir: Path) -> None:
    async with open_in_process(make_settings(_isolated_data_dir, auth_required=True)) as env:
        control = env.state.control
        control.create_org("Acme", "acme")
        read_key = control.create_api_key("acme", None, "r", role="read").key
        ingest_key = control.create_api_key("acme", None, "i", role="ingest").key
        for path, view in (("/traces", 'id="traces"'), ("/traces/" + "ab" * 16, 'id="trace"')):
            assert 'action="/auth/key"' in await _check_page(env.client, path, 401)
            refused = await env.client.get(path, headers={"x-api-key": ingest_key})
            assert refused.status_code == 403 and view not in refused.text
            allowed = await env.client.get(path, headers={"x-api-key": read_key})
            assert allowed.status_code == 200 and view in allowed.text
        span = await env.client.get(f"/api/v1/traces/{'ab' * 16}/spans/{'cd' * 8}",
                                    headers={"x-api-key": ingest_key})
        assert span.status_code == 403
        missing = await env.client.get(f"/api/v1/traces/{'ab' * 16}/spans/{'cd' * 8}",
                                       headers={"x-api-key": read_key})
        assert missing.status_code == 404


async def test_a_dimension_the_bar_lacks_filters_the_list_and_shows_as_a_removable_chip(
        app_client: InProcess) -> None:
    """A cost cell links here with ``customer_id=`` (no bar field): the list is filtered by
    it, and a chip removes it while keeping the rest."""
    html = await _check_page(app_client.client,
                             "/traces?range=7d&project=acme&customer_id=cust-9")
    assert _data(html, "filter") == "project_id=acme,customer_id=cust-9"
    chip = _href(html, 'customer_id = cust-9 <span aria-hidden="true">×</span>')
    assert parse_qs(urlsplit(chip).query) == {"range": ["7d"], "project": ["acme"]}
    assert "customer_id" not in parse_qs(urlsplit(_href(html, "Clear filters")).query)
