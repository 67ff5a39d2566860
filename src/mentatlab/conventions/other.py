"""Other producers: Genkit, Google ADK, LiveKit, Strands, OpenLIT, and the span name.

* Firebase Genkit: ``genkit:name`` is the (provider-prefixed) model when
  ``genkit:metadata:subtype`` is ``model``; usage lives in the JSON ``genkit:output``
  (``outputTokens`` includes ``thoughtsTokens``).
* Google ADK (scope ``gcp.vertex.agent``): ``gen_ai.system = gcp.vertex.agent`` is the
  framework; the model response JSON ``gcp.vertex.agent.llm_response`` carries
  ``usage_metadata`` (Gemini: candidates + thoughts = output).
* LiveKit Agents (scope ``livekit-agents``): tool spans are named ``function_tool``.
* Cache-EXCLUSIVE input by instrumentation scope (:data:`CACHE_EXCLUSIVE_SCOPES`): these
  producers put the provider's cache-exclusive input count (Anthropic ``input_tokens``,
  Bedrock ``inputTokens``) into ``gen_ai.usage.input_tokens`` and the cache counts into
  separate attributes; the cache read and write counts are added back. Strands Agents is
  also recognised by ``gen_ai.system``/``gen_ai.provider.name`` = ``strands-agents``.
* OpenLIT: ``gen_ai.request.is_stream``.
* Span names: ``"<gen_ai operation> <target>"`` (semconv span naming),
  ``"<vendor>.chat"`` (OpenLLMetry), ``chat_completion`` (Semantic Kernel).
"""

from __future__ import annotations

from typing import Any

from mentatlab.conventions.base import (
    Convention,
    as_tokens,
    attr,
    computed,
    json_blob,
    mapped,
)
from mentatlab.conventions.genai import GENAI_OPERATIONS
from mentatlab.model.raw import RawSpan

__all__ = ["CACHE_EXCLUSIVE_SCOPES", "CONVENTION", "SPAN_NAME_OPERATIONS"]

SPAN_NAME_OPERATIONS: dict[str, str] = {
    "chat_completion": "chat",
    "text_completion": "text_completion",
    "chatcompletion": "chat",
}
"""Whole span names (lower-cased) → operation name, besides the semconv pattern."""

CACHE_EXCLUSIVE_SCOPES: dict[str, str] = {
    "strands.telemetry.tracer":
        "Strands Agents: input from Bedrock/Anthropic usage, cache counts flat",
    "openlit.instrumentation.anthropic":
        "OpenLIT (openlit 1.45): gen_ai.usage.input_tokens = Anthropic usage.input_tokens",
    "openlit.instrumentation.bedrock":
        "OpenLIT (openlit 1.45): gen_ai.usage.input_tokens = Converse usage.inputTokens",
    "opentelemetry.instrumentation.bedrock":
        "OpenLLMetry (opentelemetry-instrumentation-bedrock 0.62): Converse inputTokens, "
        "InvokeModel Anthropic usage.input_tokens",
    "@traceloop/instrumentation-anthropic":
        "OpenLLMetry-JS (@traceloop/instrumentation-anthropic 0.27): usage.input_tokens",
}
"""Instrumentation scope → why its ``gen_ai.usage.input_tokens`` EXCLUDES the cache.

Verified by the real-client matrix (``tests/matrix``) against the versions named; the
same producers' OpenAI spans are inclusive (OpenAI's ``prompt_tokens`` already is)."""

_CACHE_READ_KEYS = ("gen_ai.usage.cache_read.input_tokens",
                    "gen_ai.usage.cache_read_input_tokens")
_CACHE_WRITE_KEYS = ("gen_ai.usage.cache_write.input_tokens",
                     "gen_ai.usage.cache_creation.input_tokens",
                     "gen_ai.usage.cache_write_input_tokens",
                     "gen_ai.usage.cache_creation_input_tokens")
"""Where a cache-exclusive producer puts its cache counts; the first key present wins."""


def _genkit_model(value: Any, span: RawSpan) -> tuple[tuple[str, Any], ...] | None:
    subtype = span.attributes.get("genkit:metadata:subtype")
    if subtype == "model" and isinstance(value, str) and value:
        return (("request_model", value), ("operation_name", "chat"))
    if subtype == "tool" and isinstance(value, str) and value:
        return (("tool_name", value), ("operation_name", "execute_tool"))
    return None


