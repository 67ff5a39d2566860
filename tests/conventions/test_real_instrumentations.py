"""Real OpenAI client + real instrumentations against the demo's fake OpenAI server.

The spans the instrumentations actually emit go through the real OTLP encoder and decoder,
then Normalize: provider, models and token counts must equal what the server answered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import openai
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from mentatlab.demo.fake_openai import FakeOpenAIServer
from mentatlab.model.span import CanonicalSpan, Operation
from mentatlab.pipeline.normalize import Normalize
from mentatlab.receivers.decode import decode_otlp_protobuf

MESSAGES = [{"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Name three primes."}]


@contextmanager
def instrumented(kind: str) -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor: object
    if kind == "openai-v2":
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

        instrumentor = OpenAIInstrumentor()  # type: ignore[no-untyped-call]
    else:
        from openinference.instrumentation.openai import OpenAIInstrumentor as OIInstrumentor

        instrumentor = OIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)  # type: ignore[attr-defined]
    try:
        yield exporter
    finally:
        instrumentor.uninstrument()  # type: ignore[attr-defined]
        provider.shutdown()


def run_calls(kind: str, calls: Callable[[openai.OpenAI], None]
              ) -> tuple[list[CanonicalSpan], FakeOpenAIServer]:
    with FakeOpenAIServer() as server, instrumented(kind) as exporter:
        client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
        calls(client)
        client.close()
        body = encode_spans(exporter.get_finished_spans()).SerializeToString()
    result = Normalize()(decode_otlp_protobuf(body).spans)
    assert result.rejected == []
    return result.spans, server


def chat_and_embed(client: openai.OpenAI) -> None:
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    client.embeddings.create(model="text-embedding-3-small", input="hello world")


def check(spans: list[CanonicalSpan], server: FakeOpenAIServer) -> None:
    chat = next(s for s in spans if s.operation is Operation.CHAT)
    answer = server.responses[0]
    usage = answer["usage"]
    assert chat.provider == "openai"
    assert chat.model == answer["model"]
    assert chat.input_tokens == usage["prompt_tokens"]
    assert chat.output_tokens == usage["completion_tokens"]
    assert chat.usage_is_rollup is False
    embedding = next(s for s in spans if s.operation is Operation.EMBEDDINGS)
    assert embedding.request_model == "text-embedding-3-small"
    assert embedding.input_tokens is not None and embedding.input_tokens > 0


def test_opentelemetry_instrumentation_openai_v2() -> None:
    spans, server = run_calls("openai-v2", chat_and_embed)
    check(spans, server)
    chat = next(s for s in spans if s.operation is Operation.CHAT)
    assert chat.request_model == "gpt-4o-mini"
    assert chat.operation_name == "chat"


def test_openinference_instrumentation_openai() -> None:
    spans, server = run_calls("openinference", chat_and_embed)
    check(spans, server)


LONG_PROMPT = [{"role": "system", "content": "Rules: " + "be precise and brief. " * 300},
               {"role": "user", "content": "Name three primes."}]


def twice_with_reasoning(client: openai.OpenAI) -> None:
    for _ in range(2):  # the second call reads the prompt from the cache
        client.chat.completions.create(model="o3-mini", messages=LONG_PROMPT)  # type: ignore[arg-type]


def test_openinference_cache_and_reasoning_details() -> None:
    spans, server = run_calls("openinference", twice_with_reasoning)
    chats = sorted((s for s in spans if s.operation is Operation.CHAT),
                   key=lambda s: s.start_time)
    assert len(chats) == 2
    for span, answer in zip(chats, server.responses, strict=True):
        usage = answer["usage"]
        assert (span.input_tokens, span.output_tokens, span.total_tokens) == (
            usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"])
        assert span.cache_read_tokens == usage["prompt_tokens_details"]["cached_tokens"]
        assert span.reasoning_tokens == usage["completion_tokens_details"]["reasoning_tokens"]
    assert chats[1].cache_read_tokens and chats[1].cache_read_tokens > 0
    assert chats[0].reasoning_tokens and chats[0].reasoning_tokens > 0
