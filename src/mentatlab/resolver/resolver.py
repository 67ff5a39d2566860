"""The attribution resolver: the stage after the store that makes every answer right.

Each pass takes the traces touched by commits stamped in ``(W, G]`` (``W`` the last pass's
watermark, ``G`` a stamp up to which every commit is visible, given by the caller), and for
each batch of those traces:

1. reads their current spans (``spans FINAL``) and resolves them as a whole
   (:func:`~mentatlab.pipeline.attribution.resolve_traces`): inherited attribution and
   roll-up usage, whatever order the spans arrived in;
2. writes a new version of every span whose resolved values differ (``revision + 1``, a
   stamp above the old version's, roll-up spans repriced by the ``price`` processor), with
   the guardrail policies in force evaluated again on it when :attr:`Resolver.policies` is
   set: a span whose attribution an ancestor completed late gains the decisions its
   inherited agent, workflow or customer now call for (decisions already recorded stay;
   docs/decisions/0018-guardrail-policies.md);
3. inserts, for those traces, the difference between what ``spans FINAL`` now holds and
   what the ledger says the aggregates count (:func:`~mentatlab.storage.aggregates.
   delta_insert_sql`), which materialized views add to the ledger and every aggregate.

A pass is idempotent: repeating it (after a crash, or on overlapping ranges) writes no
version and no difference. So re-sent spans, repriced versions, late parents and crashes
all end in the same exact aggregates. Passes must not run concurrently on one store: the
server runs one resolver per store (the elected node's on a shared store).

A store whose aggregates were never built (an upgraded store, a bulk load) is backfilled
by the first pass: chunk by chunk of the sorting key (org, project, day; split further by
trace hash beyond :data:`BACKFILL_SPANS` spans), each read through the primary key, then
once more for the traces that cross chunks (their attribution needs the whole trace).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mentatlab.governance.policies import (
    PolicySnapshot,
    apply_decisions,
    compiled_set,
    evaluate_spans,
)
from mentatlab.model.schema import SPAN_SCHEMA, arrow_to_spans, spans_to_arrow
from mentatlab.model.span import CanonicalSpan
from mentatlab.pipeline.attribution import INPUT_COLUMNS, resolve_traces
from mentatlab.pipeline.price import Price
from mentatlab.storage.aggregates import (
    RESOLVER_STATE_TABLE,
    aggregate_tables,
    delta_insert_sql,
)
from mentatlab.storage.base import SpanStore
from mentatlab.storage.retention_floor import floor_condition, floor_filters, read_floors

__all__ = ["BACKFILL_SPANS", "CHUNK_TRACES", "FLOORS_REFRESH_S", "PassReport", "Resolver",
           "ResolverState", "VersionSink", "read_resolver_state", "rebuild_aggregates"]

_log = logging.getLogger(__name__)

CHUNK_TRACES = 5_000
"""Traces resolved together (one read, one version write, one difference insert)."""
BACKFILL_SPANS = 500_000
"""Most spans of one backfill chunk (a chunk of (org, project, day) is split by trace hash)."""
_STATE_NAME = "aggregates"
FLOORS_REFRESH_S = 5.0
"""Seconds the retention floors are cached between two reads (they move once a day)."""
_FINAL = "SETTINGS do_not_merge_across_partitions_select_final = 1"
_INPUT_SQL = ", ".join(f"`{c}`" for c in (*INPUT_COLUMNS, "ingested_at_ns", "revision"))
_ALL_SQL = ", ".join(f"`{c}`" for c in SPAN_SCHEMA.names)

VersionSink = Callable[[pa.Table, int], int]
"""Writes new span versions (``SPAN_SCHEMA``) stamped above the given ns; returns the stamp.
The server's is the span writer (so the live stream sees the versions); without one the
resolver appends to the store itself."""


@dataclass(frozen=True, slots=True)
class ResolverState:
    """What the aggregates hold."""

    through_ns: int
    """Every commit stamped up to this (ns since the epoch) is resolved and aggregated."""
    complete: bool
    """False until every stored trace has been resolved once (a new or upgraded store)."""


@dataclass(frozen=True, slots=True)
class PassReport:
    """What one pass did."""

    through_ns: int
    num_traces: int
    num_versions: int
    """Span versions written (inherited attribution or unattributed usage changed)."""
    backfill: bool
    duration_s: float


def read_resolver_state(store: SpanStore) -> ResolverState | None:
    """The last persisted state, or None when the resolver never ran on ``store``.

    Raises:
        StoreError: the query failed.
    """
    rows = store.query_arrow(
        f"SELECT argMax(through_ns, version) AS w, argMax(complete, version) AS c,"
        f" count() AS n FROM {RESOLVER_STATE_TABLE} WHERE name = '{_STATE_NAME}'").to_pylist()
    if not rows or not rows[0]["n"]:
        return None
    return ResolverState(int(rows[0]["w"]), bool(rows[0]["c"]))


def rebuild_aggregates(store: SpanStore, price: Price, on_cluster: str = "") -> PassReport:
    """Empty the ledger and every aggregate, then resolve every stored trace (a backfill).

    For a store filled around the resolver (``mentatctl migrate``). Queries read raw
    spans until it completes (the state says the aggregates are incomplete).

    Args:
        store: a migrated span store no server is resolving at the same time.
        price: prices roll-up spans' unattributed usage.
        on_cluster: `` ON CLUSTER <name>`` on a cluster, else ``""``.

    Raises:
        StoreError: a statement failed (run it again to redo the work).
    """
    store.execute(
        f"INSERT INTO {RESOLVER_STATE_TABLE} (name, through_ns, complete, version)"
        " VALUES ({n:String}, 0, 0, {v:UInt64})", {"n": _STATE_NAME, "v": time.time_ns()})
    floors = read_floors(store)
    _, _, params = floor_filters(floors)
    for table in aggregate_tables():
        if not floors:
            store.execute(f"TRUNCATE TABLE IF EXISTS {table}{on_cluster}")
            continue
        # Spans below an org's retention floor are gone: its aggregates there are final
        # and kept; only the part the spans can rebuild is emptied.
        column = "hour" if table.endswith("_hour") else "minute"
        store.execute(f"ALTER TABLE {table}{on_cluster} DELETE WHERE {floor_condition(column)}"
                      " SETTINGS mutations_sync = 2", params)
    return Resolver(store, price).run_pass(time.time_ns())


class Resolver:
    """Resolves attribution and keeps the ledger and aggregates of one store exact.

    Args:
        store: a migrated span store.
        price: the ``price`` processor that prices roll-up spans' unattributed usage.
        sink: writes new span versions; None appends to ``store`` directly.
        persist_every_s: the watermark is written to the store at most this often (s);
            in between it is kept in memory (a restart redoes at most that much work).

    Not thread-safe: one thread runs passes; :attr:`state` may be read from any thread.
    """

    def __init__(self, store: SpanStore, price: Price, sink: VersionSink | None = None, *,
                 persist_every_s: float = 0.5) -> None:
        self.store = store
        self.price = price
        self._sink = sink or self._append
        self._persist_every_s = persist_every_s
        self._persisted_s = 0.0
        self._own_stamps: list[int] = []
        self._lock = threading.Lock()
        self._state: ResolverState | None = None
        self.num_passes = 0
        self.num_versions = 0
        self.policies: Callable[[], PolicySnapshot] | None = None
        """The guardrail policies in force (the server's snapshot), evaluated again on each
        span version this resolver writes; None evaluates none."""
        self.on_versions: Callable[[pa.Table], object] | None = None
        """Called with each batch of versions written (the server raises their policy
        alerts)."""
        self._floors: dict[str, int] = {}
        self._floors_read_s = -FLOORS_REFRESH_S

    @property
    def state(self) -> ResolverState:
        """The current state (read from the store on first use).

        Raises:
            StoreError: the state could not be read.
        """
        with self._lock:
            if self._state is None:
                self._state = read_resolver_state(self.store) or ResolverState(0, False)
            return self._state

    def forget_state(self) -> None:
        """Read the state (and the retention floors) from the store again on next use.

        Another node may have moved them.
        """
        with self._lock:
            self._state = None
            self._own_stamps = []
            self._floors_read_s = -FLOORS_REFRESH_S

    def run_pass(self, through_ns: int) -> PassReport:
        """Resolve and aggregate every commit stamped up to ``through_ns``.

        Args:
            through_ns: every commit stamped at or below it must be visible in the store;
                below the current watermark, the commits between are resolved again (a
                node that was left out of the watermark came back).

        Raises:
            StoreError: a read or write failed (the next pass redoes the work).
        """
        started_s = time.monotonic()
        state = self.state
        backfill = not state.complete
        if backfill:
            num_traces, num_versions = self._backfill()
        else:
            num_traces, num_versions = self._incremental(state.through_ns, through_ns)
        self._advance(max(through_ns, state.through_ns), force=backfill)
        self.num_passes += 1
        self.num_versions += num_versions
        report = PassReport(self.state.through_ns, num_traces, num_versions, backfill,
                            time.monotonic() - started_s)
        if backfill or report.duration_s > 1.0:
            _log.info("resolver pass: %s traces, %s versions%s in %.3f s", num_traces,
                      num_versions, " (backfill)" if backfill else "", report.duration_s)
        return report

    def flush_state(self) -> None:
        """Write the in-memory watermark to the store now (at shutdown).

        Raises:
            StoreError: the write failed.
        """
        self._advance(self.state.through_ns, force=True)

    # --- passes ----------------------------------------------------------------------

    def _incremental(self, after_ns: int, through_ns: int) -> tuple[int, int]:
        if through_ns < after_ns:
            # A node left out of the watermark (silent too long) is back with commits the
            # last passes may not have seen: go over them again (idempotent).
            after_ns, through_ns = through_ns, after_ns
        if through_ns == after_ns:
            return 0, 0
        own = [s for s in self._own_stamps if s > after_ns]
        self._own_stamps = own
        table = self.store.query_arrow(
            "SELECT DISTINCT trace_id FROM spans WHERE ingested_at_ns > {a:Int64}"
            " AND ingested_at_ns <= {b:Int64}"
            " AND NOT (revision > 0 AND has({own:Array(Int64)}, ingested_at_ns))",
            {"a": after_ns, "b": through_ns, "own": own})
        ids: list[str] = [str(t) for t in table.column("trace_id").to_pylist()]
        num_versions = 0
        for start in range(0, len(ids), CHUNK_TRACES):
            chunk = ids[start:start + CHUNK_TRACES]
            num_versions += self._resolve("trace_id IN {ids:Array(String)}", {"ids": chunk})
        return len(ids), num_versions

    def _backfill(self) -> tuple[int, int]:
        chunks = self.store.query_arrow(
            "SELECT org_id, project_id, toUnixTimestamp(toStartOfDay(start_time)) AS day,"
            " count() AS n FROM spans GROUP BY org_id, project_id, day"
            " ORDER BY day, org_id, project_id").to_pylist()
        num_versions = 0
        day_s = 86_400
        for chunk in chunks:
            buckets = max(1, -(-int(chunk["n"]) // BACKFILL_SPANS))
            for bucket in range(buckets):
                params: dict[str, object] = {
                    "o": str(chunk["org_id"]), "p": str(chunk["project_id"]),
                    "d": int(chunk["day"]), "e": int(chunk["day"]) + day_s,
                    "k": buckets, "b": bucket}
                where = ("org_id = {o:String} AND project_id = {p:String}"
                         " AND cityHash64(trace_id) % {k:UInt64} = {b:UInt64}")
                num_versions += self._resolve(
                    f"{where} AND start_time >= toDateTime64({{d:UInt32}}, 9, 'UTC')"
                    " AND start_time < toDateTime64({e:UInt32}, 9, 'UTC')", params,
                    f"{where} AND minute >= toDateTime({{d:UInt32}}, 'UTC')"
                    " AND minute < toDateTime({e:UInt32}, 'UTC')")
        # A trace in several chunks was resolved in pieces: resolve it whole now.
        crossing = self.store.query_arrow(
            "SELECT trace_id FROM spans GROUP BY trace_id"
            " HAVING uniqExact(org_id, project_id, toDate(start_time)) > 1")
        ids = [str(t) for t in crossing.column("trace_id").to_pylist()]
        for start in range(0, len(ids), CHUNK_TRACES):
            num_versions += self._resolve("trace_id IN {ids:Array(String)}",
                                          {"ids": ids[start:start + CHUNK_TRACES]})
        num_traces = self.store.query_arrow("SELECT uniq(trace_id) AS t FROM spans")
        return int(num_traces.column("t")[0].as_py()), num_versions

    def _resolve(self, spans_filter: str, params: dict[str, object],
                 ledger_filter: str | None = None) -> int:
        """Resolve and aggregate the spans ``spans_filter`` selects; the versions written.

        The filter selects whole traces, except in the backfill (see :meth:`_backfill`).
        Spans and ledger rows below their org's retention floor are left out
        (:mod:`mentatlab.storage.retention_floor`): what expired stays counted as it was.
        """
        floors = self._retention_floors()
        if floors:
            spans_floor, ledger_floor, floor_params = floor_filters(floors)
            ledger_filter = f"({ledger_filter or spans_filter}) AND {ledger_floor}"
            spans_filter = f"({spans_filter}) AND {spans_floor}"
            params = {**params, **floor_params}
        table = self.store.query_arrow(
            f"SELECT {_INPUT_SQL} FROM spans FINAL WHERE {spans_filter} {_FINAL}", params)
        num_versions = 0
        if table.num_rows:
            resolution = resolve_traces(table)
            if resolution.changed.any():
                num_versions = self._write_versions(table, resolution.columns,
                                                    resolution.changed)
        self.store.execute(delta_insert_sql(spans_filter, ledger_filter), params)
        return num_versions

    def _retention_floors(self) -> dict[str, int]:
        now_s = time.monotonic()
        if now_s - self._floors_read_s >= FLOORS_REFRESH_S:
            self._floors = read_floors(self.store)
            self._floors_read_s = now_s
        return self._floors

    def _write_versions(self, table: pa.Table, columns: dict[str, pa.Array],
                        changed: np.ndarray) -> int:
        """Write a new version of every changed row, with its resolved values."""
        picked = pa.array(np.flatnonzero(changed), pa.int64())
        trace_ids = table.column("trace_id").take(picked).cast(pa.string())
        span_ids = table.column("span_id").take(picked).cast(pa.string())
        full = self.store.query_arrow(
            f"SELECT {_ALL_SQL} FROM spans FINAL WHERE trace_id IN {{t:Array(String)}}"
            f" AND span_id IN {{s:Array(String)}} {_FINAL}",
            {"t": sorted(set(trace_ids.to_pylist())), "s": sorted(set(span_ids.to_pylist()))})
        full = full.select(SPAN_SCHEMA.names).cast(SPAN_SCHEMA)
        # Line the full rows up with the changed rows by (trace_id, span_id).
        keys = pc.binary_join_element_wise(trace_ids, span_ids, ":")
        full_keys = pc.binary_join_element_wise(
            full.column("trace_id").combine_chunks(), full.column("span_id").combine_chunks(),
            ":")
        position = pc.index_in(full_keys, value_set=keys)  # null: not a changed row
        found = pc.is_valid(position)
        full = full.filter(found)
        source = picked.take(position.filter(found))
        for name, values in columns.items():
            index = full.schema.get_field_index(name)
            full = full.set_column(index, full.schema.field(index),
                                   values.take(source).cast(full.schema.field(index).type))
        revision = full.schema.get_field_index("revision")
        bumped = pc.add(full.column("revision"), pa.scalar(1, pa.uint32()))
        full = full.set_column(revision, full.schema.field(revision), bumped)
        full = self._reprice_rollups(full)
        full, gained = self._evaluate_policies(full)
        after_ns = int(pc.max(full.column("ingested_at_ns")).as_py() or 0)
        stamp = self._sink(full, after_ns)
        self._own_stamps.append(stamp)
        if gained is not None and self.on_versions is not None:
            try:
                self.on_versions(gained)
            except Exception:  # noqa: BLE001 — the versions are written; logged
                _log.exception("Raising the policy alerts of resolved spans failed")
        return int(full.num_rows)

    def _evaluate_policies(self, table: pa.Table) -> tuple[pa.Table, pa.Table | None]:
        """``table`` with the policies in force evaluated again on its (resolved) rows.

        ``table`` with the policies in force evaluated again on its (resolved) rows: new
        matches are appended to the decision arrays and applied (block, redact). Also the
        rows that gained decisions, holding only those (None when none did).
        """
        snapshot = self.policies() if self.policies is not None else None
        if snapshot is None or not snapshot.rules:
            return table, None
        spans = arrow_to_spans(table)
        evaluation = evaluate_spans(compiled_set(snapshot), spans)
        gained: list[CanonicalSpan] = []
        for index, decisions in evaluation.decisions.items():
            span = spans[index]
            known = set(zip(span.policy_ids, span.policy_versions, strict=False))
            new = [d for d in decisions if (d.policy_id, d.version) not in known]
            if new:
                gained.append(dataclasses.replace(
                    span, policy_ids=tuple(d.policy_id for d in new),
                    policy_versions=tuple(d.version for d in new),
                    policy_actions=tuple(d.action for d in new)))
                apply_decisions(span, new)
        if not gained:
            return table, None
        return spans_to_arrow(spans), spans_to_arrow(gained)

    def _reprice_rollups(self, table: pa.Table) -> pa.Table:
        """Reprice the roll-up rows of ``table`` (their unattributed usage changed)."""
        rollup = table.column("usage_is_rollup").combine_chunks()
        if not pc.any(rollup).as_py():
            return table
        others = table.filter(pc.invert(rollup))
        repriced = [self.price.price_span(s) for s in arrow_to_spans(table.filter(rollup))]
        return pa.concat_tables([others, spans_to_arrow(repriced)])

    def _append(self, table: pa.Table, after_ns: int) -> int:
        stamp = max(time.time_ns(), after_ns + 1)
        index = table.schema.get_field_index("ingested_at_ns")
        stamped = table.set_column(index, table.schema.field(index),
                                   pa.repeat(pa.scalar(stamp, pa.int64()), table.num_rows))
        self.store.append_batch(stamped)
        return stamp

    def _advance(self, through_ns: int, *, force: bool) -> None:
        with self._lock:
            self._state = ResolverState(through_ns, True)
        now_s = time.monotonic()
        if force or now_s - self._persisted_s >= self._persist_every_s:
            self.store.execute(
                f"INSERT INTO {RESOLVER_STATE_TABLE} (name, through_ns, complete, version)"
                " VALUES ({n:String}, {w:Int64}, 1, {v:UInt64})",
                {"n": _STATE_NAME, "w": through_ns, "v": time.time_ns()})
            self._persisted_s = now_s
