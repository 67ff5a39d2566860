"""The trace explorer's API: list search and sorts, the compact timeline, one span's detail."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from server_payloads import encode, export_request, llm_span, new_trace_id
from serverkit import InProcess
from test_api import assert_error_shape


def _shift(span: Span, start_ms: float, duration_ms: float, base_ns: int) -> Span:
    span.start_time_unix_nano = base_ns + int(start_ms * 1e6)
    span.end_time_unix_nano = span.start_time_unix_nano + int(duration_ms * 1e6)
    return span


async def _send(env: InProcess, spans: list[Span], project: str = "acme") -> None:
    body, headers = encode(export_request(spans, project_id=project))
    response = await env.client.post("/v1/traces", content=body, headers=headers)
    assert response.status_code == 200, response.text


async def _loop_trace(env: InProcess, steps: int = 6) -> tuple[bytes, Span]:
    """An agent run: root → ``steps`` "agent.step" spans, each → one LLM call; one tool."""
    trace = new_trace_id()
    base = llm_span(trace).start_time_unix_nano - 10**10
    root = _shift(llm_span(trace, name="agent run", input_tokens=None, output_tokens=None,
                           attrs={"mentat.agent_id": "planner"}), 0, 1000, base)
    spans = [root]
    for i in range(steps):
        step = _shift(llm_span(trace, parent=root.span_id, name="agent.step",
                               input_tokens=None, output_tokens=None), 10 + i * 100, 90, base)
        call = _shift(llm_span(trace, parent=step.span_id, input_tokens=1000 * (i + 1),
                               output_tokens=100, attrs={"step.index": i}),
                      20 + i * 100, 50, base)
        spans += [step, call]
    spans.append(_shift(llm_span(trace, parent=root.span_id, name="tool search",
                                 input_tokens=None, output_tokens=None), 900, 20, base))
    await _send(env, spans)
    return trace, root


async def _simple_trace(env: InProcess, name: str, duration_ms: int, tokens: int) -> bytes:
    trace = new_trace_id()
    root = llm_span(trace, name=name, input_tokens=None, output_tokens=None,
                    duration_ms=duration_ms)
    child = llm_span(trace, parent=root.span_id, input_tokens=tokens, output_tokens=10,
                     duration_ms=5)
    await _send(env, [root, child])
    return trace


@pytest.mark.parametrize("raw", [False, True], ids=["aggregates", "raw spans"])
async def test_list_searches_root_names_and_sorts_by_duration(
        app_client: InProcess, raw: bool) -> None:
    slow = await _simple_trace(app_client, "Support Agent", 3000, 10)
    pricey = await _simple_trace(app_client, "billing agent", 100, 90_000)
    other = await _simple_trace(app_client, "summarize", 1000, 1000)
    # a model filter is answered from raw spans; none from the trace summaries
    base: dict[str, Any] = {"filter": "model=gpt-4o"} if raw else {}

    async def ids(**params: Any) -> list[str]:
        answer = await app_client.client.get("/api/v1/traces", params={**base, **params})
        assert answer.status_code == 200, answer.text
        return [t["trace_id"] for t in answer.json()["traces"]]

    assert await ids(sort="duration") == [slow.hex(), other.hex(), pricey.hex()]
    assert await ids(sort="cost") == [pricey.hex(), other.hex(), slow.hex()]
    assert await ids(q="AGENT", sort="duration") == [slow.hex(), pricey.hex()]
    assert await ids(q="agent", sort="cost") == [pricey.hex(), slow.hex()]
    assert await ids(q="no such name") == []
    assert await ids(sort="duration", limit=1, offset=1) == [other.hex()]
    assert await ids(q="agent", min_duration_ms=2000) == [slow.hex()]


async def test_list_refuses_bad_input_with_the_error_shape(app_client: InProcess) -> None:
    c = app_client.client
    body = assert_error_shape(await c.get("/api/v1/traces", params={"q": "x" * 201}), 422)
    assert body["errors"][0]["field"].endswith("q")
    assert_error_shape(await c.get("/api/v1/traces", params={"sort": "name"}), 422)
    assert_error_shape(await c.get("/api/v1/traces", params={"offset": -1}), 422)
    assert_error_shape(await c.get("/api/v1/traces", params={"min_cost": "lots"}), 422)
    answer = await c.get("/api/v1/traces", params={"q": "'; DROP TABLE spans; --%_"})
    assert answer.status_code == 200 and answer.json()["traces"] == []


async def test_timeline_is_depth_first_with_costs_side_by_side(app_client: InProcess) -> None:
    trace, root = await _loop_trace(app_client)
    tree = (await app_client.client.get(f"/api/v1/traces/{trace.hex()}")).json()
    answer = await app_client.client.get(f"/api/v1/traces/{trace.hex()}",
                                          params={"view": "timeline"})
    assert answer.status_code == 200, answer.text
    timeline = answer.json()
    spans = timeline["spans"]
    assert timeline["view"] == "timeline" and timeline["num_spans"] == 14
    assert timeline["total_cost"] == tree["total_cost"] and Decimal(tree["total_cost"]) > 0
    assert len(spans["span_id"]) == 14 and set(spans) >= {
        "parent", "depth", "name", "start_ms", "duration_ms", "status", "total_cost",
        "subtree_cost", "unattributed_cost", "num_children"}
    # depth-first: root, step 0, its call, step 1, its call, ..., then the tool
    assert spans["name"][:3] == ["agent run", "agent.step", "chat gpt-4o"]
    assert spans["depth"][:3] == [0, 1, 2] and spans["parent"][:3] == [-1, 0, 1]
    assert spans["name"][-1] == "tool search" and spans["start_ms"][0] == 0
    assert spans["span_id"][0] == root.span_id.hex()
    # the root costs nothing itself but carries its subtree: never a bare $0
    assert Decimal(spans["total_cost"][0]) == 0
    assert spans["subtree_cost"][0] == tree["total_cost"] == tree["roots"][0]["subtree_cost"]
    for pos in range(14):
        kids = [k for k in range(14) if spans["parent"][k] == pos]
        assert spans["num_children"][pos] == len(kids)
        assert Decimal(spans["subtree_cost"][pos]) == Decimal(spans["total_cost"][pos]) + sum(
            (Decimal(spans["subtree_cost"][k]) for k in kids), Decimal(0))
    groups = timeline["groups"]
    assert groups["name"] == ["agent.step"] and groups["num_spans"] == [6]
    assert groups["parent"] == [0] and groups["first"] == [1]
    assert groups["subtree_cost"] == [spans["subtree_cost"][0]], "the tool costs nothing"
    fewer = (await app_client.client.get(f"/api/v1/traces/{trace.hex()}", params={
        "view": "timeline", "group_min": 7})).json()
    assert fewer["groups"]["name"] == []


async def test_span_detail_is_the_full_span_with_its_neighbours(app_client: InProcess) -> None:
    trace, root = await _loop_trace(app_client)
    timeline = (await app_client.client.get(f"/api/v1/traces/{trace.hex()}",
                                            params={"view": "timeline"})).json()["spans"]
    call = timeline["span_id"][2]
    answer = await app_client.client.get(f"/api/v1/traces/{trace.hex()}/spans/{call.upper()}")
    assert answer.status_code == 200, answer.text
    detail = answer.json()
    span = detail["span"]
    assert span["span_id"] == call and span["attributes"]["step.index"] == 0
    assert span["input_tokens"] == 1000 and Decimal(span["token_cost"]) > 0
    assert span["subtree_cost"] == span["total_cost"] == timeline["total_cost"][2]
    assert "agent_id" in span["inherited_groups"] and span["agent_id"] == "planner"
    assert detail["parent"]["span_id"] == timeline["span_id"][1]
    assert detail["parent"]["name"] == "agent.step" and detail["children"] == []
    top = (await app_client.client.get(
        f"/api/v1/traces/{trace.hex()}/spans/{root.span_id.hex()}")).json()
    assert top["parent"] is None and top["num_children"] == 7
    assert [c["name"] for c in top["children"]] == ["agent.step"] * 6 + ["tool search"]
    assert top["span"]["subtree_cost"] == timeline["subtree_cost"][0]
    assert top["span"]["inherited_groups"] == []


async def test_trace_routes_answer_400_and_404_in_the_error_shape(
        app_client: InProcess) -> None:
    c = app_client.client
    trace, _ = await _loop_trace(app_client, steps=1)
    assert_error_shape(await c.get("/api/v1/traces/xyz", params={"view": "timeline"}), 400)
    missing = assert_error_shape(await c.get(f"/api/v1/traces/{'ab' * 16}",
                                             params={"view": "timeline"}), 404)
    assert missing["errors"][0]["field"] == "trace_id"
    assert_error_shape(await c.get(f"/api/v1/traces/{trace.hex()}",
                                   params={"view": "flat"}), 422)
    assert_error_shape(await c.get(f"/api/v1/traces/{trace.hex()}",
                                   params={"view": "timeline", "group_min": 1}), 422)
    bad = assert_error_shape(await c.get(f"/api/v1/traces/{trace.hex()}/spans/nothex!"), 400)
    assert bad["errors"][0]["field"] == "span_id"
    assert_error_shape(await c.get(f"/api/v1/traces/zz/spans/{'0' * 16}"), 400)
    gone = assert_error_shape(await c.get(f"/api/v1/traces/{trace.hex()}/spans/{'0' * 16}"),
                              404)
    assert gone["errors"][0]["field"] == "span_id"


async def test_timeline_surfaces_orphans_and_parent_cycles_as_roots(
        app_client: InProcess) -> None:
    trace = new_trace_id()
    base = llm_span(trace).start_time_unix_nano - 10**10
    a, b = llm_span(trace, name="a"), llm_span(trace, name="b")
    a.parent_span_id, b.parent_span_id = b.span_id, a.span_id  # a cycle
    orphan = llm_span(trace, name="orphan", parent=bytes.fromhex("ff" * 8))
    child = llm_span(trace, name="child", parent=orphan.span_id)
    spans = [_shift(s, i * 10, 5, base) for i, s in enumerate([a, b, orphan, child])]
    await _send(app_client, spans)
    timeline = (await app_client.client.get(f"/api/v1/traces/{trace.hex()}",
                                            params={"view": "timeline"})).json()
    columns = timeline["spans"]
    assert sorted(columns["name"]) == ["a", "b", "child", "orphan"], "every span once"
    depth = dict(zip(columns["name"], columns["depth"], strict=True))
    assert depth["orphan"] == 0 and depth["child"] == 1
    assert sorted([depth["a"], depth["b"]]) == [0, 1], "the cycle is cut at its first span"
    assert timeline["total_cost"] == (await app_client.client.get(
        f"/api/v1/traces/{trace.hex()}")).json()["total_cost"]
    detail = (await app_client.client.get(
        f"/api/v1/traces/{trace.hex()}/spans/{orphan.span_id.hex()}")).json()
    assert detail["parent"] is None and [c["name"] for c in detail["children"]] == ["child"]