def _cache_excluded(span: RawSpan) -> tuple[tuple[str, Any], ...] | None:
    """The cache read + write counts a cache-exclusive input left out (tokens), if any."""
    attrs = span.attributes
    extra = 0
    found = False
    for keys in (_CACHE_READ_KEYS, _CACHE_WRITE_KEYS):
        for key in keys:
            value = attrs.get(key)
            if value is not None:
                extra += as_tokens(value)
                found = True
                break
    return (("input_cache_excluded_tokens", extra),) if found else None


def _exclusive_by_scope(value: Any, span: RawSpan) -> tuple[tuple[str, Any], ...] | None:
    return _cache_excluded(span) if value in CACHE_EXCLUSIVE_SCOPES else None


def _strands_by_system(value: Any, span: RawSpan) -> tuple[tuple[str, Any], ...] | None:
    return _cache_excluded(span) if value == "strands-agents" else None


def _livekit_tool(value: Any, span: RawSpan) -> tuple[tuple[str, Any], ...] | None:
    if value == "livekit-agents" and span.name == "function_tool":
        return (("operation_name", "execute_tool"),)
    return None


def _span_name(value: Any, span: RawSpan) -> tuple[tuple[str, Any], ...] | None:
    if not isinstance(value, str) or not value:
        return None
    lowered = value.lower()
    head = lowered.split(" ", 1)[0]
    if head in GENAI_OPERATIONS:
        return (("operation_name", head),)
    hit = SPAN_NAME_OPERATIONS.get(lowered)
    if hit is not None:
        return (("operation_name", hit),)
    if lowered.endswith(".chat") and " " not in lowered:
        return (("operation_name", "chat"),)
    return None


CONVENTION = Convention(
    name="other",
    source="Genkit, Google ADK, LiveKit, Strands, cache-exclusive scopes, OpenLIT, span names",
    rules=(
        computed("genkit:name", ("request_model", "tool_name", "operation_name"), _genkit_model,
                 "model when genkit:metadata:subtype=model, tool when =tool"),
        json_blob("genkit:output", {
            "input_tokens": ("usage.inputTokens",),
            "output_tokens": ("usage.outputTokens",),
            "total_tokens": ("usage.totalTokens",),
            "reasoning_tokens": ("usage.thoughtsTokens",),
            "cache_read_tokens": ("usage.cachedContentTokens",),
        }, "outputTokens includes thoughtsTokens"),
        mapped("genkit:type", "operation_name", {"flow": "invoke_workflow"}),
        json_blob("gcp.vertex.agent.llm_request", {"request_model": ("model",)}),
        json_blob("gcp.vertex.agent.llm_response", {
            "response_model": ("model_version",),
            "input_tokens": ("usage_metadata.prompt_token_count",),
            "total_tokens": ("usage_metadata.total_token_count",),
            "cache_read_tokens": ("usage_metadata.cached_content_token_count",),
            "reasoning_tokens": ("usage_metadata.thoughts_token_count",),
        }, "Gemini usage_metadata", sums={"output_tokens": (
            "usage_metadata.candidates_token_count", "usage_metadata.thoughts_token_count")}),
        attr("gcp.vertex.agent.session_id", "session_id"),
        attr("gcp.vertex.agent.invocation_id", "run_id"),
        computed("@scope", ("operation_name",), _livekit_tool, "livekit-agents function_tool"),
        attr("lk.function_tool.name", "tool_name"),
        attr("gen_ai.usage.cache_write_input_tokens", "cache_write_tokens", "Strands (flat)"),
        computed("@scope", ("input_cache_excluded_tokens",), _exclusive_by_scope,
                 "CACHE_EXCLUSIVE_SCOPES (Strands, OpenLIT Anthropic/Bedrock, OpenLLMetry "
                 "Bedrock, OpenLLMetry-JS Anthropic): cache read + write added to input"),
        computed("gen_ai.system", ("input_cache_excluded_tokens",), _strands_by_system,
                 "strands-agents: input is cache-exclusive"),
        computed("gen_ai.provider.name", ("input_cache_excluded_tokens",), _strands_by_system,
                 "strands-agents: input is cache-exclusive"),
        attr("gen_ai.request.is_stream", "is_streaming", "OpenLIT"),
        computed("@name", ("operation_name",), _span_name,
                 "'chat gpt-4', 'execute_tool x', 'openai.chat', 'chat_completion'"),
    ),
)
