"""Conventions fixed by what the real-client matrix (tests/matrix) found real producers emit.

Attribute sets are copied from spans the published packages emitted against the fake
providers (values shortened); the expected numbers are the providers' answers in
MentatLab's meaning (input inclusive of cache read and write).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from mentatlab.conventions.other import CACHE_EXCLUSIVE_SCOPES
from mentatlab.model.span import CanonicalSpan

Norm = Callable[..., CanonicalSpan]

# openlit 1.45 on anthropic 0.125: usage.input_tokens=542 (exclusive), cache creation 1536
OPENLIT_ANTHROPIC = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic",
                     "gen_ai.request.model": "claude-sonnet-4-20250514",
                     "gen_ai.response.model": "claude-sonnet-4-20250514",
                     "gen_ai.usage.input_tokens": 542, "gen_ai.usage.output_tokens": 116,
                     "gen_ai.client.token.usage": 658,
                     "gen_ai.usage.cache_read.input_tokens": 0,
                     "gen_ai.usage.cache_creation.input_tokens": 1536}
# opentelemetry-instrumentation-bedrock 0.62 on Converse: inputTokens=422, read 1024, write 768
OPENLLMETRY_BEDROCK = {"gen_ai.provider.name": "aws.bedrock", "gen_ai.operation.name": "chat",
                       "gen_ai.request.model": "claude-3-5-sonnet-20240620-v1:0",
                       "gen_ai.usage.input_tokens": 422, "gen_ai.usage.output_tokens": 66,
                       "gen_ai.usage.total_tokens": 488,
                       "gen_ai.usage.cache_read.input_tokens": 1024,
                       "gen_ai.usage.cache_creation.input_tokens": 768}


@pytest.mark.parametrize(("scope", "attributes", "expected"), [
    ("openlit.instrumentation.anthropic", OPENLIT_ANTHROPIC, (2078, 116, 0, 1536)),
    ("openlit.instrumentation.bedrock",
     {**OPENLLMETRY_BEDROCK, "gen_ai.usage.input_tokens": 543}, (2335, 66, 1024, 768)),
    ("opentelemetry.instrumentation.bedrock", OPENLLMETRY_BEDROCK, (2214, 66, 1024, 768)),
    ("@traceloop/instrumentation-anthropic",
     {**OPENLIT_ANTHROPIC, "gen_ai.usage.input_tokens": 641}, (2177, 116, 0, 1536)),
])
def test_cache_exclusive_producers_get_the_cache_added_back(
        normalized: Norm, scope: str, attributes: dict[str, object],
        expected: tuple[int, int, int, int]) -> None:
    span = normalized(attributes, scope=scope, kind="client")
    assert (span.input_tokens, span.output_tokens, span.cache_read_tokens,
            span.cache_write_tokens) == expected


def test_the_same_attributes_from_an_inclusive_producer_are_kept(normalized: Norm) -> None:
    # opentelemetry-instrumentation-anthropic (Python OpenLLMetry) already sums the cache in
    for scope in ("opentelemetry.instrumentation.anthropic", "openlit.instrumentation.openai",
                  "com.anthropic.sdk.typescript"):
        assert scope not in CACHE_EXCLUSIVE_SCOPES
        span = normalized({**OPENLIT_ANTHROPIC, "gen_ai.usage.input_tokens": 2078},
                          scope=scope)
        assert (span.input_tokens, span.cache_write_tokens) == (2078, 1536)


def test_an_exclusive_scope_without_cache_counts_keeps_its_input(normalized: Norm) -> None:
    plain = {k: v for k, v in OPENLLMETRY_BEDROCK.items() if "cache" not in k}
    span = normalized(plain, scope="opentelemetry.instrumentation.bedrock")
    assert (span.input_tokens, span.cache_read_tokens, span.cache_write_tokens) == (
        422, None, None)


def test_flat_and_dotted_cache_keys_are_not_added_twice(normalized: Norm) -> None:
    span = normalized({"gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 5,
                       "gen_ai.usage.cache_read.input_tokens": 40,
                       "gen_ai.usage.cache_read_input_tokens": 40},
                      scope="strands.telemetry.tracer")
    assert (span.input_tokens, span.cache_read_tokens) == (140, 40)


def test_logfire_responses_reasoning_lives_in_the_raw_usage(normalized: Norm) -> None:
    # logfire 5.4 instrument_openai, Responses API on o4-mini
    raw = {"input_tokens": 2292, "input_tokens_details": {"cached_tokens": 1280},
           "output_tokens": 352, "output_tokens_details": {"reasoning_tokens": 96},
           "total_tokens": 2644}
    span = normalized({"gen_ai.provider.name": "openai", "gen_ai.operation.name": "chat",
                       "gen_ai.request.model": "o4-mini",
                       "gen_ai.response.model": "o4-mini-2025-04-16",
                       "gen_ai.usage.input_tokens": 2292, "gen_ai.usage.output_tokens": 352,
                       "gen_ai.usage.cache_read.input_tokens": 1280,
                       "gen_ai.usage.raw": json.dumps(raw)}, scope="logfire.openai")
    assert (span.input_tokens, span.output_tokens, span.cache_read_tokens,
            span.reasoning_tokens) == (2292, 352, 1280, 96)


def test_pydantic_ai_usage_details_reasoning(normalized: Norm) -> None:
    # pydantic-ai-slim 2.78, OpenAIChatModel on o4-mini
    span = normalized({"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                       "gen_ai.request.model": "o4-mini",
                       "gen_ai.usage.input_tokens": 1687, "gen_ai.usage.output_tokens": 132,
                       "gen_ai.usage.cache_read.input_tokens": 1280,
                       "gen_ai.usage.details.reasoning_tokens": 41,
                       "gen_ai.usage.details.cache_read_tokens": 1280}, scope="pydantic-ai")
    assert (span.input_tokens, span.output_tokens, span.cache_read_tokens,
            span.reasoning_tokens) == (1687, 132, 1280, 41)


def test_ai_sdk_v6_bedrock_input_is_already_the_total(normalized: Norm) -> None:
    # ai 6 + @ai-sdk/amazon-bedrock 4, Converse answered inputTokens=455, read 1024, write 768
    attributes = {
        "ai.operationId": "ai.generateText.doGenerate", "ai.model.provider": "amazon-bedrock",
        "ai.model.id": "anthropic.claude-3-5-sonnet-20240620-v1:0",
        "ai.usage.inputTokens": 2247, "ai.usage.outputTokens": 75,
        "ai.usage.inputTokenDetails.noCacheTokens": 455,
        "ai.usage.inputTokenDetails.cacheReadTokens": 1024,
        "ai.usage.inputTokenDetails.cacheWriteTokens": 768,
        "ai.usage.cachedInputTokens": 1024,
        "ai.response.providerMetadata": json.dumps(
            {"bedrock": {"usage": {"cacheReadInputTokens": 1024,
                                   "cacheWriteInputTokens": 768}}})}
    span = normalized(attributes, scope="ai")
    assert (span.provider, span.input_tokens, span.cache_read_tokens,
            span.cache_write_tokens) == ("aws.bedrock", 2247, 1024, 768)
    # without the v6 breakdown the same metadata means a cache-exclusive input (older SDKs)
    older = {k: v for k, v in attributes.items() if "TokenDetails" not in k}
    span = normalized({**older, "ai.usage.inputTokens": 455}, scope="ai")
    assert (span.input_tokens, span.cache_read_tokens, span.cache_write_tokens) == (
        2247, 1024, 768)


def test_ai_sdk_v6_detail_spellings(normalized: Norm) -> None:
    span = normalized({"ai.operationId": "ai.generateText.doGenerate",
                       "ai.model.provider": "openai.chat", "ai.model.id": "o4-mini",
                       "ai.usage.inputTokens": 100, "ai.usage.outputTokens": 40,
                       "ai.usage.inputTokenDetails.cacheReadTokens": 64,
                       "ai.usage.outputTokenDetails.reasoningTokens": 30}, scope="ai")
    assert (span.input_tokens, span.cache_read_tokens, span.reasoning_tokens) == (100, 64, 30)
