from __future__ import annotations

import json
from collections.abc import Callable

from mentatlab.model.span import CanonicalSpan, Operation

Norm = Callable[..., CanonicalSpan]


def test_genkit_model_action(normalized: Norm) -> None:
    output = {"usage": {"inputTokens": 1618, "outputTokens": 337, "thoughtsTokens": 320,
                        "totalTokens": 1955}}
    span = normalized({"genkit:type": "action", "genkit:name": "openai/gpt-5-mini",
                       "genkit:metadata:subtype": "model", "genkit:output": json.dumps(output)},
                      scope="genkit-tracer")
    assert (span.operation, span.request_model, span.provider, span.input_tokens,
            span.output_tokens, span.reasoning_tokens, span.total_tokens) == (
        Operation.CHAT, "openai/gpt-5-mini", "openai", 1618, 337, 320, 1955)


def test_genkit_name_is_not_a_model_for_other_subtypes(normalized: Norm) -> None:
    span = normalized({"genkit:type": "action", "genkit:name": "myFlowStep"})
    assert span.request_model == ""
    tool = normalized({"genkit:name": "lookup", "genkit:metadata:subtype": "tool"})
    assert (tool.operation, tool.tool_name) == (Operation.TOOL, "lookup")


def test_google_adk_llm_response(normalized: Norm) -> None:
    response = {"model_version": "gemini-2.5-flash", "usage_metadata": {
        "prompt_token_count": 100, "candidates_token_count": 35, "thoughts_token_count": 25,
        "cached_content_token_count": 10, "total_token_count": 160}}
    span = normalized({"gen_ai.system": "gcp.vertex.agent",
                       "gcp.vertex.agent.llm_request": '{"model": "gemini-2.5-flash"}',
                       "gcp.vertex.agent.llm_response": json.dumps(response)},
                      scope="gcp.vertex.agent")
    assert (span.provider, span.request_model, span.response_model, span.input_tokens,
            span.output_tokens, span.reasoning_tokens, span.cache_read_tokens) == (
        "", "gemini-2.5-flash", "gemini-2.5-flash", 100, 60, 25, 10)


def test_empty_adk_blobs_yield_nothing(normalized: Norm) -> None:
    span = normalized({"gcp.vertex.agent.llm_request": "{}",
                       "gcp.vertex.agent.llm_response": "{}"})
    assert (span.request_model, span.input_tokens) == ("", None)


def test_livekit_function_tool_needs_the_scope(normalized: Norm) -> None:
    assert normalized(name="function_tool", scope="livekit-agents").operation is Operation.TOOL
    assert normalized(name="function_tool", scope="other").operation is Operation.OTHER


def test_strands_input_is_made_inclusive(normalized: Norm) -> None:
    attrs = {"gen_ai.request.model": "us.anthropic.claude-sonnet-4-20250514-v1:0",
             "gen_ai.usage.input_tokens": 4299, "gen_ai.usage.output_tokens": 631,
             "gen_ai.usage.cache_read_input_tokens": 35574,
             "gen_ai.usage.cache_write_input_tokens": 17787, "gen_ai.system": "strands-agents"}
    span = normalized(attrs, name="chat")
    assert (span.input_tokens, span.cache_read_tokens, span.cache_write_tokens, span.provider,
            span.operation_name) == (57660, 35574, 17787, "aws.bedrock", "chat")
    by_scope = normalized({k: v for k, v in attrs.items() if k != "gen_ai.system"},
                          scope="strands.telemetry.tracer")
    assert by_scope.input_tokens == 57660


def test_flat_cache_keys_elsewhere_are_inclusive(normalized: Norm) -> None:
    span = normalized({"gen_ai.usage.input_tokens": 100,
                       "gen_ai.usage.cache_read_input_tokens": 20}, scope="litellm")
    assert span.input_tokens == 100


def test_span_names(normalized: Norm) -> None:
    assert normalized(name="chat gpt-4").operation_name == "chat"
    assert normalized(name="execute_tool calculator").operation_name == "execute_tool"
    assert normalized(name="openai.chat").operation_name == "chat"
    assert normalized(name="chat_completion").operation_name == "chat"
    assert normalized(name="openai.chat.completions").operation_name == ""
    assert normalized(name="chatty process").operation_name == ""
