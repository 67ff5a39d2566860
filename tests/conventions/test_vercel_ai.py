from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from mentatlab.model.span import CanonicalSpan, Operation

Fields = Callable[..., dict[str, Any]]
Norm = Callable[..., CanonicalSpan]


def test_do_generate_span(normalized: Norm) -> None:
    span = normalized({
        "ai.operationId": "ai.streamText.doStream", "ai.model.id": "gpt-4o-mini",
        "ai.model.provider": "openai.chat", "ai.usage.promptTokens": 10,
        "ai.usage.completionTokens": "4", "ai.response.model": "gpt-4o-mini-2024-07-18",
    }, scope="ai")
    assert (span.operation, span.operation_name, span.provider, span.request_model,
            span.response_model, span.input_tokens, span.output_tokens, span.is_streaming) == (
        Operation.CHAT, "chat", "openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", 10, 4, True)
    assert span.usage_is_rollup is False


def test_outer_call_is_a_rollup(normalized: Norm) -> None:
    span = normalized({"ai.operationId": "ai.generateText", "ai.usage.promptTokens": 30})
    assert span.usage_is_rollup is True


def test_operation_name_first_word_and_tool(normalized: Norm) -> None:
    span = normalized({"operation.name": "ai.toolCall MyAgent.fn", "ai.toolCall.name": "myTool"})
    assert (span.operation, span.tool_name) == (Operation.TOOL, "myTool")
    emb = normalized({"operation.name": "ai.embed.doEmbed doc", "ai.model.id": "e-1"})
    assert emb.operation is Operation.EMBEDDINGS


def test_anthropic_provider_metadata(normalized: Norm) -> None:
    metadata = {"anthropic": {"usage": {"input_tokens": 7, "cache_creation_input_tokens": 2089,
                                        "cache_read_input_tokens": 16399}}}
    span = normalized({"gen_ai.usage.input_tokens": 18495, "gen_ai.usage.output_tokens": 445,
                       "ai.usage.cachedInputTokens": "16399",
                       "ai.response.providerMetadata": json.dumps(metadata)})
    assert (span.input_tokens, span.cache_read_tokens, span.cache_write_tokens,
            span.provider) == (18495, 16399, 2089, "anthropic")


def test_bedrock_input_is_made_inclusive(normalized: Norm) -> None:
    metadata = {"bedrock": {"usage": {"inputTokens": 5734, "cacheReadInputTokens": 4482,
                                      "cacheWriteInputTokens": 10}}}
    span = normalized({"gen_ai.usage.input_tokens": 5734,
                       "ai.response.providerMetadata": json.dumps(metadata)})
    assert (span.input_tokens, span.cache_read_tokens, span.cache_write_tokens,
            span.provider) == (5734 + 4482 + 10, 4482, 10, "aws.bedrock")


def test_malformed_metadata_is_ignored_not_rejected(normalized: Norm) -> None:
    span = normalized({"gen_ai.usage.input_tokens": 5,
                       "ai.response.providerMetadata": "{not json"})
    assert (span.input_tokens, span.cache_read_tokens) == (5, None)
