"""The Arrow schema of CanonicalSpan and its ClickHouse column types: one source for both stores.

``SPAN_COLUMNS`` lists every column once, in table order, with its Arrow type and its
ClickHouse type. The span-store DDL and the Arrow batches handed to the store are both
built from it, so a column cannot exist in one and not the other.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa

from mentatlab.model.span import CanonicalSpan, Operation, SpanStatus

__all__ = [
    "MONEY_ARROW",
    "MONEY_COLUMNS",
    "MONEY_SCALE",
    "POLICY_ARRAY_NAMES",
    "POLICY_COLUMNS",
    "SPAN_COLUMNS",
    "TOKEN_KIND_COST_COLUMNS",
    "SPAN_SCHEMA",
    "Column",
    "arrow_to_spans",
    "spans_to_arrow",
]

MONEY_SCALE = 12
"""Decimal places kept for money: 1e-12 USD, below any per-token price times one token."""
MONEY_ARROW = pa.decimal128(38, MONEY_SCALE)
_TS = pa.timestamp("ns", tz="UTC")


@dataclass(frozen=True, slots=True)
class Column:
    """One span-store column."""

    name: str
    arrow: pa.DataType
    clickhouse: str
    nullable: bool = False


def _c(name: str, arrow: pa.DataType, clickhouse: str, nullable: bool = False) -> Column:
    return Column(name, arrow, clickhouse, nullable)


_S = pa.string()
_LC = "LowCardinality(String)"
_MONEY_CH = f"Decimal(38, {MONEY_SCALE})"
_TOKENS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
           "reasoning_tokens", "total_tokens")
MONEY_COLUMNS: tuple[str, ...] = (
    "token_cost", "cpu_cost", "memory_cost", "gpu_cost", "network_cost", "storage_cost",
    "unattributed_cost", "discount", "total_cost")
"""Every money column (``Decimal(38, 12)``) but the per-kind token costs, in table order."""
TOKEN_KIND_COST_COLUMNS: tuple[str, ...] = (
    "input_cost", "cache_read_cost", "cache_write_cost", "output_cost", "reasoning_cost",
    "request_cost", "cache_savings")
"""``token_cost`` split by token kind (``Decimal(38, 12)``), then the cache savings: the
first six add up to ``token_cost`` exactly; ``cache_savings`` is what the cache reads would
have cost at the uncached input price minus ``cache_read_cost``
(docs/decisions/0012-token-kind-costs.md). Last in the table: stores created before them
gain them by ``ADD COLUMN`` at the end."""

POLICY_COLUMNS: tuple[Column, ...] = (
    _c("policy_ids", pa.list_(_S), "Array(LowCardinality(String))"),
    _c("policy_versions", pa.list_(pa.uint32()), "Array(UInt32)"),
    _c("policy_actions", pa.list_(_S), "Array(LowCardinality(String))"),
)
"""Policy decisions (span-store migration 9, docs/decisions/0018): parallel arrays, one
entry per matched policy. Last in the table, after the token-kind costs."""
POLICY_ARRAY_NAMES: tuple[str, ...] = tuple(c.name for c in POLICY_COLUMNS)

SPAN_COLUMNS: tuple[Column, ...] = (
    _c("trace_id", _S, "String"),
    _c("span_id", _S, "String"),
    _c("parent_span_id", _S, "String"),
    _c("name", _S, "String"),
    _c("kind", _S, _LC),
    _c("start_time", _TS, "DateTime64(9, 'UTC')"),
    _c("end_time", _TS, "DateTime64(9, 'UTC')"),
    _c("duration_ms", pa.float64(), "Float64"),
    _c("status", _S, _LC),
    _c("status_message", _S, "String"),
    *(_c(n, _S, _LC) for n in ("org_id", "workspace_id", "project_id", "user_id", "customer_id",
                                "department", "service_name", "agent_id", "agent_version",
                                "runtime", "workflow_id", "workflow_version")),
    *(_c(n, _S, "String") for n in ("flow_id", "run_id", "session_id", "step")),
    _c("prompt_version", _S, _LC),
    _c("inherited", pa.uint8(), "UInt8"),
    _c("operation", _S, _LC),
    _c("operation_name", _S, _LC),
    _c("tool_name", _S, _LC),
    _c("tool_args_hash", _S, "String"),
    _c("attempt", pa.uint16(), "UInt16"),
    _c("is_retry", pa.bool_(), "Bool"),
    _c("is_fallback", pa.bool_(), "Bool"),
    _c("is_streaming", pa.bool_(), "Nullable(Bool)", nullable=True),
    _c("provider", _S, _LC),
    _c("request_model", _S, _LC),
    _c("response_model", _S, _LC),
    *(_c(n, pa.uint64(), "Nullable(UInt64)", nullable=True) for n in _TOKENS),
    _c("usage_is_rollup", pa.bool_(), "Bool"),
    *(_c(f"unattributed_{n}_tokens", pa.uint64(), "UInt64")
      for n in ("input", "output", "cache_read", "cache_write")),
    _c("cpu_core_seconds", pa.float64(), "Float64"),
    _c("memory_gb_seconds", pa.float64(), "Float64"),
    _c("gpu_seconds", pa.float64(), "Float64"),
    _c("network_bytes_in", pa.uint64(), "UInt64"),
    _c("network_bytes_out", pa.uint64(), "UInt64"),
    _c("storage_bytes", pa.uint64(), "UInt64"),
    *(_c(n, MONEY_ARROW, _MONEY_CH) for n in MONEY_COLUMNS),
    _c("currency", _S, _LC),
    _c("price_source", _S, _LC),
    _c("error_type", _S, _LC),
    _c("error_category", _S, _LC),
    _c("error_class", _S, _LC),
    _c("error_message_hash", _S, "String"),
    _c("policy_id", _S, _LC),
    _c("policy_result", _S, _LC),
    _c("pii_findings", _S, "String"),
    _c("attributes", _S, "String"),
    _c("events", _S, "String"),
    _c("resource", _S, "String"),
    _c("scope_name", _S, _LC),
    _c("prompt_prefix_hash", pa.uint64(), "UInt64"),
    _c("prompt_prefix_chars", pa.uint32(), "UInt32"),
    _c("prompt_chars", pa.uint32(), "UInt32"),
    _c("revision", pa.uint32(), "UInt32"),
    _c("ingested_at_ns", pa.int64(), "Int64"),
    *(_c(n, MONEY_ARROW, _MONEY_CH) for n in TOKEN_KIND_COST_COLUMNS),
    *POLICY_COLUMNS,
)

SPAN_SCHEMA = pa.schema([pa.field(c.name, c.arrow, nullable=c.nullable) for c in SPAN_COLUMNS])
"""Arrow schema of a batch of CanonicalSpan rows."""

_NAMES = tuple(c.name for c in SPAN_COLUMNS)
_GET_ROW = operator.attrgetter(*_NAMES)


def spans_to_arrow(spans: Sequence[CanonicalSpan]) -> pa.Table:
    """Turn N spans into an Arrow table with schema ``SPAN_SCHEMA`` (N rows).

    Enums become their string values; money stays Decimal (``decimal128(38, 12)``).
    Rows are read with one ``attrgetter`` call each and transposed by ``zip`` (both in C),
    ~10x faster than a ``getattr`` per field.
    """
    if not spans:
        return SPAN_SCHEMA.empty_table()
    columns = zip(*map(_GET_ROW, spans), strict=True)
    return pa.Table.from_arrays(
        [_array(col, c.arrow) for col, c in zip(columns, SPAN_COLUMNS, strict=True)],
        schema=SPAN_SCHEMA,
    )


def _array(values: tuple[Any, ...], arrow_type: pa.DataType) -> pa.Array:
    """One Arrow column from N values.

    A column holding one value throughout (most cost and tenancy columns of a batch) is
    built from a single scalar (``pa.repeat``: ~1 µs, against ~5 µs for a ``fill_null``
    kernel call and ~5-16 µs to convert 100 objects).
    """
    first = values[0]
    if values.count(first) == len(values):
        if first is None:
            return pa.nulls(len(values), arrow_type)
        return pa.repeat(pa.scalar(first, arrow_type), len(values))
    return pa.array(values, type=arrow_type)


def arrow_to_spans(table: pa.Table) -> list[CanonicalSpan]:
    """Turn an Arrow table with (at least) the ``SPAN_SCHEMA`` columns back into spans."""
    rows: Iterable[dict[str, Any]] = table.select(list(_NAMES)).to_pylist()
    out: list[CanonicalSpan] = []
    for row in rows:
        row["status"] = SpanStatus(row["status"])
        row["operation"] = Operation(row["operation"])
        for key in ("start_time", "end_time"):
            ts: datetime = row[key]
            row[key] = ts
        for key in (*MONEY_COLUMNS, *TOKEN_KIND_COST_COLUMNS):
            row[key] = Decimal(row[key])
        for key in POLICY_ARRAY_NAMES:
            row[key] = tuple(row[key] or ())
        out.append(CanonicalSpan(**row))
    return out


assert _NAMES == tuple(f.name for f in dataclasses.fields(CanonicalSpan)), (
    "SPAN_COLUMNS must list CanonicalSpan's fields in order"
)
