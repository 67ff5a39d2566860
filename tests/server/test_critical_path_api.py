"""The critical path through the API: the tree and the timeline answer it alike.

The trace (ms from its start)::

    agent run   [0, 1000]
      plan      [10, 200]
      search    [200, 700]
        llm     [250, 650]
      fetch     [200, 500]      parallel to search, ends first: off the path
      answer    [720, 990]

Walked back from 1000: answer (990) → agent run owns 990..1000, answer 720..990; search
(700) → agent run owns 700..720; inside search, llm (650) → search owns 650..700 and
200..250, llm 250..650; fetch ends at 500 > 200 → skipped; plan (200) → plan 10..200;
agent run owns 0..10. Critical-path ms: agent run 40, plan 190, search 100, llm 400,
answer 270 (sum 1000). Self time: agent run 1000 − |[10, 700] ∪ [720, 990]| = 40, search
500 − 400 = 100, fetch 300.
"""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from server_payloads import encode, export_request, llm_span, new_trace_id
from serverkit import InProcess

_SHAPE = {"agent run": ("", 0, 1000), "plan": ("agent run", 10, 200),
          "search": ("agent run", 200, 700), "llm": ("search", 250, 650),
          "fetch": ("agent run", 200, 500), "answer": ("agent run", 720, 990)}


async def _send(env: InProcess) -> tuple[bytes, int, dict[str, Span]]:
    trace = new_trace_id()
    base_ns = llm_span(trace).start_time_unix_nano - 10**10
    spans: dict[str, Span] = {}
    for name, (parent, start_ms, end_ms) in _SHAPE.items():
        span = llm_span(trace, name=name, parent=spans[parent].span_id if parent else b"",
                        input_tokens=None, output_tokens=None)
        span.start_time_unix_nano = base_ns + start_ms * 1_000_000
        span.end_time_unix_nano = base_ns + end_ms * 1_000_000
        spans[name] = span
    body, headers = encode(export_request(list(spans.values())))
    answer = await env.client.post("/v1/traces", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    return trace, base_ns, spans


def _flatten(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for node in nodes:
        out += [node, *_flatten(node["children"])]
    return out


async def _both_views(env: InProcess, trace: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    tree = await env.client.get(f"/api/v1/traces/{trace.hex()}")
    timeline = await env.client.get(f"/api/v1/traces/{trace.hex()}", params={"view": "timeline"})
    assert tree.status_code == 200 and timeline.status_code == 200, (tree.text, timeline.text)
    return tree.json(), timeline.json()


def _names(spans: dict[str, Span], ids: list[str]) -> list[str]:
    by_id = {s.span_id.hex(): n for n, s in spans.items()}
    return [by_id[i] for i in ids]


async def test_tree_and_timeline_answer_the_same_critical_path(app_client: InProcess) -> None:
    trace, base_ns, spans = await _send(app_client)
    tree, timeline = await _both_views(app_client, trace)
    expected_path = ["agent run", "plan", "search", "llm", "answer"]
    assert _names(spans, tree["critical_path"]) == expected_path
    assert timeline["critical_path"] == tree["critical_path"]
    critical = {"agent run": 40, "plan": 190, "search": 100, "llm": 400, "fetch": 0,
                "answer": 270}
    own = {"agent run": 40, "plan": 190, "search": 100, "llm": 400, "fetch": 300,
           "answer": 270}
    nodes = {n["name"]: n for n in _flatten(tree["roots"])}
    assert {k: n["critical_path_ms"] for k, n in nodes.items()} == pytest.approx(critical)
    assert {k: n["self_time_ms"] for k, n in nodes.items()} == pytest.approx(own)
    columns = timeline["spans"]
    assert dict(zip(columns["name"], columns["critical_path_ms"], strict=True)) == \
        pytest.approx(critical)
    assert dict(zip(columns["name"], columns["self_time_ms"], strict=True)) == \
        pytest.approx(own)

    # a step still running (a *.started native event, stored open) from 800 ms: it runs to
    # the trace's horizon (1000), clamped to agent run → [800, 1000], and ends last; answer
    # (990 > 800) ran beside it → off the path; search (700) → agent run owns 700..800
    started = {"type": "agent.step.started", "trace_id": trace.hex(),
               "span_id": "ab" * 8, "parent_span_id": spans["agent run"].span_id.hex(),
               "name": "pending", "project_id": "acme",
               "timestamp": base_ns + 800 * 1_000_000}
    posted = await app_client.client.post("/api/v1/events", json=[started])
    assert posted.status_code == 200 and posted.json()["num_open"] == 1, posted.text
    tree, timeline = await _both_views(app_client, trace)
    assert tree["critical_path"] == timeline["critical_path"]
    assert _names(spans, tree["critical_path"][:-1]) == ["agent run", "plan", "search", "llm"]
    assert tree["critical_path"][-1] == "ab" * 8
    columns = timeline["spans"]
    assert dict(zip(columns["name"], columns["critical_path_ms"], strict=True)) == \
        pytest.approx({**critical, "agent run": 110, "answer": 0, "pending": 200})
    nodes = {n["name"]: n for n in _flatten(tree["roots"])}
    assert nodes["pending"]["critical_path_ms"] == pytest.approx(200)
    assert nodes["pending"]["duration_ms"] == 0, "the stored span is not changed"
