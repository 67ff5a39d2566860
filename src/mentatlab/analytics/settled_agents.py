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
  range boundary; traces in several scopes).

A store the settle job never ran on, a filter other than tenancy, or more than
:data:`MAX_RAW_TRACES` such traces: the caller reads raw spans only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from mentatlab.analytics.query import QueryParams, SqlParts
from mentatlab.resolver.settle import read_settle_state
from mentatlab.storage.base import SpanStore
from mentatlab.storage.settled import TRACE_AGENTS_TABLE

__all__ = ["MAX_RAW_TRACES", "TENANCY_FILTERS", "SettledRead", "plan_settled_read",
           "raw_trace_ids", "tenancy_where"]

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

    None on a store the settle job never ran on, or with a filter other than tenancy.

    Raises:
        StoreError: the query failed.
    """
    if any(k not in TENANCY_FILTERS for k in params.filters):
        return None
    settled_ns = read_settle_state(store)
    if settled_ns is None:
        return None
    end = parts.bind(params.time_range.end, _TS)
    return SettledRead(
        settled_ns, f"toUnixTimestamp64Nano({parts.bind(params.time_range.start, _TS)})",
        f"toUnixTimestamp64Nano({end})", end, tenancy_where(params.filters, parts))


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
