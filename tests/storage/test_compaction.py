"""FINAL reads partition by partition, and the compaction of closed ``spans`` partitions
(storage/compaction.py, decision 0016), on both backends.

Stores are built with merges stopped so each batch stays one part: what a store looks like
between ClickHouse's background merges. Expected answers are worked out from the batches.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from spanfactory import T0, make_span, make_table

from mentatlab.model.schema import spans_to_arrow
from mentatlab.resolver.settle import Settler
from mentatlab.storage.base import SpanStore
from mentatlab.storage.compaction import closed_partitions, compact_closed_partitions
from mentatlab.storage.settled import (
    LLM_CALLS_TABLE,
    SPAN_TIMING_TABLE,
    STEP_COUNTS_TABLE,
    TRACE_AGENTS_TABLE,
    TRACE_FACTS_TABLE,
)
from mentatlab.storage.span_schema import (
    FINAL_READ_SETTING,
    HOUR_SORTING_KEY,
    SPANS_PARTITION_KEY,
    SPANS_SORTING_KEY,
)

SRC = Path(__file__).resolve().parents[2] / "src" / "mentatlab"
DAY1, DAY2, DAY3 = date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)  # T0 is on DAY1


def _parts(store: SpanStore) -> dict[str, int]:
    rows = store.query_arrow(
        "SELECT partition_id, toUInt64(count()) AS n FROM system.parts WHERE database ="
        " currentDatabase() AND table = 'spans' AND active GROUP BY partition_id").to_pylist()
    return {r["partition_id"]: r["n"] for r in rows}


def _on_day(indices: range, day: int, **overrides: Any) -> Any:
    """Spans ``indices`` (make_span's), moved ``day`` days after T0's day."""
    spans = []
    for i in indices:
        start = T0 + timedelta(days=day, seconds=i)
        spans.append(make_span(i, start_time=start, end_time=start + timedelta(milliseconds=5),
                               **overrides))
    return spans_to_arrow(spans)


def _per_day(store: SpanStore, final: bool) -> dict[str, tuple[int, Decimal]]:
    rows = store.query_arrow(
        f"SELECT toString(toDate(start_time)) AS day, toUInt64(count()) AS n,"
        f" sum(total_cost) AS cost FROM spans {'FINAL' if final else ''}"
        " GROUP BY day ORDER BY day").to_pylist()
    return {r["day"]: (r["n"], Decimal(r["cost"])) for r in rows}


def _build(store: SpanStore) -> None:
    """Three days of two parts each; days 1 and 2 re-send spans 0-2 at 0.5 USD (revision 2).

    Per day, with FINAL: 10 spans; days 1 and 2: 7 x 0.001 + 3 x 0.5 = 1.507 USD, day 3
    (spans 0-9 then 10-12, all distinct): 13 spans, 0.013 USD.
    """
    store.execute("SYSTEM STOP MERGES spans")
    for day in (0, 1):
        store.append_batch(_on_day(range(10), day, ingested_at_ns=1))
        store.append_batch(_on_day(range(3), day, ingested_at_ns=2, total_cost=Decimal("0.5"),
                                   token_cost=Decimal("0.5")))
    store.append_batch(_on_day(range(10), 2, ingested_at_ns=1))
    store.append_batch(_on_day(range(10, 13), 2, ingested_at_ns=1))
    assert _parts(store) == {"20261101": 2, "20261102": 2, "20261103": 2}


FINAL_ANSWER = {"2026-11-01": (10, Decimal("1.507")), "2026-11-02": (10, Decimal("1.507")),
                "2026-11-03": (13, Decimal("0.013"))}


def test_every_query_reads_final_partition_by_partition(store: SpanStore) -> None:
    got = store.query_arrow(f"SELECT toUInt8(getSetting('{FINAL_READ_SETTING}')) AS v")
    assert got.to_pylist() == [{"v": 1}]


def test_a_resent_span_reads_once_from_two_parts_of_one_partition(store: SpanStore) -> None:
    store.execute("SYSTEM STOP MERGES spans")
    store.append_batch(make_table(range(10), ingested_at_ns=1))
    store.append_batch(make_table(range(3), ingested_at_ns=2, total_cost=Decimal("0.5")))
    assert _parts(store) == {"20261101": 2}  # one partition, both versions unmerged
    # No SETTINGS clause: the store's own (the setting is on, see the test above).
    rows = store.query_arrow(
        "SELECT span_id, total_cost FROM spans FINAL ORDER BY span_id").to_pylist()
    assert len(rows) == 10
    assert [Decimal(r["total_cost"]) for r in rows] == [Decimal("0.5")] * 3 + \
        [Decimal("0.001")] * 7
    store.execute("SYSTEM START MERGES spans")


def test_every_table_read_with_final_is_partitioned_by_a_function_of_its_sorting_key(
        store: SpanStore) -> None:
    # Every FINAL read in the code names its table: spans and the settled tables (a new one
    # must be checked here, and in decision 0016, before the store-wide setting may apply).
    tables = set()
    for path in SRC.rglob("*.py"):
        tables |= set(re.findall(r"FROM\s+(\{?\w+\}?)\s+FINAL\b", path.read_text()))
    assert tables == {"spans", "{SPANS_TABLE}", "{TRACE_FACTS_TABLE}", "{SPAN_TIMING_TABLE}",
                      "{STEP_COUNTS_TABLE}", "{TRACE_AGENTS_TABLE}", "{LLM_CALLS_TABLE}"}
    for table in (SPAN_TIMING_TABLE, LLM_CALLS_TABLE):  # keyed like spans
        timing = store.query_arrow(
            "SELECT partition_key, sorting_key FROM system.tables"
            " WHERE database = currentDatabase() AND name = {t:String}",
            {"t": table}).to_pylist()
        assert timing == [{"partition_key": SPANS_PARTITION_KEY,
                           "sorting_key": SPANS_SORTING_KEY}], table
    facts = store.query_arrow(
        "SELECT partition_key FROM system.tables"
        " WHERE database = currentDatabase() AND name = {t:String}",
        {"t": TRACE_FACTS_TABLE}).to_pylist()
    assert facts == [{"partition_key": ""}]  # one partition: trivially a function of the key
    steps = store.query_arrow(
        "SELECT partition_key, sorting_key FROM system.tables"
        " WHERE database = currentDatabase() AND name = {t:String}",
        {"t": STEP_COUNTS_TABLE}).to_pylist()
    assert steps == [{"partition_key": "toDate(start_time)", "sorting_key": (
        "org_id, project_id, start_time, trace_id, workspace_id, operation, step, error_class,"
        " error_category")}]  # start_time is a key column: the day a function of it
    agents = store.query_arrow(
        "SELECT partition_key, sorting_key FROM system.tables"
        " WHERE database = currentDatabase() AND name = {t:String}",
        {"t": TRACE_AGENTS_TABLE}).to_pylist()
    assert agents == [{"partition_key": "bucket",
                       "sorting_key": "org_id, project_id, bucket, trace_id"}]
    row = store.query_arrow(
        "SELECT partition_key, sorting_key FROM system.tables"
        " WHERE database = currentDatabase() AND name = 'spans'").to_pylist()[0]
    assert row["partition_key"] == SPANS_PARTITION_KEY == "toDate(start_time)"
    assert row["sorting_key"] in (SPANS_SORTING_KEY, HOUR_SORTING_KEY)
    # toDate(start_time) is a function of toStartOfMinute/Hour(start_time), in UTC: the
    # last nanosecond of a day and the first of the next stay on their sides.
    edges = store.query_arrow(
        "SELECT toDate(toStartOfMinute(t)) = toDate(t) AND toDate(toStartOfHour(t)) = toDate(t)"
        " AS ok FROM (SELECT arrayJoin([toDateTime64('2026-11-01 23:59:59.999999999', 9, 'UTC'),"
        " toDateTime64('2026-11-02 00:00:00', 9, 'UTC')]) AS t)").to_pylist()
    assert edges == [{"ok": 1}, {"ok": 1}] or edges == [{"ok": True}, {"ok": True}]


def test_a_pass_merges_closed_days_into_one_part_and_keeps_the_answers(
        store: SpanStore) -> None:
    _build(store)
    assert _per_day(store, final=True) == FINAL_ANSWER
    # Before: day 1 holds 13 versions of 10 spans: 10 x 0.001 + 3 x 0.5 USD.
    assert _per_day(store, final=False)["2026-11-01"] == (13, Decimal("1.510"))
    selected = closed_partitions(store, today=DAY3)
    assert [(p.partition_id, p.parts, p.rows) for p in selected] == [
        ("20261101", 2, 13), ("20261102", 2, 13)]  # today's (20261103) is open
    store.execute("SYSTEM START MERGES spans")

    done = compact_closed_partitions(store, today=DAY3)

    assert [p.day for p in done.merged] == [DAY1, DAY2] and done.pending == 0
    parts = _parts(store)
    assert parts["20261101"] == 1 and parts["20261102"] == 1
    assert _per_day(store, final=True) == FINAL_ANSWER
    # After: the closed days hold one version per span, as FINAL reads them.
    raw = _per_day(store, final=False)
    assert raw["2026-11-01"] == raw["2026-11-02"] == (10, Decimal("1.507"))
    assert raw["2026-11-03"] == (13, Decimal("0.013"))  # today's: 13 distinct spans, kept
    again = compact_closed_partitions(store, today=DAY3)
    assert again.merged == [] and again.pending == 0


def test_a_pass_is_bounded_and_goes_oldest_first(store: SpanStore) -> None:
    _build(store)
    store.execute("SYSTEM START MERGES spans")
    first = compact_closed_partitions(store, today=DAY3, max_partitions=1)
    assert [p.partition_id for p in first.merged] == ["20261101"] and first.pending == 1
    clock = iter([0.0, 500.0, 500.0])  # the budget is spent before the next partition
    second = compact_closed_partitions(store, today=DAY3, budget_s=100,
                                       clock=lambda: next(clock))
    assert second.merged == [] and second.pending == 1
    third = compact_closed_partitions(store, today=DAY3)
    assert [p.partition_id for p in third.merged] == ["20261102"]
    assert _per_day(store, final=True) == FINAL_ANSWER


@pytest.mark.parametrize("today", [DAY1, DAY2])
def test_today_and_later_days_are_never_merged(store: SpanStore, today: date) -> None:
    _build(store)
    assert [p.day for p in closed_partitions(store, today=today)] == \
        [d for d in (DAY1, DAY2) if d < today]
    store.execute("SYSTEM START MERGES spans")


def test_a_pass_merges_the_settled_tables_too(store: SpanStore) -> None:
    for table in (SPAN_TIMING_TABLE, TRACE_FACTS_TABLE):
        store.execute(f"SYSTEM STOP MERGES {table}")
    store.append_batch(_on_day(range(30), 0, ingested_at_ns=1))  # traces 0, 1, 2 on day 1
    settler = Settler(store, 10.0)
    for trace in range(3):  # one settle batch each: three parts of each table
        settler.settle([f"{trace:032x}"])
    timing = (f"SELECT trace_id, count() AS n, sum(self_time_ms) AS t FROM {SPAN_TIMING_TABLE}"
              " FINAL GROUP BY trace_id ORDER BY trace_id")
    facts = f"SELECT trace_id, num_spans FROM {TRACE_FACTS_TABLE} FINAL ORDER BY trace_id"
    answers = (store.query_arrow(timing).to_pylist(), store.query_arrow(facts).to_pylist())
    assert [r["n"] for r in answers[0]] == [r["num_spans"] for r in answers[1]] == [10] * 3
    selected = [(p.table, p.partition_id, p.parts) for p in closed_partitions(store, DAY3)]
    assert (SPAN_TIMING_TABLE, "20261101", 3) in selected
    assert selected[-1] == (TRACE_FACTS_TABLE, "all", 3)  # more than TRACE_FACTS_MAX_PARTS
    for table in (SPAN_TIMING_TABLE, TRACE_FACTS_TABLE):
        store.execute(f"SYSTEM START MERGES {table}")

    done = compact_closed_partitions(store, today=DAY3)

    assert [(p.table, p.partition_id) for p in done.merged][-1] == (TRACE_FACTS_TABLE, "all")
    assert closed_partitions(store, DAY3) == []
    assert (store.query_arrow(timing).to_pylist(),
            store.query_arrow(facts).to_pylist()) == answers
