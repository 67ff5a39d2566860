"""analytics/pii.py on both span stores: counts of stored findings by category, project, key;
and the route's scoping and errors through the real app."""

from __future__ import annotations

import contextlib
import json
import sys
from datetime import timedelta
from pathlib import Path

import httpx

from mentatlab.analytics.pii import PiiFindingCount, get_pii_summary
from mentatlab.analytics.query import QueryParams, TimeRange
from mentatlab.storage.base import SpanStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "storage"))
from spanfactory import T0, make_span  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from serverkit import make_settings, open_in_process, run_live_server  # noqa: E402


def _findings(*items: tuple[str, str]) -> str:
    return json.dumps([{"category": c, "key": k, "offset": 3, "length": 9, "confidence": 1.0}
                       for c, k in items])


def _stored(store: SpanStore) -> None:
    from mentatlab.model.schema import spans_to_arrow

    store.append_batch(spans_to_arrow([
        make_span(0, project_id="web", pii_findings=_findings(
            ("EMAIL_ADDRESS", "gen_ai.input.messages"), ("EMAIL_ADDRESS", "gen_ai.input.messages"),
            ("CREDIT_CARD", "gen_ai.input.messages"))),
        make_span(1, project_id="web", pii_findings=_findings(
            ("EMAIL_ADDRESS", "event:0:exception.message"))),
        make_span(2, project_id="billing", pii_findings=_findings(
            ("SECRET", "event:3:exception.message"))),
        make_span(3, project_id="billing"),  # no findings
        make_span(4, org_id="other", pii_findings=_findings(("US_SSN", "note"))),
        make_span(5, project_id="web", start_time=T0 - timedelta(days=3),
                  end_time=T0 - timedelta(days=3), pii_findings=_findings(("IBAN_CODE", "x"))),
    ]))


def test_counts_by_category_project_and_key(store: SpanStore) -> None:
    _stored(store)
    params = QueryParams(TimeRange(T0 - timedelta(hours=1), T0 + timedelta(hours=1)),
                         {"org_id": "org1"})
    summary = get_pii_summary(store, params)
    assert (summary.num_findings, summary.num_spans) == (5, 3)
    assert summary.by_category == (
        PiiFindingCount("EMAIL_ADDRESS", None, None, 3, 2),
        PiiFindingCount("CREDIT_CARD", None, None, 1, 1),
        PiiFindingCount("SECRET", None, None, 1, 1))
    assert summary.by_project == (PiiFindingCount(None, "web", None, 4, 2),
                                  PiiFindingCount(None, "billing", None, 1, 1))
    assert summary.by_key == (  # most findings first; event indexes folded
        PiiFindingCount(None, None, "gen_ai.input.messages", 3, 1),
        PiiFindingCount(None, None, "event:exception.message", 2, 2))
    assert PiiFindingCount("EMAIL_ADDRESS", "web", "event:exception.message", 1, 1) in summary.rows
    assert len(summary.rows) == 4 and not summary.truncated


def test_an_empty_window_counts_nothing(store: SpanStore) -> None:
    _stored(store)
    params = QueryParams(TimeRange(T0 + timedelta(days=1), T0 + timedelta(days=2)))
    summary = get_pii_summary(store, params)
    assert (summary.num_findings, summary.num_spans, summary.rows) == (0, 0, ())


async def test_route_answers_counts_and_refuses_bad_input(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", ingest_workers=0)
    async with open_in_process(settings) as app:
        _stored(app.state.store)
        window = {"start": (T0 - timedelta(hours=1)).isoformat(),
                  "end": (T0 + timedelta(hours=1)).isoformat()}
        answer = (await app.client.get("/api/v1/governance/pii",
                                       params={**window, "filter": "org=org1"})).json()
        assert answer["num_findings"] == 5 and answer["pii_mode"] == "redact"
        assert answer["by_category"][0] == {"category": "EMAIL_ADDRESS", "num_findings": 3,
                                            "num_spans": 2}
        every = (await app.client.get("/api/v1/governance/pii", params=window)).json()
        assert every["num_findings"] == 6
        bad: httpx.Response = await app.client.get("/api/v1/governance/pii",
                                                   params={"start": "yesterday"})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"].endswith("start")
        empty = await app.client.get("/api/v1/governance/pii", params={
            "start": window["end"], "end": window["start"]})
        assert empty.status_code == 400 and empty.json()["errors"][0]["field"] == "start"


def test_route_is_org_scoped_and_needs_a_read_role(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", auth_required=True, ingest_workers=0)
    with contextlib.contextmanager(run_live_server)(settings) as server:
        control = server.state.control
        control.create_org("Org one", "org1")
        control.create_org("Other", "other")
        control.create_project("org1", "web", "web")
        keys = {name: control.create_api_key(org, project, name, role=role,
                                             created_by="test").key
                for name, org, project, role in (
                    ("read", "org1", None, "read"), ("ingest", "org1", None, "ingest"),
                    ("web", "org1", "web", "read"), ("other", "other", None, "read"))}
        _stored(server.state.store)
        window = {"start": (T0 - timedelta(hours=1)).isoformat(),
                  "end": (T0 + timedelta(hours=1)).isoformat()}

        def get(key: str | None, **params: str) -> httpx.Response:
            headers = {"x-api-key": keys[key]} if key else {}
            return httpx.get(f"{server.url}/api/v1/governance/pii", headers=headers,
                             params={**window, **params}, timeout=30)

        assert get("read").json()["num_findings"] == 5  # org1 only, not other's SSN
        assert get("other").json()["by_category"] == [
            {"category": "US_SSN", "num_findings": 1, "num_spans": 1}]
        web = get("web").json()
        assert {p["project_id"] for p in web["by_project"]} == {"web"}
        assert web["num_findings"] == 4
        assert get(None).status_code == 401
        assert get("ingest").status_code == 403
        foreign = get("read", filter="org=other")
        assert foreign.status_code == 403
        assert foreign.json()["errors"][0]["field"].startswith("filter")
