"""The settings page, server side: each part only for the roles the permission matrix lets
use it, the org picker for installation-wide callers, strict CSP and local assets; the
alerts page's forms only for roles that may write rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from serverkit import InProcess, make_settings, open_in_process
from test_pages import _check_page

PARTS = ('id="keys-panel"', 'id="members-panel"', 'id="quotas-panel"', 'id="audit-panel"')


async def test_auth_off_shows_every_part_and_the_org_picker(app_client: InProcess) -> None:
    html = await _check_page(app_client.client, "/settings")
    assert 'src="/static/settings.js"' in html and "Coming soon" not in html
    assert all(part in html for part in PARTS)
    assert 'name="org"' in html and 'data-org=""' in html
    assert "Pick an org above to see its people." in html
    picked = await _check_page(app_client.client, "/settings?org=acme")
    assert 'data-org="acme"' in picked and 'id="members"' in picked and 'id="quotas"' in picked
    assert 'data-org=""' in await _check_page(app_client.client, "/settings?org=%3Cb%3E")
    for asset in ("settings.js", "settings.css", "apiform.js", "apiform.css"):
        assert (await app_client.client.get(f"/static/{asset}")).status_code == 200


async def test_with_auth_on_each_role_sees_only_its_parts(_isolated_data_dir: Path) -> None:
    async with open_in_process(make_settings(_isolated_data_dir, auth_required=True)) as env:
        control = env.state.control
        control.create_org("Acme", "acme")
        control.create_project("acme", "web", "web")
        keys = {role: control.create_api_key("acme", None, role, role=role).key
                for role in ("read", "admin", "ingest")}
        keys["project-admin"] = control.create_api_key("acme", "web", "p", role="admin").key
        assert 'action="/auth/key"' in await _check_page(env.client, "/settings", 401)

        async def page(key: str, path: str = "/settings", client: Any = env.client) -> str:
            answer = await client.get(path, headers={"x-api-key": key})
            assert answer.status_code == 200, answer.text[:300]
            return answer.text

        admin = await page(keys["admin"])
        assert all(part in admin for part in PARTS) and 'data-org="acme"' in admin
        assert 'name="org"' not in admin, "an org's admin acts on its own org"
        read = await page(keys["read"])
        assert not any(part in read for part in PARTS) and 'id="read-only"' in read
        assert "Create key" not in read and "Save quotas" not in read
        project = await page(keys["project-admin"])
        assert 'id="keys-panel"' in project and 'id="audit-panel"' in project
        assert 'id="members-panel"' not in project and 'id="quotas-panel"' not in project
        ingest = await page(keys["ingest"])  # signed in: may see who it is
        assert 'id="read-only"' in ingest

        assert 'id="rule-forms"' in await page(keys["admin"], "/alerts")
        read_alerts = await page(keys["read"], "/alerts")
        assert 'id="rule-forms"' not in read_alerts and 'data-can-manage="no"' in read_alerts
