"""Reading LLM calls from ``llm_calls`` and raw spans together, exactly.

The settle job stores one narrow row per LLM call or retry span of a settled trace
(``llm_calls``, storage/settled.py): the keys as ``LowCardinality``, token counts without
``NULL``, the two costs, status and duration, sorted like ``spans``. Reading it instead of
the wide ``spans`` is what makes :func:`~mentatlab.analytics.cost_views.provider_models`
and the recommendations census cheap at 10M spans (bench/RESULTS.md).

:func:`calls_from` returns the ``FROM`` source both read: the rows of ``llm_calls FINAL``
of the traces settled (every span committed at or before the settle watermark ``S``),
and, ``UNION ALL``, the same columns computed from ``spans FINAL`` for the unsettled tail
(traces with a span committed after ``S``, :func:`~mentatlab.analytics.compare.read_tail`),
so each call counts once, by one of the two. The tail's traces are left out of the
settled side only from the earliest settled row of theirs on (one read through the
``trace_id`` bloom index), so an old range reads no ``trace_id`` for that.

None (the caller reads raw spans only): a store the settle job never ran on, a filter
that reads a column ``llm_calls`` lacks (:data:`~mentatlab.storage.settled.LLM_CALLS_FILTERS`),
or an unsettled tail of more than :data:`~mentatlab.analytics.compare.TAIL_IDS_MAX`
traces (after migration 10 reset ``S``, until the job has settled every trace again).
The answer is the same either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from mentatlab.analytics.compare import read_tail
from mentatlab.analytics.query import (
    LLM_CALL_FAST,
    QueryParams,
    SqlParts,
    build_where,
)
from mentatlab.analytics.settled_agents import TENANCY_FILTERS
from mentatlab.resolver.settle import read_settle_state
from mentatlab.storage.base import SpanStore
from mentatlab.storage.settled import LLM_CALLS_COLUMNS, LLM_CALLS_FILTERS, LLM_CALLS_TABLE

__all__ = ["calls_from"]

_COLUMNS: Final = {name: (kind, expr) for name, kind, expr in LLM_CALLS_COLUMNS}
_TS: Final = "DateTime64(9, 'UTC')"


def calls_from(store: SpanStore, params: QueryParams, parts: SqlParts,
               columns: Sequence[str], *, retries: bool = False) -> str | None:
    """A ``FROM`` source of the range's LLM calls (and retries), or None: read raw spans.

    Each row is one call with ``columns`` (names of ``llm_calls`` columns, typed as
    there), the calls whose ``start_time`` is in ``params.time_range`` and that meet
    ``params.filters``. The source is a subquery; it needs no ``FINAL`` (its parts have
    it) and ends without ``SETTINGS``: the caller appends
    :data:`~mentatlab.analytics.query.FINAL_SETTINGS`.

    Args:
        store: the span store.
        params: range and filters.
        parts: where the values are bound (the caller's query binds).
        columns: the columns wanted.
        retries: also the retry spans (``is_retry``) that are not LLM calls.

    Raises:
        StoreError: a query failed.
    """
    if any(k not in LLM_CALLS_FILTERS for k in params.filters):
        return None
    settled_ns = read_settle_state(store)
    if settled_ns is None:
        return None
    tenancy = {k: str(v) for k, v in params.filters.items() if k in TENANCY_FILTERS}
    tail = read_tail(store, settled_ns, tenancy)
    if tail.trace_ids is None:
        return None
    names = ", ".join(columns)
    settled_rows = "(llm OR is_retry)" if retries else "llm"
    raw_rows = f"({LLM_CALL_FAST} OR is_retry)" if retries else LLM_CALL_FAST
    settled = build_where(params.time_range, params.filters, SqlParts(binds=parts.binds))
    settled.conditions.append(settled_rows)
    selects: list[str] = []
    if not tail.trace_ids:
        selects.append(f"SELECT {names} FROM {LLM_CALLS_TABLE} FINAL WHERE {settled.where}")
    else:
        ids = parts.bind(list(tail.trace_ids), "Array(String)")
        (row,) = store.query_arrow(
            f"SELECT count() AS n, min(start_time) AS lo FROM {LLM_CALLS_TABLE}"
            f" WHERE trace_id IN {ids}", parts.binds).to_pylist()
        if not row["n"]:  # no tail trace was ever settled: nothing to leave out
            selects.append(f"SELECT {names} FROM {LLM_CALLS_TABLE} FINAL"
                           f" WHERE {settled.where}")
        else:
            lo = parts.bind(row["lo"], _TS)
            selects.append(f"SELECT {names} FROM {LLM_CALLS_TABLE} FINAL"
                           f" WHERE {settled.where} AND start_time < {lo}")
            selects.append(f"SELECT {names} FROM {LLM_CALLS_TABLE} FINAL"
                           f" WHERE {settled.where} AND start_time >= {lo}"
                           f" AND trace_id NOT IN {ids}")
        raw = build_where(params.time_range, params.filters, SqlParts(binds=parts.binds))
        raw.conditions += [raw_rows, f"trace_id IN {ids}"]
        inner = ", ".join(f"CAST({_COLUMNS[c][1]} AS {_COLUMNS[c][0]}) AS c_{c}"
                          for c in columns)
        outer = ", ".join(f"c_{c} AS {c}" for c in columns)
        selects.append(f"SELECT {outer} FROM (SELECT {inner} FROM spans FINAL"
                       f" WHERE {raw.where})")
    return "(" + "\n    UNION ALL ".join(selects) + ")"
