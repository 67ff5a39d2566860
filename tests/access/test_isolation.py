"""Tenant isolation of every read route, on a SQLite and a PostgreSQL control store.

Two orgs send spans through OTLP/HTTP with their own ingest keys: ``acme`` (projects
``web`` and ``api``) and ``globex``. Every span carries markers (model, agent, service,
tool names) unique to its tenant. Each read route of the matrix is then called by
``acme`` callers (an org ``read`` key, an org ``admin`` key and a ``web`` project key)
with every group-by and in CSV: no answer may carry a marker of a tenant outside the
caller's scope, and every route that lists spans must carry the caller's own (so the
check cannot pass on empty answers). A filter naming another org or project is 403.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute
from server_payloads import encode, export_request, llm_span, new_span_id, new_trace_id
from serverkit import make_settings, run_live_server
from websockets.sync.client import connect

from conftest import Installation, make_callers
from mentatlab.access.roles import Permission
from mentatlab.access.routes import ROUTE_PERMISSIONS
from mentatlab.analytics.query import GROUP_BY_COLUMNS

pytestmark = pytest.mark.slow

_READS = {Permission.READ_USAGE, Permission.READ_SPANS, Permission.READ_ALERTS}
TENANTS = {  # (org, project) → the marker every span of that tenant carries
    ("acme", "web"): "acmeweb",
    ("acme", "api"): "acmeapi",
    ("globex", "main"): "globexmain",
}


@dataclass
class Seeded:
    inst: Installation
    trace_ids: dict[str, str]
    """Marker → the hex trace id of that tenant's trace."""
    root_ids: dict[str, str]
    """Marker → the hex span id of that trace's root."""
    rule_ids: dict[str, str]
    """Org → the id of an alert rule of that org."""
    policy_ids: dict[str, str]
    """Org → the id of a guardrail policy of that org (named after its marker)."""


def _tenant_trace(marker: str) -> tuple[bytes, bytes, list]:
    trace_id = new_trace_id()
    root_id = new_span_id()
    spans = [
        llm_span(trace_id, span_id=root_id, name=f"invoke_agent {marker}",
                 model=f"{marker}-model", attrs={"gen_ai.operation.name": "invoke_agent",
                                                  "gen_ai.agent.name": f"{marker}-agent",
                                                  "user.id": f"{marker}-user"}),
        llm_span(trace_id, parent=root_id, model=f"{marker}-model", error=True,
                 attrs={"gen_ai.tool.name": f"{marker}-tool"}),
    ]
    return trace_id, root_id, spans


def _seed(inst: Installation) -> Seeded:
    control = inst.control
    control.create_project("acme", "api", "api")
    control.create_project("globex", "main", "main")
    trace_ids: dict[str, str] = {}
    root_ids: dict[str, str] = {}
    for (org, project), marker in TENANTS.items():
        key = control.create_api_key(org, project, f"ingest-{marker}", role="ingest").key
        trace_id, root_id, spans = _tenant_trace(marker)
        body, headers = encode(export_request(spans, project_id=project,
                                              service=f"{marker}-svc"))
        answer = httpx.post(f"{inst.url}/v1/traces", content=body,
                            headers={**headers, "x-api-key": key}, timeout=30)
        assert answer.status_code == 200, answer.text
        trace_ids[marker] = trace_id.hex()
        root_ids[marker] = root_id.hex()
    rule_ids: dict[str, str] = {}
    for org in ("acme", "globex"):
        admin = control.create_api_key(org, None, f"rules-{org}", role="admin").key
        made = httpx.post(f"{inst.url}/api/v1/alert-rules", headers={"x-api-key": admin},
                          json={"name": f"{org}-spend-rule", "kind": "budget",
                                "period": "day", "limit_amount": "5",
                                "channels": [f"email:ops@{org}.test"]}, timeout=30)
        assert made.status_code == 200, made.text
        rule_ids[org] = made.json()["rule"]["id"]
    policy_ids: dict[str, str] = {}
    for org, marker in (("acme", "acmeweb"), ("globex", "globexmain")):
        admin = control.create_api_key(org, None, f"policies-{org}", role="admin").key
        made = httpx.post(f"{inst.url}/api/v1/policies", headers={"x-api-key": admin},
                          json={"name": f"{marker}-policy", "action": "log",
                                "condition": f"span.name == '{marker}-never'"}, timeout=30)
        assert made.status_code == 201, made.text
        policy_ids[org] = made.json()["policy"]["id"]
    return Seeded(inst, trace_ids, root_ids, rule_ids, policy_ids)


