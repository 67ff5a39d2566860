"""The LLM calls of the sessions that may have several runs, for ``context_trimming``.

Almost every session has one run; grouping every LLM call of a range by (session, run)
to find the few with :data:`~mentatlab.analytics.recommendations.MIN_RUNS` or more is what
made the query slow (a string GROUP BY over millions of spans). The settle job
(docs/decisions/0010-settled-traces.md) keeps per trace its ``session_ids`` and
``num_runs`` in ``trace_facts``, from which an **upper bound** of each session's runs
follows without reading spans:

* a settled trace (every span committed at or before the settle watermark ``S``) that
  overlaps the range (``start_ns < end`` and ``end_ns >= start``: a span starting in the
  range lies within its trace's ``[start_ns, end_ns]``) adds its ``num_runs`` to each of
  its ``session_ids`` (a run shared by traces is counted once per trace: an upper bound);
* the unsettled tail (traces with a span committed after ``S``) adds its distinct runs per
  session from raw spans (as :mod:`mentatlab.analytics.compare` reads the tail).

The sessions whose bound reaches the minimum are the *candidates*: a superset of those
the query keeps, known by a 64-bit hash of (org, project, session) alone (a collision
only adds a session; no query turns the hashes back into names). The query then reads
only their calls, and only within the time spans of the settled traces that carry them
(partition and primary-key pruning on ``start_time``) and in those traces (the
``trace_id`` bloom filter, up to :data:`MAX_TRACE_IDS` of them), plus the tail's; every
(org, project, session) it groups is read whole, so the answer is the one the whole
range gives. Stale ``trace_facts`` rows (a trace settled again, not yet merged) only
widen the bound, the time spans and the traces, so no ``FINAL``.
The time spans are per (org, project), the primary key's first columns, so the read
skips other tenants' granules.

Bounding reads the whole of ``trace_facts`` (its rows are not in time order), so a range
with fewer spans than it has rows (a day of a month's store) is read raw, as before.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from mentatlab.analytics.query import LLM_CALL, MODEL_EXPR, QueryParams, SqlParts
from mentatlab.resolver.settle import read_settle_state
from mentatlab.storage.base import SpanStore
from mentatlab.storage.settled import TRACE_FACTS_TABLE

__all__ = ["MAX_CANDIDATE_SESSIONS", "MAX_TIME_SPANS", "MAX_TRACE_IDS", "TENANCY_COLUMNS",
           "session_calls_sql"]

MAX_CANDIDATE_SESSIONS: Final = 20_000
"""Most candidate sessions passed to the query; with more, every call of the range is read."""
MAX_TIME_SPANS: Final = 256
"""Most ``start_time`` intervals in the query: closer ones are joined (a wider read)."""
MAX_TRACE_IDS: Final = 20_000
"""Most settled trace ids passed to the query (a bloom-filter read); with more, the time
spans alone bound it."""
TENANCY_COLUMNS: Final = ("org_id", "project_id")
"""Filters that are key columns of ``trace_facts`` too (the same on every span of a row)."""
_SESSION_HASH: Final = ("cityHash64(org_id) + 3 * cityHash64(project_id)"
                        " + 5 * cityHash64(session_id)")
"""The key the sessions' bound is grouped by (``org_id``, ``project_id``, ``session_id``)."""
_COLUMNS: Final = (f"org_id, project_id, session_id, run_id, trace_id, start_time, input_tokens,"
                   f" agent_id, provider, {MODEL_EXPR} AS model")


def _calls(parts: SqlParts, extra: str = "") -> str:
    return (f"SELECT {_COLUMNS} FROM spans FINAL WHERE {parts.where} AND {LLM_CALL}"
            f" AND session_id != ''{extra}")


def _join_spans(spans: list[tuple[int, int]], limit: int) -> list[tuple[int, int]]:
    """``spans`` (ns intervals) merged: where they overlap, then across the smallest gaps.

    At most ``limit`` remain; their union covers every interval of ``spans``.
    """
    merged: list[list[int]] = []
    for lo, hi in sorted(spans):
        if merged and lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    if len(merged) > limit:
        gaps = sorted(range(1, len(merged)), key=lambda i: merged[i][0] - merged[i - 1][1])
        keep = sorted(gaps[len(gaps) - (limit - 1):]) if limit > 1 else []
        starts = [0, *keep]
        ends = [i - 1 for i in keep] + [len(merged) - 1]
        merged = [[merged[a][0], merged[b][1]] for a, b in zip(starts, ends, strict=True)]
    return [(lo, hi) for lo, hi in merged]


