"""Attribution set on a span reaches every span started later under it (issue 13).

The LLM spans come from the real ``openai`` client instrumented by each published
instrumentation the project installs, calling the demo's fake OpenAI server.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import mentatlab
from mentatlab.demo.fake_openai import FakeOpenAIServer
from mentatlab.model import span as canonical_span
from mentatlab.sdk import AttributionProcessor
from mentatlab.sdk.attribution import INHERITED_FIELDS, INHERITED_GROUPS, drop_stale_group_members

AGENT = {"mentat.agent_id": "triage-agent", "mentat.agent_version": "1.4.0"}
WORKFLOW = {"mentat.workflow_id": "support", "mentat.workflow_version": "7"}


def spans_by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {s.name: s for s in exporter.get_finished_spans()}


def attribution(span: ReadableSpan) -> dict[str, Any]:
    """The span's inheritable attributes."""
    return {k: v for k, v in (span.attributes or {}).items() if k in INHERITED_FIELDS}


def assert_carries(span: ReadableSpan, expected: Mapping[str, Any]) -> None:
    assert attribution(span) == dict(expected), (span.name, dict(span.attributes or {}))


@pytest.fixture(scope="module")
def fake_openai() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture(params=["openai-v2", "openinference"])
def instrumentation(request: pytest.FixtureRequest,
                    span_exporter: InMemorySpanExporter) -> Iterator[str]:
    """Exactly one instrumentation of the openai client on, through the global provider.

    Two instrumentations of one client would give two LLM spans per call, so the other one
    is switched off for the test and both are put back as they were afterwards.
    """
    from openinference.instrumentation.openai import OpenAIInstrumentor as OpenInference
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor as OtelOpenAI

    otel, oi = OtelOpenAI(), OpenInference()  # type: ignore[no-untyped-call]
    wanted, other = (otel, oi) if request.param == "openai-v2" else (oi, otel)
    other_was_on = other.is_instrumented_by_opentelemetry
    wanted_was_on = wanted.is_instrumented_by_opentelemetry
    if other_was_on:
        other.uninstrument()
    if not wanted_was_on:
        wanted.instrument()
    try:
        yield str(request.param)
    finally:
        if not wanted_was_on:
            wanted.uninstrument()
        if other_was_on:
            other.instrument()


def llm_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    """The spans the instrumentation started (the SDK's own scope is ``mentatlab``)."""
    return [s for s in exporter.get_finished_spans()
            if s.instrumentation_scope is not None and s.instrumentation_scope.name != "mentatlab"]


def test_llm_and_tool_spans_under_a_traced_agent_carry_its_agent(
        instrumentation: str, span_exporter: InMemorySpanExporter,
        fake_openai: FakeOpenAIServer) -> None:
    client = openai.OpenAI(base_url=fake_openai.base_url, api_key="sk-test", max_retries=0)

    @mentatlab.traced(name="lookup_order")
    def lookup_order(order_id: str) -> str:
        mentatlab.set_tool("lookup_order")
        return order_id

    @mentatlab.traced(name="triage")
    def triage(question: str) -> str:
        mentatlab.set_agent("triage-agent", version="1.4.0", runtime="python")
        mentatlab.set_workflow("support", version="7", step="triage")
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": question}])
        lookup_order("8812")
        return reply.choices[0].message.content or ""

    try:
        with mentatlab.span("request") as request:
            assert triage("Where is my order 8812?")
            with mentatlab.span("after-the-agent"):
                client.embeddings.create(model="text-embedding-3-small", input="sibling")
    finally:
        client.close()
    spans = spans_by_name(span_exporter)
    [chat, embeddings] = sorted(llm_spans(span_exporter), key=lambda s: s.start_time or 0)
    for span in (spans["triage"], chat, spans["lookup_order"]):
        assert_carries(span, {**AGENT, **WORKFLOW})
    assert chat.parent is not None
    assert chat.parent.span_id == spans["triage"].context.span_id
    # runtime and step describe one span, not its descendants
    assert "mentat.step" not in (chat.attributes or {})
    assert "mentat.runtime" not in (chat.attributes or {})
    assert spans["lookup_order"].attributes["mentat.tool_name"] == "lookup_order"  # type: ignore[index]
    # nothing leaks to what runs after the agent returned
    for span in (spans["request"], spans["after-the-agent"], embeddings):
        assert_carries(span, {})
    assert embeddings.parent is not None
    assert embeddings.parent.span_id == spans["after-the-agent"].context.span_id
    assert request.get_span_context().trace_id == chat.context.trace_id


