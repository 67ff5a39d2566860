"""WS /api/v1/live/stats against a live server: a real WebSocket client, real ingest."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_payloads import encode, export_request, llm_span, new_trace_id
from serverkit import LiveServer, make_settings, run_live_server
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from mentatlab.server.live_stats import BACKFILL_INTERVALS, REVISE_S


def stats_url(server: LiveServer, query: str) -> str:
    return server.url.replace("http://", "ws://") + "/api/v1/live/stats" + query


def post_spans(server: LiveServer, spans: list[Any], project: str = "acme",
               key: str | None = None) -> None:
    body, headers = encode(export_request(spans, project_id=project))
    if key:
        headers["x-api-key"] = key
    response = httpx.post(f"{server.url}/v1/traces", content=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text


def collect(ws: ClientConnection, num_spans: int, timeout_s: float = 20.0
            ) -> list[dict[str, Any]]:
    """Interval messages until the intervals they hold (the newest one and the ``revised``
    ones, each replacing the interval of the same start) count ``num_spans`` spans."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    while sum(i["num_spans"] for i in latest(seen).values()) < num_spans:
        left = deadline - time.monotonic()
        assert left > 0, f"expected {num_spans} spans, got {seen}"
        message = json.loads(ws.recv(timeout=left))
        assert message["ok"] and message["type"] == "interval"
        seen.append(message)
    return seen


