"""Helpers that record MentatLab's standard attributes on the current span.

Each writes ``mentat.<canonical field>`` (docs/decisions/0001-contracts.md), the
highest-precedence convention at ingest. They act on the current span (the innermost
``@traced`` or ``span()``, or an instrumentation's span) and do nothing when there is
none. Agent, workflow, run, session, user, customer and prompt version set here are also
carried by every span started later under that span (:mod:`mentatlab.sdk.attribution`);
switching a span to another agent or workflow drops the version it inherited. Token
counts follow the canonical meaning (``mentatlab.model.span``): input *includes* cache
reads and writes, output *includes* reasoning.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.util.types import AttributeValue

from mentatlab.sdk._safety import handle_internal_errors
from mentatlab.sdk.attribution import drop_stale_group_members

__all__ = [
    "record_tokens",
    "set_agent",
    "set_attributes",
    "set_model",
    "set_prompt_version",
    "set_tool",
    "set_workflow",
]


def set_attributes(**fields: AttributeValue | None) -> None:
    """Record canonical fields on the current span as ``mentat.<field>``; skip None values.

    ``set_attributes(step="plan", attempt=2, is_retry=True)``.
    """
    with handle_internal_errors():
        current = trace.get_current_span()
        if current.is_recording():
            attributes = {f"mentat.{key}": value for key, value in fields.items()
                          if value is not None}
            drop_stale_group_members(current, attributes)
            current.set_attributes(attributes)


def record_tokens(
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    *,
    cache_read_tokens: int | None = None,
    cache_write_tokens: int | None = None,
    reasoning_tokens: int | None = None,
    total_tokens: int | None = None,
) -> None:
    """Record token usage of a model call on the current span, in tokens.

    Args:
        input_tokens: prompt tokens, inclusive of cache reads and writes.
        output_tokens: completion tokens, inclusive of reasoning.
        cache_read_tokens: prompt tokens served from the provider's cache.
        cache_write_tokens: prompt tokens written to the provider's cache.
        reasoning_tokens: reasoning tokens (part of ``output_tokens``).
        total_tokens: total, when the provider reports one.
    """
    set_attributes(input_tokens=input_tokens, output_tokens=output_tokens,
                   cache_read_tokens=cache_read_tokens, cache_write_tokens=cache_write_tokens,
                   reasoning_tokens=reasoning_tokens, total_tokens=total_tokens)


def set_model(request_model: str, *, provider: str | None = None,
              response_model: str | None = None, operation: str | None = "chat") -> None:
    """Record the model of a call (``mentat.request_model``, ``mentat.provider``, ...).

    Args:
        request_model: model name as requested, e.g. ``gpt-4o-mini``.
        provider: provider id as genai-prices names it, e.g. ``openai``, ``anthropic``.
        response_model: model name the provider answered with, when it differs.
        operation: canonical operation (``chat``, ``completion``, ``embeddings``); None
            leaves it unset.
    """
    set_attributes(request_model=request_model, provider=provider,
                   response_model=response_model, operation=operation)


def set_tool(tool_name: str) -> None:
    """Mark the current span as a tool call (``mentat.tool_name``, operation ``tool``)."""
    set_attributes(tool_name=tool_name, operation="tool")


def set_agent(agent_id: str, *, version: str | None = None, runtime: str | None = None) -> None:
    """Record the agent running the current span (``mentat.agent_id``, ...).

    Spans started later under the current span inherit ``agent_id`` and ``version``
    (not ``runtime``) unless they set their own agent.
    """
    set_attributes(agent_id=agent_id, agent_version=version, runtime=runtime)


def set_workflow(workflow_id: str, *, version: str | None = None, step: str | None = None) -> None:
    """Record the workflow, its version and the step of the current span.

    Spans started later under the current span inherit ``workflow_id`` and ``version``
    (not ``step``) unless they set their own workflow.
    """
    set_attributes(workflow_id=workflow_id, workflow_version=version, step=step)


def set_prompt_version(prompt_version: str) -> None:
    """Record the prompt version used by the current span (``mentat.prompt_version``)."""
    set_attributes(prompt_version=prompt_version)
