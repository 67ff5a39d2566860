"""Policy decisions over time: what the guardrail policies matched, by action and by policy.

A span holds one decision per policy that matched it, in the parallel arrays
``policy_ids``, ``policy_versions`` and ``policy_actions`` (span-store migration 9,
docs/decisions/0018). Over the spans in the range and filter (their ``start_time``):

* ``by_action``: decisions per action (``block``, ``alert``, ``redact``, ``log``);
* ``num_spans``: spans with at least one decision; ``num_blocked``: spans with a ``block``
  decision (the actions that were stopped: the SDK's ``guard`` asks before acting, and a
  blocked span is stored without its payload);
* ``policies``: per (policy, action) the decisions, the spans, the latest version seen
  and the last time it matched, most decisions first;
* ``buckets``: decisions per (bucket, action), with a bucket.

Decisions of a span stored more than once (a late attribute, a re-settle) are counted
once: the store is read ``FINAL``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from mentatlab.analytics.query import FINAL_SETTINGS, QueryParams, SqlParts, bucket_sql, build_where
from mentatlab.errors import ValidationError
from mentatlab.storage.base import SpanStore

__all__ = ["MAX_POLICIES", "PolicyDecisions", "PolicyRow", "get_policy_decisions"]

MAX_POLICIES: Final = 200
"""Most (policy, action) rows one answer holds."""


@dataclass(frozen=True, slots=True)
class PolicyRow:
    """One policy's decisions of one action in the range."""

    policy_id: str
    action: str
    num_decisions: int
    num_spans: int
    latest_version: int
    """Highest policy version among the decisions."""
    last_seen: datetime
    """UTC ``start_time`` of the latest span it matched."""


@dataclass(frozen=True, slots=True)
class PolicyDecisions:
    """The answer of :func:`get_policy_decisions`."""

    num_spans: int
    """Spans with at least one decision."""
    num_blocked: int
    """Spans with a ``block`` decision."""
    by_action: Mapping[str, int]
    """Decisions per action."""
    policies: tuple[PolicyRow, ...]
    """Per (policy, action), most decisions first, at most ``limit``."""
    buckets: tuple[tuple[datetime, str, int], ...]
    """``(bucket start UTC, action, decisions)`` by bucket then action; empty without a
    bucket."""


def _where(params: QueryParams, parts: SqlParts) -> str:
    build_where(params.time_range, params.filters, parts)
    return f"{parts.where} AND notEmpty(policy_actions)"


def get_policy_decisions(store: SpanStore, params: QueryParams, *,
                         limit: int = 50) -> PolicyDecisions:
    """Policy decisions in the range, by action, by policy and (with a bucket) over time.

    Args:
        store: the span store (migrated to 9 or later).
        params: time range, filters and ``bucket`` (minute, hour or day in
            ``params.time_zone``; None for no time series); group-by is ignored.
        limit: most (policy, action) rows (1..:data:`MAX_POLICIES`).

    Raises:
        ValidationError: (422, field ``limit``) ``limit`` is out of range.
        QueryTimeout: the query ran past the store's time limit.
        StoreError: the query failed.
    """
    if not 1 <= limit <= MAX_POLICIES:
        raise ValidationError("limit", f"Expected 1..{MAX_POLICIES}, got {limit}")
    parts = SqlParts()
    where = _where(params, parts)
    totals = store.query_arrow(f"""SELECT toInt64(count()) AS num_spans,
    toInt64(countIf(has(policy_actions, 'block'))) AS num_blocked
FROM spans FINAL WHERE {where} {FINAL_SETTINGS}""", parts.binds).to_pylist()[0]
    parts = SqlParts()
    where = _where(params, parts)
    by_action = store.query_arrow(f"""SELECT action, toInt64(count()) AS num_decisions
FROM spans FINAL ARRAY JOIN policy_actions AS action
WHERE {where} GROUP BY action ORDER BY action {FINAL_SETTINGS}""", parts.binds).to_pylist()
    parts = SqlParts()
    where = _where(params, parts)
    rows = store.query_arrow(f"""SELECT policy_id, action, toInt64(count()) AS num_decisions,
    toInt64(uniqExact(trace_id, span_id)) AS num_spans,
    toInt64(max(version)) AS latest_version, max(start_time) AS last_seen
FROM spans FINAL
ARRAY JOIN policy_ids AS policy_id, policy_versions AS version, policy_actions AS action
WHERE {where}
GROUP BY policy_id, action
ORDER BY num_decisions DESC, policy_id, action LIMIT {int(limit)} {FINAL_SETTINGS}""",
                             parts.binds).to_pylist()
    buckets: list[tuple[datetime, str, int]] = []
    if params.bucket is not None:
        parts = SqlParts()
        where = _where(params, parts)
        bucket = bucket_sql("start_time", params.bucket, params.time_zone)
        series = store.query_arrow(f"""SELECT {bucket} AS bucket, action,
    toInt64(count()) AS num_decisions
FROM spans FINAL ARRAY JOIN policy_actions AS action
WHERE {where}
GROUP BY bucket, action ORDER BY bucket, action {FINAL_SETTINGS}""", parts.binds).to_pylist()
        buckets = [(_utc(r["bucket"]), str(r["action"]), int(r["num_decisions"]))
                   for r in series]
    return PolicyDecisions(
        num_spans=int(totals["num_spans"]), num_blocked=int(totals["num_blocked"]),
        by_action={str(r["action"]): int(r["num_decisions"]) for r in by_action},
        policies=tuple(_policy_row(r) for r in rows), buckets=tuple(buckets))


def _policy_row(r: Mapping[str, Any]) -> PolicyRow:
    return PolicyRow(policy_id=str(r["policy_id"]), action=str(r["action"]),
                     num_decisions=int(r["num_decisions"]), num_spans=int(r["num_spans"]),
                     latest_version=int(r["latest_version"]), last_seen=_utc(r["last_seen"]))


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
