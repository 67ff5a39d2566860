"""The native event API's JSON schema (``POST /api/v1/events``); see ``docs/events.md``."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, get_args

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    TypeAdapter,
    field_validator,
)
from pydantic import ValidationError as PydanticValidationError

from mentatlab.receivers.base import MAX_TIME_NS

__all__ = ["EVENT_TYPES", "Event", "EventType"]

EventType = Literal[
    "agent.request.started", "agent.request.completed",
    "agent.step.started", "agent.step.completed",
    "agent.tool.called", "agent.tool.failed",
    "agent.retry", "agent.fallback.triggered",
    "agent.policy.decision", "agent.budget.threshold_hit",
]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_AWARE: TypeAdapter[AwareDatetime] = TypeAdapter(AwareDatetime)
_MIN_UNIX_NS = 10**17  # 1973-03-03: an integer below this is not nanoseconds
MAX_DURATION_MS = 1e11
"""Longest ``duration_ms`` (about 3 years): a span starting ``duration_ms`` before any valid
timestamp (after 1973) still starts after 1970, so its start is a time the store holds."""


def _hex_id(value: str | None, nchars: int, name: str) -> str | None:
    if value is None or value == "":
        return None
    text = value.lower()
    if len(text) != nchars or not all(c in "0123456789abcdef" for c in text):
        raise ValueError(f"expected {nchars} hex digits for {name}, got {value!r}")
    if text == "0" * nchars:
        raise ValueError(f"expected a non-zero {name}")
    return text


class Event(BaseModel):
    """One native event. Unknown top-level fields are refused; put extras in ``attributes``."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_max_length=65536)

    type: EventType
    timestamp: int | None = None
    """When it happened, unix ns; sent as an integer of ns or an RFC 3339 string with an
    offset (``2026-11-22T10:00:00.5Z``); default: when it was received."""
    duration_ms: float | None = Field(None, ge=0, le=MAX_DURATION_MS, allow_inf_nan=False)
    """Length of the work that ends at ``timestamp``, in ms (single events, or a
    ``*.completed`` whose ``*.started`` may be lost)."""
    name: str | None = None
    """Span name; default derived from the type (``agent.step <step>``, ``tool <name>``)."""
    event_id: str | None = None
    """Producer's unique id of the event; makes re-sent single events idempotent."""
    # ids: explicit W3C ids win; otherwise derived (see docs/events.md)
    trace_id: str | None = None
    span_id: str | None = None
    parent_span_id: str | None = None
    request_id: str | None = None
    step_id: str | None = None
    tool_call_id: str | None = None
    # tenancy
    org_id: str | None = None
    workspace_id: str | None = None
    project_id: str | None = None
    user_id: str | None = None
    customer_id: str | None = None
    department: str | None = None
    # agent
    agent_id: str | None = None
    agent_version: str | None = None
    runtime: str | None = None
    workflow_id: str | None = None
    workflow_version: str | None = None
    flow_id: str | None = None
    run_id: str | None = None
    session_id: str | None = None
    step: str | int | None = None
    prompt_version: str | None = None
    # model and tokens (input inclusive of cache tokens, output inclusive of reasoning)
    provider: str | None = None
    model: str | None = None
    response_model: str | None = None
    input_tokens: NonNegativeInt | None = None
    output_tokens: NonNegativeInt | None = None
    cache_read_tokens: NonNegativeInt | None = None
    cache_write_tokens: NonNegativeInt | None = None
    reasoning_tokens: NonNegativeInt | None = None
    # outcome and type-specific fields
    status: Literal["ok", "error", "timeout"] | None = None
    tool_name: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    attempt: int | None = Field(None, ge=1, le=65_535)
    fallback_from: str | None = None
    fallback_to: str | None = None
    policy_id: str | None = None
    policy_result: str | None = None
    budget_id: str | None = None
    threshold_percent: float | None = Field(None, ge=0)
    amount: Decimal | None = None
    """Spend that crossed the threshold, in the budget's currency (a decimal string)."""
    attributes: dict[str, Any] = Field(default_factory=dict)
    """Anything else; kept on the span as attributes (``mentat.*`` keys allowed)."""

    @field_validator("timestamp", mode="before")
    @classmethod
    def _timestamp_ns(cls, value: Any) -> int | None:
        if value is None:
            return None
        if isinstance(value, str) and not value.isdigit():
            try:
                moment = _AWARE.validate_python(value)
            except PydanticValidationError:
                raise ValueError(
                    f"expected RFC 3339 with a UTC offset or unix ns, got {value!r}") from None
            ns = (moment - _EPOCH) // timedelta(microseconds=1) * 1000
        elif isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ValueError(f"expected unix ns or an RFC 3339 string, got {value!r}")
        else:
            ns = int(value)
        if not _MIN_UNIX_NS <= ns <= MAX_TIME_NS:
            raise ValueError(f"expected a time from 1973-03-03 to 2262-04-11T23:47:16Z (unix "
                             f"ns from 10**17 to {MAX_TIME_NS}), got {value!r}")
        return ns

    @field_validator("trace_id")
    @classmethod
    def _trace_id(cls, value: str | None) -> str | None:
        return _hex_id(value, 32, "trace_id")

    @field_validator("span_id", "parent_span_id")
    @classmethod
    def _span_id(cls, value: str | None) -> str | None:
        return _hex_id(value, 16, "span_id")

    def time_ns(self, received_ns: int | None = None) -> int:
        """The event time in unix ns (``received_ns`` or now when the producer gave none)."""
        if self.timestamp is None:
            return received_ns if received_ns is not None else time.time_ns()
        return self.timestamp
