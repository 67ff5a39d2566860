from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from typer.testing import CliRunner

from mentatlab.cli.main import app
from mentatlab.server.app import create_app
from mentatlab.settings import load_settings

runner = CliRunner()


@pytest.fixture
def server_url(_isolated_data_dir: Path) -> Iterator[str]:
    yield from _serve(load_settings(data_dir=_isolated_data_dir, grpc_port=0))


@pytest.fixture
def alerting_server_url(_isolated_data_dir: Path) -> Iterator[str]:
    yield from _serve(load_settings(data_dir=_isolated_data_dir, grpc_port=0,
                                    alert_interval_s=0.3))


def _serve(settings: Any) -> Iterator[str]:
    application = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(application, host="127.0.0.1", port=0,
                                           log_level="warning", ws="websockets-sansio"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def _kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def send(url: str, project: str, model: str, input_tokens: int = 1000) -> str:
    trace = os.urandom(16)
    now = time.time_ns()
    root_id, child_id = os.urandom(8), os.urandom(8)
    spans = [
        Span(trace_id=trace, span_id=root_id, name="agent run", start_time_unix_nano=now - 10**9,
             end_time_unix_nano=now),
        Span(trace_id=trace, span_id=child_id, parent_span_id=root_id, name=f"chat {model}",
             start_time_unix_nano=now - 5 * 10**8, end_time_unix_nano=now - 10**8,
             attributes=[_kv("gen_ai.provider.name", "openai"),
                         _kv("gen_ai.request.model", model),
                         _kv("gen_ai.usage.input_tokens", input_tokens),
                         _kv("gen_ai.usage.output_tokens", 100)]),
    ]
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource={"attributes": [_kv("mentat.project_id", project)]},
        scope_spans=[ScopeSpans(spans=spans)])])
    response = httpx.post(f"{url}/v1/traces", content=request.SerializeToString(),
                          headers={"content-type": "application/x-protobuf"})
    assert response.status_code == 200
    return trace.hex()


def invoke(*args: str) -> Any:
    result = runner.invoke(app, list(args))
    return result


def test_cost_report_formats(server_url: str) -> None:
    send(server_url, "acme", "gpt-4o")
    send(server_url, "globex", "gpt-4o-mini")
    result = invoke("cost", "report", "--url", server_url, "--by", "project_id,model",
                    "--format", "json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert {r["project_id"] for r in body["rows"]} == {"acme", "globex"}

    result = invoke("cost", "report", "--url", server_url, "--by", "project_id",
                    "--format", "csv", "--range", "1d")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert sorted(r["project_id"] for r in rows) == ["acme", "globex"]

    result = invoke("cost", "report", "--url", server_url, "--bucket", "hour")
    assert result.exit_code == 0, result.output
    assert "acme" in result.output and "Total" in result.output

    result = invoke("cost", "report", "--url", server_url, "--by", "colour")
    assert result.exit_code == 1
    assert "group_by" in result.output

    result = invoke("cost", "report", "--url", server_url, "--range", "soon")
    assert result.exit_code == 2


def test_cost_watch_once_and_unpriced(server_url: str) -> None:
    send(server_url, "acme", "made-up-model-77")
    result = invoke("cost", "watch", "--once", "--url", server_url)
    assert result.exit_code == 0, result.output
    assert "acme" in result.output
    result = invoke("cost", "unpriced", "--url", server_url)
    assert result.exit_code == 0, result.output
    assert "made-up-model-77" in result.output


def test_trace_show_tree(server_url: str) -> None:
    trace = send(server_url, "acme", "gpt-4o")
    result = invoke("trace", "show", trace, "--url", server_url)
    assert result.exit_code == 0, result.output
    assert "agent run" in result.output and "chat gpt-4o" in result.output
    assert "ms" in result.output and "$" in result.output
    result = invoke("trace", "show", "0" * 32, "--url", server_url)
    assert result.exit_code == 1 and "404" in result.output


def test_trace_show_marks_the_critical_path(server_url: str) -> None:
    # agent run [0, 1000] ms; chat [100, 600] ends last → on the path (500 ms), the root
    # owns 600..1000 and 0..100 (500 ms); side tool [100, 300] ended after chat began → off
    trace, root_id = os.urandom(16), os.urandom(8)
    base = time.time_ns() - 10**10
    spans = [Span(trace_id=trace, span_id=span_id, parent_span_id=parent, name=name,
                  start_time_unix_nano=base + start_ms * 10**6,
                  end_time_unix_nano=base + end_ms * 10**6)
             for span_id, parent, name, start_ms, end_ms in [
                 (root_id, b"", "agent run", 0, 1000),
                 (os.urandom(8), root_id, "chat", 100, 600),
                 (os.urandom(8), root_id, "side tool", 100, 300)]]
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource={"attributes": [_kv("mentat.project_id", "acme")]},
        scope_spans=[ScopeSpans(spans=spans)])])
    response = httpx.post(f"{server_url}/v1/traces", content=request.SerializeToString(),
                          headers={"content-type": "application/x-protobuf"})
    assert response.status_code == 200, response.text
    result = invoke("trace", "show", trace.hex(), "--url", server_url)
    assert result.exit_code == 0, result.output
    lines = {name: next(line for line in result.output.splitlines() if name in line)
             for name in ("agent run", "chat", "side tool")}
    assert "* agent run" in lines["agent run"] and "critical 500.0 ms" in lines["agent run"]
    assert "* chat" in lines["chat"] and "critical 500.0 ms" in lines["chat"]
    assert "*" not in lines["side tool"] and "critical" not in lines["side tool"]
    assert "critical path: 2 spans" in result.output


