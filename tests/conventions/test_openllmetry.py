from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mentatlab.model.span import CanonicalSpan, Operation

Fields = Callable[..., dict[str, Any]]
Norm = Callable[..., CanonicalSpan]


def test_old_openllmetry_span(fields: Fields) -> None:
    got = fields({
        "llm.request.type": "chat", "gen_ai.system": "OpenAI",
        "gen_ai.request.model": "gpt-3.5-turbo", "gen_ai.response.model": "gpt-3.5-turbo-0125",
        "llm.usage.total_tokens": 187, "gen_ai.usage.completion_tokens": 173,
        "gen_ai.usage.prompt_tokens": 14, "llm.is_streaming": False,
        "gen_ai.usage.cache_read_input_tokens": 4,
        "gen_ai.usage.cache_creation_input_tokens": 2, "llm.usage.reasoning_tokens": 7,
    })
    assert got == {
        "operation_name": "chat", "provider": "openai", "request_model": "gpt-3.5-turbo",
        "response_model": "gpt-3.5-turbo-0125", "total_tokens": 187, "output_tokens": 173,
        "input_tokens": 14, "is_streaming": False, "cache_read_tokens": 4,
        "cache_write_tokens": 2, "reasoning_tokens": 7,
    }


def test_traceloop_span_kinds(normalized: Norm) -> None:
    tool = normalized({"traceloop.span.kind": "tool", "gen_ai.tool.name": "get_weather"},
                      name="get_weather.tool")
    assert (tool.operation, tool.tool_name) == (Operation.TOOL, "get_weather")
    agent = normalized({"traceloop.span.kind": "agent", "gen_ai.agent.name": "WeatherAgent"})
    assert (agent.operation, agent.operation_name, agent.agent_id) == (
        Operation.AGENT, "invoke_agent", "WeatherAgent")
    task = normalized({"traceloop.span.kind": "task"})
    assert task.operation is Operation.OTHER


def test_association_properties(normalized: Norm) -> None:
    span = normalized({"traceloop.association.properties.user_id": "u1",
                       "traceloop.association.properties.session_id": "s1",
                       "traceloop.workflow.name": "triage"})
    assert (span.user_id, span.session_id, span.workflow_id) == ("u1", "s1", "triage")