def session_calls_sql(store: SpanStore, params: QueryParams, parts: SqlParts,
                      min_runs: int, num_spans: int, count_cap: int) -> str | None:
    """A subquery of the LLM calls with a session that ``context_trimming`` groups.

    Its columns: ``org_id, project_id, session_id, run_id, trace_id, start_time,
    input_tokens, agent_id, provider, model``; the calls meeting ``parts`` (the range and
    filters, binds added to ``parts``) of every session that may have ``min_runs`` runs or
    more (see the module doc), or of every session when the store was never settled,
    there are too many candidates, or the range holds fewer spans (``num_spans``, counted
    up to ``count_cap``: a count that reached it is a long range) than ``trace_facts`` has
    rows (bounding would read more than it saves: a short range).

    Returns:
        The subquery, or None when no session can have ``min_runs`` runs.

    Raises:
        StoreError: a query failed.
    """
    settled_ns = read_settle_state(store)
    if settled_ns is None:
        return _calls(parts)
    num_facts = store.query_arrow(f"SELECT count() AS n FROM {TRACE_FACTS_TABLE}"
                                  ).column("n")[0].as_py()
    if num_spans < min(num_facts, count_cap):
        return _calls(parts)
    tail_n = store.query_arrow("SELECT count() AS n FROM spans WHERE ingested_at_ns > {s:Int64}",
                               {"s": settled_ns}).column("n")[0].as_py()
    tail = f"SELECT trace_id FROM spans WHERE ingested_at_ns > {int(settled_ns)}"
    facts = SqlParts(binds=parts.binds)
    start_ns = _ns(params.time_range.start)
    end_ns = _ns(params.time_range.end)
    facts.conditions += [f"start_ns < {facts.bind(end_ns, 'Int64')}",
                         f"end_ns >= {facts.bind(start_ns, 'Int64')}"]
    facts.conditions += [f"{k} = {facts.bind(str(v), 'String')}"
                         for k, v in params.filters.items() if k in TENANCY_COLUMNS]
    # the bound per (org, project, session), grouped by a 64-bit hash of the three (an
    # integer key: ~2.5x cheaper than the strings over a month of traces); the candidates
    # are then known by hash alone (a collision only adds a session): their settled traces
    # and their calls are read by hash, so no query turns the hashes back into names
    bounds = [f"""SELECT {_SESSION_HASH} AS h, num_runs AS n
    FROM {TRACE_FACTS_TABLE} ARRAY JOIN session_ids AS session_id WHERE {facts.where}"""]
    if tail_n:
        bounds.append(
            f"SELECT {_SESSION_HASH} AS h,"
            " toInt64(uniqExact(if(run_id != '', run_id, trace_id))) AS n"
            f" FROM spans WHERE {parts.where} AND {LLM_CALL} AND session_id != ''"
            f" AND trace_id IN ({tail}) GROUP BY org_id, project_id, session_id")
    hashes = store.query_arrow(
        f"SELECT h FROM ({' UNION ALL '.join(bounds)}) GROUP BY h"
        f" HAVING sum(n) >= {int(min_runs)}", parts.binds).column("h").to_pylist()
    if not hashes:
        return None
    if len(hashes) > MAX_CANDIDATE_SESSIONS:
        return _calls(parts)
    wanted = parts.bind(sorted(hashes), "Array(UInt64)")
    session_of = _SESSION_HASH.replace("session_id", "s")
    # no FINAL here: stale rows only add traces; the ids are read for the matching rows only
    rows = store.query_arrow(
        f"SELECT org_id, project_id, trace_id, start_ns, end_ns FROM {TRACE_FACTS_TABLE}"
        f" WHERE {facts.where} AND arrayExists(s -> {session_of} IN {wanted}, session_ids)",
        parts.binds).to_pylist()
    sessions = f" AND {_SESSION_HASH} IN {wanted}"
    by_tenant: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for row in rows:
        by_tenant.setdefault((row["org_id"], row["project_id"]), []).append(
            (row["start_ns"], row["end_ns"]))
    # per (org, project): the primary key (org_id, project_id, minute, ...) then skips
    # every granule but those of the candidates' traces
    within = []
    for (org, project), spans in sorted(by_tenant.items()):
        joined = _join_spans(spans, max(1, MAX_TIME_SPANS // len(by_tenant)))
        times = " OR ".join(
            f"(start_time >= fromUnixTimestamp64Nano(toInt64({lo}), 'UTC')"
            f" AND start_time <= fromUnixTimestamp64Nano(toInt64({hi}), 'UTC'))"
            for lo, hi in joined)
        within.append(f"(org_id = {parts.bind(org, 'String')}"
                      f" AND project_id = {parts.bind(project, 'String')} AND ({times}))")
    selects = []
    if within:
        not_tail = f" AND trace_id NOT IN ({tail})" if tail_n else ""
        # the settled traces of the candidates, by id too: the trace_id bloom filter then
        # skips most granules of the time spans (~5x fewer at 10M spans); every span of a
        # settled trace is in its facts row's sessions, so no span of theirs is left out
        ids = sorted({str(row["trace_id"]) for row in rows})
        by_id = (f" AND trace_id IN {parts.bind(ids, 'Array(String)')}"
                 if len(ids) <= MAX_TRACE_IDS else "")
        selects.append(_calls(parts, f"{sessions} AND ({' OR '.join(within)}){by_id}"
                                     f"{not_tail}"))
    if tail_n:
        selects.append(_calls(parts, f"{sessions} AND trace_id IN ({tail})"))
    if not selects:
        return None
    return " UNION ALL ".join(selects)


def _ns(moment: datetime) -> int:
    """Nanoseconds since the epoch of an aware datetime (exact: integer arithmetic)."""
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
