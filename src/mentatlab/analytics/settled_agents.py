"""Reading agent runs and calls from ``trace_agents`` and raw spans together, exactly.

The settle job stores per settled (org, project, trace) its agents' runs and its agent and
tool calls (``trace_agents``, storage/settled.py), so :mod:`mentatlab.analytics.peers` and
:mod:`mentatlab.analytics.graph` need not group ten million spans by trace or join spans
with their parents on every request. A stored row gives the raw answer's numbers only
for a trace that is settled, lies in one (org, workspace, project) and, for runs, has
every run span inside the range. The reader takes those from ``trace_agents`` and every
other trace that can count, named by :func:`raw_trace_ids`, from raw spans, so each trace
counts once, by one of the two:

* the unsettled tail: traces with a span committed after the settle watermark ``S``;
* the traces the caller's ``also`` condition names on ``trace_agents`` (runs crossing a
  range boundary; traces in several scopes; for the graph, traces whose agent spans
  start beyond the parent look-back).

A store the settle job never ran on, a filter other than tenancy, or more than
:data:`MAX_RAW_TRACES` such traces: the caller reads raw spans only. So does a range
holding fewer spans than ``trace_agents`` holds rows (``EXPLAIN ESTIMATE``, index
granules, no data read): the rows are sorted by trace, not time, so a settled read costs
about one read per stored row whatever the range, a raw read one per span in the range (at
10M spans over 30 days: 1.25M rows, the crossing near 2-3 days; a 24 h range reads raw).
The answer is the same either way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from mentatlab.analytics.query import QueryParams, SqlParts, build_where
from mentatlab.resolver.settle import read_settle_state
from mentatlab.storage.base import SpanStore
from mentatlab.storage.settled import TRACE_AGENTS_TABLE

__all__ = ["MAX_RAW_TRACES", "MIN_SPANS_PER_ROW", "TENANCY_FILTERS", "SettledRead",
           "plan_settled_read", "raw_trace_ids", "tenancy_where"]

MIN_SPANS_PER_ROW: float = 1.0
"""A settled read only when the range's spans (estimated) are at least this many times the
``trace_agents`` rows (estimated, within the tenancy); below it raw spans are cheaper."""
MAX_RAW_TRACES: Final = 50_000
"""Most traces read from raw spans beside ``trace_agents``; beyond it, all raw."""
TENANCY_FILTERS: Final = ("org_id", "workspace_id", "project_id")
"""Filter names a settled read supports (every span of a stored row shares them)."""
_TS: Final = "DateTime64(9, 'UTC')"


@dataclass(frozen=True, slots=True)
class SettledRead:
    """A settled read's SQL pieces (their values bound in the caller's ``SqlParts``)."""

    settled_ns: int
    """The settle watermark ``S``."""
    lo: str
    """The range start, ns since the epoch."""
    hi: str
    """The range end (exclusive), ns."""
    end: str
    """The range end (exclusive), ``DateTime64(9, 'UTC')``."""
    scope: str
    """The tenancy filters as a condition on ``spans`` or ``trace_agents`` (``1``: none)."""


def tenancy_where(filters: Mapping[str, str], parts: SqlParts) -> str:
    """``org_id = … AND …`` of the tenancy ``filters`` (binds go to ``parts``); ``1``."""
    conditions = [f"{k} = {parts.bind(str(v), 'String')}" for k, v in filters.items()]
    return " AND ".join(conditions) or "1"


def plan_settled_read(store: SpanStore, params: QueryParams, parts: SqlParts
                      ) -> SettledRead | None:
    """A settled read of ``params``, or None when raw spans alone must answer.

    None on a store the settle job never ran on, with a filter other than tenancy, or for
    a range with fewer spans than :data:`MIN_SPANS_PER_ROW` per ``trace_agents`` row.

    Raises:
        StoreError: the query failed.
    """
    if any(k not in TENANCY_FILTERS for k in params.filters):
        return None
    settled_ns = read_settle_state(store)
    if settled_ns is None:
        return None
    if _raw_is_cheaper(store, params):
        return None
    end = parts.bind(params.time_range.end, _TS)
    return SettledRead(
        settled_ns, f"toUnixTimestamp64Nano({parts.bind(params.time_range.start, _TS)})",
        f"toUnixTimestamp64Nano({end})", end, tenancy_where(params.filters, parts))


def _raw_is_cheaper(store: SpanStore, params: QueryParams) -> bool:
    """Whether the range holds fewer spans than the rows a settled read would read."""
    parts = SqlParts()
    spans = build_where(params.time_range, params.filters, SqlParts(binds=parts.binds))
    scope = tenancy_where(params.filters, parts)
    rows = store.query_arrow(
        f"EXPLAIN ESTIMATE SELECT 1 FROM spans WHERE {spans.where}"
        f" UNION ALL SELECT 1 FROM {TRACE_AGENTS_TABLE} WHERE {scope}", parts.binds).to_pylist()
    estimate = {str(r["table"]): int(r["rows"]) for r in rows}
    if not estimate.get(TRACE_AGENTS_TABLE):
        # no row in the scope: nothing settled there, or a table the settle job has not
        # filled yet (a store upgraded since its last pass): raw spans are right
        return True
    if "spans" not in estimate:  # no estimate (a cluster's Distributed spans): settled
        return False
    return estimate["spans"] < MIN_SPANS_PER_ROW * estimate[TRACE_AGENTS_TABLE]


def raw_trace_ids(store: SpanStore, read: SettledRead, also: str, parts: SqlParts
                  ) -> list[str] | None:
    """Traces to read from raw spans: the unsettled tail and ``trace_agents`` rows ``also``.

    Args:
        store: the span store.
        read: the settled read.
        also: a condition on ``trace_agents`` rows, within the tenancy. Read without
            ``FINAL``: a replaced row may add a trace, which is then read raw (and left
            out of the settled side), still once.
        parts: the binds ``read`` and ``also`` use.

    Returns:
        The trace ids (sorted), or None when more than :data:`MAX_RAW_TRACES`.

    Raises:
        QueryTimeout: the query ran past the store's time limit.
        StoreError: the query failed.
    """
    tenancy = read.scope
    sql = (f"SELECT trace_id FROM (SELECT trace_id FROM spans"
           f" WHERE ingested_at_ns > {int(read.settled_ns)} AND {tenancy}"
           f" UNION DISTINCT SELECT trace_id FROM {TRACE_AGENTS_TABLE}"
           f" WHERE {tenancy} AND ({also})) LIMIT {MAX_RAW_TRACES + 1}")
    ids = sorted(str(t) for t in store.query_arrow(sql, parts.binds).column(0).to_pylist())
    return None if len(ids) > MAX_RAW_TRACES else ids
