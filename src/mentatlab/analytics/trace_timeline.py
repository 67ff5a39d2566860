"""One trace as the waterfall draws it: a compact, flat timeline, and one span's detail.

The tree answer of :func:`mentatlab.analytics.traces.get_trace` carries every span in full
(attributes, events, resource): for a trace of 10,000 spans that is megabytes. The
timeline reads only the columns a waterfall row shows and lays the spans out in
depth-first order (children by start time), each with its depth and its parent's row, so
a client draws rows without building the tree. Siblings that share a name many times (an
agent loop's steps) are summarised as groups a client may show collapsed. The full span
is read one at a time, when someone opens it (:func:`get_span_detail`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from mentatlab.analytics.critical_path import compute_critical_path
from mentatlab.analytics.query import FINAL_SETTINGS, MODEL_EXPR, build_where
from mentatlab.errors import ValidationError
from mentatlab.model.schema import SPAN_SCHEMA, arrow_to_spans
from mentatlab.model.span import INHERITED_GROUPS, CanonicalSpan, SpanStatus
from mentatlab.storage.base import SpanStore

__all__ = ["DEFAULT_GROUP_MIN", "MAX_CHILDREN_LISTED", "SpanDetail", "SpanLink",
           "TraceTimeline", "get_span_detail", "get_trace_timeline", "inherited_groups"]

DEFAULT_GROUP_MIN = 5
"""Siblings sharing a name at least this many times form a group (a repeated loop)."""
MAX_CHILDREN_LISTED = 200
"""Most children a span detail lists (``num_children`` counts them all)."""

_LIGHT = (f"span_id, parent_span_id, name, toUnixTimestamp64Nano(start_time) AS start_ns,"
          f" toUnixTimestamp64Nano(end_time) AS end_ns, status, operation,"
          f" {MODEL_EXPR} AS model, total_cost, unattributed_cost,"
          f" JSONExtractBool(attributes, 'mentat.span.open') AS is_open")


@dataclass(frozen=True, slots=True)
class TraceTimeline:
    """A trace's spans in waterfall order, as columns (one list per field, row-aligned).

    ``columns`` holds ``span_id``, ``parent`` (row of the parent, -1 for a root),
    ``depth`` (0 for a root), ``name``, ``start_ms`` (from the trace's start),
    ``duration_ms``, ``status``, ``operation``, ``model``, ``total_cost``,
    ``subtree_cost`` and ``unattributed_cost`` (money as Decimal), ``num_children``,
    ``self_time_ms`` and ``critical_path_ms`` (:mod:`mentatlab.analytics.critical_path`).
    ``groups`` holds ``parent`` (row, -1 for roots), ``name``, ``num_spans`` (siblings),
    ``first`` (row of the earliest), ``subtree_cost`` (their subtrees' sum), ``start_ms``
    and ``end_ms``: one entry per name shared by at least ``group_min`` siblings.
    """

    trace_id: str
    num_spans: int
    start_time: datetime
    end_time: datetime
    duration_ms: float
    total_cost: Decimal
    status: str
    columns: dict[str, list[Any]]
    groups: dict[str, list[Any]]
    critical_path: tuple[str, ...] = ()
    """Span ids on the critical path, root first (each after its parent)."""


@dataclass(frozen=True, slots=True)
class SpanLink:
    """A span named from another one's detail (its parent or a child)."""

    span_id: str
    name: str
    total_cost: Decimal
    subtree_cost: Decimal


@dataclass(frozen=True, slots=True)
class SpanDetail:
    """One span in full, with its subtree cost and its neighbours in the tree."""

    span: CanonicalSpan
    subtree_cost: Decimal
    """The span's ``total_cost`` plus its descendants'."""
    parent: SpanLink | None
    """None for a root (no parent, or its parent is not stored)."""
    children: tuple[SpanLink, ...]
    """The first :data:`MAX_CHILDREN_LISTED` children by start time."""
    num_children: int


def inherited_groups(mask: int) -> list[str]:
    """Names of the attribution groups a span inherited: ``["agent_id", "run_id"]``.

    Each group is named by its first field (bit ``i`` → ``INHERITED_GROUPS[i][0]``).
    """
    return [group[0] for bit, group in enumerate(INHERITED_GROUPS) if mask >> bit & 1]


def _ns_to_datetime(ns: int) -> datetime:
    return datetime.fromtimestamp(ns // 1000 / 1e6, UTC)


def _read_light(store: SpanStore, trace_id: str,
                filters: Mapping[str, str] | None) -> list[dict[str, Any]]:
    parts = build_where(None, {**(filters or {}), "trace_id": trace_id})
    table = store.query_arrow(
        f"SELECT {_LIGHT} FROM spans FINAL WHERE {parts.where}"
        f" ORDER BY start_time, span_id {FINAL_SETTINGS}", parts.binds)
    rows: list[dict[str, Any]] = table.to_pylist()
    return rows


def _order(rows: list[dict[str, Any]]) -> tuple[list[int], list[int], list[int],
                                                 list[list[int]]]:
    """Depth-first order of ``rows`` (sorted by start): (order, parent row, depth, children).

    A span whose parent is absent, itself, or caught in a parent cycle is a root. The
    returned parent and depth are indexed by position in ``order``; children by row.
    """
    index = {r["span_id"]: i for i, r in enumerate(rows)}
    children: list[list[int]] = [[] for _ in rows]
    roots: list[int] = []
    for i, row in enumerate(rows):
        parent = index.get(row["parent_span_id"]) if row["parent_span_id"] else None
        if parent is None or parent == i:
            roots.append(i)
        else:
            children[parent].append(i)
    placed = [False] * len(rows)
    order: list[int] = []
    parent_pos: list[int] = []
    depth: list[int] = []

    def walk(top: int) -> None:
        # iterative: agent traces can be deeper than Python's recursion limit
        stack = [(top, -1, 0)]
        while stack:
            row, up, level = stack.pop()
            if placed[row]:
                continue
            placed[row] = True
            parent_pos.append(up)
            depth.append(level)
            order.append(row)
            here = len(order) - 1
            stack.extend((c, here, level + 1) for c in reversed(children[row]))

    for root in roots:
        walk(root)
    for i in range(len(rows)):  # spans in a parent cycle: surface them as roots
        if not placed[i]:
            walk(i)
    return order, parent_pos, depth, children


def _subtree_costs(rows: list[dict[str, Any]], order: list[int],
                   parent_pos: list[int]) -> list[Decimal]:
    """Subtree cost per position of ``order`` (children are always after their parent)."""
    costs = [Decimal(rows[r]["total_cost"]) for r in order]
    for pos in range(len(order) - 1, -1, -1):
        if parent_pos[pos] >= 0:
            costs[parent_pos[pos]] += costs[pos]
    return costs


def _trace_status(statuses: set[str]) -> str:
    if SpanStatus.ERROR.value in statuses:
        return "error"
    return "timeout" if SpanStatus.TIMEOUT.value in statuses else "ok"


def get_trace_timeline(store: SpanStore, trace_id: str,
                       filters: Mapping[str, str] | None = None,
                       group_min: int = DEFAULT_GROUP_MIN) -> TraceTimeline | None:
    """A trace's spans in waterfall order, with costs, self time and the critical path.

    Args:
        store: the span store.
        trace_id: 32 lowercase hex digits.
        filters: equality filters on canonical columns (a caller's org/project).
        group_min: siblings sharing a name at least this many times form a group (>= 2).

    Returns:
        The timeline (N rows for N spans), or None when no span of the trace is stored.

    Raises:
        ValidationError: ``group_min`` below 2.
        StoreError: the query failed.
    """
    if group_min < 2:
        raise ValidationError("group_min", f"Expected >= 2, got {group_min}")
    rows = _read_light(store, trace_id, filters)
    if not rows:
        return None
    order, parent_pos, depth, _ = _order(rows)
    subtree = _subtree_costs(rows, order, parent_pos)
    start_ns = min(int(r["start_ns"]) for r in rows)
    end_ns = max(int(r["end_ns"]) for r in rows)
    ordered = [rows[r] for r in order]
    columns: dict[str, list[Any]] = {
        "span_id": [r["span_id"] for r in ordered],
        "parent": parent_pos,
        "depth": depth,
        "name": [r["name"] for r in ordered],
        "start_ms": [(int(r["start_ns"]) - start_ns) / 1e6 for r in ordered],
        "duration_ms": [(int(r["end_ns"]) - int(r["start_ns"])) / 1e6 for r in ordered],
        "status": [r["status"] for r in ordered],
        "operation": [r["operation"] for r in ordered],
        "model": [r["model"] for r in ordered],
        "total_cost": [Decimal(r["total_cost"]) for r in ordered],
        "subtree_cost": subtree,
        "unattributed_cost": [Decimal(r["unattributed_cost"]) for r in ordered],
        "num_children": [0] * len(ordered),
    }
    path = compute_critical_path(parent_pos, [int(r["start_ns"]) for r in ordered],
                                 [int(r["end_ns"]) for r in ordered],
                                 [bool(r["is_open"]) for r in ordered])
    columns["self_time_ms"] = path.self_time_ms
    columns["critical_path_ms"] = path.critical_path_ms
    for up in parent_pos:
        if up >= 0:
            columns["num_children"][up] += 1
    return TraceTimeline(
        trace_id=trace_id, num_spans=len(rows), start_time=_ns_to_datetime(start_ns),
        end_time=_ns_to_datetime(end_ns), duration_ms=(end_ns - start_ns) / 1e6,
        total_cost=sum(columns["total_cost"], Decimal(0)),
        status=_trace_status({r["status"] for r in rows}),
        columns=columns, groups=_groups(columns, group_min),
        critical_path=tuple(columns["span_id"][r] for r in path.rows))


def _groups(columns: dict[str, list[Any]], group_min: int) -> dict[str, list[Any]]:
    """Sibling groups: names shared by at least ``group_min`` spans of one parent."""
    members: dict[tuple[int, str], list[int]] = {}
    for pos, (up, name) in enumerate(zip(columns["parent"], columns["name"], strict=True)):
        members.setdefault((up, name), []).append(pos)
    out: dict[str, list[Any]] = {"parent": [], "name": [], "num_spans": [], "first": [],
                                 "subtree_cost": [], "start_ms": [], "end_ms": []}
    for (up, name), rows in members.items():
        if len(rows) < group_min:
            continue
        out["parent"].append(up)
        out["name"].append(name)
        out["num_spans"].append(len(rows))
        out["first"].append(rows[0])
        out["subtree_cost"].append(sum((columns["subtree_cost"][r] for r in rows), Decimal(0)))
        out["start_ms"].append(min(columns["start_ms"][r] for r in rows))
        out["end_ms"].append(max(columns["start_ms"][r] + columns["duration_ms"][r]
                                 for r in rows))
    return out


def get_span_detail(store: SpanStore, trace_id: str, span_id: str,
                    filters: Mapping[str, str] | None = None) -> SpanDetail | None:
    """One span in full (attributes, events, costs, usage), its subtree cost and neighbours.

    Args:
        store: the span store.
        trace_id: 32 lowercase hex digits.
        span_id: 16 lowercase hex digits.
        filters: equality filters on canonical columns (a caller's org/project): the
            span and the tree around it are read from matching spans only.

    Returns:
        The detail, or None when the trace has no such span (for these filters).

    Raises:
        StoreError: a query failed.
    """
    parts = build_where(None, {**(filters or {}), "trace_id": trace_id})
    parts.conditions.append(f"span_id = {parts.bind(span_id, 'String')}")
    columns = ", ".join(f"`{name}`" for name in SPAN_SCHEMA.names)
    table = store.query_arrow(
        f"SELECT {columns} FROM spans FINAL WHERE {parts.where} LIMIT 1 {FINAL_SETTINGS}",
        parts.binds)
    if table.num_rows == 0:
        return None
    span = arrow_to_spans(table)[0]
    rows = _read_light(store, trace_id, filters)
    order, parent_pos, _, children = _order(rows)
    subtree = _subtree_costs(rows, order, parent_pos)
    pos_of = {row: pos for pos, row in enumerate(order)}
    row_of = {r["span_id"]: i for i, r in enumerate(rows)}
    me = row_of[span_id]

    def link(row: int) -> SpanLink:
        data = rows[row]
        return SpanLink(data["span_id"], data["name"], Decimal(data["total_cost"]),
                        subtree[pos_of[row]])

    up = parent_pos[pos_of[me]]
    kids = children[me]
    return SpanDetail(span=span, subtree_cost=subtree[pos_of[me]],
                      parent=link(order[up]) if up >= 0 else None,
                      children=tuple(link(k) for k in kids[:MAX_CHILDREN_LISTED]),
                      num_children=len(kids))
