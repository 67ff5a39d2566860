"""PII findings over time: how many the redact stage recorded, by category, project and key.

Reads ``spans.pii_findings`` (a JSON array per span, written by
:mod:`mentatlab.pipeline.redact`; never a value, only category, key, offset, length and
confidence) with ClickHouse's JSON functions, so the same SQL runs on chDB and ClickHouse.
Over the spans in the range and filter, per group:

* ``num_findings``: findings (one span can hold several);
* ``num_spans``: distinct spans holding at least one (``uniqExact(trace_id, span_id)``).

Groups: category, project, attribute key (event keys ``event:<i>:<key>`` counted as
``event:<key>``, whatever the event's index), and category × project × key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from mentatlab.analytics.query import FINAL_SETTINGS, QueryParams, SqlParts, build_where
from mentatlab.storage.base import SpanStore

__all__ = ["MAX_ROWS", "PiiFindingCount", "PiiSummary", "get_pii_summary"]

MAX_ROWS: Final = 1000
"""Most category × project × key rows one answer holds (most findings first)."""


@dataclass(frozen=True, slots=True)
class PiiFindingCount:
    """Findings of one group."""

    category: str | None
    """Category (``EMAIL_ADDRESS``...); None in a breakdown that does not group by it."""
    project_id: str | None
    """Project; None in a breakdown that does not group by it."""
    key: str | None
    """Attribute key (``event:<key>`` for event attributes); None when not grouped by."""
    num_findings: int
    num_spans: int


@dataclass(frozen=True, slots=True)
class PiiSummary:
    """The answer of :func:`get_pii_summary`."""

    num_findings: int
    num_spans: int
    """Spans holding at least one finding."""
    by_category: tuple[PiiFindingCount, ...]
    by_project: tuple[PiiFindingCount, ...]
    by_key: tuple[PiiFindingCount, ...]
    rows: tuple[PiiFindingCount, ...]
    """Category × project × key, most findings first, at most ``MAX_ROWS``."""
    truncated: bool
    """True when more than ``MAX_ROWS`` category × project × key groups exist."""


# grouping(category, project_id, key) bits: 4 = category not grouped, 2 = project, 1 = key
_SETS = {3: "by_category", 5: "by_project", 6: "by_key", 0: "rows", 7: "total"}


def get_pii_summary(store: SpanStore, params: QueryParams) -> PiiSummary:
    """Counts of PII findings in a time range, by category, project and attribute key.

    Args:
        store: the span store.
        params: time range and filters (an org filter scopes it); group-by, bucket ignored.

    Returns:
        Totals, the three breakdowns (most findings first) and the crossed rows.

    Raises:
        QueryTimeout: the query ran past the store's time limit.
        StoreError: the query failed.
    """
    parts = SqlParts()
    build_where(params.time_range, params.filters, parts)
    sql = f"""SELECT f.1 AS category, project_id,
    replaceRegexpOne(f.2, '^event:[0-9]+:', 'event:') AS key,
    toInt64(count()) AS num_findings, toInt64(uniqExact(trace_id, span_id)) AS num_spans,
    toUInt8(grouping(category, project_id, key)) AS grouping_set
FROM (SELECT trace_id, span_id, project_id, pii_findings FROM spans FINAL
      WHERE {parts.where} AND pii_findings != '')
ARRAY JOIN arrayMap(x -> (JSONExtractString(x, 'category'), JSONExtractString(x, 'key')),
                    JSONExtractArrayRaw(pii_findings)) AS f
GROUP BY GROUPING SETS ((category), (project_id), (key), (category, project_id, key), ())
ORDER BY grouping_set, num_findings DESC, category, project_id, key {FINAL_SETTINGS}"""
    groups: dict[str, list[PiiFindingCount]] = {name: [] for name in _SETS.values()}
    for r in store.query_arrow(sql, parts.binds).to_pylist():
        groups[_SETS[int(r["grouping_set"])]].append(_count(r, int(r["grouping_set"])))
    total = groups["total"][0] if groups["total"] else None
    rows = groups["rows"]
    return PiiSummary(
        num_findings=total.num_findings if total else 0,
        num_spans=total.num_spans if total else 0,
        by_category=tuple(groups["by_category"]), by_project=tuple(groups["by_project"]),
        by_key=tuple(groups["by_key"]), rows=tuple(rows[:MAX_ROWS]),
        truncated=len(rows) > MAX_ROWS)


def _count(r: Mapping[str, Any], grouping_set: int) -> PiiFindingCount:
    return PiiFindingCount(
        category=None if grouping_set & 4 else str(r["category"]),
        project_id=None if grouping_set & 2 else str(r["project_id"]),
        key=None if grouping_set & 1 else str(r["key"]),
        num_findings=int(r["num_findings"]), num_spans=int(r["num_spans"]))