def test_tail_recent_and_follow(server_url: str) -> None:
    send(server_url, "acme", "gpt-4o")
    result = invoke("tail", "--url", server_url, "--json", "--filter", "project_id=acme")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert len(lines) == 2 and all(s["project_id"] == "acme" for s in lines)

    # --follow: a background sender produces spans while the CLI streams
    def later() -> None:
        time.sleep(1.0)
        send(server_url, "globex", "gpt-4o")
        send(server_url, "acme", "gpt-4o-mini")

    sender = threading.Thread(target=later)
    sender.start()
    result = invoke("tail", "--url", server_url, "--follow", "--json", "--since", "0s",
                    "--filter", "project_id=acme", "--max-spans", "2")
    sender.join()
    assert result.exit_code == 0, result.output
    streamed = [json.loads(line) for line in result.output.splitlines()]
    assert len(streamed) == 2 and {s["project_id"] for s in streamed} == {"acme"}

    result = invoke("tail", "--url", server_url, "--follow", "--since", "0s",
                    "--filter", "colour=red")
    assert result.exit_code == 1


def test_reprice_and_admin_commands(server_url: str) -> None:
    send(server_url, "acme", "gpt-4o")
    result = invoke("reprice", "--since", "1d", "--url", server_url)
    assert result.exit_code == 0, result.output
    assert "num_spans_read" in result.output
    result = invoke("orgs", "create", "Acme Corp", "--id", "acme", "--url", server_url)
    assert result.exit_code == 0, result.output
    assert "id=acme" in result.output
    result = invoke("keys", "create", "--org", "acme", "--project", "web", "--url", server_url)
    assert result.exit_code == 0, result.output
    secret = result.output.strip().splitlines()[-1]
    assert len(secret) > 20
    result = invoke("keys", "create", "--org", "nope", "--url", server_url)
    assert result.exit_code == 1


def test_budgets_and_alerts_commands(alerting_server_url: str) -> None:
    from receivers import WebhookReceiver

    url = alerting_server_url
    with WebhookReceiver() as hook:
        made = invoke("budgets", "add", "acme daily", "--limit", "0.004", "--period", "day",
                      "--filter", "project=acme", "--notify", f"webhook:{hook.url}",
                      "--url", url)
        assert made.exit_code == 0, made.output
        assert "acme daily" in made.output and "budget" in made.output
        rule = invoke("alerts", "add", "slow", "--metric", "latency_p95_ms", "--op", ">",
                      "--threshold", "100000", "--notify", "email:ops@example.org",
                      "--url", url)
        assert rule.exit_code == 0, rule.output
        bad = invoke("alerts", "add", "bad", "--metric", "colour", "--threshold", "1",
                     "--notify", "email:ops@example.org", "--url", url)
        assert bad.exit_code == 1 and "metric" in bad.output
        send(url, "acme", "gpt-4o")  # 1000 in + 100 out tokens of gpt-4o = 0.0035 USD
        body = hook.wait_for(1, 20)[0].json()
        # past 50 % and 80 % in one run: the 80 % alert is the one delivered
        assert body["threshold"] == "0.0032" and body["value"] == "0.0035"
    listed = invoke("budgets", "list", "--url", url)
    assert listed.exit_code == 0, listed.output
    assert "acme daily" in listed.output and "87.5 %" in listed.output
    rules = json.loads(invoke("alerts", "rules", "--json", "--url", url).output)
    assert {r["name"]: r["kind"] for r in rules} == {"acme daily": "budget", "slow": "threshold"}
    history = invoke("alerts", "history", "--url", url)
    assert history.exit_code == 0 and "acme daily" in history.output, history.output
    alerts = json.loads(invoke("alerts", "history", "--json", "--url", url).output)
    assert [(a["state"], a["threshold"], len(a["deliveries"])) for a in alerts] in (
        [("firing", "0.0032", 1), ("firing", "0.002", 0)],
        [("firing", "0.002", 0), ("firing", "0.0032", 1)])  # one run: the same created_at
    assert "reached 80 %" in alerts[0]["message"] + alerts[1]["message"]
    slow = next(r["id"] for r in rules if r["name"] == "slow")
    assert invoke("alerts", "disable", slow, "--url", url).exit_code == 0
    assert invoke("alerts", "delete", slow, "--url", url).exit_code == 0
    assert invoke("alerts", "delete", slow, "--url", url).exit_code == 1


def test_unreachable_server_is_a_clean_error() -> None:
    result = invoke("cost", "report", "--url", "http://127.0.0.1:9")
    assert result.exit_code == 1
    assert "Cannot reach" in result.output


def test_serve_refuses_bad_config(tmp_path: Path) -> None:
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-m", "mentatlab.cli.main", "serve", "--data-dir", str(tmp_path)],
        env={**os.environ, "MENTATLAB_HTTP_PORT": "not-a-port"}, capture_output=True,
        timeout=60, check=False)
    assert proc.returncode == 2
    assert b"MENTATLAB_HTTP_PORT" in proc.stderr or b"http_port" in proc.stderr


def test_help_lists_every_command() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for name in ("serve", "demo", "tail", "cost", "trace", "reprice", "prices", "orgs",
                 "keys", "budgets", "alerts"):
        assert name in result.output
