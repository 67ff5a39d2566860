"""Pydantic Logfire and Pydantic AI: raw usage JSON, ``request_data``, agent and tool spans.

Logfire emits OTel GenAI attributes plus the provider's raw usage as the JSON string
``gen_ai.usage.raw`` (the only place its cache counters appear): Anthropic's raw
``input_tokens`` EXCLUDES cache, so the raw input is rebuilt as input + cache read + cache
creation; OpenAI's raw ``prompt_tokens`` (chat) and ``input_tokens`` (Responses API)
already include the cached tokens, and Responses' reasoning count sits in
``output_tokens_details.reasoning_tokens``. Pydantic AI reports provider details as
``gen_ai.usage.details.<name>`` (``reasoning_tokens`` among them). Pydantic AI
puts the model of an agent run in ``model_name`` and marks agent runs with
``agent_name``; their usage sums the run's model calls (a roll-up).
Source: https://github.com/pydantic/logfire, https://github.com/pydantic/pydantic-ai
"""

from __future__ import annotations

from typing import Any

from mentatlab.conventions.base import Convention, attr, computed, json_blob
from mentatlab.model.raw import RawSpan

__all__ = ["CONVENTION"]


def _agent_run(value: Any, span: RawSpan) -> tuple[tuple[str, Any], ...] | None:
    return (("operation_name", "invoke_agent"),) if isinstance(value, str) and value else None


def _running_tool(value: Any, span: RawSpan) -> tuple[tuple[str, Any], ...] | None:
    if isinstance(value, str) and value.startswith("running tool: "):
        return (("operation_name", "execute_tool"), ("tool_name", value[14:].strip()))
    return None


CONVENTION = Convention(
    name="logfire",
    source="pydantic/logfire instrumentation + pydantic-ai spans",
    rules=(
        attr("model_name", "request_model", "Pydantic AI agent run span"),
        json_blob("request_data", {"request_model": ("model",), "is_streaming": ("stream",)}),
        json_blob(
            "gen_ai.usage.raw",
            {
                "input_tokens": ("prompt_tokens",),
                "output_tokens": ("output_tokens", "completion_tokens"),
                "total_tokens": ("total_tokens",),
                "cache_read_tokens": ("cache_read_input_tokens",
                                      "prompt_tokens_details.cached_tokens",
                                      "input_tokens_details.cached_tokens"),
                "cache_write_tokens": ("cache_creation_input_tokens",),
                "reasoning_tokens": ("completion_tokens_details.reasoning_tokens",
                                     "output_tokens_details.reasoning_tokens"),
            },
            "Anthropic raw input is cache-exclusive: rebuilt inclusive",
            sums={"input_tokens": ("input_tokens", "cache_read_input_tokens",
                                   "cache_creation_input_tokens")},
        ),
        attr("gen_ai.usage.details.reasoning_tokens", "reasoning_tokens",
             "Pydantic AI: provider usage details (OpenAI reasoning)"),
        computed("agent_name", ("operation_name",), _agent_run, "Pydantic AI agent run"),
        attr("agent_name", "agent_id"),
        computed("logfire.msg", ("operation_name", "tool_name"), _running_tool,
                 "'running tool: X'"),
    ),
)
