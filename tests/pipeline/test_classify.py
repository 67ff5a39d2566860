"""The classify processor: one case per error type with what real clients send, the rules
file validated, and a mixed batch classified as Arrow columns."""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from typing import Any

import pyarrow as pa
import pytest

from mentatlab.errors import ConfigError
from mentatlab.model.raw import RawSpan
from mentatlab.model.span import CanonicalSpan, SpanStatus
from mentatlab.pipeline.classify import Classify, classify_table, hash_error_message
from mentatlab.pipeline.failure_taxonomy import (
    CLASSES,
    default_failure_taxonomy,
    parse_failure_taxonomy,
)
from mentatlab.pipeline.normalize import Normalize

T0_NS = 1_763_000_000_000_000_000
TOOL = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}


def span(attributes: dict[str, Any] | None = None, *, status_code: int = 2,
         status_message: str = "", exception: tuple[str, str] | None = None,
         name: str = "chat gpt-4o") -> CanonicalSpan:
    events = []
    if exception is not None:
        events.append({"name": "exception", "time_ns": T0_NS, "attributes": {
            "exception.type": exception[0], "exception.message": exception[1],
            "exception.stacktrace": "Traceback (most recent call last):\n  ..."}})
    raw = RawSpan(trace_id="4bf92f3577b34da6a3ce929d0e0e4736", span_id="00f067aa0ba902b7",
                  parent_span_id="", name=name, start_time_ns=T0_NS, end_time_ns=T0_NS + 10,
                  status_code=status_code, status_message=status_message,
                  attributes=dict(attributes or {}), events=events)
    return Normalize()([raw]).spans[0]


def classify(s: CanonicalSpan) -> CanonicalSpan:
    return Classify()([s])[0]


# What the OpenAI / Anthropic Python SDKs raise: str(exc) is
# "Error code: NNN - {body}" with the provider's error object in the body.
OPENAI_QUOTA = ("Error code: 429 - {'error': {'message': 'You exceeded your current quota, "
                "please check your plan and billing details.', 'type': 'insufficient_quota', "
                "'param': None, 'code': 'insufficient_quota'}}")
OPENAI_RATE = ("Error code: 429 - {'error': {'message': 'Rate limit reached for gpt-4o in "
               "organization org-abc on tokens per min (TPM): Limit 30000, Used 29800, "
               "Requested 512.', 'type': 'tokens', 'param': None, "
               "'code': 'rate_limit_exceeded'}}")
OPENAI_CONTEXT = ("Error code: 400 - {'error': {'message': \"This model's maximum context "
                  "length is 128000 tokens. However, your messages resulted in 130512 "
                  "tokens. Please reduce the length of the messages.\", 'type': "
                  "'invalid_request_error', 'param': 'messages', "
                  "'code': 'context_length_exceeded'}}")
ANTHROPIC_CONTEXT = ("Error code: 400 - {'type': 'error', 'error': {'type': "
                     "'invalid_request_error', 'message': 'prompt is too long: 208457 tokens "
                     "> 200000 maximum'}}")
AZURE_FILTER = ("Error code: 400 - {'error': {'message': \"The response was filtered due to "
                "the prompt triggering Azure OpenAI's content management policy.\", 'type': "
                "None, 'param': 'prompt', 'code': 'content_filter', 'status': 400}}")
ANTHROPIC_OVERLOADED = ("Error code: 529 - {'type': 'error', 'error': {'type': "
                        "'overloaded_error', 'message': 'Overloaded'}}")
ANTHROPIC_AUTH = ("Error code: 401 - {'type': 'error', 'error': {'type': "
                  "'authentication_error', 'message': 'invalid x-api-key'}}")
OPENAI_BAD_REQUEST = ("Error code: 400 - {'error': {'message': \"Invalid value for "
                      "'temperature': must be between 0 and 2.\", 'type': "
                      "'invalid_request_error', 'param': 'temperature', 'code': None}}")

