"""The settings view in a real browser (Debian's headless Chromium) with auth on: an org's
admin key signs in on the sign-in page, creates a key (its secret shown once), rotates and
revokes it, adds a person, tightens a quota, and finds each action in the audit timeline —
every change checked through the REST API; the API's refusals show next to the field they
name; a read key sees no control it cannot use. Zero console errors, failed or off-host
requests beyond the expected refusals; axe light and dark; keyboard; screenshots."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from browserkit import (
    DESKTOP,
    PHONE,
    assert_accessible,
    loaded,
    no_sideways_scroll,
    shot,
    tab_through,
    watch,
)
from playwright.sync_api import Browser, Page, expect
from serverkit import LiveServer


def _refusals(url: str, *paths: str) -> Callable[[str], bool]:
    """What ``watch`` lets through: the sign-in page's 401 and the API refusals a test
    provokes on purpose (their URLs and the console lines Chromium logs for them)."""
    expected = {f"{url}/settings", *(f"{url}/api/v1{p}" for p in paths)}
    statuses = ("(Unauthorized)", "(Unprocessable Entity)", "(Forbidden)")
    return lambda text: text in expected or text.endswith(statuses)


def _sign_in(page: Page, url: str, key: str) -> None:
    page.goto(f"{url}/settings", wait_until="networkidle")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("#settings", timeout=30_000)
    loaded(page, "settings")


def _api(url: str, key: str, method: str, path: str, **kwargs: object) -> httpx.Response:
    return httpx.request(method, f"{url}/api/v1{path}", headers={"x-api-key": key},
                         timeout=30, **kwargs)  # type: ignore[arg-type]


@pytest.mark.e2e
def test_an_admin_manages_keys_people_and_quotas_and_sees_them_audited(
        auth_server: LiveServer, browser: Browser, tmp_path: Path) -> None:
    url = auth_server.url
    control = auth_server.state.control
    control.create_org("Acme", "acme")
    admin = control.create_api_key("acme", None, "acme admin", role="admin").key
    problems: list[str] = []
    page = browser.new_page(viewport=DESKTOP, color_scheme="light")
    watch(page, problems, allowed=_refusals(url, "/keys", "/members", "/quotas"))
    _sign_in(page, url, admin)
    assert page.locator('[data-me="role"]').inner_text() == "key:admin"
    assert page.locator('[data-me="scope"]').inner_text() == "org acme"
    assert page.locator("#error").is_hidden()
    assert page.locator("#keys tbody tr").count() == 1, "the admin's own key"

    # a bad name: the API's reason under the field it names
    page.get_by_role("button", name="Create key").click()
    name_error = page.locator('#key-form .field-error[data-field="name"]')
    name_error.wait_for()
    assert "at least 1 character" in name_error.inner_text()
    assert page.locator('#key-form [name="name"]').get_attribute("aria-invalid") == "true"

    # create: the secret is shown once, and works
    form = page.locator("#key-form")
    form.get_by_label("Name").fill("ci reader")
    form.get_by_label("Role").select_option("read")
    page.get_by_role("button", name="Create key").click()
    secret_box = page.locator("#new-secret")
    secret_box.wait_for()
    secret = page.locator("#secret-value").input_value()
    assert secret.startswith("mtl_")
    assert "shown once" in secret_box.inner_text()
    assert page.locator("#key-form .field-error").count() == 0, "errors cleared"
    listed = _api(url, admin, "GET", "/keys").json()["keys"]
    reader = next(k for k in listed if k["name"] == "ci reader")
    assert reader["role"] == "read" and reader["org_id"] == "acme"
    assert _api(url, secret, "GET", "/me").json()["role"] == "key:read"
    page.get_by_role("button", name="Copy").click()
    expect(page.locator("#copy-status")).to_have_text(re.compile(r"^(Copied|Selected)"),
                                                     timeout=30_000)
    page.mouse.move(0, 0)
    shot(page, tmp_path, "settings-secret-desktop.png")
    page.get_by_role("button", name="Done").click()
    assert secret_box.is_hidden() and page.locator("#secret-value").input_value() == ""
    assert secret not in page.content(), "shown once: gone from the page"

    # rotate with a grace time: a new secret; the old one still works until then
    page.get_by_role("button", name="Rotate key ci reader").click()
    dialog = page.locator("#confirm")
    assert dialog.is_visible()
    dialog.get_by_label("The old key keeps working for").fill("3600")
    dialog.get_by_role("button", name="Rotate key").click()
    secret_box.wait_for()
    rotated = page.locator("#secret-value").input_value()
    assert rotated.startswith("mtl_") and rotated != secret
    assert _api(url, secret, "GET", "/me").status_code == 200, "within its grace time"
    page.get_by_role("button", name="Done").click()

    # revoke (after a confirmation): the API refuses the key at once
    rows = page.locator("#keys tbody tr", has_text="ci reader")
    assert rows.count() == 2, "the rotated key and its replacement"
    new_id = next(k["id"] for k in _api(url, admin, "GET", "/keys").json()["keys"]
                  if k["name"] == "ci reader" and not k["expires_at"])
    page.locator(f'#keys tr[data-key-id="{new_id}"]').get_by_role("button", name="Revoke").click()
    page.get_by_role("button", name="Cancel").click()
    assert _api(url, rotated, "GET", "/me").status_code == 200, "cancel revokes nothing"
    page.locator(f'#keys tr[data-key-id="{new_id}"]').get_by_role("button", name="Revoke").click()
    page.locator("#confirm").get_by_role("button", name="Revoke key").click()
    page.locator(f'#keys tr[data-key-id="{new_id}"]').wait_for(state="detached")
    assert _api(url, rotated, "GET", "/me").status_code == 401, "revoked"
    page.get_by_label("Include revoked keys").check()
    page.locator(f'#keys tr[data-key-id="{new_id}"]', has_text="revoked").wait_for()

    # people: a bad email names its field; then add a viewer
    members = page.locator("#member-form")
    members.get_by_label("Email").fill("x")
    members.get_by_role("button", name="Save").click()
    page.locator('#member-form .field-error[data-field="email"]').wait_for()
    members.get_by_label("Email").fill("ana@acme.test")
    members.get_by_label("Name").fill("Ana")
    members.get_by_label("Role").select_option("viewer")
    members.get_by_role("button", name="Save").click()
    page.locator("#members tbody tr", has_text="ana@acme.test").wait_for()
    listed_members = _api(url, admin, "GET", "/members").json()["members"]
    assert [(m["email"], m["role"]) for m in listed_members] == [("ana@acme.test", "viewer")]

    # quotas: tighten one (the API shows it); raising is refused next to the field
    limit = page.get_by_label("Override: Queries per minute, per key or person")
    limit.fill("100")
    page.get_by_role("button", name="Save quotas").click()
    page.locator("#quota-status", has_text="Saved").wait_for()
    quota = _api(url, admin, "GET", "/quotas").json()["quotas"][0]
    assert quota["overrides"] == {"key_queries_per_min": 100}
    in_force = page.locator("#quotas tbody tr", has_text="per key or person").locator("td").nth(1)
    assert in_force.inner_text() == "100"
    limit.fill("100000")
    page.get_by_role("button", name="Save quotas").click()
    raised = page.locator('#quota-form .field-error[data-field="limits.key_queries_per_min"]')
    raised.wait_for()
    assert "only tighten" in raised.inner_text()
    assert _api(url, admin, "GET", "/quotas").json()["quotas"][0]["overrides"] == {
        "key_queries_per_min": 100}, "refused: unchanged"

    # the audit timeline, newest first, holds every action above; the filter narrows it
    page.reload(wait_until="networkidle")
    loaded(page, "settings")
    actions = page.locator("#audit tbody tr td:nth-child(2)").all_inner_texts()
    for action in ("login", "key.created", "key.rotated", "key.revoked",
                   "member.role_changed", "quota.set"):
        assert action in actions, (action, actions)
    assert actions.index("quota.set") < actions.index("key.created"), "newest first"
    api_actions = [e["action"] for e in _api(url, admin, "GET", "/audit",
                                             params={"limit": 25}).json()["entries"]]
    assert actions == api_actions
    page.get_by_label("Action").select_option("quota.*")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#audit tbody tr td:nth-child(2)")).to_have_text(["quota.set"],
                                                                        timeout=30_000)

    page.mouse.move(0, 0)
    shot(page, tmp_path, "settings-desktop.png")
    assert_accessible(page)
    page.get_by_role("button", name="Dark theme").click()
    page.reload(wait_until="networkidle")
    loaded(page, "settings")
    page.mouse.move(0, 0)
    shot(page, tmp_path, "settings-dark.png")
    assert_accessible(page)
    page.get_by_role("button", name="Revoke key acme admin").click()
    assert_accessible(page)  # the confirmation dialog, dark
    page.keyboard.press("Escape")
    assert page.locator("#confirm").is_hidden()
    assert _api(url, admin, "GET", "/me").status_code == 200, "Escape cancels"

    phone = browser.new_page(viewport=PHONE, color_scheme="light")
    watch(phone, problems, allowed=_refusals(url))
    phone.context.add_cookies(page.context.cookies())
    phone.goto(f"{url}/settings", wait_until="networkidle")
    loaded(phone, "settings")
    no_sideways_scroll(phone)
    shot(phone, tmp_path, "settings-phone.png")
    assert_accessible(phone)
    assert problems == []


@pytest.mark.e2e
def test_keyboard_reaches_and_operates_the_settings_controls(
        auth_server: LiveServer, browser: Browser) -> None:
    url = auth_server.url
    control = auth_server.state.control
    control.create_org("Acme", "acme")
    admin = control.create_api_key("acme", None, "acme admin", role="admin").key
    problems: list[str] = []
    page = browser.new_page(viewport=DESKTOP)
    watch(page, problems, allowed=_refusals(url))
    _sign_in(page, url, admin)
    reached = tab_through(page, 60)
    for control_name in ("Include revoked keys", "Rotate key acme admin",
                         "Revoke key acme admin", "Create key", "Save quotas",
                         "Back to the settings", "Filter"):
        assert any(r.startswith(control_name) for r in reached), (control_name, reached)
    # create a key with the keyboard alone
    page.locator('#key-form [name="name"]').focus()
    page.keyboard.type("typed")
    page.keyboard.press("Enter")
    page.locator("#new-secret").wait_for()
    assert page.evaluate("document.activeElement.id") == "new-secret", "focus on the secret"
    assert any(k["name"] == "typed" for k in _api(url, admin, "GET", "/keys").json()["keys"])
    assert problems == []


@pytest.mark.e2e
def test_a_read_key_sees_who_it_is_and_no_control(
        auth_server: LiveServer, browser: Browser) -> None:
    url = auth_server.url
    control = auth_server.state.control
    control.create_org("Acme", "acme")
    read = control.create_api_key("acme", None, "dashboard", role="read").key
    problems: list[str] = []
    page = browser.new_page(viewport=DESKTOP)
    watch(page, problems, allowed=_refusals(url))
    _sign_in(page, url, read)
    assert page.locator('[data-me="role"]').inner_text() == "key:read"
    assert "manage_keys" not in page.locator('[data-me="permissions"]').inner_text()
    assert page.locator("#read-only").is_visible()
    for part in ("#keys-panel", "#members-panel", "#quotas-panel", "#audit-panel"):
        assert page.locator(part).count() == 0, part
    names = [b.inner_text() for b in page.locator("main button").all()]
    assert not any(n in ("Create key", "Revoke", "Rotate", "Save quotas") for n in names)
    assert page.locator("#error").is_hidden()
    assert_accessible(page)
    assert problems == []


@pytest.mark.e2e
def test_with_auth_off_the_installation_picks_an_org_raises_a_quota_and_pages_the_audit(
        live_server: LiveServer, browser: Browser) -> None:
    url = live_server.url
    control = live_server.state.control
    control.create_org("Acme", "acme")
    control.create_org("Globex", "globex")
    for i in range(30):
        control.audit.record("cli", "quota.set", org_id="acme", target="acme",
                             details={"key_queries_per_min": i + 1})
    control.audit.record("cli", "quota.set", org_id="globex", target="globex")
    problems: list[str] = []
    page = browser.new_page(viewport=DESKTOP)
    watch(page, problems)
    page.goto(f"{url}/settings", wait_until="networkidle")
    loaded(page, "settings")
    assert page.locator("#members-panel").inner_text().endswith(
        "Pick an org above to see its people.")
    options = page.locator("#org-list option")
    assert sorted(o.get_attribute("value") or "" for o in options.all()) == ["acme", "globex"]
    page.get_by_label("Org for people and quotas").fill("acme")
    page.get_by_role("button", name="Show", exact=True).click()
    page.wait_for_url(f"{url}/settings?org=acme")
    loaded(page, "settings")

    # 25 a page, newest first; "Show older entries" follows next_cursor to the end
    audit = page.locator("#audit tbody tr")
    assert audit.count() == 25
    assert audit.first.inner_text().endswith("key_queries_per_min=30")
    page.get_by_role("button", name="Show older entries").click()
    expect(audit).to_have_count(30, timeout=30_000)
    assert audit.last.inner_text().endswith("key_queries_per_min=1")
    assert page.get_by_role("button", name="Show older entries").is_hidden()
    assert "globex" not in page.locator("#audit").inner_text(), "the org picked only"

    # the installation may raise a limit above the setting
    page.get_by_label("Override: Queries per minute, per key or person").fill("100000")
    page.get_by_role("button", name="Save quotas").click()
    page.locator("#quota-status", has_text="Saved").wait_for()
    assert httpx.get(f"{url}/api/v1/quotas", params={"org_id": "acme"}, timeout=30
                     ).json()["quotas"][0]["overrides"] == {"key_queries_per_min": 100_000}
    page.get_by_role("button", name="Back to the settings").click()
    page.locator("#confirm").get_by_role("button", name="Back to the settings").click()
    page.locator("#quota-status", has_text="Overrides dropped").wait_for()
    assert httpx.get(f"{url}/api/v1/quotas", params={"org_id": "acme"}, timeout=30
                     ).json()["quotas"][0]["overrides"] == {}
    assert page.locator('[data-me="who"]').inner_text() == "nobody (authentication is off)"
    assert problems == []
