from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest

from mentatlab.demo.fake_openai import (
    FakeOpenAIConfig,
    FakeOpenAIServer,
    count_tokens,
)

LONG_SYSTEM = "You are a careful research assistant. " * 150  # ~5,700 chars, > 1,024 tokens

TOOLS = [{
    "type": "function",
    "function": {
        "name": "search_docs",
        "description": "Search the documentation",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"},
                                                        "limit": {"type": "integer"}},
                       "required": ["query"]},
    },
}]


@pytest.fixture
def fake() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def client(fake: FakeOpenAIServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=fake.base_url, api_key="sk-fake", max_retries=0) as c:
        yield c


def test_chat_reports_snapshot_model_and_deterministic_usage(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    first = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    second = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    assert first.model == "gpt-4o-mini-2024-07-18"
    assert first.usage is not None and second.usage is not None
    assert first.usage.prompt_tokens == 3 + count_tokens(messages[0]["content"]) + 3
    assert first.usage.prompt_tokens == second.usage.prompt_tokens
    assert first.usage.completion_tokens == count_tokens(first.choices[0].message.content or "")
    assert first.usage.total_tokens == first.usage.prompt_tokens + first.usage.completion_tokens
    # a short prompt is never cached, even when repeated
    assert second.usage.prompt_tokens_details is not None
    assert second.usage.prompt_tokens_details.cached_tokens == 0


def test_repeated_long_prefix_is_cached_in_128_token_steps(client: openai.OpenAI) -> None:
    system = {"role": "system", "content": LONG_SYSTEM}
    first = client.chat.completions.create(
        model="gpt-4o", messages=[system, {"role": "user", "content": "question one"}])
    second = client.chat.completions.create(
        model="gpt-4o", messages=[system, {"role": "user", "content": "another question"}])
    assert first.usage is not None and second.usage is not None
    assert first.usage.prompt_tokens_details is not None
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    cached = second.usage.prompt_tokens_details.cached_tokens  # type: ignore[union-attr]
    prefix_tokens = 3 + count_tokens(LONG_SYSTEM)
    assert cached == (prefix_tokens // 128) * 128
    assert 1024 <= cached <= second.usage.prompt_tokens


def test_reasoning_model_reports_reasoning_tokens(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model="o3-mini", messages=[{"role": "user", "content": "Prove it."}])
    assert r.model == "o3-mini-2025-01-31"
    assert r.usage is not None and r.usage.completion_tokens_details is not None
    reasoning = r.usage.completion_tokens_details.reasoning_tokens or 0
    assert reasoning > 0
    visible = count_tokens(r.choices[0].message.content or "")
    assert r.usage.completion_tokens == visible + reasoning


def test_tools_produce_a_tool_call_then_an_answer(client: openai.OpenAI) -> None:
    messages: list[dict[str, object]] = [{"role": "user", "content": "Find the SLA doc"}]
    r = client.chat.completions.create(model="gpt-4.1-mini", messages=messages, tools=TOOLS)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls
    call = choice.message.tool_calls[0]
    assert call.function.name == "search_docs"
    args = json.loads(call.function.arguments)
    assert set(args) == {"query", "limit"} and args["limit"] == 3
    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "SLA: 99.9%"}]
    r2 = client.chat.completions.create(model="gpt-4.1-mini", messages=messages, tools=TOOLS)
    assert r2.choices[0].finish_reason == "stop"
    assert r2.choices[0].message.content


def test_streaming_with_include_usage(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "Stream me a summary"}]
    plain = client.chat.completions.create(model="gpt-5-mini", messages=messages)
    stream = client.chat.completions.create(
        model="gpt-5-mini", messages=messages, stream=True,
        stream_options={"include_usage": True})
    text, usage, models = "", None, set()
    for chunk in stream:
        models.add(chunk.model)
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        if chunk.usage is not None:
            usage = chunk.usage
    assert models == {"gpt-5-mini-2025-08-07"}
    assert text == plain.choices[0].message.content
    assert usage is not None and plain.usage is not None
    assert usage.completion_tokens == plain.usage.completion_tokens
    assert usage.completion_tokens_details.reasoning_tokens > 0  # type: ignore[union-attr]


def test_embeddings_float_and_base64(client: openai.OpenAI) -> None:
    r = client.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta gamma"])
    assert len(r.data) == 2 and len(r.data[0].embedding) == 1536
    assert r.usage.prompt_tokens == count_tokens("alpha") + count_tokens("beta gamma")
    f = client.embeddings.create(model="text-embedding-3-small", input="alpha",
                                 encoding_format="float", dimensions=8)
    assert len(f.data[0].embedding) == 8


def test_forced_rate_limit_is_a_429_the_client_retries(fake: FakeOpenAIServer) -> None:
    with openai.OpenAI(base_url=fake.base_url, api_key="k", max_retries=0) as c:
        with pytest.raises(openai.RateLimitError):
            c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user",
                                      "content": "x"}], extra_headers={"x-fake-fail": "rate_limit"})
        with pytest.raises(openai.InternalServerError):
            c.embeddings.create(model="text-embedding-3-small", input="x",
                                extra_headers={"x-fake-fail": "server_error"})
    assert fake.counts["rate_limit"] == 1 and fake.counts["server_error"] == 1


def test_seeded_failures_are_retried_by_the_client() -> None:
    cfg = FakeOpenAIConfig(seed=3, rate_limit_p=0.3, server_error_p=0.2, slow_p=0.0)
    with FakeOpenAIServer(cfg) as fake, openai.OpenAI(
            base_url=fake.base_url, api_key="k", max_retries=8) as c:
        for i in range(6):
            r = c.chat.completions.create(model="gpt-4o-mini",
                                          messages=[{"role": "user", "content": f"q{i}"}])
            assert r.usage is not None
        failures = fake.counts["rate_limit"] + fake.counts["server_error"]
        assert failures > 0
        assert fake.counts["chat"] == 6 + failures


def test_slow_answer_times_out_the_client() -> None:
    cfg = FakeOpenAIConfig(slow_s=1.0)
    with FakeOpenAIServer(cfg) as fake, openai.OpenAI(
            base_url=fake.base_url, api_key="k", max_retries=0, timeout=0.2) as c:
        with pytest.raises(openai.APITimeoutError):
            c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user",
                                      "content": "x"}], extra_headers={"x-fake-fail": "slow"})
