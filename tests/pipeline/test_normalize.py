from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from mentatlab.model.raw import RawSpan
from mentatlab.model.span import Operation, SpanStatus
from mentatlab.pipeline.classify import Classify
from mentatlab.pipeline.normalize import TRUNCATED_ATTRIBUTES_KEY, Normalize
from mentatlab.pipeline.processor import Pipeline
from mentatlab.receivers.decode import decode_otlp_protobuf

T0_NS = 1_763_000_000_123_456_789


def raw(attributes: dict[str, Any] | None = None, *, span_id: str = "00f067aa0ba902b7",
        **kwargs: Any) -> RawSpan:
    fields: dict[str, Any] = dict(
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736", span_id=span_id, parent_span_id="",
        name="chat gpt-4o", start_time_ns=T0_NS, end_time_ns=T0_NS + 1_500_000,
        attributes=dict(attributes or {}))
    fields.update(kwargs)
    return RawSpan(**fields)


def test_real_sdk_spans_through_the_real_decoder() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create(
        {"service.name": "support-bot", "mentat.org_id": "acme", "mentat.project_id": "p1"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("opentelemetry.instrumentation.openai_v2", "2.4b0")
    with tracer.start_as_current_span("invoke_agent Support", kind=SpanKind.INTERNAL) as agent:
        agent.set_attribute("gen_ai.operation.name", "invoke_agent")
        agent.set_attribute("gen_ai.usage.input_tokens", 120)
        with tracer.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT) as chat:
            chat.set_attributes({
                "gen_ai.operation.name": "chat", "gen_ai.system": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
                "gen_ai.usage.input_tokens": 120, "gen_ai.usage.output_tokens": 30,
                "gen_ai.usage.cache_read.input_tokens": 100, "server.address": "api.openai.com",
            })
        with tracer.start_as_current_span("execute_tool lookup") as tool:
            tool.set_attributes({"gen_ai.operation.name": "execute_tool",
                                 "gen_ai.tool.name": "lookup", "http.response.status_code": 429,
                                 "error.type": "HTTPStatusError"})
            tool.set_status(Status(StatusCode.ERROR, "429 Too Many Requests for url x"))
    provider.shutdown()
    body = encode_spans(exporter.get_finished_spans()).SerializeToString()
    decoded = decode_otlp_protobuf(body)
    result = Pipeline(Normalize(), [Classify()]).run_spans(decoded.spans)
    assert result.rejected == []
    by_name = {s.name: s for s in result.spans}
    chat_span = by_name["chat gpt-4o-mini"]
    assert (chat_span.provider, chat_span.model, chat_span.input_tokens,
            chat_span.cache_read_tokens, chat_span.operation, chat_span.org_id,
            chat_span.project_id, chat_span.service_name, chat_span.usage_is_rollup) == (
        "openai", "gpt-4o-mini-2024-07-18", 120, 100, Operation.CHAT, "acme", "p1",
        "support-bot", False)
    agent_span = by_name["invoke_agent Support"]
    assert (agent_span.operation, agent_span.usage_is_rollup) == (Operation.AGENT, True)
    tool_span = by_name["execute_tool lookup"]
    assert (tool_span.status, tool_span.tool_name, tool_span.error_type,
            tool_span.error_category) == (SpanStatus.ERROR, "lookup", "HTTPStatusError",
                                          "rate_limit")
    assert len(tool_span.error_message_hash) == 16


def test_identity_times_and_json() -> None:
    span = Normalize()([raw({"custom.key": "kept", "n": [1, 2]}, kind="client",
                            status_message="", scope_name="lib",
                            events=[{"name": "e", "time_ns": T0_NS, "attributes": {"a": 1}}],
                            resource={"service.name": "svc", "host.name": "h"})]).spans[0]
    assert span.start_time == datetime(2025, 11, 13, 2, 13, 20, 123456, tzinfo=UTC)  # floored
    assert span.start_time.tzinfo is UTC
    assert span.duration_ms == 1.5
    assert orjson.loads(span.attributes) == {"custom.key": "kept", "n": [1, 2]}
    assert orjson.loads(span.events) == [{"name": "e", "time_ns": T0_NS, "attributes": {"a": 1}}]
    assert orjson.loads(span.resource) == {"service.name": "svc", "host.name": "h"}
    assert (span.scope_name, span.kind, span.status) == ("lib", "client", SpanStatus.OK)
    assert span.token_cost == 0 and span.total_cost == 0
    assert span.ingested_at_ns > T0_NS


@pytest.mark.parametrize(("value", "tokens"), [
    ("174", 174), (12.0, 12), ("12.0", 12), (0, 0), (100_000_000, 100_000_000), (7.6, 8),
])
def test_token_coercion(value: Any, tokens: int) -> None:
    span = Normalize()([raw({"gen_ai.usage.input_tokens": value})]).spans[0]
    assert span.input_tokens == tokens


def test_absent_is_none_not_zero() -> None:
    span = Normalize()([raw({"gen_ai.usage.output_tokens": 0})]).spans[0]
    assert (span.output_tokens, span.input_tokens, span.total_tokens) == (0, None, None)


@pytest.mark.parametrize("bad", [-1, "-3", "lots", "", 100_000_001, True, float("inf"), [1]])
def test_bad_token_counts_reject_the_whole_span(bad: Any) -> None:
    good = raw({"gen_ai.usage.input_tokens": 5}, span_id="1111111111111111")
    result = Normalize()([good, raw({"gen_ai.usage.output_tokens": bad,
                                     "gen_ai.request.model": "m"})])
    assert [s.span_id for s in result.spans] == ["1111111111111111"]
    assert len(result.rejected) == 1
    assert result.rejected[0].field == "00f067aa0ba902b7:gen_ai.usage.output_tokens"
    assert repr(bad)[:20] in result.rejected[0].reason or str(bad) in result.rejected[0].reason


def test_end_before_start_is_rejected() -> None:
    result = Normalize()([raw(end_time_ns=T0_NS - 1)])
    assert result.spans == []
    assert result.rejected[0].field == "00f067aa0ba902b7:endTimeUnixNano"


def test_truncation_is_utf8_safe_and_listed() -> None:
    long_text = "é" * 40  # 80 bytes
    span = Normalize(max_attribute_value_bytes=33)([raw({
        "gen_ai.input.messages": long_text, "short": "ok", "num": 10**6})]).spans[0]
    attrs = orjson.loads(span.attributes)
    assert attrs["gen_ai.input.messages"] == "é" * 16
    assert attrs["short"] == "ok"
    assert attrs[TRUNCATED_ATTRIBUTES_KEY] == ["gen_ai.input.messages"]


def test_setting_floor() -> None:
    with pytest.raises(ValueError, match="max_attribute_value_bytes"):
        Normalize(max_attribute_value_bytes=0)


def test_status() -> None:
    normalize = Normalize()
    spans = normalize([
        raw(status_code=2, status_message="boom"),
        raw({"error.type": "APITimeoutError"}, status_code=2),
        raw(status_code=1),
        raw({"error.type": "ignored-without-error-status"}),
    ]).spans
    assert [s.status for s in spans] == [SpanStatus.ERROR, SpanStatus.TIMEOUT, SpanStatus.OK,
                                         SpanStatus.OK]
    assert spans[0].status_message == "boom"


def test_unknown_tenancy_keys_are_ignored() -> None:
    span = Normalize()([raw(tenancy={"org_id": "o", "not_a_field": "x"})]).spans[0]
    assert span.org_id == "o"


def test_huge_integers_survive_json() -> None:
    span = Normalize()([raw({"big": 2**70})]).spans[0]
    assert orjson.loads(span.attributes) == {"big": 2**70}


attr_values = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(),
                        st.lists(st.integers(), max_size=3),
                        st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))
attr_keys = st.sampled_from([
    "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "gen_ai.system",
    "gen_ai.request.model", "llm.token_count.prompt", "openinference.span.kind",
    "ai.response.providerMetadata", "gen_ai.usage.raw", "langfuse.observation.usage_details",
    "genkit:output", "genkit:name", "mentat.attempt", "mentat.is_retry", "server.address",
    "gen_ai.operation.name", "mentat.status", "random.key",
]) | st.text(max_size=10)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.dictionaries(attr_keys, attr_values, max_size=6), min_size=1, max_size=4),
       st.text(max_size=12))
def test_never_crashes_and_accounts_for_every_span(attr_sets: list[dict[str, Any]],
                                                   name: str) -> None:
    batch = [raw(attrs, name=name, span_id=f"{i + 1:016x}") for i, attrs in enumerate(attr_sets)]
    result = Normalize()(batch)
    assert len(result.spans) + len(result.rejected) == len(batch)
    for span in result.spans:
        for count in (span.input_tokens, span.output_tokens, span.cache_read_tokens,
                      span.cache_write_tokens, span.reasoning_tokens, span.total_tokens):
            assert count is None or 0 <= count
        assert 1 <= span.attempt <= 65535