CASES: list[tuple[str, dict[str, Any], str, str]] = [
    # governance
    ("policy_blocked", {"exception": ("agents.exceptions.InputGuardrailTripwireTriggered",
                                      "Guardrail InputGuardrail triggered tripwire")},
     "governance", ""),
    ("approval_timeout", {"status_message": "approval timed out after 300 s"},
     "governance", ""),
    # workflow
    ("cancelled", {"exception": ("asyncio.exceptions.CancelledError", "")}, "workflow", ""),
    ("loop_detected", {"exception": ("langgraph.errors.GraphRecursionError",
                                     "Recursion limit of 25 reached without hitting a stop "
                                     "condition.")}, "workflow", ""),
    ("missing_context", {"status_message": "missing context: no retrieved documents"},
     "workflow", ""),
    ("bad_routing", {"exception": ("app.RoutingError", "no route for intent 'refund'")},
     "workflow", ""),
    # tooling
    ("tool_timeout", {"attributes": {**TOOL, "error.type": "TimeoutError"}}, "tooling", "tool"),
    ("tool_contract_mismatch", {"attributes": TOOL, "exception": (
        "TypeError", "search() got an unexpected keyword argument 'q'")}, "tooling", "tool"),
    ("dependency_unavailable", {"attributes": {**TOOL, "http.response.status_code": 503}},
     "tooling", "tool"),
    ("tool_error", {"attributes": TOOL, "exception": ("KeyError", "'results'")},
     "tooling", "tool"),
    # provider
    ("quota_exceeded", {"attributes": {"http.response.status_code": 429},
                        "exception": ("openai.RateLimitError", OPENAI_QUOTA)}, "provider", ""),
    ("rate_limit", {"attributes": {"error.type": "RateLimitError"},
                    "exception": ("openai.RateLimitError", OPENAI_RATE)}, "provider", ""),
    ("auth_failed", {"exception": ("anthropic.AuthenticationError", ANTHROPIC_AUTH)},
     "provider", ""),
    ("timeout", {"attributes": {"error.type": "APITimeoutError"},
                 "exception": ("openai.APITimeoutError", "Request timed out.")},
     "provider", ""),
    ("upstream_error", {"exception": ("anthropic.InternalServerError", ANTHROPIC_OVERLOADED)},
     "provider", ""),
    ("network_error", {"attributes": {"error.type": "APIConnectionError"},
                       "exception": ("openai.APIConnectionError", "Connection error.")},
     "provider", ""),
    ("bad_request", {"exception": ("openai.BadRequestError", OPENAI_BAD_REQUEST)},
     "provider", ""),
    # model
    ("context_length_exceeded", {"exception": ("openai.BadRequestError", OPENAI_CONTEXT)},
     "model", ""),
    ("content_filtered", {"exception": ("openai.BadRequestError", AZURE_FILTER)},
     "model", ""),
    ("unsafe_output", {"exception": ("app.SafetyError", "unsafe output: self-harm")},
     "model", ""),
    ("invalid_json", {"exception": ("json.decoder.JSONDecodeError",
                                    "Expecting value: line 1 column 1 (char 0)")}, "model", ""),
    ("tool_selection_error", {"status_message": "Unknown tool name: 'serach'"}, "model", ""),
]


PRODUCER_TYPE = {
    # error_type keeps the producer's words: error.type, else the exception class name
    # (module stripped); the category only where nothing but a status or code said it
    "policy_blocked": "InputGuardrailTripwireTriggered", "approval_timeout": "approval_timeout",
    "cancelled": "CancelledError", "loop_detected": "GraphRecursionError",
    "missing_context": "missing_context", "bad_routing": "RoutingError",
    "tool_timeout": "TimeoutError", "tool_contract_mismatch": "TypeError",
    "dependency_unavailable": "dependency_unavailable", "tool_error": "KeyError",
    "quota_exceeded": "RateLimitError", "rate_limit": "RateLimitError",
    "auth_failed": "AuthenticationError", "timeout": "APITimeoutError",
    "upstream_error": "InternalServerError", "network_error": "APIConnectionError",
    "bad_request": "BadRequestError", "context_length_exceeded": "BadRequestError",
    "content_filtered": "BadRequestError", "unsafe_output": "SafetyError",
    "invalid_json": "JSONDecodeError", "tool_selection_error": "tool_selection_error",
}


def test_every_taxonomy_type_has_a_case() -> None:
    assert sorted(c[0] for c in CASES) == sorted(default_failure_taxonomy().class_of)
    assert sorted(PRODUCER_TYPE) == sorted(default_failure_taxonomy().class_of)


@pytest.mark.parametrize(("expected", "kwargs", "error_class", "operation"), CASES,
                         ids=[c[0] for c in CASES])
def test_one_case_per_error_type(expected: str, kwargs: dict[str, Any], error_class: str,
                                 operation: str) -> None:
    s = span(**kwargs)
    if operation:
        assert s.operation.value == operation
    out = classify(s)
    assert (out.error_category, out.error_class) == (expected, error_class)
    assert out.error_type == PRODUCER_TYPE[expected]


