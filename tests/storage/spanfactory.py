"""Span factory of the storage tests, and a store whose inserts wait at a gate."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa

from mentatlab.model.schema import spans_to_arrow
from mentatlab.model.span import CanonicalSpan, SpanStatus
from mentatlab.storage.base import SpanStore

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def make_span(i: int, *, trace: int | None = None, **overrides: Any) -> CanonicalSpan:
    """Span number ``i`` (trace ``i // 10`` unless given), 5 ms long, priced 0.001 USD."""
    start = T0 + timedelta(seconds=i)
    fields: dict[str, Any] = dict(
        trace_id=f"{(i // 10 if trace is None else trace):032x}", span_id=f"{i:016x}",
        parent_span_id="", name=f"span-{i}", kind="client", start_time=start,
        end_time=start + timedelta(milliseconds=5), duration_ms=5.0, status=SpanStatus.OK,
        org_id="org1", project_id="proj1", request_model="gpt-4o", input_tokens=10,
        output_tokens=5, token_cost=Decimal("0.001"), total_cost=Decimal("0.001"))
    fields.update(overrides)
    return CanonicalSpan(**fields)


def make_table(indices: range | list[int], **overrides: Any) -> pa.Table:
    return spans_to_arrow([make_span(i, **overrides) for i in indices])


class GatedStore:
    """A real store whose inserts wait for ``gate`` (to hold the writer or the inserter
    mid-commit, as a store that fell behind); ``entered`` is set once an insert waits,
    ``batch_rows`` lists the rows of each insert let through."""

    def __init__(self, inner: SpanStore) -> None:
        self.inner = inner
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.batch_rows: list[int] = []

    def append_batch(self, table: pa.Table) -> None:
        self.entered.set()
        assert self.gate.wait(60), "the gate was never opened"
        self.batch_rows.append(table.num_rows)
        self.inner.append_batch(table)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