def test_own_values_win_and_groups_travel_together(span_exporter: InMemorySpanExporter) -> None:
    @mentatlab.traced(name="refund")
    def refund_agent() -> None:
        mentatlab.set_agent("refund-agent")  # another agent, no version of its own
        with mentatlab.span("refund.llm"):
            pass

    @mentatlab.traced(name="same-agent")
    def same_agent() -> None:
        mentatlab.set_agent("triage-agent")  # the same agent again: keeps its version
        mentatlab.set_workflow("escalation")  # another workflow: drops version 7
        with mentatlab.span("same-agent.llm"):
            pass

    with mentatlab.span("triage"):
        mentatlab.set_agent("triage-agent", version="1.4.0")
        mentatlab.set_workflow("support", version="7")
        refund_agent()
        same_agent()
        with mentatlab.span("started-with-own", agent_id="lint-agent", workflow_version="8"):
            with mentatlab.span("started-with-own.child"):
                pass
        with mentatlab.span("own-version", agent_version="2.0.0"):
            pass
        with mentatlab.span("after"):
            pass
    spans = spans_by_name(span_exporter)
    for name in ("refund", "refund.llm"):
        assert_carries(spans[name], {"mentat.agent_id": "refund-agent", **WORKFLOW})
    for name in ("same-agent", "same-agent.llm"):
        assert_carries(spans[name], {**AGENT, "mentat.workflow_id": "escalation"})
    for name in ("started-with-own", "started-with-own.child"):
        assert_carries(spans[name], {"mentat.agent_id": "lint-agent",
                                     "mentat.workflow_version": "8"})
    # any field of a group makes the group the span's own (the server's rule too)
    assert_carries(spans["own-version"], {"mentat.agent_version": "2.0.0", **WORKFLOW})
    assert_carries(spans["after"], {**AGENT, **WORKFLOW})  # siblings' changes stay theirs


def test_every_inheritable_field_reaches_grandchildren_but_no_other(
        span_exporter: InMemorySpanExporter) -> None:
    fields = {"run_id": "run-1", "session_id": "s-1", "user_id": "u-1", "customer_id": "c-1",
              "prompt_version": "p-3", "agent_id": "a", "agent_version": "1",
              "workflow_id": "w", "workflow_version": "2"}
    with mentatlab.span("root"):
        mentatlab.set_attributes(**fields, step="plan", attempt=2, tool_name="search",
                                 flow_id="f-1", operation="agent")
        with mentatlab.span("child"), mentatlab.span("grandchild"):
            pass
    spans = spans_by_name(span_exporter)
    expected = {f"mentat.{k}": v for k, v in fields.items()}
    assert set(expected) == INHERITED_FIELDS
    for name in ("root", "child", "grandchild"):
        assert_carries(spans[name], expected)
    for key in ("mentat.step", "mentat.attempt", "mentat.tool_name", "mentat.flow_id",
                "mentat.operation"):
        assert key not in (spans["grandchild"].attributes or {})


def test_set_agent_reaches_only_spans_started_after_it(
        span_exporter: InMemorySpanExporter) -> None:
    with mentatlab.span("agent"):
        with mentatlab.span("before"):
            pass
        mentatlab.set_agent("triage-agent")
        with mentatlab.span("after"):
            pass
    spans = spans_by_name(span_exporter)
    assert_carries(spans["before"], {})
    assert_carries(spans["after"], {"mentat.agent_id": "triage-agent"})


async def test_asyncio_tasks_inherit_even_after_the_agent_span_ended(
        span_exporter: InMemorySpanExporter) -> None:
    @mentatlab.traced(name="step")
    async def step(i: int) -> int:
        await asyncio.sleep(0.001 * i)
        return i

    async def background() -> None:
        await asyncio.sleep(0.02)
        with mentatlab.span("late"):
            pass

    @mentatlab.traced(name="agent")
    async def agent() -> asyncio.Task[None]:
        mentatlab.set_agent("triage-agent", version="1.4.0")
        assert await asyncio.gather(step(1), step(2)) == [1, 2]
        await asyncio.create_task(step(3))
        return asyncio.create_task(background())  # outlives the agent span

    late = await agent()
    with mentatlab.span("sibling"):
        await asyncio.create_task(step(4))
    await late
    spans = span_exporter.get_finished_spans()
    agent_span = next(s for s in spans if s.name == "agent")
    sibling = next(s for s in spans if s.name == "sibling")
    steps = [s for s in spans if s.name == "step"]
    assert len(steps) == 4
    for span in [s for s in spans if s.name in ("step", "late")]:
        assert span.parent is not None
        if span.parent.span_id == sibling.context.span_id:
            assert_carries(span, {})
        else:
            assert span.parent.span_id == agent_span.context.span_id
            assert_carries(span, AGENT)


def test_threads_through_wrap_context_inherit(span_exporter: InMemorySpanExporter) -> None:
    @mentatlab.traced(name="in-thread")
    def work() -> None:
        pass

    @mentatlab.traced(name="in-pool")
    def pooled(x: int) -> int:
        return x

    def unwrapped_work() -> None:
        with mentatlab.span("unwrapped"):
            pass

    with mentatlab.span("agent"):
        mentatlab.set_agent("triage-agent", version="1.4.0")
        thread = threading.Thread(target=mentatlab.wrap_context(work))
        thread.start()
        thread.join()
        with ThreadPoolExecutor(2) as pool:
            assert pool.submit(mentatlab.wrap_context(pooled), 3).result() == 3
        unwrapped = threading.Thread(target=unwrapped_work)
        unwrapped.start()
        unwrapped.join()
    spans = spans_by_name(span_exporter)
    assert_carries(spans["in-thread"], AGENT)
    assert_carries(spans["in-pool"], AGENT)
    # a thread that did not take the context starts another trace, with no agent
    assert spans["unwrapped"].parent is None
    assert_carries(spans["unwrapped"], {})


