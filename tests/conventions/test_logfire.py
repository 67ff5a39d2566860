from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from mentatlab.model.span import CanonicalSpan, Operation

Fields = Callable[..., dict[str, Any]]
Norm = Callable[..., CanonicalSpan]


def test_cache_only_in_raw_usage(normalized: Norm) -> None:
    span = normalized({"gen_ai.usage.input_tokens": 15, "gen_ai.usage.output_tokens": 5,
                       "gen_ai.usage.raw": json.dumps({
                           "input_tokens": 10, "output_tokens": 5,
                           "cache_read_input_tokens": 3, "cache_creation_input_tokens": 2})})
    assert (span.input_tokens, span.cache_read_tokens, span.cache_write_tokens) == (15, 3, 2)


def test_anthropic_raw_input_is_rebuilt_inclusive(normalized: Norm) -> None:
    span = normalized({"gen_ai.usage.raw": json.dumps({
        "input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 3,
        "cache_creation_input_tokens": 2})})
    assert (span.input_tokens, span.output_tokens) == (15, 5)


def test_openai_raw_usage(normalized: Norm) -> None:
    span = normalized({"gen_ai.usage.raw": json.dumps({
        "prompt_tokens": 13, "completion_tokens": 1003, "total_tokens": 1016,
        "prompt_tokens_details": {"cached_tokens": 5},
        "completion_tokens_details": {"reasoning_tokens": 900}})})
    assert (span.input_tokens, span.output_tokens, span.total_tokens, span.cache_read_tokens,
            span.reasoning_tokens) == (13, 1003, 1016, 5, 900)


def test_pydantic_ai_agent_run(normalized: Norm) -> None:
    span = normalized({"model_name": "gpt-4o", "agent_name": "roulette_agent",
                       "gen_ai.usage.input_tokens": "174", "gen_ai.usage.output_tokens": "31"},
                      name="roulette_agent run")
    assert (span.operation, span.request_model, span.agent_id, span.input_tokens,
            span.output_tokens, span.usage_is_rollup) == (
        Operation.AGENT, "gpt-4o", "roulette_agent", 174, 31, True)


def test_running_tool_message_and_request_data(normalized: Norm) -> None:
    tool = normalized({"logfire.msg": "running tool: roulette_wheel"})
    assert (tool.operation, tool.tool_name) == (Operation.TOOL, "roulette_wheel")
    chat = normalized({"gen_ai.operation.name": "chat",
                       "request_data": '{"model": "gpt-4", "stream": true}'})
    assert (chat.request_model, chat.is_streaming) == ("gpt-4", True)