@pytest.mark.parametrize(("kwargs", "expected"), [
    # the HTTP status alone, in each place it is found
    ({"attributes": {"http.response.status_code": 429}}, "rate_limit"),
    ({"attributes": {"http.status_code": "401"}}, "auth_failed"),
    ({"attributes": {"error.type": "504"}}, "timeout"),
    ({"status_message": "Error code: 502 - upstream connect error"}, "upstream_error"),
    ({"attributes": {"http.response.status_code": 404}}, "bad_request"),
    # Anthropic's context error is a 400 invalid_request_error: the model rule comes first
    ({"exception": ("anthropic.BadRequestError", ANTHROPIC_CONTEXT)},
     "context_length_exceeded"),
    # a provider code alone, as a whole word (not inside another word)
    ({"status_message": "Error code: 400 - {'code': 'context_length_exceeded'}"},
     "context_length_exceeded"),
    ({"status_message": "code=xinsufficient_quota"}, "unknown"),
    # a producer that already sends a taxonomy value keeps it, even off a tool span
    ({"attributes": {"mentat.error_type": "tool_timeout"}}, "tool_timeout"),
    # governance before anything a blocked call also looks like
    ({"attributes": {"http.response.status_code": 400},
      "status_message": "Request blocked by policy pii-guard"}, "policy_blocked"),
])
def test_evidence_sources(kwargs: dict[str, Any], expected: str) -> None:
    assert classify(span(**kwargs)).error_category == expected


def test_the_same_evidence_is_provider_or_tooling_by_span_kind() -> None:
    assert classify(span({"error.type": "TimeoutError"})).error_category == "timeout"
    assert classify(span({**TOOL, "error.type": "TimeoutError"})).error_category == (
        "tool_timeout")
    connection = ("httpx.ConnectError", "[Errno 111] Connection refused")
    assert classify(span(exception=connection)).error_category == "network_error"
    assert classify(span(TOOL, exception=connection)).error_category == (
        "dependency_unavailable")


def test_timeout_status_is_classified() -> None:
    s = span({"mentat.status": "timeout"}, status_code=0)
    assert s.status is SpanStatus.TIMEOUT
    out = classify(s)
    # only the status says what failed: the category is the type too
    assert (out.error_type, out.error_category, out.error_class) == (
        "timeout", "timeout", "provider")


def test_the_producers_type_is_kept_beside_the_category() -> None:
    out = classify(span({"error.type": "openai.APIConnectionError"},
                        status_message="Connection error."))
    assert (out.error_type, out.error_category, out.error_class) == (
        "openai.APIConnectionError", "network_error", "provider")
    out = classify(span({"http.response.status_code": 429}))
    assert (out.error_type, out.error_category) == ("rate_limit", "rate_limit")


def test_unmatched_failures_keep_the_producers_type_with_class_unknown() -> None:
    out = classify(span({"error.type": "WeirdVendorError"}))
    assert (out.error_type, out.error_category, out.error_class) == (
        "WeirdVendorError", "unknown", "unknown")
    out = classify(span(exception=("google.api_core.exceptions.FailedPrecondition",
                                   "400 Precondition check failed.")))
    # "400" in the message is not "error code: 400": no rule matches
    assert (out.error_type, out.error_category, out.error_class) == (
        "FailedPrecondition", "unknown", "unknown")
    out = classify(span())
    assert (out.error_type, out.error_category, out.error_class) == (
        "unknown", "unknown", "unknown")


def test_ok_spans_pass_through_untouched() -> None:
    ok = span({"http.response.status_code": 200}, status_code=1)
    assert Classify()([ok])[0] is ok
    assert (ok.error_type, ok.error_category, ok.error_class, ok.error_message_hash) == (
        "", "", "", "")


def test_message_hash_groups_variants_of_one_failure() -> None:
    a = hash_error_message("Rate limit reached for gpt-4o in org org-abc123def456 on tokens: "
                           "Limit 30000, Used 29800, Requested 512")
    b = hash_error_message("Rate limit reached for gpt-4o in org org-ffff0000aaaa on tokens: "
                           "Limit 30000, Used 12, Requested 4096")
    assert a == b != hash_error_message("Connection error.")
    assert len(a) == 16 and int(a, 16) >= 0


def test_hash_is_set_from_status_or_exception_message() -> None:
    by_status = classify(span(status_message='Bad "value"'))
    by_exception = classify(span(exception=("X", 'Bad "value"')))  # JSON-escaped in events
    assert by_status.error_message_hash == by_exception.error_message_hash == (
        hash_error_message('Bad "value"'))
    assert classify(span()).error_message_hash == ""


