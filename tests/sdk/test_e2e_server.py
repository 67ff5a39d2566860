"""End to end: a traced agent run through the real server (``mentatctl serve``)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

import mentatlab

pytestmark = pytest.mark.e2e

MENTATCTL = str(Path(sys.executable).with_name("mentatctl"))
PRICING = """
[infrastructure]
cpu_per_core_hour = "36"      # 0.01 USD per core-second: visible in a short test
memory_per_gb_hour = "3.6"
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    data_dir = tmp_path / "server-data"
    data_dir.mkdir()
    (data_dir / "pricing.toml").write_text(PRICING)
    port = free_port()
    env = {**os.environ, "MENTATLAB_DATA_DIR": str(data_dir)}
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(
        [MENTATCTL, "serve", "--host", "127.0.0.1", "--port", str(port), "--grpc-port", "0",
         "--data-dir", str(data_dir)], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError((tmp_path / "server.log").read_text())
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def burn_cpu(duration_s: float) -> None:
    end = time.thread_time() + duration_s
    while time.thread_time() < end:
        pass


def flatten(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for node in nodes:
        out.append(node)
        out.extend(flatten(node.get("children", [])))
    return out


def test_traced_agent_run_is_stored_with_token_and_resource_cost(server: str) -> None:
    mentatlab.init(endpoint=server, batch=False, service_name="e2e-agent", org="acme",
                   project="helpdesk")

    @mentatlab.traced(name="search")
    def search(query: str) -> str:
        mentatlab.set_tool("search")
        burn_cpu(0.2)
        return query.upper()

    @mentatlab.traced(name="agent-run")
    def run_agent() -> str:
        mentatlab.set_agent("triage")
        with mentatlab.span("llm-call"):
            mentatlab.set_model("gpt-4o-mini", provider="openai")
            mentatlab.record_tokens(1000, 200)
        return search("refund")

    with mentatlab.baggage(run_id="run-42"), mentatlab.span("request") as request:
        assert run_agent() == "REFUND"
    trace_id = format(request.get_span_context().trace_id, "032x")
    stats = mentatlab.shutdown()
    assert stats.num_exported_spans == 4 and stats.num_dropped_spans == 0

    body = httpx.get(f"{server}/api/v1/traces/{trace_id}", timeout=10).json()
    assert body["num_spans"] == 4, body
    spans = {s["name"]: s for s in flatten(body["roots"])}
    assert [root["name"] for root in body["roots"]] == ["request"]
    assert {c["name"] for c in spans["agent-run"]["children"]} == {"llm-call", "search"}
    for span in spans.values():
        assert span["org_id"] == "acme" and span["project_id"] == "helpdesk"
        assert span["run_id"] == "run-42"
    llm, tool = spans["llm-call"], spans["search"]
    assert Decimal(llm["token_cost"]) > 0
    assert llm["input_tokens"] == 1000 and llm["output_tokens"] == 200
    assert abs(tool["cpu_core_seconds"] - 0.2) < 0.01
    assert Decimal(tool["cpu_cost"]) == pytest.approx(Decimal("0.002"), rel=Decimal("0.05"))
    assert Decimal(tool["memory_cost"]) > 0 and tool["memory_gb_seconds"] > 0

    shown = subprocess.run([MENTATCTL, "trace", "show", trace_id, "--url", server],
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    for name in ("request", "agent-run", "llm-call", "search"):
        assert name in shown.stdout

    report = subprocess.run([MENTATCTL, "cost", "report", "--by", "project_id", "--format",
                             "json", "--url", server], capture_output=True, text=True, timeout=60)
    assert report.returncode == 0, report.stderr
    rows = json.loads(report.stdout)["rows"]
    [row] = [r for r in rows if r["project_id"] == "helpdesk"]
    assert Decimal(row["token_cost"]) > 0
    assert Decimal(row["cpu_cost"]) > 0


CHILD = """
import asyncio, sys, threading, urllib.request
import mentatlab
mentatlab.init(endpoint=sys.argv[1], batch=False, service_name="worker-process")

@mentatlab.traced(name="child-task")
async def child_task():
    await asyncio.sleep(0)

with mentatlab.span("child-process"):
    asyncio.run(child_task())
    request = urllib.request.Request(sys.argv[2], headers=dict(mentatlab.inject_headers()))
    assert urllib.request.urlopen(request, timeout=10).read() == b"ok"
mentatlab.shutdown()
"""


def test_flow_across_thread_processes_and_http_is_one_stored_trace(server: str) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    mentatlab.init(endpoint=server, batch=False, service_name="front-process")

    class Service(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with mentatlab.span("http-service", kind="server",
                                context=mentatlab.extract_headers(dict(self.headers))):
                body = b"ok"
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    service = ThreadingHTTPServer(("127.0.0.1", 0), Service)
    threading.Thread(target=service.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{service.server_address[1]}/"

    def in_thread() -> None:
        with mentatlab.span("thread-work"):
            pass

    try:
        with mentatlab.baggage(org="acme", run_id="run-7", flow_id="flow-7"), \
                mentatlab.span("front") as front:
            worker = threading.Thread(target=mentatlab.wrap_context(in_thread))
            worker.start()
            worker.join()
            done = subprocess.run([sys.executable, "-c", CHILD, server, url],
                                  env=mentatlab.inject_env(), capture_output=True, text=True,
                                  timeout=60)
            assert done.returncode == 0, done.stderr
    finally:
        service.shutdown()
        service.server_close()
    mentatlab.shutdown()
    trace_id = format(front.get_span_context().trace_id, "032x")
    deadline = time.monotonic() + 20
    while True:
        response = httpx.get(f"{server}/api/v1/traces/{trace_id}", timeout=10)
        if response.status_code == 200 and response.json()["num_spans"] == 5:
            break
        assert time.monotonic() < deadline, response.text
        time.sleep(0.2)
    body = response.json()
    assert [root["name"] for root in body["roots"]] == ["front"]
    spans = {s["name"]: s for s in flatten(body["roots"])}
    parents = {name: s["parent_span_id"] for name, s in spans.items()}
    ids = {name: s["span_id"] for name, s in spans.items()}
    assert parents["thread-work"] == ids["front"]
    assert parents["child-process"] == ids["front"]
    assert parents["child-task"] == ids["child-process"]
    assert parents["http-service"] == ids["child-process"]
    for span in spans.values():
        assert span["run_id"] == "run-7" and span["flow_id"] == "flow-7"
        assert span["org_id"] == "acme"
