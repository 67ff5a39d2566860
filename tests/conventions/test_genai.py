from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mentatlab.model.span import CanonicalSpan, Operation

Fields = Callable[..., dict[str, Any]]
Norm = Callable[..., CanonicalSpan]


def test_new_names(fields: Fields) -> None:
    got = fields({
        "gen_ai.provider.name": "openai", "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4", "gen_ai.response.model": "gpt-4-0613",
        "gen_ai.usage.input_tokens": 52, "gen_ai.usage.output_tokens": 47,
        "gen_ai.usage.cache_read.input_tokens": 16,
        "gen_ai.usage.cache_write.input_tokens": 8,
        "gen_ai.usage.reasoning.output_tokens": 27,
    })
    assert got == {
        "provider": "openai", "operation_name": "chat", "request_model": "gpt-4",
        "response_model": "gpt-4-0613", "input_tokens": 52, "output_tokens": 47,
        "cache_read_tokens": 16, "cache_write_tokens": 8, "reasoning_tokens": 27,
    }


def test_old_names_and_legacy_system(fields: Fields) -> None:
    got = fields({"gen_ai.system": "OpenAI", "gen_ai.usage.prompt_tokens": 14,
                  "gen_ai.usage.completion_tokens": 173,
                  "gen_ai.usage.cache_creation.input_tokens": 3})
    assert got["provider"] == "openai"
    assert (got["input_tokens"], got["output_tokens"], got["cache_write_tokens"]) == (14, 173, 3)


def test_new_name_wins_over_old(fields: Fields) -> None:
    got = fields({"gen_ai.usage.prompt_tokens": 1, "gen_ai.usage.input_tokens": 2,
                  "gen_ai.system": "az.ai.openai", "gen_ai.provider.name": "azure.ai.openai"})
    assert got["input_tokens"] == 2
    assert got["provider"] == "azure.ai.openai"


@pytest.mark.parametrize(("raw", "canonical"), [
    ("vertex_ai", "gcp.vertex_ai"), ("gemini", "gcp.gemini"), ("az.ai.openai", "azure.ai.openai"),
    ("mistralai", "mistral_ai"), ("Anthropic", "anthropic"), ("aws.bedrock", "aws.bedrock"),
    ("ollama", "ollama"),
])
def test_provider_spellings(fields: Fields, raw: str, canonical: str) -> None:
    assert fields({"gen_ai.system": raw})["provider"] == canonical


@pytest.mark.parametrize("framework", ["strands-agents", "gcp.vertex.agent", "langchain"])
def test_framework_is_not_a_provider(fields: Fields, framework: str) -> None:
    assert "provider" not in fields({"gen_ai.provider.name": framework})


def test_dotted_zero_shadows_flat_cache_key(fields: Fields) -> None:
    got = fields({"gen_ai.usage.cache_read.input_tokens": 0,
                  "gen_ai.usage.cache_read_input_tokens": 20})
    assert got["cache_read_tokens"] == 0


def test_tool_name_without_operation_means_execute_tool(normalized: Norm) -> None:
    span = normalized({"gen_ai.tool.name": "roulette_wheel"})
    assert (span.operation, span.operation_name, span.tool_name) == (
        Operation.TOOL, "execute_tool", "roulette_wheel")


def test_tool_name_dropped_on_a_chat_span(normalized: Norm) -> None:
    span = normalized({"gen_ai.operation.name": "chat", "gen_ai.tool.name": "search"})
    assert span.operation is Operation.CHAT
    assert span.tool_name == ""


def test_agent_and_conversation(normalized: Norm) -> None:
    span = normalized({"gen_ai.agent.name": "Full Agent", "gen_ai.agent.id": "agent-123",
                       "gen_ai.agent.version": "1.0.0", "gen_ai.conversation.id": "conv-456"})
    assert (span.agent_id, span.agent_version, span.session_id) == (
        "agent-123", "1.0.0", "conv-456")


def test_invoke_agent_internal_is_rollup_but_client_is_not(normalized: Norm) -> None:
    attrs = {"gen_ai.operation.name": "invoke_agent", "gen_ai.usage.input_tokens": 100}
    assert normalized(attrs, kind="internal").usage_is_rollup is True
    assert normalized(attrs, kind="client").usage_is_rollup is False
    assert normalized({"gen_ai.operation.name": "chat"}).usage_is_rollup is False
