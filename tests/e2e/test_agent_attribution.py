"""Issue 13 end to end: cost by agent puts an instrumented LLM call under its agent.

A real program (a child process) does what the issue's reporter did: ``mentatlab.init``,
``mentatlab.instrument()``, ``@mentatlab.traced`` with ``mentatlab.set_agent`` on the
top-level function, and the real ``openai`` client (OTel openai-v2 instrumentation)
calling the demo's fake OpenAI server. The spans go to a real ``mentatctl serve``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from typing import Any

import httpx
import pytest
from genai_prices import Usage, calc_price

from mentatlab.demo.fake_openai import FakeOpenAIServer

pytestmark = pytest.mark.e2e

AGENT_PROGRAM = """
import json, sys
import openai
import mentatlab

mentatlab.init(endpoint=sys.argv[1], service_name="support-bot", org="acme",
               project="helpdesk", batch=False, resource_metering=False)
enabled = mentatlab.instrument("openai")
client = openai.OpenAI(base_url=sys.argv[2], api_key="sk-test", max_retries=0)

@mentatlab.traced(name="lookup_order")
def lookup_order(order_id):
    mentatlab.set_tool("lookup_order")
    return order_id

@mentatlab.traced(name="triage")
def triage(question):
    mentatlab.set_agent("triage-agent", version="1.4.0")
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": question}])
    lookup_order("8812")
    return reply.choices[0].message.content

with mentatlab.span("request"):
    triage("Where is my order 8812? It was due yesterday.")
    # after the agent returned: a call of no agent
    client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hi."}])
client.close()
stats = mentatlab.shutdown()
print(json.dumps({"enabled": enabled, "exported": stats.num_exported_spans,
                  "dropped": stats.num_dropped_spans}))
"""


def _token_cost(response: dict[str, Any]) -> Decimal:
    usage = response["usage"]
    price = calc_price(Usage(input_tokens=usage["prompt_tokens"],
                             output_tokens=usage["completion_tokens"]),
                       model_ref=response["model"], provider_id="openai")
    return Decimal(price.total_price)


def test_cost_by_agent_puts_the_llm_cost_under_the_agent(
        mentat_server: Any, fake_openai: FakeOpenAIServer) -> None:
    done = subprocess.run([sys.executable, "-c", AGENT_PROGRAM, mentat_server.url,
                           fake_openai.base_url], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["enabled"]["openai"].startswith("opentelemetry.instrumentation.openai_v2")
    assert result["exported"] == 5 and result["dropped"] == 0  # request, triage, 2 LLM, tool
    in_agent, outside = fake_openai.responses[-2:]
    expected_in_agent, expected_outside = _token_cost(in_agent), _token_cost(outside)
    assert expected_in_agent > 0 and expected_outside > 0
    assert expected_in_agent != expected_outside

    with httpx.Client(base_url=mentat_server.url, timeout=30) as client:
        answer = client.get("/api/v1/cost", params={"group_by": "agent_id"})
        assert answer.status_code == 200, answer.text
        rows = {row.get("agent_id") or "": row for row in answer.json()["rows"]}
        spans = client.get("/api/v1/spans", params={"limit": 100}).json()["spans"]

    # the LLM call made inside the agent is the agent's cost; the one after it is not
    assert Decimal(rows["triage-agent"]["token_cost"]) == expected_in_agent, rows
    assert rows["triage-agent"]["requests"] == 1
    assert Decimal(rows[""]["token_cost"]) == expected_outside, rows
    assert rows[""]["requests"] == 1
    by_name: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        by_name.setdefault(span["name"], []).append(span)
    [triage] = by_name["triage"]
    [tool] = by_name["lookup_order"]
    [llm] = [s for s in spans if s["operation"] == "chat"
             and s["parent_span_id"] == triage["span_id"]]
    for span in (triage, llm, tool):
        assert (span["agent_id"], span["agent_version"]) == ("triage-agent", "1.4.0"), span
        assert (span["org_id"], span["project_id"]) == ("acme", "helpdesk"), span
        # attributed by the SDK before it left the process, not by the server's inheritance
        assert span["attributes"]["mentat.agent_id"] == "triage-agent", span
        assert span.get("inherited", 0) == 0, span
    assert not by_name["request"][0]["agent_id"]
