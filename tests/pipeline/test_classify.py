from __future__ import annotations

from typing import Any

import pytest

from mentatlab.model.raw import RawSpan
from mentatlab.model.span import CanonicalSpan, SpanStatus
from mentatlab.pipeline.classify import TAXONOMY, Classify, hash_error_message
from mentatlab.pipeline.normalize import Normalize

T0_NS = 1_763_000_000_000_000_000


def span(attributes: dict[str, Any] | None = None, *, status_code: int = 2,
         status_message: str = "", exception: tuple[str, str] | None = None,
         name: str = "chat gpt-4o") -> CanonicalSpan:
    events = []
    if exception is not None:
        events.append({"name": "exception", "time_ns": T0_NS, "attributes": {
            "exception.type": exception[0], "exception.message": exception[1]}})
    raw = RawSpan(trace_id="4bf92f3577b34da6a3ce929d0e0e4736", span_id="00f067aa0ba902b7",
                  parent_span_id="", name=name, start_time_ns=T0_NS, end_time_ns=T0_NS + 10,
                  status_code=status_code, status_message=status_message,
                  attributes=dict(attributes or {}), events=events)
    return Normalize()([raw]).spans[0]


def classify(s: CanonicalSpan) -> CanonicalSpan:
    return Classify()([s])[0]


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"attributes": {"error.type": "RateLimitError"}}, "rate_limit"),
    ({"attributes": {"http.response.status_code": 429}}, "rate_limit"),
    ({"attributes": {"http.status_code": "429"},
      "status_message": "You exceeded your current quota, please check your plan"},
     "quota_exceeded"),
    ({"attributes": {"http.response.status_code": 401}}, "auth_failed"),
    ({"exception": ("openai.AuthenticationError", "Incorrect API key provided")}, "auth_failed"),
    ({"attributes": {"http.response.status_code": 403}}, "auth_failed"),
    ({"attributes": {"error.type": "APITimeoutError"}}, "timeout"),
    ({"attributes": {"http.response.status_code": 504}}, "timeout"),
    ({"status_message": "Request timed out."}, "timeout"),
    ({"exception": ("json.decoder.JSONDecodeError", "Expecting value: line 1 column 1")},
     "invalid_json"),
    ({"status_message": "finish_reason=content_filter"}, "unsafe_output"),
    ({"exception": ("langgraph.errors.GraphRecursionError", "Recursion limit of 25 reached")},
     "loop_detected"),
    ({"exception": ("agents.exceptions.InputGuardrailTripwireTriggered", "tripwire")},
     "policy_blocked"),
    ({"status_message": "Request blocked by policy pii-guard"}, "policy_blocked"),
    ({"status_message": "approval timed out after 300 s"}, "approval_timeout"),
])
def test_taxonomy(kwargs: dict[str, Any], expected: str) -> None:
    assert classify(span(**kwargs)).error_type == expected


def test_tool_spans_get_tooling_types() -> None:
    tool = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}
    assert classify(span({**tool, "error.type": "TimeoutError"}, name="execute_tool search")
                    ).error_type == "tool_timeout"
    assert classify(span({**tool, "http.response.status_code": 503})).error_type == (
        "dependency_unavailable")
    assert classify(span(tool, exception=("TypeError", "search() got an unexpected keyword "
                                                       "argument 'q'"))).error_type == (
        "tool_contract_mismatch")
    # the same timeout on a model call is a provider timeout
    assert classify(span({"error.type": "TimeoutError"})).error_type == "timeout"


def test_unknown_keeps_the_producers_type() -> None:
    assert classify(span({"error.type": "APIConnectionError"})).error_type == (
        "APIConnectionError")
    assert classify(span(exception=("google.api_core.exceptions.NotFound", "404 Publisher "
                                    "Model was not found"))).error_type == "NotFound"
    assert classify(span()).error_type == "unknown"


def test_ok_spans_pass_through_untouched() -> None:
    ok = span(status_code=1)
    assert Classify()([ok])[0] is ok
    assert ok.error_type == ""


def test_message_hash_groups_variants_of_one_failure() -> None:
    a = hash_error_message("Rate limit reached for gpt-4o in org org-abc123def456 on tokens: "
                           "Limit 30000, Used 29800, Requested 512")
    b = hash_error_message("Rate limit reached for gpt-4o in org org-ffff0000aaaa on tokens: "
                           "Limit 30000, Used 12, Requested 4096")
    c = hash_error_message("Connection error.")
    assert a == b
    assert a != c
    assert len(a) == 16 and int(a, 16) >= 0


def test_hash_is_set_from_status_or_exception_message() -> None:
    by_status = classify(span(status_message="Connection error."))
    by_exception = classify(span(exception=("X", "Connection error.")))
    assert by_status.error_message_hash == by_exception.error_message_hash == (
        hash_error_message("Connection error."))
    assert classify(span()).error_message_hash == ""


def test_timeout_status_is_classified() -> None:
    s = span({"mentat.status": "timeout"}, status_code=0)
    assert s.status is SpanStatus.TIMEOUT
    assert classify(s).error_type == "timeout"


def test_every_taxonomy_value_is_in_design() -> None:
    design = {"timeout", "rate_limit", "quota_exceeded", "auth_failed", "invalid_json",
              "tool_selection_error", "unsafe_output", "tool_timeout", "tool_contract_mismatch",
              "dependency_unavailable", "loop_detected", "missing_context", "bad_routing",
              "policy_blocked", "approval_timeout"}
    assert {rule.error_type for rule in TAXONOMY} == design
