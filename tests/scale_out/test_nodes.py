"""Scale-out end to end: three stateless `mentatctl serve` nodes on one ClickHouse span store
(the chDB-backed HTTP endpoint, reached through clickhouse-connect) and one real PostgreSQL
control store. Spans go round-robin; totals, live stream, leader election, a node killed
mid-load, ClickHouse going away and coming back, and events paired across nodes."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from genai_prices import Usage, calc_price
from nodes import Node, node_env, otlp_json, start_node, start_nodes, stored_traces, wait_for
from websockets.sync.client import connect

from clickhouse_endpoint import EndpointProcess
from serve_process import stop

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EndpointProcess]:
    """A ClickHouse endpoint of this module's own: a test stops and restarts it."""
    with EndpointProcess(tmp_path_factory.mktemp("nodes-endpoint")) as ep:
        yield ep


@pytest.fixture(scope="module")
def stores(endpoint: EndpointProcess, postgres_cluster: tuple[str, Path | None]
           ) -> dict[str, str]:
    span_store = (f"clickhouse://default@{endpoint.host}:{endpoint.port}"
                  f"/mentat_nodes_{uuid.uuid4().hex[:8]}?compress=false&connect_timeout_s=2")
    return node_env(span_store, postgres_cluster[0])


@pytest.fixture(scope="module")
def three_nodes(stores: dict[str, str], tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[list[Node]]:
    root = tmp_path_factory.mktemp("nodes")
    nodes = start_nodes([root / f"node{i}" for i in range(3)], stores)
    try:
        yield nodes
    finally:
        for node in nodes:
            stop(node.proc)


def test_round_robin_totals_live_stream_and_shared_control_data(three_nodes: list[Node]) -> None:
    project = f"rr-{uuid.uuid4().hex[:8]}"
    received: list[dict[str, Any]] = []
    ws_url = three_nodes[2].url.replace("http://", "ws://")
    with connect(f"{ws_url}/api/v1/live?filter=project_id={project}") as ws:
        assert json.loads(ws.recv(timeout=10))["ok"] is True
        traces = [uuid.uuid4().hex for _ in range(30)]

        def send(i: int) -> int:
            node = three_nodes[i % 3]
            return httpx.post(f"{node.url}/v1/traces", json=otlp_json(traces[i], 5, project),
                              timeout=60).status_code

        with ThreadPoolExecutor(6) as pool:
            assert set(pool.map(send, range(30))) == {200}
        # Node C's live stream shows the spans committed on A and B as well as its own.
        deadline = time.monotonic() + 20
        while len({(m["trace_id"], m["span_id"]) for m in received}) < 150:
            assert time.monotonic() < deadline, f"live stream got {len(received)} of 150"
            try:
                received.append(json.loads(ws.recv(timeout=1)))
            except TimeoutError:
                pass
    assert {m["trace_id"] for m in received} == set(traces)
    assert all(m["project_id"] == project for m in received)
    # Re-sent requests, to other nodes than the first time, still count once.
    for i in range(5):
        again = httpx.post(f"{three_nodes[(i + 1) % 3].url}/v1/traces",
                           json=otlp_json(traces[i], 5, project), timeout=60)
        assert again.status_code == 200
    for node in three_nodes:  # every node answers the same totals
        overview = httpx.get(f"{node.url}/api/v1/overview",
                             params={"filter": f"project_id={project}"}, timeout=60).json()
        assert overview["num_spans"] == 150
        assert overview["requests"] == 150
        assert overview["num_traces"] == 30
    trace = httpx.get(f"{three_nodes[1].url}/api/v1/traces/{traces[0]}", timeout=30)
    assert trace.status_code == 200, trace.text
    # The control store is shared: an org made on one node is seen (unique) on the others.
    name = f"acme-{uuid.uuid4().hex[:6]}"
    made = httpx.post(f"{three_nodes[0].url}/api/v1/orgs", json={"name": name}, timeout=30)
    assert made.status_code in (200, 201), made.text
    duplicate = httpx.post(f"{three_nodes[1].url}/api/v1/orgs", json={"name": name}, timeout=30)
    assert duplicate.status_code == 422, duplicate.text


def test_events_started_on_one_node_and_completed_on_another_are_not_timed_out(
        three_nodes: list[Node]) -> None:
    run_id = f"run-{uuid.uuid4().hex[:8]}"
    project = f"ev-{uuid.uuid4().hex[:6]}"
    base = {"run_id": run_id, "request_id": "r1", "project_id": project, "agent_id": "a1"}
    started = httpx.post(f"{three_nodes[0].url}/api/v1/events",
                         json=[{**base, "type": "agent.request.started"}], timeout=30)
    assert started.status_code == 200, started.text
    completed = httpx.post(f"{three_nodes[1].url}/api/v1/events", json=[{
        **base, "type": "agent.request.completed", "status": "ok", "duration_ms": 50}],
        timeout=30)
    assert completed.status_code == 200, completed.text
    time.sleep(6)  # node A's pairer times its start out after 3 s (node_env)

    def spans() -> list[dict[str, Any]]:
        trace_list = httpx.get(f"{three_nodes[2].url}/api/v1/traces",
                               params={"filter": f"project_id={project}"}, timeout=30).json()
        assert len(trace_list["traces"]) == 1
        detail = httpx.get(f"{three_nodes[2].url}/api/v1/traces/"
                           f"{trace_list['traces'][0]['trace_id']}", timeout=30).json()
        assert detail["num_spans"] == 1
        return list(detail["roots"])

    stored = spans()
    assert len(stored) == 1
    assert stored[0]["status"] == "ok", stored[0]


def test_one_node_leads_the_resolver(three_nodes: list[Node]) -> None:
    wait_for(lambda: sum(n.metric("mentatlab_job_leader", job="resolver")
                          for n in three_nodes) == 1, 20, "one resolver leader")


def test_clickhouse_down_means_503_with_retry_after_then_recovery(
        three_nodes: list[Node], endpoint: EndpointProcess) -> None:
    project = f"down-{uuid.uuid4().hex[:8]}"
    before = uuid.uuid4().hex
    ok = httpx.post(f"{three_nodes[0].url}/v1/traces", json=otlp_json(before, 4, project),
                    timeout=60)
    assert ok.status_code == 200
    endpoint.stop()
    try:
        refused = httpx.post(f"{three_nodes[0].url}/v1/traces",
                             json=otlp_json(uuid.uuid4().hex, 4, project), timeout=60)
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"] == "1"
        assert "UNAVAILABLE" in refused.text or refused.json().get("code") == 14
        events = httpx.post(f"{three_nodes[1].url}/api/v1/events", json=[{
            "type": "agent.tool.called", "run_id": "r", "tool_name": "t"}], timeout=60)
        assert events.status_code == 503
        assert events.headers["retry-after"] == "1"
        assert httpx.get(f"{three_nodes[2].url}/readyz", timeout=30).status_code == 503
        for node in three_nodes:  # no node crashed
            assert node.proc.poll() is None
    finally:
        endpoint.start()
    after = uuid.uuid4().hex

    def accepted() -> bool:
        return httpx.post(f"{three_nodes[0].url}/v1/traces", json=otlp_json(after, 4, project),
                          timeout=60).status_code == 200

    wait_for(accepted, 30, "ingest to recover")
    # node 1 answers once the resolver has passed node 0's commits (within a second)
    wait_for(lambda: stored_traces(three_nodes[1].url, project) == {before, after}, 30,
             "both traces to be readable from another node")


def test_a_node_killed_mid_load_loses_nothing_it_acknowledged(
        stores: dict[str, str], three_nodes: list[Node], tmp_path: Path) -> None:
    """Kill -9 the resolver leader while clients load every node; afterwards every span any
    node acknowledged is stored, and a survivor takes the resolver over."""
    project = f"kill-{uuid.uuid4().hex[:8]}"
    extra = start_node(tmp_path / "victim-candidate", stores)
    nodes = [*three_nodes, extra]
    leaders = [n for n in nodes if n.metric("mentatlab_job_leader", job="resolver") == 1]
    victim = leaders[0] if leaders else extra
    acked: list[str] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + 6

    def load(node: Node) -> None:
        with httpx.Client(timeout=30) as client:
            while time.monotonic() < stop_at:
                trace = uuid.uuid4().hex
                try:
                    answer = client.post(f"{node.url}/v1/traces",
                                         json=otlp_json(trace, 10, project))
                except httpx.HTTPError:
                    if node is victim:
                        return  # the node is gone: unacknowledged, the client would retry
                    raise
                if answer.status_code == 200:
                    with lock:
                        acked.append(trace)

    threads = [threading.Thread(target=load, args=(n,)) for n in nodes for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(2.5)
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait(10)
    for t in threads:
        t.join(60)
    survivors = [n for n in nodes if n is not victim]
    try:
        assert len(acked) > 20
        wait_for(lambda: set(acked) <= stored_traces(survivors[0].url, project), 60,
                 "every acknowledged trace to be readable from a survivor")
        stored = stored_traces(survivors[0].url, project)
        overview = httpx.get(f"{survivors[1].url}/api/v1/overview",
                             params={"filter": f"project_id={project}"}, timeout=60).json()
        assert overview["num_spans"] == 10 * len(stored)
        wait_for(lambda: sum(n.metric("mentatlab_job_leader", job="resolver")
                              for n in survivors) == 1, 30, "a survivor to lead the resolver")
    finally:
        stop(extra.proc)


def test_workers_share_the_ports(stores: dict[str, str], tmp_path: Path) -> None:
    """`mentatctl serve --workers 2`: two processes behind one HTTP and one gRPC port."""
    import psutil
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from serve_process import free_port

    project = f"wk-{uuid.uuid4().hex[:8]}"
    grpc_port = free_port()
    node = start_node(tmp_path / "workers", stores, grpc_port=grpc_port,
                      args=["--workers", "2"])
    try:
        children = psutil.Process(node.proc.pid).children()
        workers = [c for c in children if "spawn_main" in " ".join(c.cmdline())]
        assert len(workers) == 2, [c.cmdline() for c in children]
        traces = [uuid.uuid4().hex for _ in range(20)]
        for trace in traces:  # a fresh connection each: the kernel spreads them over workers
            answer = httpx.post(f"{node.url}/v1/traces", json=otlp_json(trace, 3, project),
                                timeout=60)
            assert answer.status_code == 200, answer.text
        provider = TracerProvider(resource=Resource.create({"service.name": "wk"}))
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(
            endpoint=f"127.0.0.1:{grpc_port}", insecure=True)))
        with provider.get_tracer("wk").start_as_current_span(
                "chat gpt-4o", attributes={"mentat.project_id": project,
                                           "gen_ai.request.model": "gpt-4o"}) as span:
            grpc_trace = f"{span.get_span_context().trace_id:032x}"
        provider.shutdown()
        # each worker is a node: what another worker acknowledged shows once resolved
        wait_for(lambda: stored_traces(node.url, project) == {*traces, grpc_trace}, 30,
                 "every worker's traces")
    finally:
        stop(node.proc)
    assert node.proc.returncode is not None
    for worker in workers:
        assert not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE


