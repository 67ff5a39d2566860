"""Access rules written out by hand (never read from the matrix), and key minting rules."""

from __future__ import annotations

import time

import httpx
import pytest

from conftest import Installation

_INGEST_BODY = {"resourceSpans": []}


def _client(installation: Installation, name: str) -> httpx.Client:
    caller = installation.callers[name]
    return httpx.Client(base_url=installation.url, headers={**caller.headers,
                                                            "Origin": installation.url},
                        cookies=caller.cookies, timeout=30)


READS = ["/api/v1/overview", "/api/v1/cost", "/api/v1/traces", "/api/v1/spans",
         "/api/v1/unpriced", "/api/v1/alert-rules", "/api/v1/alerts", "/api/v1/prices"]
PAYLOAD_READS = ["/api/v1/traces", "/api/v1/spans", f"/api/v1/traces/{'a' * 32}"]


def test_an_ingest_key_can_send_but_never_read(installation: Installation) -> None:
    with _client(installation, "ingest") as c:
        assert c.post("/v1/traces", json=_INGEST_BODY).status_code == 200
        for path in READS:
            answer = c.get(path)
            assert answer.status_code == 403, (path, answer.text)
            assert answer.json()["errors"][0]["field"] == "authorization"
        assert c.post("/api/v1/keys", json={"role": "ingest"}).status_code == 403


def test_a_read_key_can_read_but_never_write(installation: Installation) -> None:
    with _client(installation, "read") as c:
        for path in READS:
            assert c.get(path).status_code == 200, path
        assert c.post("/v1/traces", json=_INGEST_BODY).status_code == 403
        assert c.post("/api/v1/events", json=[]).status_code == 403
        assert c.post("/api/v1/alert-rules", json={
            "name": "n", "kind": "budget", "period": "day", "limit_amount": "1"}).status_code == 403
        assert c.post("/api/v1/keys", json={"role": "read"}).status_code == 403
        assert c.post("/api/v1/reprice", params={"since": "2026-01-01T00:00:00Z"}
                      ).status_code == 403


def test_billing_sees_cost_but_never_a_payload(installation: Installation) -> None:
    with _client(installation, "user-billing") as c:
        for path in ("/api/v1/overview", "/api/v1/cost", "/api/v1/unpriced", "/api/v1/prices",
                     "/api/v1/alert-rules"):
            assert c.get(path).status_code == 200, path
        for path in PAYLOAD_READS:
            assert c.get(path).status_code == 403, path


def test_a_viewer_reads_but_changes_nothing(installation: Installation) -> None:
    with _client(installation, "user-viewer") as c:
        assert c.get("/api/v1/traces").status_code == 200
        assert c.post("/api/v1/alert-rules", json={}).status_code == 403
        assert c.post("/api/v1/keys", json={}).status_code == 403
        assert c.get("/api/v1/members").status_code == 403


def test_a_project_key_cannot_mint_org_keys_or_widen(installation: Installation) -> None:
    with _client(installation, "project-admin") as c:
        wider = c.post("/api/v1/keys", json={"role": "read"})  # org-wide by default
        assert wider.status_code == 403, wider.text
        other = c.post("/api/v1/keys", json={"role": "read", "org_id": "globex",
                                             "project_id": "web"})
        assert other.status_code == 403
        same = c.post("/api/v1/keys", json={"role": "read", "project_id": "web"})
        assert same.status_code == 200, same.text
        assert same.json()["key"]["project_id"] == "web"
        assert c.post("/api/v1/members", json={"email": "x@acme.test", "role": "viewer"}
                      ).status_code == 403


@pytest.mark.parametrize("name", ["read", "ingest", "project-read", "user-viewer",
                                  "user-member", "user-billing", "read-session"])
def test_a_non_admin_cannot_create_any_key(installation: Installation, name: str) -> None:
    with _client(installation, name) as c:
        for role in ("ingest", "read", "admin"):
            assert c.post("/api/v1/keys", json={"role": role}).status_code == 403


def test_an_org_admin_cannot_make_installation_keys_or_orgs(installation: Installation) -> None:
    with _client(installation, "admin") as c:
        assert c.post("/api/v1/keys", json={"role": "read", "org_id": "globex"}
                      ).status_code == 403
        assert c.post("/api/v1/orgs", json={"name": "Initech"}).status_code == 403
        made = c.post("/api/v1/keys", json={"role": "admin"})
        assert made.status_code == 200 and made.json()["key"]["org_id"] == "acme"
    with _client(installation, "installation-admin") as c:
        assert c.post("/api/v1/orgs", json={"name": "Initech", "id": "initech"}
                      ).status_code == 200
        made = c.post("/api/v1/keys", json={"role": "read", "org_id": "initech"})
        assert made.status_code == 200, made.text


