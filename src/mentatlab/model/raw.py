"""RawSpan: what a receiver hands to the pipeline, before any convention is applied."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeAlias

__all__ = ["AttrValue", "RawSpan", "StatusCode"]

AttrValue: TypeAlias = Any
"""A decoded OTLP AnyValue: str, bool, int, float, bytes (as hex str), list or dict."""


class StatusCode:
    """OTLP status codes (``opentelemetry.proto.trace.v1.Status.StatusCode``)."""

    UNSET = 0
    OK = 1
    ERROR = 2


@dataclass(slots=True)
class RawSpan:
    """One span as it arrived, decoded but not interpreted.

    Ids are lowercase hex (32 chars for traces, 16 for spans); ``parent_span_id`` is ``""``
    for a root span. Times are UTC nanoseconds since the epoch.
    """

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    start_time_ns: int
    end_time_ns: int
    kind: str = "internal"
    """One of ``internal, server, client, producer, consumer, unspecified``."""
    status_code: int = StatusCode.UNSET
    status_message: str = ""
    attributes: dict[str, AttrValue] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    """Each ``{"name": str, "time_ns": int, "attributes": dict}``."""
    links: list[dict[str, Any]] = field(default_factory=list)
    """Each ``{"trace_id": str, "span_id": str, "attributes": dict}``."""
    resource: dict[str, AttrValue] = field(default_factory=dict)
    scope_name: str = ""
    scope_version: str = ""
    tenancy: dict[str, str] = field(default_factory=dict)
    """Tenancy fixed by the receiver (API key, baggage): canonical names such as
    ``org_id``/``project_id``; these win over span and resource attributes."""
