"""Adoption by workflow: traces, users and cost per successful outcome, over time.

The unit is the **workflow run**: one trace's spans of one ``workflow_id`` (workflow ids
are inherited by child spans, so this is usually the whole trace; spans of no workflow
form the workflow ``''``). Over the spans in the range and filter:

* a run *starts* at its earliest span's ``start_time`` and is counted in that bucket;
* a run *succeeds* when none of its spans has a status other than ``ok`` (the trace
  list's and version comparison's definition);
* its cost is the sum of its spans' ``total_cost`` (USD, exact);
* its users are the distinct non-empty ``user_id`` of its spans.

Per workflow (and per workflow and bucket): ``num_traces`` (exact: ``uniqExact``),
``num_users`` (exact distinct users of its runs), ``num_successes``, ``success_rate``,
``total_cost`` and ``cost_per_success`` = ``total_cost / num_successes`` (every run's
cost, failed ones included, over the successes: the "cost per successful outcome",
Decimal at 1e-12 USD half-even, None without a success), the same as
:mod:`mentatlab.analytics.compare`'s. Workflows are ranked by runs (then cost, then id);
the first ``limit`` are answered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Final

from mentatlab.analytics.query import FINAL_SETTINGS, QueryParams, SqlParts, bucket_sql, build_where
from mentatlab.errors import ValidationError
from mentatlab.model.schema import MONEY_SCALE
from mentatlab.storage.base import SpanStore

__all__ = ["MAX_WORKFLOWS", "Adoption", "AdoptionRow", "get_adoption"]

MAX_WORKFLOWS: Final = 50
"""Most workflows one answer holds."""
_MONEY_QUANTUM: Final = Decimal(1).scaleb(-MONEY_SCALE)


@dataclass(frozen=True, slots=True)
class AdoptionRow:
    """One workflow's runs (in one bucket, or over the whole range)."""

    workflow_id: str
    bucket_start: datetime | None
    """UTC start of the bucket; None on a workflow's total row."""
    num_traces: int
    num_users: int
    num_successes: int
    success_rate: float
    """``num_successes / num_traces``."""
    total_cost: Decimal
    """USD, every run."""
    cost_per_success: Decimal | None
    """``total_cost / num_successes`` (USD, 1e-12, half-even); None without a success."""


@dataclass(frozen=True, slots=True)
class Adoption:
    """The answer of :func:`get_adoption`."""

    workflows: tuple[AdoptionRow, ...]
    """One total row per workflow, most runs first."""
    buckets: tuple[AdoptionRow, ...]
    """Rows per (workflow, bucket) of those workflows, by bucket then workflow rank."""
    num_other_workflows: int
    """Workflows with runs in the range beyond ``limit`` (not answered)."""


def _runs_sql(params: QueryParams, parts: SqlParts) -> str:
    build_where(params.time_range, params.filters, parts)
    return f"""runs AS (
SELECT workflow_id, trace_id, min(start_time) AS started,
    toUInt8(countIf(status != 'ok') = 0) AS success, sum(total_cost) AS cost,
    groupUniqArrayIf(user_id, user_id != '') AS users
FROM spans FINAL WHERE {parts.where}
GROUP BY workflow_id, trace_id)"""


_MEASURES = """toInt64(count()) AS num_traces, toInt64(length(groupUniqArrayArray(users))) AS
    num_users, toInt64(sum(success)) AS num_successes, sum(cost) AS total_cost"""


def _row(r: Mapping[str, Any], bucket: datetime | None) -> AdoptionRow:
    traces, ok = int(r["num_traces"]), int(r["num_successes"])
    cost = Decimal(r["total_cost"])
    return AdoptionRow(
        workflow_id=str(r["workflow_id"]), bucket_start=bucket, num_traces=traces,
        num_users=int(r["num_users"]), num_successes=ok,
        success_rate=ok / traces if traces else 0.0, total_cost=cost,
        cost_per_success=(cost / ok).quantize(_MONEY_QUANTUM, ROUND_HALF_EVEN) if ok else None)


def get_adoption(store: SpanStore, params: QueryParams, *, limit: int = 10) -> Adoption:
    """Runs, users, success and cost per successful outcome per workflow (and bucket).

    Args:
        store: the span store.
        params: time range, filters and ``bucket`` (minute, hour or day in
            ``params.time_zone``; None for totals only); group-by is ignored.
        limit: most workflows answered (1..:data:`MAX_WORKFLOWS`), most runs first.

    Returns:
        Totals per workflow and, with a bucket, rows per workflow and bucket.

    Raises:
        ValidationError: (422, field ``limit``) ``limit`` is out of range.
        QueryTimeout: the query ran past the store's time limit.
        StoreError: the query failed.
    """
    if not 1 <= limit <= MAX_WORKFLOWS:
        raise ValidationError("limit", f"Expected 1..{MAX_WORKFLOWS}, got {limit}")
    parts = SqlParts()
    runs = _runs_sql(params, parts)
    totals_sql = f"""WITH {runs}
SELECT workflow_id, {_MEASURES}
FROM runs GROUP BY workflow_id
ORDER BY num_traces DESC, total_cost DESC, workflow_id {FINAL_SETTINGS}"""
    every = store.query_arrow(totals_sql, parts.binds).to_pylist()
    totals = [_row(r, None) for r in every[:limit]]
    buckets: list[AdoptionRow] = []
    if params.bucket is not None and totals:
        parts = SqlParts()
        runs = _runs_sql(params, parts)
        names = ", ".join(parts.bind(w.workflow_id, "String") for w in totals)
        bucket = bucket_sql("started", params.bucket, params.time_zone)
        sql = f"""WITH {runs}
SELECT workflow_id, {bucket} AS bucket, {_MEASURES}
FROM runs WHERE workflow_id IN ({names}) GROUP BY workflow_id, bucket
ORDER BY bucket, workflow_id {FINAL_SETTINGS}"""
        rank = {w.workflow_id: n for n, w in enumerate(totals)}
        rows = store.query_arrow(sql, parts.binds).to_pylist()
        buckets = sorted((_row(r, _utc(r["bucket"])) for r in rows),
                         key=lambda row: (row.bucket_start, rank[row.workflow_id]))
    return Adoption(workflows=tuple(totals), buckets=tuple(buckets),
                    num_other_workflows=max(0, len(every) - limit))


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
