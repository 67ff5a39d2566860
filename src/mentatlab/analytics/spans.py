"""Raw span reads: polling the live tail, and iterating full rows for reprice and export."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from mentatlab.analytics.query import FINAL_SETTINGS, TimeRange, build_where
from mentatlab.errors import ValidationError
from mentatlab.model.schema import SPAN_SCHEMA
from mentatlab.storage.base import SpanStore

__all__ = ["SpanPage", "iter_spans", "list_commit_stamps_since", "list_commits_since",
           "list_spans_since"]

_COLUMNS = ", ".join(f"`{name}`" for name in SPAN_SCHEMA.names)


@dataclass(frozen=True, slots=True)
class SpanPage:
    """Spans committed after a cursor, and the cursor for the next poll."""

    table: pa.Table
    """Full rows (``SPAN_SCHEMA`` columns), ordered by ``ingested_at_ns``."""
    next_ingested_after_ns: int
    """Pass back as ``ingested_after_ns`` to get only newer spans."""


def list_spans_since(store: SpanStore, ingested_after_ns: int,
                     filters: Mapping[str, str] | None = None, limit: int = 1000,
                     max_commit_rows: int = 100_000) -> SpanPage:
    """Spans committed after ``ingested_after_ns`` (newest versions as written; no FINAL).

    The writer stamps a whole commit with one ``ingested_at_ns``; a page never splits a
    commit, so the cursor never skips spans (a page may exceed ``limit`` by at most one
    commit). The exception: a single commit over ``max_commit_rows`` (the writer's commits
    are at most ``write_batch_spans``, 50,000 by default; only bulk loads that bypass the
    writer make bigger ones) is cut to its first ``max_commit_rows`` rows.

    Args:
        store: the span store.
        ingested_after_ns: cursor in ns since the epoch (0 for everything).
        filters: equality filters on canonical columns (``FILTER_COLUMNS``).
        limit: most spans per page, roughly (see above).
        max_commit_rows: most rows returned from one oversized commit.

    Raises:
        ValidationError: a bad filter name or limit.
        StoreError: the query failed.
    """
    if limit < 1:
        raise ValidationError("limit", f"Expected >= 1, got {limit}")
    parts = build_where(None, filters)
    parts.conditions.append(f"ingested_at_ns > {parts.bind(int(ingested_after_ns), 'Int64')}")
    sql = (f"SELECT {_COLUMNS} FROM spans WHERE {parts.where}"
           f" ORDER BY ingested_at_ns, start_time, span_id LIMIT {parts.bind(limit, 'UInt32')}")
    table = store.query_arrow(sql, parts.binds)
    if table.num_rows == 0:
        return SpanPage(table, ingested_after_ns)
    last_ns = int(pc.max(table.column("ingested_at_ns")).as_py())
    if table.num_rows < limit:
        return SpanPage(table, last_ns)
    earlier = table.filter(pc.less(table.column("ingested_at_ns"), last_ns))
    if earlier.num_rows:
        return SpanPage(earlier, int(pc.max(earlier.column("ingested_at_ns")).as_py()))
    # The whole page is one commit: return all of it.
    parts = build_where(None, filters)
    parts.conditions.append(f"ingested_at_ns = {parts.bind(last_ns, 'Int64')}")
    whole = store.query_arrow(
        f"SELECT {_COLUMNS} FROM spans WHERE {parts.where} ORDER BY start_time, span_id"
        f" LIMIT {parts.bind(max(limit, max_commit_rows), 'UInt32')}", parts.binds)
    return SpanPage(whole, last_ns)


def iter_spans(store: SpanStore, start: datetime, end: datetime, batch_rows: int = 50_000,
               filters: Mapping[str, str] | None = None) -> Iterator[pa.Table]:
    """Full rows (``SPAN_SCHEMA``, newest version of each span) with start in [start, end).

    Pages by keyset on ``(start_time, trace_id, span_id)``, so each page costs the same
    however deep the iteration is.

    Args:
        store: the span store.
        start: inclusive start (timezone-aware).
        end: exclusive end (timezone-aware).
        batch_rows: rows per yielded table.
        filters: equality filters on canonical columns.

    Raises:
        ValidationError: a bad range, filter or batch size.
        StoreError: a query failed.
    """
    if batch_rows < 1:
        raise ValidationError("batch_rows", f"Expected >= 1, got {batch_rows}")
    time_range = TimeRange(start, end)
    cursor: tuple[int, str, str] | None = None
    while True:
        parts = build_where(time_range, filters)
        if cursor is not None:
            parts.conditions.append(
                # The cursor time is bound as int ns: a Python datetime would drop the ns.
                "(start_time, trace_id, span_id) >"
                f" (fromUnixTimestamp64Nano({parts.bind(cursor[0], 'Int64')}, 'UTC'),"
                f" {parts.bind(cursor[1], 'String')}, {parts.bind(cursor[2], 'String')})")
        table = store.query_arrow(
            f"SELECT {_COLUMNS} FROM spans FINAL WHERE {parts.where}"
            f" ORDER BY start_time, trace_id, span_id LIMIT {parts.bind(batch_rows, 'UInt32')}"
            f" {FINAL_SETTINGS}", parts.binds)
        if table.num_rows == 0:
            return
        yield table
        if table.num_rows < batch_rows:
            return
        last = table.slice(table.num_rows - 1, 1)
        start_ns = last.column("start_time").cast(pa.int64())[0].as_py()
        cursor = (int(start_ns), last.column("trace_id")[0].as_py(),
                  last.column("span_id")[0].as_py())


def list_commit_stamps_since(store: SpanStore, floor_ns: int) -> list[int]:
    """The distinct commit stamps (``ingested_at_ns``, ns) newer than ``floor_ns``.

    Every commit carries one stamp, so this lists the commits of the window; the
    ``minmax`` skip index on ``ingested_at_ns`` keeps it to the newest granules.

    Raises:
        StoreError: the query failed.
    """
    parts = build_where(None)
    parts.conditions.append(f"ingested_at_ns > {parts.bind(int(floor_ns), 'Int64')}")
    table = store.query_arrow(
        f"SELECT DISTINCT ingested_at_ns AS stamp FROM spans WHERE {parts.where}", parts.binds)
    return [int(v) for v in table.column("stamp").to_pylist()]


def list_commits_since(store: SpanStore, floor_ns: int, known_stamps: Sequence[int],
                       limit: int = 50_000) -> pa.Table:
    """Full rows of the commits newer than ``floor_ns`` whose stamp is not in ``known_stamps``.

    The live stream across nodes polls with this: commits from several nodes become
    visible out of stamp order (clock skew, insert time), so instead of one cursor the
    poller remembers which commits of a recent window it has delivered.

    Args:
        store: the span store.
        floor_ns: oldest stamp considered, ns since the epoch (exclusive).
        known_stamps: stamps already delivered (a few hundred at most).
        limit: most rows returned, ordered by stamp.

    Returns:
        An Arrow table with ``SPAN_SCHEMA`` columns, ordered by ``ingested_at_ns``.

    Raises:
        ValidationError: a bad limit.
        StoreError: the query failed.
    """
    if limit < 1:
        raise ValidationError("limit", f"Expected >= 1, got {limit}")
    parts = build_where(None)
    parts.conditions.append(f"ingested_at_ns > {parts.bind(int(floor_ns), 'Int64')}")
    if known_stamps:
        parts.conditions.append(
            f"ingested_at_ns NOT IN {parts.bind([int(v) for v in known_stamps], 'Array(Int64)')}")
    return store.query_arrow(
        f"SELECT {_COLUMNS} FROM spans WHERE {parts.where}"
        f" ORDER BY ingested_at_ns, start_time, span_id LIMIT {parts.bind(limit, 'UInt32')}",
        parts.binds)
