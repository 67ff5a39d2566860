"""mentatlab.instrument() enables the published OpenAI instrumentation; spans get tenancy."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import mentatlab
from mentatlab.errors import PluginDidNotLoad

COMPLETION = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1_760_000_000,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": "Hello!"}}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
}


@pytest.fixture
def fake_openai() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            body = json.dumps(COMPLETION).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_openai_calls_traced_with_tenancy(fake_openai: str) -> None:
    import openai

    exporter = InMemorySpanExporter()
    mentatlab.init(exporter=exporter, batch=False, org="acme", project="helpdesk")
    enabled = mentatlab.instrument()
    assert enabled["openai"] == "opentelemetry.instrumentation.openai_v2.OpenAIInstrumentor"
    assert mentatlab.instrument("openai") == enabled  # twice is a no-op
    client = openai.OpenAI(base_url=fake_openai, api_key="test-key", max_retries=0)
    with mentatlab.baggage(agent_id="triage", run_id="r-5"), mentatlab.span("agent-run") as run:
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    client.close()
    assert reply.choices[0].message.content == "Hello!"
    [llm] = [s for s in exporter.get_finished_spans() if s.name != "agent-run"]
    attributes = dict(llm.attributes or {})
    assert attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert attributes["gen_ai.usage.input_tokens"] == 12
    assert attributes["gen_ai.usage.output_tokens"] == 3
    assert attributes["mentat.org_id"] == "acme"
    assert attributes["mentat.project_id"] == "helpdesk"
    assert attributes["mentat.agent_id"] == "triage" and attributes["mentat.run_id"] == "r-5"
    assert llm.parent is not None and llm.parent.span_id == run.get_span_context().span_id


def test_named_instrumentation_that_cannot_load_raises() -> None:
    with pytest.raises(PluginDidNotLoad, match="among"):
        mentatlab.instrument("no-such-library")
    with pytest.raises(PluginDidNotLoad, match="not installed|no instrumentation"):
        mentatlab.instrument("mistralai")
