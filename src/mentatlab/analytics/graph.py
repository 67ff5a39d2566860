"""The agent graph: agents and tools as nodes, the calls between them as links.

Definitions (over the spans whose ``start_time`` is in the range and that meet the
filter; the filter's tenancy also bounds the parent spans read):

* An **agent call** is a span with ``operation = 'agent'`` and its *own* ``agent_id``
  (not inherited from an ancestor: bit 0 of ``inherited`` clear, ``model/span.py``), so
  the inner step spans of one agent run, which inherit its id, are not calls. Its node
  is ``agent:<agent_id>``.
* A **tool call** is a span with ``operation = 'tool'`` and a ``tool_name``. Its node is
  ``tool:<tool_name>``.
* The **caller** of a call is the agent the call ran under, skipping every span in
  between that is not an agent's (LLM calls, retrieval, steps, framework wrappers):

  - of a tool call, its ``agent_id`` (its own, else inherited from the nearest ancestor
    that has one: the attribution resolver's rule, so the intermediate spans are skipped
    without walking them);
  - of an agent call, its **parent span's** ``agent_id`` (likewise the nearest agent
    above it). One self-join on ``(trace_id, parent_span_id) = (trace_id, span_id)``
    reads only the parents of agent calls (``span_id IN`` their parent ids, the latest
    version of each by ``ingested_at_ns``, as ``FINAL`` would keep), over the range
    widened by :data:`PARENT_LOOKBACK` on both sides (a parent started before the
    range; clock skew).

  Settled traces are read from the rows the settle job stores per trace
  (``trace_agents``: each call with its caller; a trace whose agent spans start beyond
  the look-back is read raw), the rest from raw spans, with the same numbers
  (:mod:`mentatlab.analytics.settled_agents` says which).

  A call without a caller (a root agent, a tool outside any agent, a parent not stored
  or in another tenancy) counts on its node but makes no link. An agent calling itself
  (recursion, or a nested run of the same agent) is a self-link.
* **Link** ``caller → callee``: ``count`` calls; ``error_rate`` = calls whose status is
  not ``ok`` (``error`` or ``timeout``) / ``count``; latency of the *called* span's
  ``duration_ms``: ``p50_ms`` and ``p95_ms`` exact with linear interpolation between
  closest ranks (ClickHouse ``quantilesExactInclusive``, numpy's default
  ``method="linear"``) and ``mean_ms``. A **node** carries the same numbers over all its
  calls (whatever the caller); an agent seen only as a caller has ``calls = 0``.
* **Bounds.** The ``limit`` nodes with the most calls are kept (ties by kind, then name)
  and agents that call them are added; links run between kept nodes, at most
  :data:`MAX_LINKS`, most calls first. ``num_nodes`` and ``num_links`` count all of them.
* **Back edges** (for an acyclic view such as a Sankey): a depth-first walk from the
  nodes in output order, following links in output order, marks each link that reaches a
  node still on the walk's stack (self-links included) ``back_edge``; the links not so
  marked form an acyclic graph (a DFS back edge closes every cycle, Cormen et al.,
  *Introduction to Algorithms*, 3rd ed., §22.3, Lemma 22.11).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Final

from mentatlab.analytics.query import FINAL_SETTINGS, QueryParams, SqlParts, TimeRange, build_where
from mentatlab.analytics.settled_agents import plan_settled_read, raw_trace_ids
from mentatlab.errors import ValidationError
from mentatlab.storage.base import SpanStore
from mentatlab.storage.settled import AGENT_CALL, CALL, TRACE_AGENTS_TABLE

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "MAX_LINKS", "PARENT_LOOKBACK", "AgentGraph",
           "GraphLink", "GraphNode", "get_agent_graph", "mark_back_edges"]

DEFAULT_LIMIT: Final = 100
"""Nodes kept when the caller names no ``limit``."""
MAX_LIMIT: Final = 500
"""Most nodes one answer may keep."""
MAX_LINKS: Final = 5_000
"""Most links one answer holds (most calls first)."""
PARENT_LOOKBACK: Final = timedelta(days=1)
"""How far outside the range a parent of an agent call is looked for."""
TENANCY_FILTERS: Final = ("org_id", "workspace_id", "project_id")
"""Filter names that also bound the parent spans read."""


@dataclass(frozen=True, slots=True)
class GraphNode:
    """An agent or a tool, with its calls over the range."""

    id: str
    """``agent:<agent_id>`` or ``tool:<tool_name>``."""
    kind: str
    """``agent`` or ``tool``."""
    name: str
    calls: int
    """Calls of this agent or tool (spans, any caller); 0 for an agent seen only calling."""
    errors: int
    """Calls whose status is ``error`` or ``timeout``."""
    error_rate: float
    """``errors / calls`` (0 when no calls)."""
    p50_ms: float
    """Median duration of the calls, ms (0 when no calls)."""
    p95_ms: float
    mean_ms: float


@dataclass(frozen=True, slots=True)
class GraphLink:
    """Calls from an agent to an agent or a tool."""

    source: str
    """Node id of the calling agent."""
    target: str
    """Node id of the called agent or tool."""
    count: int
    errors: int
    error_rate: float
    """``errors / count``."""
    p50_ms: float
    """Median duration of the called spans, ms."""
    p95_ms: float
    mean_ms: float
    back_edge: bool = False
    """Closes a cycle in the depth-first walk (see the module doc); a Sankey omits it."""


@dataclass(frozen=True, slots=True)
class AgentGraph:
    """The answer of :func:`get_agent_graph`."""

    nodes: tuple[GraphNode, ...]
    """Most calls first (ties: kind, name); caller-only agents last."""
    links: tuple[GraphLink, ...]
    """Most calls first (ties: source, target)."""
    num_nodes: int
    """Nodes with a call in the range, before ``limit``."""
    num_links: int
    """Distinct caller → callee pairs in the range, before any bound."""


def _raw_calls(params: QueryParams, parts: SqlParts, trace_ids: str | None = None) -> str:
    """One row per call from raw spans (kind, name, caller, duration, failed).

    With ``trace_ids`` (SQL of a set), only the calls and parents of those traces.
    """
    build_where(params.time_range, params.filters, parts)
    tenancy = {k: v for k, v in params.filters.items() if k in TENANCY_FILTERS}
    wide = params.time_range
    wide = TimeRange(wide.start - PARENT_LOOKBACK, wide.end + PARENT_LOOKBACK)
    parent_parts = SqlParts(binds=parts.binds)
    build_where(wide, tenancy, parent_parts)
    if trace_ids is not None:
        parts.conditions.append(f"trace_id IN {trace_ids}")
        parent_parts.conditions.append(f"trace_id IN {trace_ids}")
    where = parts.where
    return f"""SELECT c.kind AS kind, c.name AS name,
    if(c.kind = 'agent', p.agent_id, c.agent_id) AS caller,
    c.duration_ms AS duration_ms, c.failed AS failed
