"""Quotas on a live server with auth on: every ingest path, reads, the live stream, /metrics.

Limits are tiny and the quota clock is frozen (or moved by hand), so what is refused never
depends on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from websockets.sync.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from server_payloads import JSON, PROTOBUF, encode, export_request, llm_span  # noqa: E402
from serverkit import (  # noqa: E402
    LiveServer,
    make_settings,
    run_live_server,
    start_ingest_workers,
)


class FakeClock:
    """The quota clock: stands still unless a test moves it."""

    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


@dataclass
class Served:
    server: LiveServer
    keys: dict[str, dict[str, str]]
    """Key name → headers carrying it."""
    clock: FakeClock
    grpc_port: int | None = None

    @property
    def url(self) -> str:
        return self.server.url

    def metrics(self) -> str:
        return httpx.get(f"{self.url}/metrics").text

    def stored_spans(self) -> int:
        rows = self.server.stored().query_arrow("SELECT count() AS n FROM spans FINAL")
        return int(rows.to_pylist()[0]["n"])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve(data_dir: Path, *, grpc: bool = False, ingest_workers: int = 0,
          **limits: int) -> Iterator[Served]:
    """A live server (auth on) with ``limits`` (``quota_*`` settings) and a frozen quota clock.

    Keys: ``ingest-a``, ``ingest-b``, ``read-a``, ``read-b`` of org ``acme``; ``ingest-g``,
    ``read-g`` of org ``globex``.
    """
    settings = make_settings(data_dir, auth_required=True, ingest_workers=ingest_workers,
                             grpc_port=_free_port() if grpc else 0, **limits)
    for server in run_live_server(settings):
        control = server.state.control
        control.create_org("Acme", "acme")
        control.create_org("Globex", "globex")
        keys: dict[str, dict[str, str]] = {}
        for name, role, org in (("ingest-a", "ingest", "acme"), ("ingest-b", "ingest", "acme"),
                                ("read-a", "read", "acme"), ("read-b", "read", "acme"),
                                ("ingest-g", "ingest", "globex"), ("read-g", "read", "globex")):
            secret = control.create_api_key(org, None, name, role=role, created_by="test").key
            keys[name] = {"x-api-key": secret}
        clock = FakeClock()
        server.state.quotas.clock = clock
        yield Served(server, keys, clock, server.state.grpc_port)


def post_spans(served: Served, key: str, num_spans: int,
               content_type: str = PROTOBUF) -> httpx.Response:
    body, headers = encode(export_request([llm_span() for _ in range(num_spans)]), content_type)
    return httpx.post(f"{served.url}/v1/traces", content=body,
                      headers={**headers, **served.keys[key]}, timeout=30)


def count(metrics: str, kind: str, scope: str) -> float:
    line = f'mentatlab_rate_limited_total{{kind="{kind}",scope="{scope}"}} '
    for row in metrics.splitlines():
        if row.startswith(line):
            return float(row[len(line):])
    return 0.0


def assert_rest_429(answer: httpx.Response, retry_after_s: int) -> None:
    assert answer.status_code == 429, answer.text
    assert answer.headers["retry-after"] == str(retry_after_s)
    body = answer.json()
    assert body["ok"] is False and body["status"] == 429
    assert body["errors"][0]["field"] == "rate_limit"


@pytest.mark.parametrize("content_type", [PROTOBUF, JSON])
def test_otlp_http_over_the_request_rate_is_429_with_a_status_body(
        _isolated_data_dir: Path, content_type: str) -> None:
    with serve(_isolated_data_dir, quota_key_ingest_requests_per_s=1) as served:
        assert post_spans(served, "ingest-a", 1, content_type).status_code == 200
        refused = post_spans(served, "ingest-a", 1, content_type)
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "1"
        assert refused.headers["content-type"] == content_type
        if content_type == JSON:
            status = json.loads(refused.content)
            assert status["code"] == code_pb2.RESOURCE_EXHAUSTED
            assert status["details"][0]["retryDelay"] == "1s"
        else:
            parsed = status_pb2.Status.FromString(refused.content)
            assert parsed.code == code_pb2.RESOURCE_EXHAUSTED
            retry = error_details_pb2.RetryInfo()
            assert parsed.details[0].Unpack(retry) and retry.retry_delay.seconds == 1
        assert post_spans(served, "ingest-g", 1, content_type).status_code == 200  # other org
        assert served.stored_spans() == 2
        assert count(served.metrics(), "ingest_requests", "key") == 1


def test_event_api_over_the_request_rate_is_429(_isolated_data_dir: Path) -> None:
    with serve(_isolated_data_dir, quota_key_ingest_requests_per_s=1) as served:
        event = {"type": "agent.step.started", "run_id": "r", "step_id": "s1",
                 "timestamp": time.time_ns()}
        url = f"{served.url}/api/v1/events"
        assert httpx.post(url, json=[event], headers=served.keys["ingest-a"]).status_code == 200
        assert_rest_429(httpx.post(url, json=[{**event, "step_id": "s2"}],
                                   headers=served.keys["ingest-a"]), 1)
        assert served.server.state.pairer.open_count == 1  # the refused start never paired


def test_event_api_counts_events_against_spans_per_minute(_isolated_data_dir: Path) -> None:
    with serve(_isolated_data_dir, quota_key_ingest_spans_per_min=3) as served:
        now_ns = time.time_ns()
        events = [{"type": "agent.step.started", "run_id": "r", "step_id": f"s{i}",
                   "timestamp": now_ns} for i in range(5)]
        url = f"{served.url}/api/v1/events"
        first = httpx.post(url, json=events[:2], headers=served.keys["ingest-a"])
        assert first.status_code == 200, first.text
        assert_rest_429(httpx.post(url, json=events[2:4], headers=served.keys["ingest-a"]), 20)
        assert httpx.post(url, json=events[4:], headers=served.keys["ingest-a"]).status_code \
            == 200
        assert served.stored_spans() == 3 == served.server.state.pairer.open_count


def test_reads_over_the_query_rate_are_429_and_so_is_a_live_connect(
        _isolated_data_dir: Path) -> None:
    with serve(_isolated_data_dir, quota_key_queries_per_min=2) as served:
        cost = f"{served.url}/api/v1/cost"
        for _ in range(2):
            assert httpx.get(cost, headers=served.keys["read-a"]).status_code == 200
        assert_rest_429(httpx.get(cost, headers=served.keys["read-a"]), 30)
        ws_url = served.url.replace("http://", "ws://") + "/api/v1/live?api_key=" + \
            served.keys["read-a"]["x-api-key"]
        with connect(ws_url, open_timeout=10) as ws:
            answer = json.loads(ws.recv(timeout=10))
        assert answer["ok"] is False and answer["status"] == 429
        assert httpx.get(cost, headers=served.keys["read-b"]).status_code == 200
        assert count(served.metrics(), "queries", "key") == 2


def test_the_org_limit_is_shared_by_two_keys_of_the_org(_isolated_data_dir: Path) -> None:
    with serve(_isolated_data_dir, quota_org_queries_per_min=3) as served:
        traces = f"{served.url}/api/v1/traces"
        for key in ("read-a", "read-b", "read-a"):
            assert httpx.get(traces, headers=served.keys[key]).status_code == 200
        assert_rest_429(httpx.get(traces, headers=served.keys["read-b"]), 20)
        assert httpx.get(traces, headers=served.keys["read-g"]).status_code == 200
        served.clock.now_s += 20  # one more query's worth refills
        assert httpx.get(traces, headers=served.keys["read-b"]).status_code == 200
        assert count(served.metrics(), "queries", "org") == 1


@pytest.mark.parametrize("ingest_workers", [0, 1])
def test_a_batch_over_the_span_budget_is_refused_whole_and_nothing_acked_is_lost(
        _isolated_data_dir: Path, ingest_workers: int) -> None:
    with serve(_isolated_data_dir, ingest_workers=ingest_workers,
               quota_org_ingest_spans_per_min=10) as served:
        if ingest_workers:  # the worker path: wait until the pool serves
            start_ingest_workers(served.server)
        assert post_spans(served, "ingest-a", 6).status_code == 200
        refused = post_spans(served, "ingest-b", 6)  # the org has 4 left
        assert refused.status_code == 429 and refused.headers["retry-after"] == "12"
        assert post_spans(served, "ingest-b", 4).status_code == 200
        assert served.stored_spans() == 10  # every acknowledged span, nothing of the refused
        assert count(served.metrics(), "ingest_spans", "org") == 1


def test_grpc_over_the_limit_is_resource_exhausted_and_a_real_exporter_retries(
        _isolated_data_dir: Path) -> None:
    with serve(_isolated_data_dir, grpc=True, quota_key_ingest_requests_per_s=1) as served:
        assert served.grpc_port
        key = served.keys["ingest-a"]["x-api-key"]
        request = export_request([llm_span()])

        async def call() -> Any:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{served.grpc_port}") as channel:
                stub = trace_service_pb2_grpc.TraceServiceStub(channel)
                return await stub.Export(request, timeout=10, metadata=(("x-api-key", key),))

        asyncio.run(call())
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            asyncio.run(call())
        assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        details = dict(refused.value.trailing_metadata() or ())["grpc-status-details-bin"]
        retry = error_details_pb2.RetryInfo()
        assert status_pb2.Status.FromString(details).details[0].Unpack(retry)
        assert retry.retry_delay.seconds == 1

        # a real OTLP exporter is refused, waits the delay given, and gets through once the
        # bucket has refilled (the quota clock moves only after the refusal is counted)
        provider = TracerProvider(resource=Resource.create({"service.name": "quota"}))
        exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{served.grpc_port}", insecure=True,
                                    headers={"x-api-key": key}, timeout=20)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        refusals = count(served.metrics(), "ingest_requests", "key")

        def move_clock_after_a_refusal() -> None:
            deadline = time.monotonic() + 20
            while count(served.metrics(), "ingest_requests", "key") == refusals:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            served.clock.now_s += 5

        mover = threading.Thread(target=move_clock_after_a_refusal, daemon=True)
        mover.start()
        with provider.get_tracer("test").start_as_current_span("retried"):
            pass
        mover.join(30)
        provider.shutdown()
        assert count(served.metrics(), "ingest_requests", "key") == refusals + 1
        assert served.stored_spans() == 2
        assert 'mentatlab_spans_accepted_total{receiver="otlp_grpc"} 2.0' in served.metrics()


def test_defaults_are_not_hit_by_a_developer_run(_isolated_data_dir: Path) -> None:
    """Default limits, real clock: a burst of ingest and reads from one key of each role."""
    settings = make_settings(_isolated_data_dir, auth_required=True, ingest_workers=0)
    for server in run_live_server(settings):
        control = server.state.control
        control.create_org("Acme", "acme")
        ingest = {"x-api-key": control.create_api_key("acme", None, "i", role="ingest",
                                                      created_by="test").key}
        read = {"x-api-key": control.create_api_key("acme", None, "r", role="read",
                                                    created_by="test").key}
        body, headers = encode(export_request([llm_span() for _ in range(200)]))
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for _ in range(30):
                answer = client.post("/v1/traces", content=body, headers={**headers, **ingest})
                assert answer.status_code == 200, answer.text
            for path in ("/api/v1/cost", "/api/v1/traces", "/api/v1/overview") * 20:
                assert client.get(path, headers=read).status_code == 200
            assert "mentatlab_rate_limited_total{" not in client.get("/metrics").text
