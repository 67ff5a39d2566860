"""Other producers: Genkit, Google ADK, LiveKit, Strands, OpenLIT, and the span name.

* Firebase Genkit: ``genkit:name`` is the (provider-prefixed) model when
  ``genkit:metadata:subtype`` is ``model``; usage lives in the JSON ``genkit:output``
  (``outputTokens`` includes ``thoughtsTokens``).
* Google ADK (scope ``gcp.vertex.agent``): ``gen_ai.system = gcp.vertex.agent`` is the
  framework; the model response JSON ``gcp.vertex.agent.llm_response`` carries
  ``usage_metadata`` (Gemini: candidates + thoughts = output).
* LiveKit Agents (scope ``livekit-agents``): tool spans are named ``function_tool``.
* Strands Agents (scope ``strands.telemetry.tracer``): ``gen_ai.usage.input_tokens`` is
  cache-EXCLUSIVE; flat ``cache_read_input_tokens``/``cache_write_input_tokens`` are added.
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

__all__ = ["CONVENTION", "SPAN_NAME_OPERATIONS"]

SPAN_NAME_OPERATIONS: dict[str, str] = {
    "chat_completion": "chat",
    "text_completion": "text_completion",
    "chatcompletion": "chat",
}
"""Whole span names (lower-cased) → operation name, besides the semconv pattern."""

_STRANDS_SCOPE = "strands.telemetry.tracer"


def _genkit_model(value: Any, span: RawSpan) -> tuple[tuple[str, Any], ...] | None:
    subtype = span.attributes.get("genkit:metadata:subtype")
    if subtype == "model" and isinstance(value, str) and value:
        return (("request_model", value), ("operation_name", "chat"))
    if subtype == "tool" and isinstance(value, str) and value:
        return (("tool_name", value), ("operation_name", "execute_tool"))
    return None


def _strands_exclusive(span: RawSpan) -> tuple[tuple[str, Any], ...] | None:
    attrs = span.attributes
    extra = 0
    found = False
    for key in ("gen_ai.usage.cache_read_input_tokens", "gen_ai.usage.cache_write_input_tokens"):
        value = attrs.get(key)
        if value is not None:
            extra += as_tokens(value)
            found = True
    return (("input_cache_excluded_tokens", extra),) if found else None


def _strands_by_scope(value: Any, span: RawSpan) -> tuple[tuple[str, Any], ...] | None:
    return _strands_exclusive(span) if value == _STRANDS_SCOPE else None


def _strands_by_system(value: Any, span: RawSpan) -> tuple[tuple[str, Any], ...] | None:
    return _strands_exclusive(span) if value == "strands-agents" else None


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
    source="Genkit, Google ADK, LiveKit Agents, Strands Agents, OpenLIT, span names",
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
        computed("@scope", ("input_cache_excluded_tokens",), _strands_by_scope,
                 "strands.telemetry.tracer: input is cache-exclusive"),
        computed("gen_ai.system", ("input_cache_excluded_tokens",), _strands_by_system,
                 "strands-agents: input is cache-exclusive"),
        computed("gen_ai.provider.name", ("input_cache_excluded_tokens",), _strands_by_system,
                 "strands-agents: input is cache-exclusive"),
        attr("gen_ai.request.is_stream", "is_streaming", "OpenLIT"),
        computed("@name", ("operation_name",), _span_name,
                 "'chat gpt-4', 'execute_tool x', 'openai.chat', 'chat_completion'"),
    ),
)