def test_a_weaker_key_cannot_revoke_or_rotate_a_stronger_one(installation: Installation) -> None:
    keys = {k.name: k for k in installation.control.list_api_keys("acme")}
    with _client(installation, "project-admin") as c:
        assert c.delete(f"/api/v1/keys/{keys['admin'].id}").status_code == 404  # out of scope
    with _client(installation, "user-admin") as c:
        assert c.post(f"/api/v1/keys/{keys['admin'].id}/rotate").status_code == 200
    with _client(installation, "user-member") as c:
        assert c.delete(f"/api/v1/keys/{keys['read'].id}").status_code == 403


def test_people_cannot_hand_out_more_than_they_hold(installation: Installation) -> None:
    with _client(installation, "user-admin") as c:
        assert c.post("/api/v1/members", json={"email": "new@acme.test", "role": "owner"}
                      ).status_code == 403
        made = c.post("/api/v1/members", json={"email": "new@acme.test", "role": "viewer"})
        assert made.status_code == 200, made.text
        owner_id = installation.control.identities.ensure_user("owner@acme.test").id
        assert c.delete(f"/api/v1/members/{owner_id}").status_code == 403
    with _client(installation, "user-owner") as c:
        owner_id = installation.control.identities.ensure_user("owner@acme.test").id
        last = c.delete(f"/api/v1/members/{owner_id}")
        assert last.status_code == 403 and "owner" in last.text  # an org keeps an owner


def test_a_revoked_key_stops_at_once_here(installation: Installation) -> None:
    keys = {k.name: k for k in installation.control.list_api_keys("acme")}
    with _client(installation, "read") as reader:
        assert reader.get("/api/v1/overview").status_code == 200  # now cached
        with _client(installation, "admin") as admin:
            assert admin.delete(f"/api/v1/keys/{keys['read'].id}").status_code == 200
        assert reader.get("/api/v1/overview").status_code == 401
    with _client(installation, "read-session") as session:  # the key's dashboard session too
        assert session.get("/api/v1/overview").status_code == 401


def test_a_rotated_key_keeps_working_for_its_grace_only(installation: Installation) -> None:
    keys = {k.name: k for k in installation.control.list_api_keys("acme")}
    with _client(installation, "admin") as admin:
        rotated = admin.post(f"/api/v1/keys/{keys['read'].id}/rotate", json={"grace_s": 1})
        assert rotated.status_code == 200, rotated.text
        new_secret = rotated.json()["key"]["secret"]
        assert rotated.json()["key"]["role"] == "read"
    with _client(installation, "read") as old:
        assert old.get("/api/v1/overview").status_code == 200
        time.sleep(1.6)  # grace (1 s) + the lookup cache (0.5 s)
        assert old.get("/api/v1/overview").status_code == 401
    with httpx.Client(base_url=installation.url, headers={"x-api-key": new_secret}) as new:
        assert new.get("/api/v1/overview").status_code == 200


def test_a_cookie_change_from_another_site_is_refused(installation: Installation) -> None:
    caller = installation.callers["user-owner"]
    with httpx.Client(base_url=installation.url, cookies=caller.cookies, timeout=30) as c:
        forged = c.post("/api/v1/keys", json={"role": "read"},
                        headers={"Origin": "https://evil.example"})
        assert forged.status_code == 403
        assert forged.json()["errors"][0]["field"] == "origin"
        bare = c.post("/api/v1/keys", json={"role": "read"})  # no Origin at all
        assert bare.status_code == 403
        assert c.get("/api/v1/me").json()["role"] == "owner"  # reads need no Origin


def test_me_tells_each_caller_what_it_holds(installation: Installation) -> None:
    with _client(installation, "user-billing") as c:
        me = c.get("/api/v1/me").json()
        assert me["kind"] == "user" and me["role"] == "billing" and me["org_id"] == "acme"
        assert "read_spans" not in me["permissions"] and "read_usage" in me["permissions"]
        assert me["orgs"] == [{"org_id": "acme", "role": "billing"}]
    with _client(installation, "project-read") as c:
        me = c.get("/api/v1/me").json()
        assert (me["kind"], me["role"], me["project_id"]) == ("key", "key:read", "web")