def test_a_mixed_batch_is_classified_as_columns() -> None:
    events = ('[{"name":"exception","attributes":{"exception.type":"ValueError",'
              '"exception.message":"first"}},{"name":"exception","attributes":'
              '{"exception.type":"openai.RateLimitError","exception.message":"slow down"}}]')
    table = pa.table({
        "status": ["error", "timeout", "error", "error", "error", "error"],
        "status_message": ["", "", "", "Connection error.", "", ""],
        "error_type": ["", "", "", "", "Boom", ""],
        "operation": ["chat", "tool", "tool", "chat", "agent", "agent"],
        "attributes": ["{}", "{}", '{"http.response.status_code":422}',
                       '{"http.status_code":"200"}', "{}", "{}"],
        "events": [events, "[]", "[]", "[]", "[]", "[]"],
    })
    out = classify_table(table)
    assert out.column("error_category").to_pylist() == [
        "rate_limit",              # the LAST exception event, by its type
        "tool_timeout",            # timeout status on a tool span
        "tool_contract_mismatch",  # 422 on a tool span
        "network_error",           # the message, whatever the (wrong) 200 says
        "unknown",                 # no rule matches "Boom"
        "unknown",                 # no evidence at all
    ]
    assert out.column("error_type").to_pylist() == [
        "RateLimitError", "tool_timeout", "tool_contract_mismatch", "network_error",
        "Boom", "unknown"]
    assert out.column("error_class").to_pylist() == [
        "provider", "tooling", "tooling", "provider", "unknown", "unknown"]
    assert out.column("exception_message").to_pylist()[0] == "slow down"


def test_the_processor_classifies_only_failed_spans_of_a_batch() -> None:
    batch = [span(status_code=1), span({"error.type": "RateLimitError"}), span(status_code=0),
             span(TOOL, exception=("KeyError", "'x'"))]
    out = Classify()(batch)
    assert [(s.error_type, s.error_category, s.error_class) for s in out] == [
        ("", "", ""), ("RateLimitError", "rate_limit", "provider"), ("", "", ""),
        ("KeyError", "tool_error", "tooling")]


# --- the rules file ----------------------------------------------------------------------

GOOD = """
[classes]
provider = ["rate_limit"]

[[rules]]
error_type = "rate_limit"
http_statuses = [429]
"""


def test_the_shipped_file_lists_every_class_and_types_once() -> None:
    text = resources.files("mentatlab.pipeline").joinpath("failure_taxonomy.toml").read_text()
    data = tomllib.loads(text)
    assert sorted(data["classes"]) == sorted(CLASSES)
    taxonomy = default_failure_taxonomy()
    design = {"timeout", "rate_limit", "quota_exceeded", "auth_failed", "invalid_json",
              "tool_selection_error", "unsafe_output", "tool_timeout", "tool_contract_mismatch",
              "dependency_unavailable", "loop_detected", "missing_context", "bad_routing",
              "policy_blocked", "approval_timeout"}
    assert design <= set(taxonomy.class_of)
    assert {r.error_type for r in taxonomy.rules} == set(taxonomy.class_of)
    assert parse_failure_taxonomy(GOOD).rules[0].http_statuses == (429,)


@pytest.mark.parametrize(("text", "field"), [
    (GOOD.replace("provider =", "vendor ="), "classes.vendor"),
    (GOOD + '\n[[rules]]\nerror_type = "slow"\nstatuses = ["timeout"]\n', "rules[1].error_type"),
    (GOOD + '\n[[rules]]\nerror_type = "rate_limit"\nmessage = "rate(limit"\n',
     "rules[1].message"),
    (GOOD + '\n[[rules]]\nerror_type = "rate_limit"\nmessage = "(?=x)y"\n', "rules[1].message"),
    (GOOD + '\n[[rules]]\nerror_type = "rate_limit"\nhttp_statuses = [4290]\n',
     "rules[1].http_statuses"),
    (GOOD + '\n[[rules]]\nerror_type = "rate_limit"\nnames = ["RateLimitError"]\n',
     "rules[1].names"),
    (GOOD + '\n[[rules]]\nerror_type = "rate_limit"\nstatus = ["timeout"]\n',
     "rules[1].status"),
    (GOOD + '\n[[rules]]\nerror_type = "rate_limit"\n', "rules[1]"),
    (GOOD + '\n[[rules]]\nerror_type = "rate_limit"\nstatuses = ["ok"]\n', "rules[1].statuses"),
    (GOOD.replace('["rate_limit"]', '["rate_limit"]\nmodel = ["rate_limit"]'), "classes.model"),
    ("[classes\n", "failure_taxonomy.toml"),
])
def test_a_bad_rules_file_names_the_field(text: str, field: str) -> None:
    with pytest.raises(ConfigError, match=rf"failure taxonomy: {re.escape(field)}: "):
        parse_failure_taxonomy(text)
