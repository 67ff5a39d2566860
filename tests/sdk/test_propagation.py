"""One connected trace across threads, tasks, processes, message queues and an HTTP hop."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import mentatlab
from mentatlab.sdk import extract_message_headers, inject_message_headers


def by_name(exporter: InMemorySpanExporter) -> dict[str, Any]:
    return {s.name: s for s in exporter.get_finished_spans()}


def test_cross_thread_with_wrap_context(span_exporter: InMemorySpanExporter) -> None:
    @mentatlab.traced(name="in-thread")
    def work() -> None:
        pass

    @mentatlab.traced(name="in-pool")
    def pooled(x: int) -> int:
        return x

    with mentatlab.span("main") as main, mentatlab.baggage(run_id="r-thread"):
        thread = threading.Thread(target=mentatlab.wrap_context(work))
        thread.start()
        thread.join()
        with ThreadPoolExecutor(2) as pool:
            assert pool.submit(mentatlab.wrap_context(pooled), 3).result() == 3
        unwrapped = threading.Thread(target=lambda: mentatlab.span("orphan").__enter__())
        unwrapped.start()
        unwrapped.join()
    spans = by_name(span_exporter)
    main_id = main.get_span_context().span_id
    for name in ("in-thread", "in-pool"):
        assert spans[name].parent.span_id == main_id
        assert spans[name].attributes["mentat.run_id"] == "r-thread"


async def test_cross_task(span_exporter: InMemorySpanExporter) -> None:
    @mentatlab.traced
    async def step(i: int) -> int:
        await asyncio.sleep(0.001 * i)
        return i

    with mentatlab.span("fanout") as fanout:
        results = await asyncio.gather(*(step(i) for i in range(3)))
        await asyncio.create_task(step(5))
    assert results == [0, 1, 2]
    children = [s for s in span_exporter.get_finished_spans() if s.name.endswith("step")]
    assert len(children) == 4
    assert {s.parent.span_id for s in children} == {fanout.get_span_context().span_id}


def test_message_queue_headers(span_exporter: InMemorySpanExporter) -> None:
    with mentatlab.baggage(flow_id="f-7"), mentatlab.span("produce") as produce:
        headers = inject_message_headers([("content-type", b"json")])
    assert headers[0] == ("content-type", b"json")
    assert any(key == "traceparent" for key, _ in headers)
    with mentatlab.span("consume", kind="consumer", context=extract_message_headers(headers)):
        pass
    consume = by_name(span_exporter)["consume"]
    assert consume.parent.span_id == produce.get_span_context().span_id
    assert consume.context.trace_id == produce.get_span_context().trace_id
    assert consume.attributes["mentat.flow_id"] == "f-7"


CHILD = """
import sys, urllib.request
import mentatlab
mentatlab.init(endpoint=sys.argv[1], batch=False, service_name="child-process")
with mentatlab.span("child-work"):
    request = urllib.request.Request(sys.argv[2], headers=dict(mentatlab.inject_headers()))
    assert urllib.request.urlopen(request, timeout=10).read() == b"ok"
print(mentatlab.shutdown().num_exported_spans)
"""


def test_two_processes_and_http_hop_make_one_trace(otlp_receiver: Any) -> None:
    mentatlab.init(endpoint=otlp_receiver.endpoint, batch=False, service_name="parent-process")

    class Service(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            context = mentatlab.extract_headers(dict(self.headers))
            with mentatlab.span("service-b.handle", kind="server", context=context):
                body = b"ok"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    service = ThreadingHTTPServer(("127.0.0.1", 0), Service)
    threading.Thread(target=service.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{service.server_address[1]}/work"
    try:
        with mentatlab.baggage(org="acme", run_id="r-1"), mentatlab.span("parent-flow"):
            env = mentatlab.inject_env()
            done = subprocess.run([sys.executable, "-c", CHILD, otlp_receiver.endpoint, url],
                                  env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "1"
        otlp_receiver.wait_for(3)
    finally:
        service.shutdown()
        service.server_close()
    spans = otlp_receiver.by_name()
    parent, child, hop = spans["parent-flow"], spans["child-work"], spans["service-b.handle"]
    assert parent.trace_id == child.trace_id == hop.trace_id
    assert parent.parent_span_id == ""
    assert child.parent_span_id == parent.span_id
    assert hop.parent_span_id == child.span_id
    assert child.resource["service.name"] == "child-process"
    assert parent.resource["service.name"] == "parent-process"
    for span in (parent, child, hop):
        assert span.attributes["mentat.org_id"] == "acme"
        assert span.attributes["mentat.run_id"] == "r-1"
        assert "mentat.resource.cpu_core_seconds" in span.attributes


def test_server_down_program_unaffected_drops_counted() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    mentatlab.init(endpoint=f"http://127.0.0.1:{closed_port}", export_timeout_s=0.5,
                   schedule_delay_ms=20)

    @mentatlab.traced
    def work(i: int) -> int:
        return i * 2

    started = time.monotonic()
    assert [work(i) for i in range(10)] == [i * 2 for i in range(10)]
    assert time.monotonic() - started < 1.0  # export happens off the program's thread
    stats = mentatlab.shutdown(timeout_s=5.0)
    assert stats.num_exported_spans == 0
    assert stats.num_dropped_spans == 10
    assert work(21) == 42  # after shutdown: still runs, span dropped and counted
    assert mentatlab.export_stats().num_dropped_spans == 11


def test_queue_overflow_drops_are_counted() -> None:
    from collections.abc import Sequence

    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    release = threading.Event()

    class Slow(SpanExporter):
        def __init__(self) -> None:
            self.num_spans = 0

        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            release.wait(5)
            self.num_spans += len(spans)
            return SpanExportResult.SUCCESS

    slow = Slow()
    mentatlab.init(exporter=slow, max_queue_spans=4, schedule_delay_ms=1)
    for _ in range(50):
        with mentatlab.span("burst"):
            pass
    release.set()
    stats = mentatlab.shutdown(timeout_s=5)
    assert stats.num_exported_spans == slow.num_spans
    assert stats.num_dropped_spans > 0
    assert stats.num_exported_spans + stats.num_dropped_spans == 50
