"""OpenLLMetry / Traceloop: ``llm.*`` usage, ``traceloop.*``, and its older ``gen_ai`` spellings.

Before ``opentelemetry-semantic-conventions-ai`` 0.5.0: ``llm.usage.total_tokens``,
``llm.is_streaming``, ``llm.usage.reasoning_tokens``, flat cache keys
``gen_ai.usage.cache_read_input_tokens`` / ``cache_creation_input_tokens``,
``llm.request.type``, capitalised ``gen_ai.system`` (``"OpenAI"``). The flat cache keys
come after the dotted OTel names (genai convention), so a dotted ``0`` shadows a flat value.
Source: https://github.com/traceloop/openllmetry (semconv-ai)
"""

from __future__ import annotations

from mentatlab.conventions.base import Convention, attr, mapped

__all__ = ["CONVENTION"]

_REQUEST_TYPE = {"chat": "chat", "completion": "text_completion", "embedding": "embeddings",
                 "rerank": "retrieval"}
_SPAN_KIND = {"agent": "invoke_agent", "tool": "execute_tool", "workflow": "invoke_workflow"}

CONVENTION = Convention(
    name="openllmetry",
    source="traceloop/openllmetry (opentelemetry-semantic-conventions-ai <0.5 and >=0.5)",
    rules=(
        mapped("llm.request.type", "operation_name", _REQUEST_TYPE),
        mapped("traceloop.span.kind", "operation_name", _SPAN_KIND, "task: none"),
        attr("llm.usage.total_tokens", "total_tokens"),
        attr("gen_ai.usage.cache_read_input_tokens", "cache_read_tokens", "flat (also LiteLLM)"),
        attr("gen_ai.usage.cache_creation_input_tokens", "cache_write_tokens", "flat"),
        attr("gen_ai.usage.reasoning_tokens", "reasoning_tokens", "semconv-ai >= 0.5"),
        attr("llm.usage.reasoning_tokens", "reasoning_tokens", "semconv-ai < 0.5"),
        attr("llm.is_streaming", "is_streaming"),
        attr("gen_ai.is_streaming", "is_streaming"),
        attr("traceloop.workflow.name", "workflow_id"),
        attr("traceloop.entity.name", "step"),
        attr("traceloop.association.properties.user_id", "user_id"),
        attr("traceloop.association.properties.session_id", "session_id"),
        attr("traceloop.prompt.version", "prompt_version"),
    ),
)
