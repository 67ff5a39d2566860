"""The models and alerts pages, server side: allowed roles get the page, a role without the
permission (access/routes.py) the not-allowed page; strict CSP and local assets."""

from __future__ import annotations

from pathlib import Path

import pytest
from serverkit import InProcess, make_settings, open_in_process
from test_pages import _check_page

from mentatlab.access.roles import Permission
from mentatlab.access.routes import ROUTE_PERMISSIONS


@pytest.mark.parametrize(("path", "script"), [("/models", "models.js"),
                                              ("/alerts", "alerts.js")])
async def test_the_view_answers_with_its_script_and_no_coming_page(
        app_client: InProcess, path: str, script: str) -> None:
    html = await _check_page(app_client.client, path + "?range=7d&project=acme")
    assert f'src="/static/{script}"' in html and "Coming soon" not in html
    assert (await app_client.client.get(f"/static/{script}")).status_code == 200


async def test_models_hands_the_range_filter_and_search_to_its_script(
        app_client: InProcess) -> None:
    html = await _check_page(app_client.client, "/models?range=7d&project=acme&q=llama-3")
    assert 'data-filter="project_id=acme"' in html and 'data-search="llama-3"' in html
    assert 'name="q" value="llama-3"' in html
    assert 'data-search=""' in await _check_page(app_client.client, "/models?q=%3Cscript%3E")
    assert 'href="/models?range=7d&amp;project=acme&amp;q=llama-3&amp;sort=model"' in html
    assert 'data-sort="spans"' in await _check_page(app_client.client, "/models?sort=bogus")


def test_the_matrix_names_the_views_permissions() -> None:
    assert ROUTE_PERMISSIONS[("GET", "/models")] == Permission.READ_USAGE
    assert ROUTE_PERMISSIONS[("GET", "/alerts")] == Permission.READ_ALERTS


async def test_with_auth_on_a_read_key_sees_the_views_and_an_ingest_key_does_not(
        _isolated_data_dir: Path) -> None:
    async with open_in_process(make_settings(_isolated_data_dir, auth_required=True)) as env:
        control = env.state.control
        control.create_org("Acme", "acme")
        read_key = control.create_api_key("acme", None, "r", role="read").key
        ingest_key = control.create_api_key("acme", None, "i", role="ingest").key
        for path, view in (("/models", 'id="models"'), ("/alerts", 'id="alerts"')):
            assert 'action="/auth/key"' in await _check_page(env.client, path, 401)
            refused = await env.client.get(path, headers={"x-api-key": ingest_key})
            assert refused.status_code == 403 and "Not allowed" in refused.text
            assert view not in refused.text
            allowed = await env.client.get(path, headers={"x-api-key": read_key})
            assert allowed.status_code == 200 and view in allowed.text