def test_workers_refused_on_the_embedded_store(tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "mentatlab.cli.main", "serve", "--workers", "2",
                           "--data-dir", str(tmp_path)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert "needs a ClickHouse span store" in done.stderr + done.stdout


def test_a_slow_clickhouse_fills_the_bounded_buffer_then_503_and_nothing_acknowledged_is_lost(
        stores: dict[str, str], endpoint: EndpointProcess, tmp_path: Path) -> None:
    """ClickHouse stops answering (SIGSTOP: connections hang, as on an overloaded server).
    The node's buffer holds 50 spans: requests beyond it get 503 + Retry-After at once
    instead of queueing without bound; after SIGCONT the held requests complete."""
    project = f"slow-{uuid.uuid4().hex[:8]}"
    node = start_node(tmp_path / "slow", {**stores, "MENTATLAB_WRITE_BUFFER_SPANS": "50"})
    statuses: dict[str, int] = {}
    lock = threading.Lock()

    def send(trace: str) -> None:
        answer = httpx.post(f"{node.url}/v1/traces", json=otlp_json(trace, 10, project),
                            timeout=120)
        with lock:
            statuses[trace] = answer.status_code
            if answer.status_code == 503:
                assert answer.headers["retry-after"] == "1"

    try:
        os.kill(endpoint.pid, signal.SIGSTOP)
        try:
            threads = []
            for _ in range(12):  # one insert hangs, 5 requests wait, the rest are refused
                t = threading.Thread(target=send, args=(uuid.uuid4().hex,))
                t.start()
                threads.append(t)
                time.sleep(0.3)
            wait_for(lambda: list(statuses.values()).count(503) >= 5, 30,
                      "the buffer to refuse")
            assert 200 not in statuses.values()  # nothing acknowledged while ClickHouse hangs
            assert node.proc.poll() is None
        finally:
            os.kill(endpoint.pid, signal.SIGCONT)
        for t in threads:
            t.join(120)
        assert len(statuses) == 12
        assert set(statuses.values()) <= {200, 503}
        acknowledged = {t for t, s in statuses.items() if s == 200}
        assert acknowledged, statuses  # the held requests were committed after all
        wait_for(lambda: acknowledged <= stored_traces(node.url, project), 60,
                 "every acknowledged trace to be readable")
    finally:
        stop(node.proc)


def _agent_trace_parts(trace: str, project: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """OTLP/JSON of one agent trace: (children, agent span), the way exporters send them."""
    now_ns = time.time_ns()

    def span(span_id: str, parent: str, name: str, attrs: dict[str, Any]) -> dict[str, Any]:
        return {"traceId": trace, "spanId": span_id, "parentSpanId": parent, "name": name,
                "kind": 1, "startTimeUnixNano": str(now_ns - 2_000_000_000),
                "endTimeUnixNano": str(now_ns - 1_000_000_000),
                "attributes": [{"key": k, "value": {"intValue": str(v)} if isinstance(v, int)
                                else {"stringValue": v}} for k, v in attrs.items()]}

    def request(spans: list[dict[str, Any]]) -> dict[str, Any]:
        return {"resourceSpans": [{"resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "support-bot"}}]},
            "scopeSpans": [{"scope": {"name": "test"}, "spans": spans}]}]}

    llm = {"mentat.project_id": project, "gen_ai.provider.name": "openai",
           "gen_ai.request.model": "gpt-4o"}
    children = request([
        span("00000000000000c1", "00000000000000a1", "chat gpt-4o",
             {**llm, "gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 300,
              "gen_ai.usage.output_tokens": 50}),
        span("00000000000000c2", "00000000000000a1", "execute_tool search",
             {"mentat.project_id": project, "gen_ai.operation.name": "execute_tool",
              "gen_ai.tool.name": "search"})])
    agent = request([span("00000000000000a1", "", "invoke_agent triage",
                          {**llm, "gen_ai.operation.name": "invoke_agent",
                           "gen_ai.agent.name": "triage", "gen_ai.usage.input_tokens": 1000,
                           "gen_ai.usage.output_tokens": 200})])
    return children, agent


def test_a_parent_on_another_node_attributes_children_already_counted(
        three_nodes: list[Node]) -> None:
    """Children go to one node; their agent span, in a later request, to another; a third
    (or, once a test has killed one, the first) answers cost by agent with the whole trace
    under the agent, exactly once."""
    live = [n for n in three_nodes if n.proc.poll() is None]
    assert len(live) >= 2
    first, second, third = live[0], live[1], live[-1] if len(live) > 2 else live[0]
    project = f"inherit-{uuid.uuid4().hex[:8]}"
    trace = uuid.uuid4().hex
    children, agent = _agent_trace_parts(trace, project)
    at = datetime.now(UTC) - timedelta(seconds=2)
    chat = calc_price(Usage(input_tokens=300, output_tokens=50), "gpt-4o", provider_id="openai",
                      genai_request_timestamp=at).total_price
    unattributed = calc_price(Usage(input_tokens=700, output_tokens=150), "gpt-4o",
                              provider_id="openai", genai_request_timestamp=at).total_price
    params = {"group_by": "agent_id", "filter": f"project_id={project}"}

    def by_agent(node: Node) -> dict[str, tuple[Decimal, Decimal]]:
        rows = httpx.get(f"{node.url}/api/v1/cost", params=params, timeout=60).json()["rows"]
        return {r["agent_id"]: (Decimal(r["total_cost"]), Decimal(r["unattributed_cost"]))
                for r in rows}

    assert httpx.post(f"{first.url}/v1/traces", json=children, timeout=60).status_code == 200
    assert by_agent(first) == {"": (chat, Decimal(0))}  # a node waits for its own commits
    assert httpx.post(f"{second.url}/v1/traces", json=agent, timeout=60).status_code == 200
    want = {"triage": (chat + unattributed, unattributed)}
    assert by_agent(second) == want
    wait_for(lambda: by_agent(third) == want, 30, "another node to see the agent's cost")
    tree = httpx.get(f"{third.url}/api/v1/traces/{trace}", timeout=60).json()
    children_of_agent = tree["roots"][0]["children"]
    assert {c["agent_id"] for c in children_of_agent} == {"triage"}
