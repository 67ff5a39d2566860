from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from mentatlab.model.span import CanonicalSpan, Operation, SpanStatus

Norm = Callable[..., CanonicalSpan]


def test_generation(normalized: Norm) -> None:
    span = normalized({
        "langfuse.observation.type": "generation", "langfuse.observation.level": "WARNING",
        "langfuse.observation.model.name": "gpt-4o",
        "langfuse.observation.usage_details": '{"input_tokens": 123, "output_tokens": 456}',
        "langfuse.observation.prompt.version": 3, "user.id": "my-user",
        "session.id": "my-session",
    })
    assert (span.operation, span.request_model, span.input_tokens, span.output_tokens,
            span.status, span.prompt_version, span.user_id, span.session_id) == (
        Operation.CHAT, "gpt-4o", 123, 456, SpanStatus.OK, "3", "my-user", "my-session")


def test_level_error_is_an_error(normalized: Norm) -> None:
    assert normalized({"langfuse.observation.level": "ERROR"}).status is SpanStatus.ERROR


def test_uncached_input_bucket_gets_cache_added_back(normalized: Norm) -> None:
    usage: dict[str, Any] = {"input": 5000, "output": 200, "input_cached_tokens": 40000,
                             "input_cache_creation": 5000}
    span = normalized({"langfuse.observation.usage_details": json.dumps(usage)})
    assert (span.input_tokens, span.output_tokens, span.cache_read_tokens,
            span.cache_write_tokens) == (50000, 200, 40000, 5000)


def test_langfuse_cache_key_names(normalized: Norm) -> None:
    span = normalized({"gen_ai.usage.input_tokens": 50000,
                       "gen_ai.usage.input_cached_tokens": 40000,
                       "gen_ai.usage.input_cache_creation": 5000})
    assert (span.input_tokens, span.cache_read_tokens, span.cache_write_tokens) == (
        50000, 40000, 5000)


def test_observation_type_outranks_genai_operation(normalized: Norm) -> None:
    span = normalized({"langfuse.observation.type": "tool", "gen_ai.operation.name": "chat"})
    assert span.operation is Operation.TOOL
