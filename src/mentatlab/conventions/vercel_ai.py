"""Vercel AI SDK (``ai`` scope, v3-v6): ``ai.*`` attributes and ``ai.response.providerMetadata``.

Operation comes from ``ai.operationId`` (also the first word of ``operation.name``): the
inner ``doGenerate``/``doStream``/``doEmbed`` spans are the model calls; the outer
``ai.generateText``/``ai.streamText``... spans sum their steps (a roll-up). Cache
counters hide in the JSON ``ai.response.providerMetadata``: Anthropic's are nested under
``anthropic.usage``; Bedrock's input count is cache-EXCLUSIVE (Bedrock Converse: total =
input + output + cacheRead + cacheWrite), so its cache read/write are added back, unless
the span carries v6's ``ai.usage.inputTokenDetails.noCacheTokens`` (then
``ai.usage.inputTokens`` is already the total: AI SDK 6 with ``@ai-sdk/amazon-bedrock`` 4
reports 2247 = 455 uncached + 1024 read + 768 written). v6 also spells the details
``ai.usage.inputTokenDetails.cacheReadTokens``/``cacheWriteTokens`` and
``ai.usage.outputTokenDetails.reasoningTokens``.
AI SDK v7 emits plain OTel GenAI attributes instead (genai convention).
Source: https://ai-sdk.dev/docs/ai-sdk-core/telemetry
"""

from __future__ import annotations

from typing import Any

from mentatlab.conventions.base import Convention, attr, computed, json_blob, mapped
from mentatlab.conventions.provider import normalize_provider
from mentatlab.model.raw import RawSpan

__all__ = ["CONVENTION", "OPERATION_IDS"]

OPERATION_IDS: dict[str, str] = {
    "ai.generateText.doGenerate": "chat",
    "ai.streamText.doStream": "chat",
    "ai.generateObject.doGenerate": "chat",
    "ai.streamObject.doStream": "chat",
    "ai.embed.doEmbed": "embeddings",
    "ai.embedMany.doEmbed": "embeddings",
    "ai.toolCall": "execute_tool",
    "ai.generateText": "invoke_workflow",
    "ai.streamText": "invoke_workflow",
    "ai.generateObject": "invoke_workflow",
    "ai.streamObject": "invoke_workflow",
    "ai.embed": "invoke_workflow",
    "ai.embedMany": "invoke_workflow",
}
"""``ai.operationId`` → operation name; outer calls are roll-ups of their steps."""

_STREAMING = {"ai.streamText": True, "ai.streamText.doStream": True,
              "ai.streamObject": True, "ai.streamObject.doStream": True,
              "ai.generateText": False, "ai.generateText.doGenerate": False,
              "ai.generateObject": False, "ai.generateObject.doGenerate": False}


def _provider(value: Any, span: RawSpan) -> tuple[tuple[str, Any], ...] | None:
    provider = normalize_provider(value)
    return None if provider is None else (("provider", provider),)


def _metadata_provider(value: Any, span: RawSpan) -> tuple[tuple[str, Any], ...] | None:
    # The providerMetadata top-level key names the provider package that answered.
    if not isinstance(value, str) or not value.startswith("{"):
        return None
    if '"bedrock"' in value:
        return (("provider", "aws.bedrock"),)
    if '"anthropic"' in value:
        return (("provider", "anthropic"),)
    return None


_METADATA = json_blob(
    "ai.response.providerMetadata",
    {
        "cache_read_tokens": ("anthropic.usage.cache_read_input_tokens",
                              "anthropic.cacheReadInputTokens",
                              "bedrock.usage.cacheReadInputTokens",
                              "openai.cachedPromptTokens"),
        "cache_write_tokens": ("anthropic.usage.cache_creation_input_tokens",
                               "anthropic.cacheCreationInputTokens",
                               "bedrock.usage.cacheWriteInputTokens",
                               "bedrock.usage.cacheCreationInputTokens"),
        "reasoning_tokens": ("openai.reasoningTokens",),
    },
    "Anthropic usage nested",
)

_BEDROCK_EXCLUDED = json_blob(
    "ai.response.providerMetadata", {}, "",
    sums={"input_cache_excluded_tokens": ("bedrock.usage.cacheReadInputTokens",
                                          "bedrock.usage.cacheWriteInputTokens")},
)


def _bedrock_exclusive(value: Any, span: RawSpan) -> tuple[tuple[str, Any], ...] | None:
    # AI SDK 6+ reports the total input and its breakdown (noCacheTokens): nothing to add.
    if "ai.usage.inputTokenDetails.noCacheTokens" in span.attributes:
        return None
    return _BEDROCK_EXCLUDED.extract(value, span)


CONVENTION = Convention(
    name="vercel_ai",
    source="Vercel AI SDK telemetry (ai.* attributes, scope 'ai')",
    rules=(
        mapped("ai.operationId", "operation_name", OPERATION_IDS),
        mapped("operation.name", "operation_name", OPERATION_IDS,
               "'<operationId> <functionId>'", first_word=True),
        mapped("ai.operationId", "is_streaming", _STREAMING),
        attr("ai.model.id", "request_model"),
        attr("ai.response.model", "response_model"),
        computed("ai.model.provider", ("provider",), _provider, "'openai.chat' → openai"),
        attr("ai.usage.promptTokens", "input_tokens", "v3-v4"),
        attr("ai.usage.inputTokens", "input_tokens", "v5+"),
        attr("ai.usage.completionTokens", "output_tokens", "v3-v4"),
        attr("ai.usage.outputTokens", "output_tokens", "v5+"),
        attr("ai.usage.tokens", "total_tokens", "often a STRING"),
        attr("ai.usage.totalTokens", "total_tokens"),
        attr("ai.usage.cachedInputTokens", "cache_read_tokens", "often a STRING"),
        attr("ai.usage.inputTokenDetails.cacheReadTokens", "cache_read_tokens", "v6+"),
        attr("ai.usage.inputTokenDetails.cacheWriteTokens", "cache_write_tokens", "v6+"),
        attr("ai.usage.reasoningTokens", "reasoning_tokens"),
        attr("ai.usage.outputTokenDetails.reasoningTokens", "reasoning_tokens", "v6+"),
        _METADATA,
        computed("ai.response.providerMetadata", ("input_cache_excluded_tokens",),
                 _bedrock_exclusive, "Bedrock input cache-exclusive, unless v6 "
                 "ai.usage.inputTokenDetails.noCacheTokens says the input is the total"),
        computed("ai.response.providerMetadata", ("provider",), _metadata_provider,
                 "top-level key: anthropic, bedrock"),
        attr("ai.toolCall.name", "tool_name"),
        attr("ai.telemetry.functionId", "workflow_id"),
        attr("ai.telemetry.metadata.userId", "user_id"),
        attr("ai.telemetry.metadata.sessionId", "session_id"),
    ),
)
