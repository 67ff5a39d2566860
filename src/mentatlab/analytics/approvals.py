"""Human approval queue: how many wait, how long they waited, how many were approved.

An *approval* is the set of spans (its *sightings*) sharing a ``mentat.approval.id`` within
an org; a span with ``mentat.approval.state`` and no id is an approval of its own
(:mod:`mentatlab.conventions.oversight` lists the attributes). Per approval:

* ``requested`` = the earliest start of its sightings;
* its *decision* = the state of the sighting with a decided state (``approved``,
  ``rejected``, ``expired``) that ends first, and ``decided`` = that span's end. A span
  that covers the whole wait (a blocking ``wait_for_approval()`` call ending
  ``approved``) is both the request and the decision;
* ``wait`` = ``decided - requested`` (ns, shown in ms; 0 if a decision span ends before
  the request's start).

Over a window ``[start, end)`` (whole minutes, like every analytics range):

* ``num_requested``: approvals whose request lies in the window;
* ``num_decided`` and its split ``num_approved``/``num_rejected``/``num_expired``:
  approvals decided in the window; ``approval_rate`` = approved / decided (None when
  nothing was decided);
* ``wait_ms_p50``/``wait_ms_p95``/``wait_ms_max`` over the approvals decided in the
  window: exact nearest-rank percentiles (the smallest wait with at least p % of the
  waits at or below it; https://en.wikipedia.org/wiki/Percentile#The_nearest-rank_method);
* ``queue_length``: approvals requested before ``end`` (and not more than ``max_wait_s``
  before the window's start) without a decision before ``end``: the queue as it stood at
  ``end`` (now, for a window ending now); ``oldest_pending_ms`` = the longest wait among
  them, ``end - requested``.

Sightings are read from ``max_wait_s`` before the window's start, so a request made before
the window and decided in it counts its whole wait, up to that horizon (7 days by
default): an approval whose request is older counts from its earliest sighting inside
the horizon. Attribution (agent, workflow) is the request sighting's, inherited from
ancestors like every read (``spans FINAL``).

The attributes are read from the ``attributes`` JSON at query time; a ``position`` test on
the raw text skips every span without ``mentat.approval.state`` before any JSON parsing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from mentatlab.analytics.query import FINAL_SETTINGS, QueryParams, build_where
from mentatlab.conventions.oversight import (
    APPROVAL_ID_KEY,
    APPROVAL_REVIEWER_KEY,
    APPROVAL_STATE_KEY,
    DECIDED_STATES,
)
from mentatlab.errors import ValidationError
from mentatlab.storage.base import SpanStore

__all__ = [
    "APPROVAL_GROUP_BY",
    "DEFAULT_MAX_WAIT_S",
    "MAX_PENDING_LISTED",
    "ApprovalGroup",
    "ApprovalReport",
    "PendingApproval",
    "approval_metrics",
    "nearest_rank",
]

APPROVAL_GROUP_BY: Final = ("agent_id", "workflow_id", "reviewer")
"""What the metrics may be split by: the request's agent or workflow, or the reviewer of
the decision (``""`` for approvals still pending)."""
DEFAULT_MAX_WAIT_S: Final = 7 * 86_400
"""How far before the window sightings are read (seconds): the longest wait counted whole."""
MAX_MAX_WAIT_S: Final = 90 * 86_400
MAX_PENDING_LISTED: Final = 20
"""Oldest pending approvals listed in a report."""
_MAX_APPROVALS: Final = 1_000_000
_NS_PER_MS: Final = 1_000_000


def nearest_rank(sorted_values: Sequence[int], fraction: float) -> int | None:
    """The nearest-rank percentile of ascending ``sorted_values``; None when empty.

    The smallest value such that at least ``fraction`` (0 < fraction <= 1) of the values are
    at or below it: ``sorted_values[ceil(fraction * n) - 1]``.
    """
    if not sorted_values:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass(frozen=True, slots=True)
class PendingApproval:
    """An approval still waiting at the window's end."""

    approval_id: str
    org_id: str
    project_id: str
    agent_id: str
    workflow_id: str
    requested_at: datetime
    """When it was requested (UTC)."""
    age_ms: float
    """``end - requested_at``, ms."""
    trace_id: str
    span_id: str
    """The request sighting (evidence)."""


