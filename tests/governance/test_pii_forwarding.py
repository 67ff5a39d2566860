"""Forwarding with PII redaction: a real server forwards to a real OTLP target the values the
store holds (``forward_pii = redacted``, the default), or the raw values (``raw``)."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from serve_process import free_port

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "exporters"))
from forward_target import OtlpHttpTarget  # noqa: E402
from server_payloads import encode, export_request, kvs, llm_span  # noqa: E402
from serverkit import (  # noqa: E402
    LiveServer,
    make_settings,
    run_live_server,
    start_ingest_workers,
)

EMAIL = "walter.skinner@fbi-example.org"
KEY = "ghp_" + "Zx9" * 12
MESSAGES = json.dumps([{"role": "user", "parts": [{"type": "text",
                                                    "content": f"Mail {EMAIL} now"}]}])


@contextlib.contextmanager
def _server(data_dir: Path, target: OtlpHttpTarget, **overrides: Any) -> Iterator[LiveServer]:
    settings = make_settings(data_dir, forward_otlp_endpoint=target.url,
                             forward_linger_s=0.05, grpc_port=free_port(), **overrides)
    yield from run_live_server(settings)


def _span() -> Span:
    span = llm_span(attrs={"gen_ai.input.messages": MESSAGES, "owner": EMAIL, "n": 7},
                    error=True)
    span.status.message = f"denied for {EMAIL}"
    span.events.add(name="exception", time_unix_nano=span.start_time_unix_nano,
                    attributes=kvs({"exception.message": f"bad token {KEY}"}))
    return span


def _attrs(kvs_: Any) -> dict[str, Any]:
    return {kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in kvs_}


def _send_both_ways(server: LiveServer) -> None:
    body, headers = encode(export_request([_span()]))
    assert httpx.post(f"{server.url}/v1/traces", content=body, headers=headers,
                      timeout=30).status_code == 200
    with grpc.insecure_channel(f"127.0.0.1:{server.state.grpc_port}") as channel:
        trace_service_pb2_grpc.TraceServiceStub(channel).Export(export_request([_span()]),
                                                                timeout=30)


def _stored_attributes(server: LiveServer) -> list[dict[str, Any]]:
    rows = server.stored().query_arrow(
        "SELECT attributes FROM spans FINAL ORDER BY start_time", {}).to_pylist()
    return [json.loads(r["attributes"]) for r in rows]


def _http_target() -> OtlpHttpTarget:
    return OtlpHttpTarget().start()


def test_forwarded_copies_carry_the_stored_placeholders(tmp_path: Path) -> None:
    target = _http_target()
    try:
        with _server(tmp_path / "data", target, ingest_workers=0) as server:
            _send_both_ways(server)  # in-process OTLP/HTTP and OTLP/gRPC
            spans = target.received.wait_spans(2)
            stored = _stored_attributes(server)
    finally:
        target.stop()
    assert len(spans) == 2
    for span in spans:
        attrs = _attrs(span.attributes)
        assert attrs["owner"] == "<EMAIL_ADDRESS>" and attrs["n"] == 7
        content = json.loads(attrs["gen_ai.input.messages"])[0]["parts"][0]["content"]
        assert content == "Mail <EMAIL_ADDRESS> now"  # still valid JSON
        assert _attrs(span.events[0].attributes)["exception.message"] == "bad token <SECRET>"
        assert span.status.message == "denied for <EMAIL_ADDRESS>"
        assert EMAIL not in span.SerializeToString().decode("utf-8", "ignore")
    assert all(s["gen_ai.input.messages"] == attrs["gen_ai.input.messages"] for s in stored)


def test_hash_mode_forwards_the_same_hashes_as_stored_from_a_worker(tmp_path: Path) -> None:
    target = _http_target()
    try:
        with _server(tmp_path / "data", target, ingest_workers=1, pii_mode="hash",
                     pii_hash_key="a shared key for all nodes") as server:
            start_ingest_workers(server)  # OTLP/HTTP goes to the worker process
            body, headers = encode(export_request([_span()]))
            assert httpx.post(f"{server.url}/v1/traces", content=body, headers=headers,
                              timeout=30).status_code == 200
            spans = target.received.wait_spans(1)
            stored = _stored_attributes(server)
    finally:
        target.stop()
    forwarded = _attrs(spans[0].attributes)["owner"]
    assert forwarded.startswith("<EMAIL_ADDRESS:") and forwarded == stored[0]["owner"]


def test_raw_forwards_the_values_as_received(tmp_path: Path) -> None:
    target = _http_target()
    try:
        with _server(tmp_path / "data", target, ingest_workers=0, forward_pii="raw") as server:
            sent = _span()
            body, headers = encode(export_request([sent]))
            assert httpx.post(f"{server.url}/v1/traces", content=body, headers=headers,
                              timeout=30).status_code == 200
            spans = target.received.wait_spans(1)
            stored = _stored_attributes(server)
    finally:
        target.stop()
    assert spans == [sent]  # byte for byte
    assert stored[0]["owner"] == "<EMAIL_ADDRESS>"  # while the store holds the redacted one
