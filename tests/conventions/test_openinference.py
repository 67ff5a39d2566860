from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mentatlab.model.span import CanonicalSpan, Operation

Fields = Callable[..., dict[str, Any]]
Norm = Callable[..., CanonicalSpan]


def test_llm_span(fields: Fields) -> None:
    got = fields({
        "openinference.span.kind": "LLM", "llm.system": "anthropic", "llm.provider": "anthropic",
        "llm.model_name": "claude-sonnet-4-6", "llm.token_count.prompt": 33,
        "llm.token_count.completion": 5, "llm.token_count.total": 38,
        "llm.token_count.prompt_details.cache_read": 9,
        "llm.token_count.prompt_details.cache_write": 2,
        "llm.token_count.completion_details.reasoning": 1,
        "llm.invocation_parameters": '{"max_tokens": 1024, "stream": true}',
    })
    assert got == {
        "operation_name": "chat", "provider": "anthropic", "request_model": "claude-sonnet-4-6",
        "input_tokens": 33, "output_tokens": 5, "total_tokens": 38, "cache_read_tokens": 9,
        "cache_write_tokens": 2, "reasoning_tokens": 1, "is_streaming": True,
    }


def test_host_provider_wins_over_api_family(fields: Fields) -> None:
    assert fields({"llm.system": "openai", "llm.provider": "azure"})["provider"] == (
        "azure.ai.openai")


def test_span_kind_outranks_genai_operation(normalized: Norm) -> None:
    span = normalized({"openinference.span.kind": "TOOL", "gen_ai.operation.name": "chat",
                       "gen_ai.request.model": "gpt-4"})
    assert (span.operation, span.operation_name, span.request_model) == (
        Operation.TOOL, "execute_tool", "gpt-4")


def test_embedding_model_and_tool(normalized: Norm) -> None:
    emb = normalized({"openinference.span.kind": "EMBEDDING",
                      "embedding.model_name": "text-embedding-3-small",
                      "llm.token_count.prompt": 2})
    assert (emb.operation, emb.request_model, emb.input_tokens, emb.output_tokens) == (
        Operation.EMBEDDINGS, "text-embedding-3-small", 2, None)
    tool = normalized({"openinference.span.kind": "TOOL", "tool.name": "bake_cake"})
    assert tool.tool_name == "bake_cake"


def test_chain_kind_is_not_an_operation(normalized: Norm) -> None:
    span = normalized({"openinference.span.kind": "CHAIN"})
    assert (span.operation, span.operation_name) == (Operation.OTHER, "")