@pytest.fixture(scope="module")
def seeded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Seeded]:
    backend = request.param
    data_dir = tmp_path_factory.mktemp(f"isolation-{backend}")
    if backend == "sqlite":
        control_url = f"sqlite:///{data_dir / 'control.db'}"
        yield from _serve(data_dir, control_url)
        return
    from backends import fresh_postgres_database

    cluster = request.getfixturevalue("postgres_cluster")
    with fresh_postgres_database(cluster[0]) as control_url:
        yield from _serve(data_dir, control_url)


def _serve(data_dir: Path, control_url: str) -> Iterator[Seeded]:
    settings = make_settings(data_dir, auth_required=True, control_store=control_url,
                             alert_interval_s=0)
    for server in run_live_server(settings):
        control = server.state.control
        yield _seed(Installation(server, control, make_callers(control)))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "seeded" in metafunc.fixturenames:
        metafunc.parametrize("seeded", ["sqlite", "postgresql"], indirect=True, scope="module")


# Who reads, and which markers it may and may not see.
SCOPES = {
    "read": ({"acmeweb", "acmeapi"}, {"globexmain"}),
    "admin": ({"acmeweb", "acmeapi"}, {"globexmain"}),
    "project-read": ({"acmeweb"}, {"acmeapi", "globexmain"}),
}


def _read_routes(inst: Installation) -> list[str]:
    """Path templates of every GET read route of the app (checked against the matrix)."""
    paths = sorted(path for (method, path), need in ROUTE_PERMISSIONS.items()
                   if method == "GET" and need in _READS)
    app_paths = set()
    for route in inst.server.app.routes:
        contexts = getattr(route, "effective_route_contexts", None)
        for r in ([c.original_route for c in contexts()] if contexts else [route]):
            if isinstance(r, APIRoute) and "GET" in r.methods:
                app_paths.add(r.path)
    assert set(paths) <= app_paths
    return paths


REQUIRED_PARAMS: dict[str, dict[str, str]] = {
    # a value every caller sees (acmeweb) and one no tenant has (a hidden marker in a
    # parameter would be echoed back as a "leak"): the answer is a 422 naming b, after the
    # route read side a within the caller's scope
    "/api/v1/analytics/compare": {"field": "model", "a": "acmeweb-model", "b": "no-such-b"},
}
"""Path → the parameters a route cannot answer without."""


def _requests(seeded: Seeded, path: str, own: str) -> list[tuple[str, dict[str, str]]]:
    """The requests to make of ``path``: plain, every group-by, CSV; ids of everyone."""
    if "{span_id}" in path:  # every tenant's root span, asked through its own trace
        return [(path.replace("{trace_id}", t).replace("{span_id}", seeded.root_ids[m]), {})
                for m, t in seeded.trace_ids.items()]
    if "{trace_id}" in path:
        return [(path.replace("{trace_id}", t), {}) for t in seeded.trace_ids.values()]
    if "{rule_id}" in path:
        return [(path.replace("{rule_id}", r), {}) for r in seeded.rule_ids.values()]
    if "{policy_id}" in path:
        return [(path.replace("{policy_id}", p), {}) for p in seeded.policy_ids.values()]
    out: list[tuple[str, dict[str, str]]] = [(path, dict(REQUIRED_PARAMS.get(path, {})))]
    if path == "/api/v1/analytics/latency":
        out += [(path, {"group_by": g}) for g in ("agent", "tool", "provider", "model")]
    if path == "/api/v1/cost":
        for name in GROUP_BY_COLUMNS:
            out.append((path, {"group_by": name}))
            out.append((path, {"group_by": name, "format": "csv"}))
    if path == "/api/v1/spans":
        out.append((path, {"limit": "1000"}))
    return out


