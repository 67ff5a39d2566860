from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import mentatlab


class Boom(Exception):
    pass


def finished(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {s.name: s for s in exporter.get_finished_spans()}


def test_bare_and_configured_decorators(span_exporter: InMemorySpanExporter) -> None:
    @mentatlab.traced
    def plain(x: int) -> int:
        return x + 1

    @mentatlab.traced(name="configured", kind="client", attributes={"team": "a"})
    def configured(x: int) -> int:
        return x * 2

    assert plain(1) == 2
    assert configured(3) == 6
    assert plain.__name__ == "plain"
    spans = finished(span_exporter)
    assert set(spans) == {"test_bare_and_configured_decorators.<locals>.plain", "configured"}
    assert spans["configured"].kind is SpanKind.CLIENT
    assert spans["configured"].attributes is not None
    assert spans["configured"].attributes["team"] == "a"
    assert spans["configured"].status.status_code is StatusCode.UNSET


def test_method_and_capture_args_allowlist(span_exporter: InMemorySpanExporter) -> None:
    class Agent:
        @mentatlab.traced(name="act", capture_args=["query", "n"])
        def act(self, query: str, secret: str, n: int = 3) -> str:
            return query * n

    assert Agent().act("ab", "hunter2", n=2) == "abab"
    attributes = dict(finished(span_exporter)["act"].attributes or {})
    assert attributes["mentat.args.query"] == "ab"
    assert attributes["mentat.args.n"] == 2
    assert not any("secret" in key or "self" in key for key in attributes)


def test_unknown_kind_raises_at_decoration() -> None:
    with pytest.raises(ValueError, match="kind"):
        mentatlab.traced(kind="sideways")


async def test_coroutine(span_exporter: InMemorySpanExporter) -> None:
    @mentatlab.traced
    async def work() -> str:
        await asyncio.sleep(0.001)
        return "done"

    assert await work() == "done"
    assert len(span_exporter.get_finished_spans()) == 1


def test_generator_span_covers_iteration(span_exporter: InMemorySpanExporter) -> None:
    @mentatlab.traced(name="gen")
    def gen(n: int) -> Iterator[int]:
        with mentatlab.span("inside"):
            pass
        yield from range(n)

    iterator = gen(3)
    assert span_exporter.get_finished_spans() == ()
    assert next(iterator) == 0
    assert [s.name for s in span_exporter.get_finished_spans()] == ["inside"]
    assert list(iterator) == [1, 2]
    spans = finished(span_exporter)
    assert spans["inside"].parent is not None
    assert spans["inside"].parent.span_id == spans["gen"].context.span_id


def test_generator_closed_early_is_not_an_error(span_exporter: InMemorySpanExporter) -> None:
    @mentatlab.traced(name="gen")
    def gen() -> Iterator[int]:
        yield 1
        yield 2

    iterator = gen()
    next(iterator)
    iterator.close()
    assert finished(span_exporter)["gen"].status.status_code is StatusCode.UNSET


def test_generator_send_and_return_value(span_exporter: InMemorySpanExporter) -> None:
    @mentatlab.traced(name="echo")
    def echo() -> Iterator[int]:
        received = yield 0
        yield received * 10
        return None

    iterator = echo()
    assert next(iterator) == 0
    assert iterator.send(4) == 40
    with pytest.raises(StopIteration):
        next(iterator)
    assert "echo" in finished(span_exporter)


async def test_async_generator(span_exporter: InMemorySpanExporter) -> None:
    @mentatlab.traced(name="agen")
    async def agen(n: int) -> AsyncIterator[int]:
        for i in range(n):
            await asyncio.sleep(0)
            with mentatlab.span(f"item{i}"):
                yield i

    assert [i async for i in agen(2)] == [0, 1]
    spans = finished(span_exporter)
    assert spans["item1"].parent is not None
    assert spans["item1"].parent.span_id == spans["agen"].context.span_id
    assert spans["agen"].end_time is not None
    assert spans["item1"].end_time is not None
    assert spans["agen"].end_time >= spans["item1"].end_time


def test_exceptions_recorded_and_reraised_unchanged(span_exporter: InMemorySpanExporter) -> None:
    error = Boom("nope")

    @mentatlab.traced(name="fails")
    def fails() -> None:
        raise error

    @mentatlab.traced(name="gen_fails")
    def gen_fails() -> Iterator[int]:
        yield 1
        raise error

    with pytest.raises(Boom) as caught:
        fails()
    assert caught.value is error
    with pytest.raises(Boom):
        list(gen_fails())
    with pytest.raises(Boom), mentatlab.span("block"):
        raise error
    for name in ("fails", "gen_fails", "block"):
        s = finished(span_exporter)[name]
        assert s.status.status_code is StatusCode.ERROR
        assert s.status.description == "Boom: nope"
        assert [e.name for e in s.events] == ["exception"]
        assert s.events[0].attributes is not None
        assert s.events[0].attributes["exception.type"].endswith("Boom")


async def test_async_exceptions(span_exporter: InMemorySpanExporter) -> None:
    @mentatlab.traced(name="afails")
    async def afails() -> None:
        await asyncio.sleep(0)
        raise Boom("x")

    @mentatlab.traced(name="agen_fails")
    async def agen_fails() -> AsyncIterator[int]:
        yield 1
        raise Boom("y")

    with pytest.raises(Boom):
        await afails()
    with pytest.raises(Boom):
        [i async for i in agen_fails()]
    for name in ("afails", "agen_fails"):
        assert finished(span_exporter)[name].status.status_code is StatusCode.ERROR


def test_nested_spans_link_to_parents(span_exporter: InMemorySpanExporter) -> None:
    @mentatlab.traced(name="leaf")
    def leaf() -> None:
        pass

    with mentatlab.span("root") as root, mentatlab.span("mid", step="plan"):
        leaf()
    spans = finished(span_exporter)
    assert spans["mid"].parent is not None and spans["leaf"].parent is not None
    assert spans["mid"].parent.span_id == root.get_span_context().span_id
    assert spans["leaf"].parent.span_id == spans["mid"].context.span_id
    assert len({s.context.trace_id for s in spans.values()}) == 1
    assert spans["mid"].attributes is not None
    assert spans["mid"].attributes["mentat.step"] == "plan"


async def test_async_with_span(span_exporter: InMemorySpanExporter) -> None:
    async with mentatlab.span("ablock", **{"gen_ai.request.model": "m"}) as s:
        await asyncio.sleep(0)
        assert s.is_recording()
    attributes = finished(span_exporter)["ablock"].attributes or {}
    assert attributes["gen_ai.request.model"] == "m"


def test_attribute_helpers(span_exporter: InMemorySpanExporter) -> None:
    with mentatlab.span("call"):
        mentatlab.set_model("gpt-4o-mini", provider="openai")
        mentatlab.record_tokens(120, 30, cache_read_tokens=100, reasoning_tokens=10)
        mentatlab.set_agent("triage", version="3")
        mentatlab.set_workflow("support", version="7", step="classify")
        mentatlab.set_prompt_version("p-12")
    with mentatlab.span("tool"):
        mentatlab.set_tool("search")
    mentatlab.set_tool("no-current-span-is-fine")
    call = dict(finished(span_exporter)["call"].attributes or {})
    assert {k: v for k, v in call.items() if not k.startswith("mentat.resource.")} == {
        "mentat.request_model": "gpt-4o-mini", "mentat.provider": "openai",
        "mentat.operation": "chat", "mentat.input_tokens": 120, "mentat.output_tokens": 30,
        "mentat.cache_read_tokens": 100, "mentat.reasoning_tokens": 10,
        "mentat.agent_id": "triage", "mentat.agent_version": "3",
        "mentat.workflow_id": "support", "mentat.workflow_version": "7",
        "mentat.step": "classify", "mentat.prompt_version": "p-12",
    }
    tool = finished(span_exporter)["tool"].attributes or {}
    assert tool["mentat.tool_name"] == "search" and tool["mentat.operation"] == "tool"


def test_tenancy_from_init_and_baggage() -> None:
    exporter = InMemorySpanExporter()
    mentatlab.init(exporter=exporter, batch=False, org="acme", project="bots")
    with mentatlab.span("default"):
        pass
    with mentatlab.baggage(org="globex", flow_id="f1", run_id="r9"), mentatlab.span("tenant"):
        pass
    spans = finished(exporter)
    assert (spans["default"].attributes or {})["mentat.org_id"] == "acme"
    tenant = spans["tenant"].attributes or {}
    assert tenant["mentat.org_id"] == "globex"
    assert tenant["mentat.project_id"] == "bots"
    assert tenant["mentat.flow_id"] == "f1" and tenant["mentat.run_id"] == "r9"


def test_init_twice_is_safe_and_swaps_exporter() -> None:
    first, second = InMemorySpanExporter(), InMemorySpanExporter()
    mentatlab.init(exporter=first, batch=False)
    with mentatlab.span("one"):
        pass
    mentatlab.init(exporter=second, batch=False, resource_metering=False)
    with mentatlab.span("two"):
        pass
    assert [s.name for s in first.get_finished_spans()] == ["one"]
    assert [s.name for s in second.get_finished_spans()] == ["two"]
    attributes = second.get_finished_spans()[0].attributes or {}
    assert not any(key.startswith("mentat.resource.") for key in attributes)
    assert mentatlab.export_stats().num_exported_spans == 1


def test_traced_before_init_runs_untraced() -> None:
    code = (
        "import mentatlab\n"
        "@mentatlab.traced\n"
        "def f(): return 41 + 1\n"
        "with mentatlab.span('s') as s: pass\n"
        "print(f(), s.is_recording())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["42", "False"]


def test_import_mentatlab_is_light() -> None:
    code = (
        "import sys, mentatlab\n"
        "heavy = [m for m in ('chdb', 'fastapi', 'opentelemetry.sdk', 'psutil')\n"
        "         if m in sys.modules]\n"
        "assert callable(mentatlab.traced)\n"
        "late = [m for m in ('chdb', 'fastapi') if m in sys.modules]\n"
        "print(heavy, late, sorted(mentatlab.__all__) == mentatlab.__all__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] [] True"


def test_public_surface_complete() -> None:
    import mentatlab.sdk as sdk

    for name in mentatlab.__all__:
        assert getattr(mentatlab, name) is not None
    assert sorted(sdk.__all__) == sdk.__all__
    assert set(mentatlab.__all__) - {"__version__"} <= set(sdk.__all__)