FROM (
    SELECT trace_id, parent_span_id, if(operation = 'agent', 'agent', 'tool') AS kind,
        if(operation = 'agent', agent_id, tool_name) AS name, agent_id, duration_ms,
        toUInt8(status != 'ok') AS failed
    FROM spans FINAL WHERE {where} AND ({CALL})
) AS c
LEFT JOIN (
    SELECT trace_id, span_id, argMax(agent_id, ingested_at_ns) AS agent_id FROM spans
    WHERE {parent_parts.where} AND span_id IN (
        SELECT parent_span_id FROM spans WHERE {where} AND {AGENT_CALL})
    GROUP BY trace_id, span_id
) AS p ON c.trace_id = p.trace_id AND c.parent_span_id = p.span_id"""


_MEASURES = ("toInt64(count()) AS calls, toInt64(sum(failed)) AS errors,"
             " quantilesExactInclusiveState(0.5, 0.95)(duration_ms) AS q,"
             " avgState(duration_ms) AS mean")
"""Per group of calls: counts and mergeable exact-quantile and mean states."""


def _groups_sql(store: SpanStore, params: QueryParams, parts: SqlParts) -> str:
    """The CTE ``groups``: calls per (kind, name, caller), in one or two rows each.

    Settled traces from ``trace_agents`` when it can, the others from raw spans.
    """
    read = plan_settled_read(store, params, parts)
    lookback = int(PARENT_LOOKBACK.total_seconds() * 1e9)
    # read raw: traces in several scopes, and those where a caller may have started
    # beyond the look-back (a caller's span carries an agent_id: it is a run span, so it
    # starts within [run_first_ns, run_last_ns]); no stored caller needs the check then
    ids = None if read is None else raw_trace_ids(store, read, (
        f"notEmpty(call_link) AND start_time < {read.end} AND (single_scope = 0"
        f" OR run_first_ns < {read.lo} - {lookback} OR run_last_ns >= {read.hi} + {lookback})"
    ), parts)
    raw_parts = SqlParts(binds=parts.binds)
    if read is None or ids is None:
        return f"""groups AS (
SELECT kind, name, caller, {_MEASURES} FROM ({_raw_calls(params, raw_parts)})
GROUP BY kind, name, caller)"""
    bound = parts.bind(ids, "Array(String)")
    not_raw = f" AND trace_id NOT IN {bound}" if ids else ""
    # grouped by the one LowCardinality call_link (<kind>:<n>:<name><caller>), then split
    settled = f"""SELECT kind, name, caller, calls, errors, q, mean FROM (
SELECT substring(link, 1, position(link, ':') - 1) AS kind,
    substring(link, length(kind) + 2) AS rest,
    substring(rest, position(rest, ':') + 1,
              toUInt64(substring(rest, 1, position(rest, ':') - 1))) AS name,
    substring(rest, position(rest, ':') + 1 + length(name)) AS caller,
    calls, errors, q, mean
FROM (
    SELECT link, {_MEASURES}
    FROM {TRACE_AGENTS_TABLE} FINAL
    ARRAY JOIN call_link AS link, call_start_ns AS start_ns,
        call_duration_ms AS duration_ms, call_failed AS failed
    WHERE {read.scope} AND single_scope = 1 AND start_time < {read.end}{not_raw}
        AND start_ns >= {read.lo} AND start_ns < {read.hi}
    GROUP BY link))"""
    if not ids:
        return f"groups AS (\n{settled})"
    raw = _raw_calls(params, raw_parts, bound)
    return f"""groups AS (
{settled}
UNION ALL
SELECT kind, name, caller, {_MEASURES} FROM ({raw}) GROUP BY kind, name, caller)"""


def _stats(row: dict[str, Any]) -> dict[str, Any]:
    calls, errors = int(row["calls"]), int(row["errors"])
    q = [float(x) for x in row["q"]]
    return {"errors": errors, "error_rate": errors / calls if calls else 0.0,
            "p50_ms": q[0], "p95_ms": q[1], "mean_ms": float(row["mean_ms"])}


def mark_back_edges(node_ids: list[str], links: list[GraphLink]) -> list[GraphLink]:
    """``links`` with ``back_edge`` set as the module doc defines (iterative DFS).

    Args:
        node_ids: every node id, in the order the walk starts from them.
        links: links between those nodes, in the order the walk follows them.
    """
    out_links: dict[str, list[int]] = {n: [] for n in node_ids}
    for i, link in enumerate(links):
        out_links.setdefault(link.source, []).append(i)
        out_links.setdefault(link.target, [])
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    back: set[int] = set()
    for start in [*node_ids, *out_links]:
        if start in state:
            continue
        state[start] = 1
        stack: list[tuple[str, int]] = [(start, 0)]
        while stack:
            node, at = stack[-1]
            edges = out_links[node]
            if at == len(edges):
                state[node] = 2
                stack.pop()
                continue
            stack[-1] = (node, at + 1)
            target = links[edges[at]].target
            seen = state.get(target)
            if seen == 1:
                back.add(edges[at])
            elif seen is None:
                state[target] = 1
                stack.append((target, 0))
    return [replace(link, back_edge=i in back) for i, link in enumerate(links)]


def get_agent_graph(store: SpanStore, params: QueryParams, *,
                    limit: int = DEFAULT_LIMIT) -> AgentGraph:
    """Agents and tools, and the calls between them (see the module doc).

    Args:
        store: the span store.
        params: time range (whole minutes) and filters; group-by and bucket are ignored.
        limit: most nodes kept (1..:data:`MAX_LIMIT`), most calls first.

    Returns:
        Nodes, links (with ``back_edge`` marked) and the counts before bounding.

    Raises:
        ValidationError: (422, field ``limit``) ``limit`` out of range.
        QueryTimeout: the query ran past the store's time limit.
        StoreError: the query failed.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError("limit", f"Expected 1..{MAX_LIMIT}, got {limit}")
    parts = SqlParts()
    groups = _groups_sql(store, params, parts)
    # one pass for nodes and links: grouping(caller) is 1 on the (kind, name) rows
    rows = store.query_arrow(
        f"WITH {groups} SELECT grouping(caller) AS is_node, caller, kind, name,"
        " toInt64(sum(calls)) AS calls, toInt64(sum(errors)) AS errors,"
        " quantilesExactInclusiveMerge(0.5, 0.95)(q) AS q, avgMerge(mean) AS mean_ms,"
        " toInt64(count() OVER (PARTITION BY is_node)) AS num_total"
        " FROM groups GROUP BY GROUPING SETS ((kind, name), (caller, kind, name))"
        " HAVING is_node = 1 OR caller != ''"
        " ORDER BY is_node DESC, calls DESC, caller, kind, name"
        f" LIMIT {MAX_LINKS} BY is_node {FINAL_SETTINGS}", parts.binds).to_pylist()
    node_rows = [r for r in rows if r["is_node"]][:limit]
    link_rows = [r for r in rows if not r["is_node"]]
    nodes = [GraphNode(id=f"{r['kind']}:{r['name']}", kind=r["kind"], name=r["name"],
                       calls=int(r["calls"]), **_stats(r)) for r in node_rows]
    kept = {n.id for n in nodes}
    links: list[GraphLink] = []
    callers: list[str] = []
    for r in link_rows:
        source, target = f"agent:{r['caller']}", f"{r['kind']}:{r['name']}"
        if target not in kept:
            continue
        if source not in kept and source not in callers:
            callers.append(source)
        links.append(GraphLink(source=source, target=target, count=int(r["calls"]),
                               **_stats(r)))
    nodes += [GraphNode(id=c, kind="agent", name=c.removeprefix("agent:"), calls=0, errors=0,
                        error_rate=0.0, p50_ms=0.0, p95_ms=0.0, mean_ms=0.0)
              for c in sorted(callers)]
    links = mark_back_edges([n.id for n in nodes], links)
    return AgentGraph(
        nodes=tuple(nodes), links=tuple(links),
        num_nodes=int(node_rows[0]["num_total"]) if node_rows else 0,
        num_links=int(link_rows[0]["num_total"]) if link_rows else 0)
