"""Inherited attribution end to end: a real OTel SDK exports a GenAI agent trace span by span.

With a ``SimpleSpanProcessor`` every span is exported when it ends, so the children reach
the server in earlier requests than their parent: exactly the order real producers use.
Until the ``invoke_agent`` span arrives, its children's cost sits under the empty agent;
after it, every answer (cost, overview, trace, live stream) carries the agent, and the
usage the agent span reports beyond its children is its ``unattributed`` cost.

Prices (``pricing.toml`` in the data dir): gpt-4o at 2.50 / 10.00 USD per million input /
output tokens. The chat call (300 in / 50 out) costs 0.00075 + 0.0005 = 0.00125; the agent
reports 1000 in / 200 out, so 700 in / 150 out are unattributed: 0.00175 + 0.0015 =
0.00325; the agent's total is 0.0045.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind
from serverkit import LiveServer, make_settings, run_live_server
from websockets.sync.client import connect

CHAT = "0.00125"
UNATTRIBUTED = "0.00325"
AGENT_TOTAL = "0.0045"


@pytest.fixture
def priced_server(_isolated_data_dir: Path) -> Iterator[LiveServer]:
    _isolated_data_dir.mkdir(parents=True, exist_ok=True)
    (_isolated_data_dir / "pricing.toml").write_text(
        '[[models]]\nprovider = "openai"\nmodel = "gpt-4o"\ninput_per_mtok = "2.50"\n'
        'output_per_mtok = "10.00"\n')
    yield from run_live_server(make_settings(_isolated_data_dir))


def _cost_by_agent(url: str) -> dict[str, tuple[str, str]]:
    now = datetime.now(UTC)
    answer = httpx.get(f"{url}/api/v1/cost", params={
        "group_by": "agent_id", "start": (now - timedelta(hours=1)).isoformat(),
        "end": (now + timedelta(minutes=1)).isoformat()}, timeout=30)
    assert answer.status_code == 200, answer.text
    return {row["agent_id"]: (row["total_cost"].rstrip("0"), row["unattributed_cost"].rstrip("0")
                              .rstrip(".") or "0") for row in answer.json()["rows"]}


def _spans(url: str, trace_id: str) -> dict[str, dict[str, Any]]:
    answer = httpx.get(f"{url}/api/v1/traces/{trace_id}", timeout=30)
    assert answer.status_code == 200, answer.text
    out: dict[str, dict[str, Any]] = {}
    stack = list(answer.json()["roots"])
    while stack:
        node = stack.pop()
        out[node["name"]] = node
        stack.extend(node["children"])
    return out


def test_children_exported_before_their_agent_span_end_up_with_its_agent(
        priced_server: LiveServer) -> None:
    url = priced_server.url
    provider = TracerProvider(resource=Resource.create({"service.name": "support-bot"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(
        endpoint=f"{url}/v1/traces")))
    tracer = provider.get_tracer("agent-app")
    live = connect(url.replace("http://", "ws://") + "/api/v1/live?filter=agent_id=triage",
                   open_timeout=10)
    try:
        assert json.loads(live.recv(timeout=10))["ok"]
        with tracer.start_as_current_span("invoke_agent triage", attributes={
                "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "triage",
                "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 200,
        }) as agent:
            trace_id = f"{agent.get_span_context().trace_id:032x}"
            with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT, attributes={
                    "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 300,
                    "gen_ai.usage.output_tokens": 50}):
                pass
            with tracer.start_as_current_span("execute_tool lookup_order", attributes={
                    "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup_order"}):
                pass
            # both children are stored (each in its own request); their agent is unknown
            assert _cost_by_agent(url) == {"": (CHAT, "0")}
            with pytest.raises(TimeoutError):
                live.recv(timeout=0.3)  # nothing of agent "triage" yet
        # the agent span ends: a later request
        assert _cost_by_agent(url) == {"triage": (AGENT_TOTAL, UNATTRIBUTED)}
        spans = _spans(url, trace_id)
        assert spans["chat gpt-4o"]["agent_id"] == "triage"
        assert spans["chat gpt-4o"]["inherited"] == 1 and spans["chat gpt-4o"]["revision"] == 1
        assert spans["execute_tool lookup_order"]["agent_id"] == "triage"
        root = spans["invoke_agent triage"]
        assert (root["unattributed_input_tokens"], root["unattributed_output_tokens"]) == (700, 150)
        assert root["unattributed_cost"].rstrip("0") == UNATTRIBUTED
        assert root["subtree_cost"].rstrip("0") == AGENT_TOTAL
        overview = httpx.get(f"{url}/api/v1/overview", params={"filter": "agent_id=triage"},
                             timeout=30).json()
        assert overview["spend"].rstrip("0") == AGENT_TOTAL and overview["num_spans"] == 3
        # the live stream shows the spans once their agent is known (the children again)
        pushed = {json.loads(live.recv(timeout=10))["name"] for _ in range(3)}
        assert pushed == {"invoke_agent triage", "chat gpt-4o", "execute_tool lookup_order"}
    finally:
        live.close()
        provider.shutdown()
