"""Classify: put failed spans into the failure taxonomy of DESIGN.md.

Taxonomy: provider (``timeout``, ``rate_limit``, ``quota_exceeded``, ``auth_failed``),
model (``invalid_json``, ``tool_selection_error``, ``unsafe_output``), tooling
(``tool_timeout``, ``tool_contract_mismatch``, ``dependency_unavailable``), workflow
(``loop_detected``, ``missing_context``, ``bad_routing``), governance (``policy_blocked``,
``approval_timeout``).

Evidence, read only for failed spans (status error/timeout, or an ``error.type``): the
producer's ``error.type`` (already in ``error_type`` after normalization), ``exception``
events (``exception.type``, ``exception.message``), the HTTP status code
(``http.response.status_code``, ``http.status_code``; 429 → rate_limit, 401/403 →
auth_failed, 408/504 → timeout) and the status message. :data:`TAXONOMY` is the table,
checked in order; the first matching row wins. A failure no row matches keeps the
producer's type (``error.type``, else the exception class name without its module), else
``"unknown"``. ``error_message_hash`` is the first 16 hex chars of the SHA-256 of the
message with numbers, hex ids and quoted values masked, so one kind of failure hashes
alike across spans.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass
from typing import Any

import orjson

from mentatlab.model.span import CanonicalSpan, Operation, SpanStatus

__all__ = ["TAXONOMY", "Classify", "ErrorRule", "classify_error", "hash_error_message"]


@dataclass(frozen=True, slots=True)
class ErrorRule:
    """One taxonomy row: the error type it assigns and the evidence that triggers it."""

    error_type: str
    """Taxonomy value assigned."""
    type_names: frozenset[str] = frozenset()
    """Lower-cased exception / ``error.type`` names (module stripped) that match."""
    message: re.Pattern[str] | None = None
    """Pattern searched in the lower-cased type, status and exception messages."""
    http_statuses: frozenset[int] = frozenset()
    """HTTP status codes that match."""
    tool_only: bool = False
    """Only for tool-execution spans (operation ``tool``)."""


def _names(*names: str) -> frozenset[str]:
    return frozenset(n.lower() for n in names)


def _re(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


TAXONOMY: tuple[ErrorRule, ...] = (
    # governance first: a blocked call may also look like a 4xx
    ErrorRule("policy_blocked", _names("PolicyBlocked", "InputGuardrailTripwireTriggered",
                                       "OutputGuardrailTripwireTriggered", "GuardrailViolation"),
              _re(r"blocked by (?:a |the )?(?:policy|guardrail)|policy[_ ]blocked")),
    ErrorRule("approval_timeout", _names("ApprovalTimeout"),
              _re(r"approval.{0,20}(?:timed? ?out|expired)")),
    # tooling (tool-execution spans)
    ErrorRule("tool_timeout", _names("TimeoutError", "ToolTimeout", "ReadTimeout",
                                     "ConnectTimeout", "DeadlineExceeded", "timeout"),
              _re(r"timed? ?out|deadline exceeded"), frozenset({408, 504}), tool_only=True),
    ErrorRule("tool_contract_mismatch", _names("ValidationError", "TypeError",
                                               "ToolArgumentsError", "SchemaValidationError"),
              _re(r"invalid (?:tool )?arguments|missing required (?:argument|parameter)"
                  r"|unexpected keyword argument|does not match (?:the )?schema"),
              frozenset({400, 422}), tool_only=True),
    ErrorRule("dependency_unavailable", _names("ConnectionError", "ConnectError",
                                               "ServiceUnavailable", "APIConnectionError",
                                               "ConnectionRefusedError"),
              _re(r"connection (?:refused|reset|error)|service unavailable|unreachable"),
              frozenset({502, 503}), tool_only=True),
    # provider
    ErrorRule("quota_exceeded", _names("QuotaExceeded", "InsufficientQuotaError",
                                       "insufficient_quota", "ResourceExhausted"),
              _re(r"insufficient[_ ]quota|exceeded your (?:current )?quota|quota exceeded"
                  r"|billing (?:hard )?limit|credit balance is too low")),
    ErrorRule("rate_limit", _names("RateLimitError", "RateLimitExceeded", "TooManyRequests",
                                   "ThrottlingException", "rate_limit_exceeded"),
              _re(r"rate[ _-]?limit|too many requests|throttl"), frozenset({429})),
    ErrorRule("auth_failed", _names("AuthenticationError", "PermissionDeniedError",
                                    "Unauthorized", "Forbidden", "Unauthenticated",
                                    "PermissionDenied", "AccessDeniedException",
                                    "invalid_api_key"),
              _re(r"invalid (?:x-)?api[ _-]?key|unauthori[sz]ed|authentication failed"
                  r"|permission denied|incorrect api key"), frozenset({401, 403})),
    ErrorRule("timeout", _names("TimeoutError", "APITimeoutError", "ReadTimeout",
                                "ConnectTimeout", "DeadlineExceeded", "timeout",
                                "ReadTimeoutError", "TimeoutException"),
              _re(r"timed? ?out|deadline exceeded"), frozenset({408, 504})),
    # model
    ErrorRule("unsafe_output", _names("ContentFilterFinishReasonError", "ContentPolicyViolation",
                                      "SafetyError"),
              _re(r"content[_ ]filter|content policy|blocked for safety|safety reasons")),
    ErrorRule("invalid_json", _names("JSONDecodeError", "OutputParserException",
                                     "UnexpectedModelBehavior", "LengthFinishReasonError"),
              _re(r"invalid json|json decode|expecting value|failed to parse.{0,30}output")),
    ErrorRule("tool_selection_error", _names("ToolNotFound", "UnknownToolError"),
              _re(r"unknown tool|tool .{0,40}not found|no tool named")),
    # workflow
    ErrorRule("loop_detected", _names("GraphRecursionError", "MaxTurnsExceeded",
                                      "UsageLimitExceeded", "MaxIterationsExceeded"),
              _re(r"recursion limit|max(?:imum)? (?:turns|iterations|steps)|loop detected")),
    ErrorRule("missing_context", _names("MissingContext", "ContextNotFound"),
              _re(r"missing context|context (?:not found|is missing)")),
    ErrorRule("bad_routing", _names("RoutingError", "NoRouteFound"),
              _re(r"no route|bad routing|unknown (?:route|handoff)")),
)
"""The failure taxonomy as data, checked in order (first match wins)."""

_HTTP_KEYS = ("http.response.status_code", "http.status_code")
_MASKS = (
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<uuid>"),
    (re.compile(r"\b(?=[0-9a-f]*\d)[0-9a-f]{8,}\b"), "<hex>"),
    (re.compile(r"\d+(?:\.\d+)?"), "<n>"),
    (re.compile(r"'[^']*'|\"[^\"]*\""), "<v>"),
    (re.compile(r"\s+"), " "),
)


def hash_error_message(message: str) -> str:
    """A short stable hash (SHA-256, 16 hex chars) of a masked, lower-cased message."""
    text = message.strip().lower()
    for pattern, replacement in _MASKS:
        text = pattern.sub(replacement, text)
    return hashlib.sha256(text.strip().encode()).hexdigest()[:16]


def _short(type_name: str) -> str:
    return type_name.rsplit(".", 1)[-1].strip()


def _exception(events_json: str) -> tuple[str, str]:
    """(type, message) of the last ``exception`` event, or empty strings."""
    if "exception" not in events_json:
        return "", ""
    try:
        events = orjson.loads(events_json)
    except orjson.JSONDecodeError:
        return "", ""
    for event in reversed(events if isinstance(events, list) else []):
        if isinstance(event, dict) and event.get("name") == "exception":
            attrs = event.get("attributes") or {}
            return str(attrs.get("exception.type") or ""), str(attrs.get("exception.message")
                                                               or "")
    return "", ""


def _http_status(attributes_json: str) -> int | None:
    if "status_code" not in attributes_json:
        return None
    try:
        attrs: Any = orjson.loads(attributes_json)
    except orjson.JSONDecodeError:
        return None
    for key in _HTTP_KEYS:
        value = attrs.get(key) if isinstance(attrs, dict) else None
        try:
            return int(value) if value is not None else None
        except (TypeError, ValueError):
            continue
    return None


def classify_error(span: CanonicalSpan) -> tuple[str, str]:
    """(error_type, error_message_hash) for a failed span."""
    exc_type, exc_message = _exception(span.events)
    producer_type = span.error_type or _short(exc_type)
    names = {n.lower() for n in (_short(span.error_type), _short(exc_type)) if n}
    text = " ".join((span.error_type, exc_type, span.status_message, exc_message)).lower()
    http_status = _http_status(span.attributes)
    is_tool = span.operation is Operation.TOOL
    if span.status is SpanStatus.TIMEOUT:
        names.add("timeout")
    chosen = ""
    for rule in TAXONOMY:
        if rule.tool_only and not is_tool:
            continue
        if (names & rule.type_names
                or (http_status is not None and http_status in rule.http_statuses)
                or (rule.message is not None and rule.message.search(text))):
            chosen = rule.error_type
            break
    message = span.status_message or exc_message
    return (chosen or producer_type or "unknown",
            hash_error_message(message) if message else "")


class Classify:
    """Sets ``error_type`` and ``error_message_hash`` on failed spans (a ``Processor``)."""

    name = "classify"

    def __call__(self, spans: list[CanonicalSpan]) -> list[CanonicalSpan]:
        """Classify a batch of N spans; spans that did not fail are returned unchanged."""
        out: list[CanonicalSpan] = []
        for span in spans:
            if span.status is SpanStatus.OK and not span.error_type:
                out.append(span)
                continue
            error_type, message_hash = classify_error(span)
            out.append(dataclasses.replace(span, error_type=error_type,
                                           error_message_hash=message_hash))
        return out