def latest(messages: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each interval's latest numbers, by start, from a run of interval messages."""
    out: dict[str, dict[str, Any]] = {}
    for message in messages:
        for interval in [*message["revised"], message]:
            out[interval["start"]] = interval
    return out


def drain(ws: ClientConnection, seen: list[dict[str, Any]], wait_s: float) -> None:
    """Wait ``wait_s`` seconds, then add the messages that came meanwhile."""
    time.sleep(wait_s)
    while True:
        try:
            seen.append(json.loads(ws.recv(timeout=0.1)))
        except TimeoutError:
            return


def refusal(url: str) -> tuple[dict[str, Any], int | None]:
    """The error message of a refused subscription and the close code."""
    with connect(url, open_timeout=10) as ws:
        answer = json.loads(ws.recv(timeout=10))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None
    return answer, closed.value.rcvd.code


def ending_now(durations_ms: list[int], num_errors: int = 0) -> list[Any]:
    """LLM spans that all end at the same nanosecond, now; the last ``num_errors`` failed."""
    end_ns = time.time_ns()
    spans = [llm_span(duration_ms=d, error=i >= len(durations_ms) - num_errors)
             for i, d in enumerate(durations_ms)]
    for span, duration_ms in zip(spans, durations_ms, strict=True):
        span.end_time_unix_nano = end_ns
        span.start_time_unix_nano = end_ns - duration_ms * 1_000_000
    return spans


def test_the_next_interval_counts_the_ingested_spans(live_server: LiveServer) -> None:
    with connect(stats_url(live_server, "?interval_s=1"), open_timeout=10) as ws:
        hello = json.loads(ws.recv(timeout=30))
        assert hello["ok"] and hello["type"] == "backfill" and hello["interval_s"] == 1
        assert hello["revise_s"] == REVISE_S and hello["grace_s"] == 2.0
        assert len(hello["intervals"]) == BACKFILL_INTERVALS
        assert all(i["num_spans"] == 0 for i in hello["intervals"]), "an empty store"
        assert hello["subscribed"] == {}
        post_spans(live_server, ending_now([100, 200, 400], num_errors=1))
        seen = collect(ws, 3)
    intervals = latest(seen)
    busy = [i for i in intervals.values() if i["num_spans"]]
    assert len(busy) == 1, "they ended at the same instant"
    assert busy[0]["num_spans"] == 3 and busy[0]["requests"] == 3
    assert busy[0]["error_spans"] == 1 and busy[0]["error_rate"] == pytest.approx(1 / 3)
    assert Decimal(busy[0]["spend"]) > 0
    assert busy[0]["latency_p50_ms"] == pytest.approx(200, rel=0.01)
    assert busy[0]["latency_p99_ms"] == pytest.approx(400, rel=0.01)
    assert busy[0]["spans_per_s"] == 3.0
    starts = [m["start"] for m in seen]
    assert starts == sorted(starts) and len(set(starts)) == len(starts), "one new per message"


def test_late_spans_revise_an_interval_already_sent(live_server: LiveServer) -> None:
    with connect(stats_url(live_server, "?interval_s=1"), open_timeout=10) as ws:
        json.loads(ws.recv(timeout=30))
        early = ending_now([50])
        late = ending_now([50])  # ends now, exported 4 s later (an exporter's batch delay)
        post_spans(live_server, early)
        seen = collect(ws, 1)
        time.sleep(4)
        post_spans(live_server, late)
        seen += collect(ws, 2)
    revision = next(m for m in seen if m["revised"])
    assert sum(i["num_spans"] for i in revision["revised"]) >= 1
    assert sum(i["num_spans"] for i in latest(seen).values()) == 2


def test_the_backfill_holds_recent_traffic_and_filters_apply(live_server: LiveServer) -> None:
    post_spans(live_server, [llm_span(), llm_span()], project="acme")
    post_spans(live_server, [llm_span()], project="globex")
    time.sleep(2.5)  # the grace after the commits' interval
    with connect(stats_url(live_server, "?interval_s=1&filter=project=acme"),
                 open_timeout=10) as ws:
        hello = json.loads(ws.recv(timeout=30))
    assert hello["subscribed"] == {"project_id": "acme"}
    assert sum(i["num_spans"] for i in hello["intervals"]) == 2


def test_subscribers_share_one_computation(live_server: LiveServer) -> None:
    url = stats_url(live_server, "?interval_s=2&filter=project=acme")
    with connect(url, open_timeout=10) as one, connect(url, open_timeout=10) as two:
        json.loads(one.recv(timeout=30))
        json.loads(two.recv(timeout=30))
        hub = live_server.state.live_stats
        assert hub.num_groups == 1
        queries = hub.num_queries
        post_spans(live_server, [llm_span()])
        first, second = collect(one, 1), collect(two, 1)
        assert first == second, "both got the same intervals"
        assert hub.num_queries - queries <= len(first) + 1, "one read per interval, not two"
        with connect(stats_url(live_server, "?interval_s=2"), open_timeout=10) as other:
            json.loads(other.recv(timeout=30))
            assert hub.num_groups == 2, "another filter is another computation"
    deadline = time.monotonic() + 10
    while hub.num_groups and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hub.num_groups == 0, "the last one out stops the computation"


@pytest.mark.parametrize("query", ["?interval_s=0", "?interval_s=61", "?interval_s=abc",
                                   "?interval_s=1.5"])
def test_a_bad_interval_is_refused(live_server: LiveServer, query: str) -> None:
    answer, code = refusal(stats_url(live_server, query))
    assert answer["ok"] is False and answer["status"] == 422
    assert answer["errors"][0]["field"] == "interval_s"
    assert "1 to 60" in answer["errors"][0]["reason"]
    assert code == 1008


def test_a_bad_filter_is_refused(live_server: LiveServer) -> None:
    answer, code = refusal(stats_url(live_server, "?filter=colour=red"))
    assert answer["status"] == 400 and answer["errors"][0]["field"] == "filter.colour"
    assert code == 1008
    answer, code = refusal(stats_url(live_server, "?filter=min_cost=0.1"))
    assert answer["status"] == 400 and answer["errors"][0]["field"] == "filter.min_cost"


def test_a_scoped_key_sees_only_its_org(_isolated_data_dir: Path) -> None:
    settings = make_settings(_isolated_data_dir, auth_required=True)
    for server in run_live_server(settings):
        control = server.state.control
        keys: dict[str, dict[str, str]] = {}
        for org in ("acme", "globex"):
            control.create_org(org.title(), org)
            control.create_project(org, "web", f"{org}-web")
            keys[org] = {role: control.create_api_key(org, f"{org}-web", f"{org}-{role}",
                                                      role=role).key
                         for role in ("ingest", "read")}
        answer, code = refusal(stats_url(server, "?interval_s=1"))
        assert answer["status"] == 401 and code == 1008
        answer, code = refusal(stats_url(
            server, f"?interval_s=1&api_key={keys['acme']['ingest']}"))
        assert answer["status"] == 403 and code == 1008, "an ingest key cannot read"
        answer, code = refusal(stats_url(
            server, f"?interval_s=1&filter=org=globex&api_key={keys['acme']['read']}"))
        assert answer["status"] == 403 and code == 1008
        url = stats_url(server, f"?interval_s=1&api_key={keys['acme']['read']}")
        with connect(url, open_timeout=10) as ws:
            hello = json.loads(ws.recv(timeout=30))
            assert hello["subscribed"] == {"org_id": "acme", "project_id": "acme-web"}
            post_spans(server, [llm_span() for _ in range(4)], key=keys["globex"]["ingest"])
            post_spans(server, [llm_span()], key=keys["acme"]["ingest"])
            seen = collect(ws, 1)
            drain(ws, seen, 3)  # a later message would show globex's spans if they leaked
        assert sum(i["num_spans"] for i in latest(seen).values()) == 1


def test_a_span_rewritten_by_the_resolver_counts_once(live_server: LiveServer) -> None:
    trace = new_trace_id()
    root = llm_span(trace, name="plan", attrs={"gen_ai.agent.name": "planner"})
    child = llm_span(trace, parent=root.span_id, name="call")  # inherits the agent
    with connect(stats_url(live_server, "?interval_s=1"), open_timeout=10) as ws:
        json.loads(ws.recv(timeout=30))
        post_spans(live_server, [child])  # before its parent: no agent yet
        post_spans(live_server, [root])
        seen = collect(ws, 2)
        tree = httpx.get(f"{live_server.url}/api/v1/traces/{trace.hex()}", timeout=30).json()
        children = tree["roots"][0]["children"]
        assert children[0]["agent_id"] == "planner" and children[0]["revision"] >= 1, \
            "the resolver wrote a second version of the child"
        drain(ws, seen, 3)  # the revisions of its interval, if any
    assert sum(i["num_spans"] for i in latest(seen).values()) == 2, "spans, not versions"
