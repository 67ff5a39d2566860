"""The real openai client, instrumented by two published packages, against a real server."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from genai_prices import Usage, calc_price

from mentatlab.demo.agents import AGENTS
from mentatlab.demo.fake_openai import SNAPSHOTS, FakeOpenAIServer

pytestmark = pytest.mark.e2e

RUNS = 4
AGENT_BY_ID = {a.agent_id: a for a in AGENTS}


def _walk(nodes: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for node in nodes:
        yield node
        yield from _walk(node.get("children", []))


@pytest.fixture(scope="module")
def stored(mentat_server: Any, fake_openai: FakeOpenAIServer) -> list[dict[str, Any]]:
    """Run both traffic processes, then read every stored span back through the REST API."""
    for inst in ("openai-v2", "openinference"):
        done = subprocess.run(
            [sys.executable, "-m", "mentatlab.demo.traffic", "--instrumentation", inst,
             "--openai-base-url", fake_openai.base_url, "--otlp-http", mentat_server.url,
             "--otlp-grpc", mentat_server.grpc_target, "--runs", str(RUNS)],
            capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        summary = json.loads(done.stdout.splitlines()[-1])["summary"]
        assert summary["llm_calls"] > 0
    with httpx.Client(base_url=mentat_server.url, timeout=30) as client:
        # a fresh data folder: every stored span is ours
        answer = client.get("/api/v1/spans", params={"limit": 1000})
        assert answer.status_code == 200, answer.text
        spans: list[dict[str, Any]] = answer.json()["spans"]
        assert 0 < len(spans) < 1000
        # the trace detail answer holds the same spans as a tree
        first = spans[0]["trace_id"]
        tree = client.get(f"/api/v1/traces/{first}")
        assert tree.status_code == 200, tree.text
        in_tree = {s["span_id"] for s in _walk(tree.json()["roots"])}
        assert in_tree == {s["span_id"] for s in spans if s["trace_id"] == first}
    return spans


def _llm_spans(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for s in spans if s["operation"] in ("chat", "embeddings") and s["status"] == "ok"]


def test_every_run_is_one_trace_with_tenancy_from_the_resource(
        stored: list[dict[str, Any]]) -> None:
    roots = [s for s in stored if not s.get("parent_span_id")]
    assert len(roots) == RUNS * len(AGENTS)
    assert len({s['trace_id'] for s in stored}) == RUNS * len(AGENTS)
    for span in stored:
        agent = AGENT_BY_ID[span["agent_id"]]
        assert (span["org_id"], span["project_id"]) == (agent.org_id, agent.project_id)
    assert {r["operation"] for r in roots} == {"agent"}


def test_agent_set_on_the_root_span_reaches_every_span_of_the_run(
        stored: list[dict[str, Any]]) -> None:
    # The demo names the agent, workflow, run and session on the root span only (no agent
    # in the resource); the SDK's AttributionProcessor carries them to the LLM and tool
    # spans the instrumentations and the application start under it.
    root_of = {s["trace_id"]: s for s in stored if not s.get("parent_span_id")}
    children = [s for s in stored if s.get("parent_span_id")]
    assert {s["operation"] for s in children} >= {"chat", "tool"}
    for span in children:
        root = root_of[span["trace_id"]]
        agent = AGENT_BY_ID[root["agent_id"]]
        assert span["agent_id"] == agent.agent_id, span
        assert span["agent_version"] == agent.agent_version, span
        assert span["workflow_id"] == f"{agent.project_id}-flow", span
        assert span["run_id"] == root["run_id"] and span["run_id"], span
        assert span["session_id"] == root["session_id"], span
        assert span["session_id"].startswith(f"{agent.agent_id}-session-"), span
        # as sent, not filled in by the server's inheritance from ancestors
        assert span["attributes"]["mentat.agent_id"] == agent.agent_id, span
        assert span["attributes"]["mentat.run_id"] == root["run_id"], span
        assert span.get("inherited", 0) == 0, span


def test_llm_spans_carry_provider_models_and_the_reported_usage(
        stored: list[dict[str, Any]], fake_openai: FakeOpenAIServer) -> None:
    llm = _llm_spans(stored)
    # both instrumentations delivered LLM spans
    agents_seen = {s["agent_id"] for s in llm}
    assert agents_seen == set(AGENT_BY_ID)
    reported = {(r["model"], r["usage"]["prompt_tokens"],
                 r["usage"].get("completion_tokens"),
                 (r["usage"].get("prompt_tokens_details") or {}).get("cached_tokens"))
                for r in fake_openai.responses}
    for span in llm:
        agent = AGENT_BY_ID[span["agent_id"]]
        assert span["provider"] == "openai", span
        expected_request = (agent.embedding_model if span["operation"] == "embeddings"
                            else agent.model)
        assert span["request_model"] == expected_request, span
        assert span["response_model"] == SNAPSHOTS.get(expected_request, expected_request)
        assert span["input_tokens"] and span["input_tokens"] > 0
        key = (span["response_model"], span["input_tokens"],
               span["output_tokens"] if span["operation"] == "chat" else None,
               span["cache_read_tokens"] if span["cache_read_tokens"] is not None else None)
        candidates = {k for k in reported if k[:3] == key[:3]}
        assert candidates, f"usage {key} was never reported by the fake server"
        if span["cache_read_tokens"] is not None:
            assert key in candidates
            assert span["cache_read_tokens"] <= span["input_tokens"]


def test_cached_and_reasoning_tokens_arrive_through_openinference(
        stored: list[dict[str, Any]]) -> None:
    oi = [s for s in _llm_spans(stored) if s["operation"] == "chat"
          and AGENT_BY_ID[s["agent_id"]].instrumentation == "openinference"]
    assert any((s["cache_read_tokens"] or 0) >= 1024 for s in oi)
    reasoning = [s for s in oi if s["response_model"].startswith(("o3", "gpt-5"))]
    assert reasoning and all((s["reasoning_tokens"] or 0) > 0 for s in reasoning)
    assert all(s["output_tokens"] >= (s["reasoning_tokens"] or 0) for s in reasoning)


def test_token_cost_is_exactly_what_genai_prices_computes(stored: list[dict[str, Any]]) -> None:
    priced = 0
    for span in _llm_spans(stored):
        if span["response_model"] == "acme-llama-3-70b":
            assert span["price_source"] == "unpriced"
            assert Decimal(span["token_cost"]) == 0
            continue
        usage = Usage(input_tokens=span["input_tokens"],
                      cache_read_tokens=span["cache_read_tokens"],
                      output_tokens=span["output_tokens"])
        expected = calc_price(usage, model_ref=span["response_model"],
                              provider_id="openai").total_price
        assert Decimal(span["token_cost"]) == expected, span
        assert Decimal(span["total_cost"]) >= expected
        assert span["price_source"].startswith("genai-prices")
        priced += 1
    assert priced > 20


def test_retries_tools_and_failures_are_visible(stored: list[dict[str, Any]]) -> None:
    chats = [s for s in stored if s["operation"] == "chat"]
    failed = [s for s in chats if s["status"] == "error"]
    retried = [s for s in chats if s["is_retry"]]
    assert failed and retried
    assert all(s["attempt"] == 2 for s in retried)
    assert all(s["attempt"] == 1 and not s["is_retry"] for s in failed)
    tools = [s for s in stored if s["operation"] == "tool"]
    assert {s["tool_name"] for s in tools} >= {"lookup_order", "search_papers", "run_tests"}
    broken = [s for s in tools if s["status"] in ("error", "timeout")]
    assert broken and all(s["error_type"] == "tool_timeout" for s in broken)


def test_unpriced_model_is_listed(mentat_server: Any,
                                  stored: list[dict[str, Any]]) -> None:
    answer = httpx.get(f"{mentat_server.url}/api/v1/unpriced", params={
        "start": (datetime.now(UTC) - timedelta(hours=1)).isoformat()}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert "acme-llama-3-70b" in json.dumps(answer.json()["rows"])