@dataclass(frozen=True, slots=True)
class ApprovalGroup:
    """The approval metrics of one group (or of everything), over the window."""

    key: dict[str, str]
    """The group's values (``{"agent_id": "triage"}``); empty for the total."""
    num_requested: int
    num_decided: int
    num_approved: int
    num_rejected: int
    num_expired: int
    approval_rate: float | None
    """``num_approved / num_decided`` (6 decimals); None when nothing was decided."""
    wait_ms_p50: float | None
    wait_ms_p95: float | None
    wait_ms_max: float | None
    queue_length: int
    """Approvals pending at the window's end."""
    oldest_pending_ms: float | None


@dataclass(frozen=True, slots=True)
class ApprovalReport:
    """Everything :func:`approval_metrics` found."""

    start: datetime
    end: datetime
    max_wait_s: int
    total: ApprovalGroup
    groups: list[ApprovalGroup] = field(default_factory=list)
    """One per group value, most requested first (empty without ``group_by``)."""
    oldest_pending: list[PendingApproval] = field(default_factory=list)
    """Up to :data:`MAX_PENDING_LISTED` pending approvals, oldest first."""


@dataclass(frozen=True, slots=True)
class _Approval:
    org_id: str
    approval_id: str
    project_id: str
    agent_id: str
    workflow_id: str
    trace_id: str
    span_id: str
    requested_ns: int
    decided_ns: int | None
    decision: str
    reviewer: str


def _sql(where: str) -> str:
    decided = ", ".join(f"'{s}'" for s in DECIDED_STATES)
    return f"""
SELECT org_id, aid, argMin(project_id, s) AS project_id, argMin(agent_id, s) AS agent_id,
       argMin(workflow_id, s) AS workflow_id, argMin(trace_id, s) AS trace_id,
       argMin(span_id, s) AS span_id, min(s) AS requested_ns,
       countIf(is_decided AND e < {{end_ns:Int64}}) AS num_decisions,
       minIf(e, is_decided AND e < {{end_ns:Int64}}) AS decided_ns,
       argMinIf(state, e, is_decided AND e < {{end_ns:Int64}}) AS decision,
       argMinIf(reviewer, e, is_decided AND e < {{end_ns:Int64}}) AS reviewer
FROM (
    SELECT org_id, project_id, agent_id, workflow_id, trace_id, span_id,
           toUnixTimestamp64Nano(start_time) AS s, toUnixTimestamp64Nano(end_time) AS e,
           lower(JSONExtractString(attributes, '{APPROVAL_STATE_KEY}')) AS state,
           JSONExtractString(attributes, '{APPROVAL_ID_KEY}') AS given_id,
           if(given_id != '', given_id, concat(trace_id, ':', span_id)) AS aid,
           JSONExtractString(attributes, '{APPROVAL_REVIEWER_KEY}') AS reviewer,
           state IN ({decided}) AS is_decided
    FROM spans FINAL
    WHERE {where} AND position(attributes, '"{APPROVAL_STATE_KEY}"') > 0
)
WHERE state != ''
GROUP BY org_id, aid
LIMIT {_MAX_APPROVALS}
{FINAL_SETTINGS}"""


def _read(store: SpanStore, params: QueryParams, lookback_start: datetime) -> list[_Approval]:
    window = params.time_range
    parts = build_where(None, params.filters)
    ts = "DateTime64(9, 'UTC')"
    parts.conditions.insert(0, f"start_time >= {parts.bind(lookback_start, ts)}")
    parts.conditions.insert(1, f"start_time < {parts.bind(window.end, ts)}")
    binds: dict[str, Any] = {**parts.binds, "end_ns": _ns(window.end)}
    rows = store.query_arrow(_sql(parts.where), binds).to_pylist()
    return [_Approval(
        org_id=str(r["org_id"]), approval_id=str(r["aid"]), project_id=str(r["project_id"]),
        agent_id=str(r["agent_id"]), workflow_id=str(r["workflow_id"]),
        trace_id=str(r["trace_id"]), span_id=str(r["span_id"]),
        requested_ns=int(r["requested_ns"]),
        decided_ns=int(r["decided_ns"]) if int(r["num_decisions"]) else None,
        decision=str(r["decision"]) if int(r["num_decisions"]) else "",
        reviewer=str(r["reviewer"]) if int(r["num_decisions"]) else "") for r in rows]


def _ns(at: datetime) -> int:
    delta = at.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000