def test_baggage_and_span_values_the_nearer_setting_wins(
        span_exporter: InMemorySpanExporter) -> None:
    with mentatlab.baggage(agent="caller-agent", run="run-7", user="u-9"):
        with mentatlab.span("handler"):
            mentatlab.set_agent("triage-agent", version="1.4.0")  # beats the older baggage
            with mentatlab.span("handler.llm"):
                pass
            with mentatlab.baggage(agent="sub-agent"):  # newer than the span: wins
                with mentatlab.span("sub"), mentatlab.span("sub.llm"):
                    pass
            mentatlab.set_attributes(user_id="u-10")
            with mentatlab.span("after-user"):
                pass
    spans = spans_by_name(span_exporter)
    base = {"mentat.run_id": "run-7", "mentat.user_id": "u-9"}
    assert_carries(spans["handler"], {**base, **AGENT, "mentat.user_id": "u-10"})
    assert_carries(spans["handler.llm"], {**base, **AGENT})
    for name in ("sub", "sub.llm"):  # the baggage's agent, without triage's version
        assert_carries(spans[name], {**base, "mentat.agent_id": "sub-agent"})
    assert_carries(spans["after-user"], {**AGENT, "mentat.run_id": "run-7",
                                         "mentat.user_id": "u-10"})


def test_a_span_that_switches_agent_passes_on_no_version_from_older_baggage(
        span_exporter: InMemorySpanExporter) -> None:
    with mentatlab.baggage(agent="caller-agent", agent_version="9"):
        with mentatlab.span("handler"):
            mentatlab.set_agent("handler-agent")
            with mentatlab.span("handler.llm"):
                pass
    spans = spans_by_name(span_exporter)
    for name in ("handler", "handler.llm"):  # not handler-agent at the caller's version 9
        assert_carries(spans[name], {"mentat.agent_id": "handler-agent"})


def test_span_attribution_is_not_added_to_outgoing_baggage(
        span_exporter: InMemorySpanExporter) -> None:
    with mentatlab.baggage(run_id="run-1"), mentatlab.span("agent"):
        mentatlab.set_agent("triage-agent")
        mentatlab.set_attributes(user_id="user-secret")
        headers = mentatlab.inject_headers()
        env = mentatlab.inject_env({})
    assert headers["baggage"] == "mentat.run_id=run-1"
    assert env["BAGGAGE"] == "mentat.run_id=run-1"
    assert "traceparent" in headers


def test_attribution_processor_on_a_provider_of_ones_own() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(AttributionProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("own")
    with mentatlab.baggage(run="run-3"), tracer.start_as_current_span("agent"):
        mentatlab.set_agent("planner-agent")
        with tracer.start_as_current_span("llm"):
            pass
    provider.shutdown()
    spans = spans_by_name(exporter)
    assert_carries(spans["llm"], {"mentat.agent_id": "planner-agent", "mentat.run_id": "run-3"})


def test_remote_and_non_sdk_parents_give_nothing(span_exporter: InMemorySpanExporter) -> None:
    with mentatlab.span("upstream") as upstream:
        mentatlab.set_agent("caller-agent")
        headers = mentatlab.inject_headers()
    # a remote parent (same process, but through headers) is not an SDK span here
    with mentatlab.span("downstream", context=mentatlab.extract_headers(headers)):
        pass
    spans = spans_by_name(span_exporter)
    assert spans["downstream"].parent is not None
    assert spans["downstream"].parent.span_id == upstream.get_span_context().span_id
    assert_carries(spans["downstream"], {})
    # the helpers do nothing on a span that is not an SDK span
    drop_stale_group_members(trace.INVALID_SPAN, {"mentat.agent_id": "x"})


def test_own_start_attributes_beat_baggage_and_static_tenancy() -> None:
    exporter = InMemorySpanExporter()
    mentatlab.init(exporter=exporter, batch=False, org="acme", project="helpdesk")
    with mentatlab.baggage(agent="caller-agent", agent_version="9", project="bag-project",
                           flow="f-1"):
        with mentatlab.span("own", agent_id="lint-agent", org_id="initech"):
            pass
    attributes = dict(spans_by_name(exporter)["own"].attributes or {})
    assert attributes["mentat.agent_id"] == "lint-agent"
    assert "mentat.agent_version" not in attributes  # the caller's version is not lint's
    assert attributes["mentat.org_id"] == "initech"
    assert attributes["mentat.project_id"] == "bag-project"  # baggage beats static
    assert attributes["mentat.flow_id"] == "f-1"


def test_groups_are_the_canonical_spans_groups() -> None:
    # the server inherits the same groups from ancestors; the SDK must not import the model
    # (it pulls in pyarrow), so the table is written twice and compared here
    assert INHERITED_GROUPS == tuple(tuple(f"mentat.{field}" for field in group)
                                     for group in canonical_span.INHERITED_GROUPS)
