"""End to end: a real `mentatctl serve` redacts PII arriving by OTLP/HTTP (in an ingest worker
process), OTLP/gRPC and the events API, so no raw value reaches any file of the data folder.

Positive control: the same requests to a server with ``pii_mode=off`` leave every value on
disk, found by the same scan (it sees through ClickHouse's column compression), so the
redacted run cannot pass by a scan that sees nothing.
"""

from __future__ import annotations

import json
import random
import string
import sys
from pathlib import Path
from typing import Any

import grpc
import httpx
from disk_scan import find_values
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from serve_process import free_port, start_serve, stop, wait_ready

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from server_payloads import encode, export_request, kvs, llm_span  # noqa: E402

RNG = random.Random()


def _luhn_card() -> str:
    digits = "4" + "".join(RNG.choice(string.digits) for _ in range(14))
    for check in string.digits:
        total = sum((d * 2 - 9 if d * 2 > 9 else d * 2) if i % 2 else d
                    for i, d in enumerate(int(c) for c in reversed(digits + check)))
        if total % 10 == 0:
            number = digits + check
            return " ".join(number[i:i + 4] for i in range(0, 16, 4))
    raise AssertionError


def _values() -> dict[str, str]:
    tag = "".join(RNG.choice(string.ascii_lowercase) for _ in range(8))
    return {
        "EMAIL_ADDRESS": f"fox.mulder.{tag}@xfiles-example.org",
        "CREDIT_CARD": _luhn_card(),
        "SECRET": "ghp_" + "".join(RNG.choice(string.ascii_letters + string.digits)
                                   for _ in range(36)),
        "US_SSN": f"{RNG.randint(100, 599)}-{RNG.randint(10, 99)}-{RNG.randint(1000, 9999)}",
        "PHONE_NUMBER": f"+44 20 {RNG.randint(7000, 8999)} {RNG.randint(1000, 9999)}",
        "IBAN_CODE": "GB82 WEST 1234 5698 7654 32",
        "EVENT_EMAIL": f"dana.scully.{tag}@fbi-example.org",
    }


def _otlp_span(v: dict[str, str]) -> Span:
    messages = json.dumps([{"role": "user", "parts": [{"type": "text", "content":
                           f"I am {v['EMAIL_ADDRESS']}, card {v['CREDIT_CARD']}, call me"}]}])
    span = llm_span(attrs={"gen_ai.input.messages": messages,
                           "gen_ai.tool.call.arguments": json.dumps({"token": v["SECRET"]})},
                    error=True)
    span.status.message = f"callback to {v['PHONE_NUMBER']} failed"
    span.events.add(name="exception", time_unix_nano=span.start_time_unix_nano,
                    attributes=kvs({"exception.type": "ValueError",
                                    "exception.message": f"bad SSN {v['US_SSN']}"}))
    return span


def _ingest_everything(url: str, grpc_port: int, v: dict[str, str]) -> None:
    body, headers = encode(export_request([_otlp_span(v)], project_id="support"))
    response = httpx.post(f"{url}/v1/traces", content=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    output = json.dumps([{"role": "assistant", "parts": [{"type": "text", "content":
                         f"Refund sent to {v['IBAN_CODE']}."}]}])
    request = export_request([llm_span(attrs={"gen_ai.output.messages": output})],
                             project_id="billing")
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        trace_service_pb2_grpc.TraceServiceStub(channel).Export(request, timeout=30)
    event = {"type": "agent.tool.failed", "run_id": "run-e2e-1", "tool_name": "crm_lookup",
             "project_id": "support", "error_message": f"no customer {v['EVENT_EMAIL']}",
             "attributes": {"query": f"lookup {v['EVENT_EMAIL']}"}}
    response = httpx.post(f"{url}/api/v1/events", json=[event], timeout=30)
    assert response.status_code == 200, response.text


def _serve_and_ingest(tmp_path: Path, mode: str, v: dict[str, str]) -> tuple[Path, Any]:
    data_dir, log = tmp_path / mode, tmp_path / f"{mode}.log"
    port, grpc_port = free_port(), free_port()
    proc = start_serve(data_dir, port, grpc_port=grpc_port, log=log, env={
        "MENTATLAB_PII_MODE": mode, "MENTATLAB_INGEST_WORKERS": "1",
        "MENTATLAB_LOG_LEVEL": "INFO"})
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(proc, url, log)
        _ingest_everything(url, grpc_port, v)
        # the OTLP/HTTP body started the worker and went to it (not the in-process pipeline)
        assert "Started 1 ingest worker" in log.read_text(), log.read_text()[-2000:]
        summary = httpx.get(f"{url}/api/v1/governance/pii", timeout=30).json()
    finally:
        stop(proc)
    return data_dir, summary


def test_no_raw_pii_on_disk_after_ingest_and_the_off_control_finds_it(tmp_path: Path) -> None:
    v = _values()
    redacted_dir, summary = _serve_and_ingest(tmp_path, "redact", v)
    plain_dir, plain_summary = _serve_and_ingest(tmp_path, "off", v)

    assert find_values(plain_dir, list(v.values())).keys() == set(v.values())  # control
    assert find_values(redacted_dir, list(v.values())) == {}

    by_category = {c["category"]: c["num_findings"] for c in summary["by_category"]}
    assert by_category == {"EMAIL_ADDRESS": 3, "CREDIT_CARD": 1, "SECRET": 1, "US_SSN": 1,
                           "PHONE_NUMBER": 1, "IBAN_CODE": 1}
    assert summary["num_findings"] == 8
    assert {p["project_id"]: p["num_findings"] for p in summary["by_project"]} == {
        "support": 7, "billing": 1}
    keys = {k["key"]: k["num_findings"] for k in summary["by_key"]}
    assert keys == {"gen_ai.input.messages": 2, "gen_ai.tool.call.arguments": 1,
                    "status_message": 2, "event:exception.message": 1,
                    "gen_ai.output.messages": 1, "query": 1}
    assert summary["num_spans"] == 3
    assert {(r["category"], r["project_id"], r["key"]) for r in summary["rows"]} >= {
        ("IBAN_CODE", "billing", "gen_ai.output.messages"),
        ("US_SSN", "support", "event:exception.message")}
    assert plain_summary["num_findings"] == 0 and plain_summary["pii_mode"] == "off"