def _group(key: dict[str, str], approvals: Iterable[_Approval], start_ns: int, end_ns: int
           ) -> ApprovalGroup:
    requested = decided = approved = rejected = expired = queue = 0
    waits: list[int] = []
    oldest: int | None = None
    for a in approvals:
        if start_ns <= a.requested_ns < end_ns:
            requested += 1
        if a.decided_ns is not None and start_ns <= a.decided_ns < end_ns:
            decided += 1
            approved += a.decision == "approved"
            rejected += a.decision == "rejected"
            expired += a.decision == "expired"
            waits.append(max(0, a.decided_ns - a.requested_ns))
        if a.decided_ns is None and a.requested_ns < end_ns:
            queue += 1
            age = end_ns - a.requested_ns
            oldest = age if oldest is None else max(oldest, age)
    waits.sort()

    def ms(value: int | None) -> float | None:
        return None if value is None else value / _NS_PER_MS

    return ApprovalGroup(
        key=key, num_requested=requested, num_decided=decided, num_approved=approved,
        num_rejected=rejected, num_expired=expired,
        approval_rate=round(approved / decided, 6) if decided else None,
        wait_ms_p50=ms(nearest_rank(waits, 0.5)), wait_ms_p95=ms(nearest_rank(waits, 0.95)),
        wait_ms_max=ms(waits[-1] if waits else None), queue_length=queue,
        oldest_pending_ms=ms(oldest))


def approval_metrics(store: SpanStore, params: QueryParams, *, group_by: str | None = None,
                     max_wait_s: int = DEFAULT_MAX_WAIT_S) -> ApprovalReport:
    """The approval queue over ``params.time_range`` (definitions in the module docstring).

    Args:
        store: the span store.
        params: the window (whole minutes) and equality filters (the caller's scope
            included); ``group_by``/``bucket`` of ``params`` are not used.
        group_by: split by one of :data:`APPROVAL_GROUP_BY`, or None.
        max_wait_s: seconds before the window's start that sightings are read from.

    Raises:
        ValidationError: an unknown ``group_by`` or a ``max_wait_s`` outside 0..90 days.
        QueryTimeout, StoreError: the store failed.
    """
    if group_by is not None and group_by not in APPROVAL_GROUP_BY:
        raise ValidationError("group_by", f"Expected one of {list(APPROVAL_GROUP_BY)}, "
                                          f"got {group_by!r}")
    if not 0 <= max_wait_s <= MAX_MAX_WAIT_S:
        raise ValidationError("max_wait_s", f"Expected 0..{MAX_MAX_WAIT_S} seconds, "
                                            f"got {max_wait_s}")
    window = params.time_range
    lookback_start = max(window.start - timedelta(seconds=max_wait_s),
                         datetime(1900, 1, 1, tzinfo=UTC))
    approvals = _read(store, params, lookback_start)
    start_ns, end_ns = _ns(window.start), _ns(window.end)
    # an approval that neither started, ended nor waited in the window is not its business
    relevant = [a for a in approvals
                if a.requested_ns >= start_ns or a.decided_ns is None
                or a.decided_ns >= start_ns]
    total = _group({}, relevant, start_ns, end_ns)
    groups: list[ApprovalGroup] = []
    if group_by is not None:
        by: dict[str, list[_Approval]] = {}
        for a in relevant:
            by.setdefault(str(getattr(a, group_by)), []).append(a)
        groups = [_group({group_by: k}, v, start_ns, end_ns) for k, v in by.items()]
        groups.sort(key=lambda g: (-g.num_requested, -g.queue_length, g.key[group_by]))
    pending = sorted((a for a in relevant if a.decided_ns is None and a.requested_ns < end_ns),
                     key=lambda a: (a.requested_ns, a.org_id, a.approval_id))
    oldest = [PendingApproval(
        approval_id=a.approval_id, org_id=a.org_id, project_id=a.project_id,
        agent_id=a.agent_id, workflow_id=a.workflow_id,
        requested_at=datetime.fromtimestamp(a.requested_ns // 10**9, UTC)
        + timedelta(microseconds=(a.requested_ns % 10**9) // 1000),
        age_ms=(end_ns - a.requested_ns) / _NS_PER_MS, trace_id=a.trace_id,
        span_id=a.span_id) for a in pending[:MAX_PENDING_LISTED]]
    return ApprovalReport(window.start, window.end, max_wait_s, total, groups, oldest)