@pytest.mark.parametrize("caller", sorted(SCOPES))
def test_no_read_route_answers_with_another_tenant(seeded: Seeded, caller: str) -> None:
    inst = seeded.inst
    visible, hidden = SCOPES[caller]
    seen: set[str] = set()
    leaks: list[str] = []
    calls = 0
    with httpx.Client(base_url=inst.url, headers=inst.callers[caller].headers,
                      timeout=60) as client:
        for path in _read_routes(inst):
            for concrete, params in _requests(seeded, path, caller):
                answer = client.get(concrete, params=params)
                calls += 1
                if answer.status_code == 422 and path in REQUIRED_PARAMS:
                    # compare: side b has no trace anywhere (see REQUIRED_PARAMS)
                    assert [e["field"] for e in answer.json()["errors"]] == ["b"], answer.text
                else:
                    assert answer.status_code in (200, 404), (concrete, params, answer.text)
                text = answer.text
                leaks += [f"{marker} in {concrete} {params}" for marker in hidden
                          if marker in text]
                seen |= {marker for marker in visible if marker in text}
    assert leaks == []
    assert seen == visible, "the caller's own spans should be in the answers"
    assert calls > 2 * len(GROUP_BY_COLUMNS)


@pytest.mark.parametrize("caller", sorted(SCOPES))
def test_another_tenants_trace_and_rule_are_not_found(seeded: Seeded, caller: str) -> None:
    visible, hidden = SCOPES[caller]
    headers = seeded.inst.callers[caller].headers
    with httpx.Client(base_url=seeded.inst.url, headers=headers, timeout=30) as client:
        for marker, trace_id in seeded.trace_ids.items():
            status = client.get(f"/api/v1/traces/{trace_id}").status_code
            assert status == (200 if marker in visible else 404), marker
            root = seeded.root_ids[marker]
            status = client.get(f"/api/v1/traces/{trace_id}/spans/{root}").status_code
            assert status == (200 if marker in visible else 404), marker
        assert client.get(f"/api/v1/alert-rules/{seeded.rule_ids['globex']}").status_code == 404
        assert client.get(f"/api/v1/policies/{seeded.policy_ids['globex']}").status_code == 404


FOREIGN_FILTERS = {
    "read": ["org_id=globex", "org=globex", "org_id=globex,project_id=main"],
    "admin": ["org_id=globex"],
    "project-read": ["org_id=globex", "project_id=api", "project=api"],
}


@pytest.mark.parametrize("caller", sorted(SCOPES))
def test_a_filter_naming_another_tenant_is_forbidden(seeded: Seeded, caller: str) -> None:
    inst = seeded.inst
    with httpx.Client(base_url=inst.url, headers=inst.callers[caller].headers,
                      timeout=30) as client:
        for path in ("/api/v1/overview", "/api/v1/cost", "/api/v1/traces", "/api/v1/spans",
                     "/api/v1/unpriced"):
            for expr in FOREIGN_FILTERS[caller]:
                answer = client.get(path, params={"filter": expr})
                assert answer.status_code == 403, (path, expr, answer.text)
                assert answer.json()["errors"][0]["field"].startswith("filter")
            own = "project_id=web" if caller == "project-read" else "org_id=acme"
            assert client.get(path, params={"filter": own}).status_code == 200, (path, own)


@pytest.mark.parametrize("caller", sorted(SCOPES))
def test_the_live_stream_carries_only_the_callers_spans(seeded: Seeded, caller: str) -> None:
    inst = seeded.inst
    visible, hidden = SCOPES[caller]
    key = inst.callers[caller].headers["x-api-key"]
    url = inst.url.replace("http://", "ws://") + f"/api/v1/live?api_key={key}"
    ingest = {marker: inst.control.create_api_key(org, project, f"live-{marker}-{caller}",
                                                  role="ingest").key
              for (org, project), marker in TENANTS.items()}
    with connect(url, open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["ok"] is True
        # foreign tenants first, the caller's last: when the last arrives, any leak has too
        order = sorted(TENANTS.items(), key=lambda item: item[1] in visible)
        for (_org, project), marker in order:
            _trace_id, _root_id, spans = _tenant_trace(marker)
            body, headers = encode(export_request(spans, project_id=project))
            answer = httpx.post(f"{inst.url}/v1/traces", content=body, timeout=30,
                                headers={**headers, "x-api-key": ingest[marker]})
            assert answer.status_code == 200
        received: list[str] = []
        for _ in range(2 * len(visible)):
            received.append(ws.recv(timeout=10))
    assert all(not any(marker in text for marker in hidden) for text in received)
    assert {m for m in visible if any(m in text for text in received)} == visible
    with connect(url + "&filter=org_id%3Dglobex", open_timeout=10) as ws:
        refused = json.loads(ws.recv(timeout=10))
    assert refused["ok"] is False and refused["status"] == 403
