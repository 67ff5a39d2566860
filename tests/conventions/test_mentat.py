from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mentatlab.model.raw import RawSpan
from mentatlab.model.span import CanonicalSpan, Operation, SpanStatus
from mentatlab.pipeline.normalize import Normalize

Norm = Callable[..., CanonicalSpan]


def test_mentat_wins_over_every_convention(normalized: Norm) -> None:
    span = normalized({"mentat.input_tokens": 7, "gen_ai.usage.input_tokens": 9,
                       "llm.token_count.prompt": 11, "mentat.provider": "anthropic",
                       "gen_ai.provider.name": "openai", "mentat.request_model": "m1",
                       "gen_ai.request.model": "m2", "mentat.tool_name": "t",
                       "mentat.operation_name": "execute_tool"})
    assert (span.input_tokens, span.provider, span.request_model, span.tool_name,
            span.operation) == (7, "anthropic", "m1", "t", Operation.TOOL)


def test_identity_fields(normalized: Norm) -> None:
    names = ("org_id", "workspace_id", "project_id", "user_id", "customer_id", "department",
             "agent_id", "agent_version", "runtime", "workflow_id", "workflow_version",
             "flow_id", "run_id", "session_id", "step", "prompt_version")
    span = normalized({f"mentat.{n}": f"v-{n}" for n in names})
    assert all(getattr(span, n) == f"v-{n}" for n in names)


def test_retry_fallback_attempt(normalized: Norm) -> None:
    span = normalized({"mentat.attempt": 3, "mentat.is_fallback": "true"})
    assert (span.attempt, span.is_retry, span.is_fallback) == (3, True, True)


def test_resources_with_units(normalized: Norm) -> None:
    span = normalized({"mentat.resource.cpu_core_seconds": 1.5,
                       "mentat.resource.memory_gb_seconds": "0.25",
                       "mentat.resource.gpu_seconds": 2,
                       "mentat.resource.network_bytes_in": 1000,
                       "mentat.resource.network_bytes_out": "2048",
                       "mentat.resource.storage_bytes": 4096.0})
    assert (span.cpu_core_seconds, span.memory_gb_seconds, span.gpu_seconds,
            span.network_bytes_in, span.network_bytes_out, span.storage_bytes) == (
        1.5, 0.25, 2.0, 1000, 2048, 4096)


@pytest.mark.parametrize("bad", [-1, "lots", float("nan")])
def test_bad_resource_rejects_the_span(bad: Any, make_raw: Callable[..., RawSpan]) -> None:
    result = Normalize()([make_raw({"mentat.resource.cpu_core_seconds": bad})])
    assert result.spans == []
    assert result.rejected[0].field == "00f067aa0ba902b7:mentat.resource.cpu_core_seconds"


def test_explicit_status(normalized: Norm) -> None:
    assert normalized({"mentat.status": "timeout"}).status is SpanStatus.TIMEOUT
    assert normalized({"mentat.status": "ok"}, status_code=2).status is SpanStatus.OK


def test_mentat_on_the_resource_and_tenancy_precedence(normalized: Norm) -> None:
    span = normalized({"mentat.project_id": "span-project", "user.id": "span-user"},
                      resource={"mentat.org_id": "res-org", "mentat.project_id": "res-project",
                                "service.name": "billing", "enduser.id": "res-user"},
                      tenancy={"org_id": "key-org"})
    assert (span.org_id, span.project_id, span.service_name, span.user_id) == (
        "key-org", "span-project", "billing", "span-user")


def test_native_event_operation_is_not_a_rollup(normalized: Norm) -> None:
    span = normalized({"mentat.operation": "agent", "mentat.input_tokens": 10}, kind="server")
    assert (span.operation, span.operation_name, span.usage_is_rollup) == (
        Operation.AGENT, "invoke_agent", False)
    tool = normalized({"mentat.operation": "tool", "mentat.tool_name": "search"})
    assert (tool.operation, tool.tool_name) == (Operation.TOOL, "search")
    explicit = normalized({"mentat.operation": "agent", "mentat.usage_is_rollup": True})
    assert explicit.usage_is_rollup is True


def test_policy_and_provider_spelling(normalized: Norm) -> None:
    span = normalized({"mentat.policy_id": "pii", "mentat.policy_result": "blocked",
                       "mentat.provider": "OpenAI"})
    # a producer's own decision lands in the decision arrays (docs/decisions/0018)
    assert (span.policy_ids, span.policy_versions, span.policy_actions) == (
        ("pii",), (0,), ("block",))
    assert (span.policy_id, span.policy_result, span.provider) == ("", "", "openai")
