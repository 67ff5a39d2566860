"""The retention job (governance/retention.py) on both span backends: per-org cut-offs over
spans, the settled tables, the ledger and the aggregates; other orgs untouched; the spans
floor the resolver respects, so expired periods keep their aggregates through late spans
and rebuilds."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from mentatlab.errors import ValidationError
from mentatlab.governance.retention import (
    Retention,
    cutoff_of,
    enforce_retention,
    validate_retention,
)
from mentatlab.model.schema import spans_to_arrow
from mentatlab.model.span import CanonicalSpan, SpanStatus
from mentatlab.resolver.resolver import Resolver, rebuild_aggregates
from mentatlab.resolver.settle import Settler
from mentatlab.server.components import build_price
from mentatlab.settings import Settings
from mentatlab.storage.base import SpanStore
from mentatlab.storage.retention_floor import read_floors

NOW = datetime.now(UTC)
DAYS = (1, 5, 15, 40)
"""Days ago the spans of each org start (noon UTC)."""


def _spans(org: str, days_ago: int, n: int = 4, *, trace: int | None = None,
           cost: str = "0.01", user: str = "", customer: str = "") -> pa.Table:
    day = datetime(NOW.year, NOW.month, NOW.day, 12, tzinfo=UTC) - timedelta(days=days_ago)
    trace_id = f"{(trace if trace is not None else hash((org, days_ago)) & 0xFFFFFFFF):032x}"
    return spans_to_arrow([CanonicalSpan(
        trace_id=trace_id, span_id=f"{days_ago:08x}{i:08x}",
        parent_span_id="" if i == 0 else f"{days_ago:08x}{0:08x}", name=f"step-{i}",
        kind="client", start_time=day + timedelta(seconds=i),
        end_time=day + timedelta(seconds=i, milliseconds=5), duration_ms=5.0,
        status=SpanStatus.OK, org_id=org, project_id="p", user_id=user or f"user-{org}",
        customer_id=customer or f"cust-{org}",
        attributes=f'{{"enduser.id": "{user}"}}' if user else "{}", request_model="gpt-4o",
        input_tokens=10, output_tokens=5,
        token_cost=Decimal(cost), total_cost=Decimal(cost), ingested_at_ns=time.time_ns())
        for i in range(n)])


def _fill(store: SpanStore, tmp_path: Path) -> Resolver:
    for org in ("short", "long"):
        for days in DAYS:
            store.append_batch(_spans(org, days))
    resolver = Resolver(store, build_price(Settings(data_dir=tmp_path)))
    resolver.run_pass(time.time_ns())
    Settler(store, 0.05).run_pass(10**19, now_ns=time.time_ns() + 10**12)
    return resolver


def _span_days(store: SpanStore, org: str) -> list[int]:
    rows = store.query_arrow(
        "SELECT DISTINCT dateDiff('day', toDate(start_time), today()) AS d FROM spans"
        " WHERE org_id = {o:String} ORDER BY d", {"o": org}).to_pylist()
    return [int(r["d"]) for r in rows]


def _agg_days(store: SpanStore, org: str, table: str = "agg_cost_hour") -> dict[int, Decimal]:
    rows = store.query_arrow(
        f"SELECT dateDiff('day', toDate(hour), today()) AS d, sum(total_cost) AS c FROM {table}"
        " WHERE org_id = {o:String} GROUP BY d HAVING c != 0 ORDER BY d", {"o": org}).to_pylist()
    return {int(r["d"]): Decimal(r["c"]) for r in rows}


def _count(store: SpanStore, table: str, org: str) -> int:
    return int(store.query_arrow(f"SELECT count() AS n FROM {table} WHERE org_id = {{o:String}}",
                                 {"o": org}).column("n")[0].as_py())


def test_retention_trims_each_org_to_its_own_cutoff(store: SpanStore, tmp_path: Path) -> None:
    _fill(store, tmp_path)
    full = {d: Decimal("0.04") for d in DAYS}
    assert _agg_days(store, "short") == full and _agg_days(store, "long") == full
    assert _count(store, "span_timing", "short") == 16 and _count(store, "trace_facts", "long") == 4

    run = enforce_retention(store, Retention(30, 0, 0),
                            {"short": {"span_days": 3, "aggregate_days": 10}})

    assert _span_days(store, "short") == [1], "short keeps 3 days of spans"
    assert _span_days(store, "long") == [1, 5, 15], "the default: 30 days"
    assert _agg_days(store, "short") == {1: Decimal("0.04"), 5: Decimal("0.04")}, \
        "aggregates outlive the spans (10 days), then go"
    assert _agg_days(store, "long") == full, "aggregates forever: day 40 counted without spans"
    assert _agg_days(store, "short", "agg_principal_hour") == {1: Decimal("0.04"),
                                                               5: Decimal("0.04")}
    for table, short, long in (("span_timing", 4, 12), ("trace_facts", 1, 3),
                               ("step_counts", 4, 12), ("trace_agents", 1, 3),
                               ("trace_summary", 1, 3)):
        assert (_count(store, table, "short"), _count(store, table, "long")) == (short, long), \
            table
    assert _count(store, "span_ledger", "short") > 0
    ledger_days = store.query_arrow(
        "SELECT max(dateDiff('day', toDate(minute), today())) AS d FROM span_ledger"
        " WHERE org_id = 'short'").column("d")[0].as_py()
    assert ledger_days == 1, "the ledger follows the spans"
    assert run.partitions_dropped["spans"] == 1, "day 40: the whole partition dropped"
    assert run.rows_deleted["spans"] == 8, "days 5 and 15 of short: 4 spans each"
    cut_short, cut_long = cutoff_of(3, NOW), cutoff_of(30, NOW)
    assert cut_short is not None and cut_long is not None
    assert read_floors(store) == {"short": int(cut_short.timestamp()) * 10**9,
                                  "long": int(cut_long.timestamp()) * 10**9}
    assert run.ttl_days == 31, "a day of slack over the longest retention"
    ddl = store.query_arrow("SELECT create_table_query AS q FROM system.tables WHERE database ="
                            " currentDatabase() AND name = 'spans'").column("q")[0].as_py()
    assert "TTL start_time + toIntervalDay(31)" in ddl

    again = enforce_retention(store, Retention(30, 0, 0),
                              {"short": {"span_days": 3, "aggregate_days": 10}})
    assert not again.rows_deleted and not again.partitions_dropped, "a second run: nothing"


def test_expired_periods_keep_their_aggregates(store: SpanStore, tmp_path: Path) -> None:
    resolver = _fill(store, tmp_path)
    enforce_retention(store, Retention(30, 0, 0), {"short": {"span_days": 3}})
    before_short, before_long = _agg_days(store, "short"), _agg_days(store, "long")
    assert before_short[40] == Decimal("0.04") and before_short[5] == Decimal("0.04")

    # A late span of an expired trace (day 5 of short) arrives: the resolver leaves the
    # expired period alone (no negative difference for the spans that are gone).
    store.append_batch(_spans("short", 5, n=1, trace=hash(("short", 5)) & 0xFFFFFFFF,
                              cost="0.5"))
    resolver.forget_state()  # as a server's resolver does within FLOORS_REFRESH_S
    resolver.run_pass(time.time_ns())
    assert _agg_days(store, "short") == before_short

    # A full rebuild empties and rebuilds only what the spans still hold.
    rebuild_aggregates(store, build_price(Settings(data_dir=tmp_path)))
    assert _agg_days(store, "short") == before_short
    assert _agg_days(store, "long") == before_long


def test_other_orgs_keep_everything_when_only_one_has_a_retention(store: SpanStore,
                                                                  tmp_path: Path) -> None:
    _fill(store, tmp_path)
    run = enforce_retention(store, Retention(0, 0, 0), {"short": {"span_days": 10,
                                                                  "aggregate_days": 20}})
    assert _span_days(store, "long") == list(DAYS), "no default retention: kept forever"
    assert _span_days(store, "short") == [1, 5]
    assert sorted(_agg_days(store, "short")) == [1, 5, 15]
    assert not run.partitions_dropped, "no global cut-off while an org keeps spans forever"
    assert run.ttl_days == 0
    assert set(read_floors(store)) == {"short"}


def test_values_that_do_not_hold_together_are_refused() -> None:
    validate_retention(Retention(7, 30, 1))
    validate_retention(Retention(0, 0, 0))
    for bad, field in ((Retention(30, 7, 0), "aggregate_days"),
                       (Retention(0, 30, 0), "aggregate_days"),
                       (Retention(-1, 0, 0), "span_days")):
        with pytest.raises(ValidationError) as caught:
            validate_retention(bad)
        assert caught.value.field == field
