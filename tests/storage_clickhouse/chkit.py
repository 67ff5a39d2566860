"""Helpers of the ClickHouse-only tests: a span with every kind of column filled.

The fixtures (``clickhouse_server``, ``clickhouse_store``, ``postgres_cluster``, …) live
in tests/backends.py. To run a suite on both span-store backends, take ``store`` from there.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from mentatlab.model.span import CanonicalSpan, Operation, SpanStatus

T0 = datetime(2026, 11, 20, 12, 0, 0, 123456, tzinfo=UTC)


def make_span(i: int, *, trace: int = 0, start: datetime = T0, **overrides: Any) -> CanonicalSpan:
    """A span with every kind of column filled: Decimal, ns time, NULL tokens, enums."""
    fields: dict[str, Any] = {
        "trace_id": f"{trace:032x}",
        "span_id": f"{i + 1:016x}",
        "parent_span_id": "" if i == 0 else f"{1:016x}",
        "name": f"chat gpt-4o #{i}",
        "kind": "client",
        "start_time": start + timedelta(microseconds=i),
        "end_time": start + timedelta(seconds=1, microseconds=i),
        "duration_ms": 1000.0,
        "status": SpanStatus.ERROR if i % 5 == 4 else SpanStatus.OK,
        "org_id": "org-a" if i % 2 else "org-b",
        "project_id": "p1",
        "operation": Operation.CHAT,
        "provider": "openai",
        "request_model": "gpt-4o",
        "is_streaming": None if i % 3 == 0 else bool(i % 2),
        "input_tokens": None if i % 4 == 3 else 100 + i,
        "output_tokens": 10 * i,
        "token_cost": Decimal("0.000000000001") * (i + 1),
        "total_cost": Decimal("12345678901234567890.123456789012") if i == 1
        else Decimal("0.000250000001") * (i + 1),
        "attributes": '{"k": "v\\\\n\\u00e9"}',
        "ingested_at_ns": 1_000 + i,
    }
    fields.update(overrides)
    return CanonicalSpan(**fields)


__all__ = ["T0", "make_span"]
