"""Retention: how long each org's spans, aggregates and audit entries are kept, and the job.

Three values per org (:class:`Retention`), each an installation setting that a per-org
override in the control store replaces (:mod:`mentatlab.storage.control.retention`);
0 keeps that data forever:

* ``span_days`` — spans and every table derived per span or per trace: the settled tables
  (``span_timing``, ``trace_facts``, ``step_counts``, ``trace_agents``,
  ``version_sightings``), the resolver's ledger and the trace list's ``trace_summary``;
* ``aggregate_days`` — the cost aggregates ``agg_*`` (no span, trace or person in them
  except the ``principal`` aggregate's user and customer ids, which erasure removes);
  kept at least as long as spans (cost history outlives the spans it came from);
* ``audit_years`` — the audit log; one hash chain holds every org, so the chain is trimmed
  (at a signed checkpoint, :meth:`~mentatlab.storage.control.audit.AuditLog.trim`) where
  the *longest* audit retention of any org ends.

:func:`enforce_retention` is one run of the retention job (leader-elected, every
``retention_interval_s``; :mod:`mentatlab.server.retaining`):

1. the cut-off of each org is the start of the UTC day ``days`` before today;
2. the spans floor (:mod:`mentatlab.storage.retention_floor`) of every org that loses
   spans is raised first, so nothing ever rebuilds aggregates from a half-deleted period;
3. whole partitions past the longest retention are dropped (``DROP PARTITION``: a file
   removal, nothing rewritten), then the older rows of orgs with a shorter retention are
   deleted with lightweight ``DELETE`` (masked at once, gone from disk at the part's next
   merge; decision 0019 has the measurements against ``ALTER … DELETE``);
4. ``spans`` and the settled tables also carry a table TTL at the longest span retention
   plus a day (:func:`~mentatlab.storage.span_schema.apply_retention`): ClickHouse's own
   backstop should the job stop running.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from mentatlab.errors import ValidationError
from mentatlab.settings import Settings
from mentatlab.storage.aggregates import (
    AGGREGATES,
    SPAN_LEDGER_TABLE,
    TRACE_SUMMARY_TABLE,
)
from mentatlab.storage.base import SpanStore
from mentatlab.storage.retention_floor import raise_floors
from mentatlab.storage.settled import (
    LLM_CALLS_TABLE,
    SPAN_TIMING_TABLE,
    STEP_COUNTS_TABLE,
    TRACE_AGENTS_TABLE,
    TRACE_FACTS_TABLE,
    VERSION_SIGHTINGS_TABLE,
)
from mentatlab.storage.span_schema import SPANS_TABLE, apply_retention

__all__ = [
    "RETAINED_TABLES",
    "Retention",
    "RetentionRun",
    "RetainedTable",
    "cutoff_of",
    "enforce_retention",
    "retention_defaults",
    "retention_for",
    "validate_retention",
]

_log = logging.getLogger(__name__)

Kind = Literal["span", "aggregate"]


@dataclass(frozen=True, slots=True)
class Retention:
    """How long one org's data is kept; 0 = forever."""

    span_days: int
    """Days of spans and of the tables derived per span or per trace."""
    aggregate_days: int
    """Days of the cost aggregates (``agg_*``)."""
    audit_years: int
    """Years of audit-log entries (365-day years)."""

    def as_dict(self) -> dict[str, int]:
        """``{"span_days", "aggregate_days", "audit_years"}``."""
        return {"span_days": self.span_days, "aggregate_days": self.aggregate_days,
                "audit_years": self.audit_years}


def retention_defaults(settings: Settings) -> Retention:
    """The installation's retention settings (``span_retention_days``, …) as a Retention."""
    return Retention(settings.span_retention_days, settings.aggregate_retention_days,
                     settings.audit_retention_years)


def validate_retention(retention: Retention) -> None:
    """Check the values hold together.

    Raises:
        ValidationError: a negative value, or aggregates kept shorter than spans (they
            would be trimmed while the spans could still rebuild them, and cost history
            must outlive spans).
    """
    for name, value in retention.as_dict().items():
        if value < 0:
            raise ValidationError(name, f"Expected >= 0 (0 = forever), got {value}")
    spans, aggregates = retention.span_days, retention.aggregate_days
    if aggregates and (spans == 0 or aggregates < spans):
        raise ValidationError("aggregate_days", (
            f"Expected 0 (forever) or at least span_days ({spans or 'forever'}): "
            f"aggregates are kept at least as long as the spans, got {aggregates}"))


def retention_for(control: Any, settings: Settings, org_id: str) -> Retention:
    """The retention in force for ``org_id``: its override over the settings.

    Args:
        control: the :class:`~mentatlab.storage.control.ControlStore` (None: settings only).
        settings: the installation settings.
        org_id: the org.

    Raises:
        StoreError: the control store failed.
    """
    base = retention_defaults(settings).as_dict()
    if control is not None:
        base.update(control.retention.get(org_id))
    return Retention(**base)


def cutoff_of(days: int, now: datetime) -> datetime | None:
    """Start of the UTC day ``days`` before ``now``'s day; None when ``days`` is 0 (forever)."""
    if days <= 0:
        return None
    today = datetime(now.year, now.month, now.day, tzinfo=UTC)
    return today - timedelta(days=days)


@dataclass(frozen=True, slots=True)
class RetainedTable:
    """A table the retention job trims."""

    name: str
    time_column: str
    """The column the age is taken from (UTC)."""
    partition: Literal["day", "month", "none"]
    """What one partition holds (``toDate``/``toYYYYMMDD``: day; ``toYYYYMM``: month)."""
    kind: Kind
    """Which retention applies: ``span`` (span_days) or ``aggregate`` (aggregate_days)."""


RETAINED_TABLES: tuple[RetainedTable, ...] = (
    RetainedTable(SPANS_TABLE, "start_time", "day", "span"),
    RetainedTable(SPAN_TIMING_TABLE, "start_time", "day", "span"),
    RetainedTable(LLM_CALLS_TABLE, "start_time", "day", "span"),
    RetainedTable(STEP_COUNTS_TABLE, "start_time", "day", "span"),
    RetainedTable(TRACE_AGENTS_TABLE, "bucket", "day", "span"),
    RetainedTable(TRACE_FACTS_TABLE, "start_time", "none", "span"),
    RetainedTable(VERSION_SIGHTINGS_TABLE, "start_time", "month", "span"),
    RetainedTable(SPAN_LEDGER_TABLE, "minute", "month", "span"),
    RetainedTable(TRACE_SUMMARY_TABLE, "minute", "day", "span"),
    *(RetainedTable(spec.table(tier), tier, "month" if tier == "hour" else "day", "aggregate")
      for spec in AGGREGATES for tier in ("hour", "minute")),
)
"""Every table the job trims, with its time column, partition size and retention kind.
``trace_agents`` ages by ``bucket`` (its partition key, the day its trace was first seen)."""


@dataclass
class RetentionRun:
    """What one run of :func:`enforce_retention` did."""

    partitions_dropped: dict[str, int] = field(default_factory=dict)
    """Table → whole partitions dropped."""
    rows_deleted: dict[str, int] = field(default_factory=dict)
    """Table → rows deleted from partitions kept (counted before the delete)."""
    floors_raised: dict[str, int] = field(default_factory=dict)
    """Org → new spans floor (ns)."""
    audit_trimmed: int = 0
    """Audit entries trimmed (at a signed checkpoint)."""
    ttl_days: int = 0
    """The span tables' TTL now (0: none)."""
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class _Rule:
    """Rows of these orgs older than ``cutoff`` go.

    ``orgs`` None means every org not named by an override of this kind; ``every``: all.
    """

    orgs: tuple[str, ...] | None
    cutoff: datetime
    every: bool = False


def _rules(defaults: Retention, overrides: Mapping[str, Mapping[str, int]], kind: Kind,
           now: datetime) -> tuple[list[_Rule], datetime | None]:
    """Per-org rules of one kind and the global cut-off (None: something is kept forever)."""
    key = "span_days" if kind == "span" else "aggregate_days"
    default_days = getattr(defaults, key)
    by_org = {org: values[key] for org, values in overrides.items() if key in values}
    all_days = [default_days, *by_org.values()]
    global_cut = None if 0 in all_days else cutoff_of(max(all_days), now)
    rules: list[_Rule] = []
    for org, days in sorted(by_org.items()):
        cut = cutoff_of(days, now)
        if cut is not None and (global_cut is None or cut > global_cut):
            rules.append(_Rule((org,), cut))
    cut = cutoff_of(default_days, now)
    if cut is not None and (global_cut is None or cut > global_cut):
        rules.append(_Rule(None, cut))
    return rules, global_cut


def _named(overrides: Mapping[str, Mapping[str, int]], kind: Kind) -> list[str]:
    key = "span_days" if kind == "span" else "aggregate_days"
    return sorted(org for org, values in overrides.items() if key in values)


def _seconds(moment: datetime) -> int:
    return int(moment.timestamp())


def _partition_end(partition_id: str, size: str) -> date | None:
    """First day after the partition with id ``partition_id``; None when not a date id."""
    try:
        if size == "day" and len(partition_id) == 8:
            return date(int(partition_id[:4]), int(partition_id[4:6]),
                        int(partition_id[6:])) + timedelta(days=1)
        if size == "month" and len(partition_id) == 6:
            year, month = int(partition_id[:4]), int(partition_id[4:])
            return date(year + month // 12, month % 12 + 1, 1)
    except ValueError:
        return None
    return None


def _drop_partitions(store: SpanStore, table: RetainedTable, cutoff: datetime) -> int:
    """Drop every partition of ``table`` that ends at or before ``cutoff``; how many."""
    if table.partition == "none":
        return 0
    rows = store.query_arrow(
        "SELECT DISTINCT partition_id FROM system.parts WHERE database = currentDatabase()"
        " AND table = {t:String} AND active", {"t": table.name}).to_pylist()
    dropped = 0
    for row in rows:
        end = _partition_end(str(row["partition_id"]), table.partition)
        if end is not None and end <= cutoff.date():
            store.execute(f"ALTER TABLE {table.name} DROP PARTITION ID '{row['partition_id']}'")
            dropped += 1
    return dropped


def _time_before(table: RetainedTable) -> str:
    return f"{table.time_column} < toDateTime({{_cut:UInt32}}, 'UTC')"


def _rule_where(table: RetainedTable, rule: _Rule, named: list[str]) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {"_cut": _seconds(rule.cutoff)}
    if rule.every:
        return _time_before(table), params
    if rule.orgs is not None:
        params["_orgs"] = list(rule.orgs)
        return f"org_id IN {{_orgs:Array(String)}} AND {_time_before(table)}", params
    params["_named"] = named
    return f"NOT has({{_named:Array(String)}}, org_id) AND {_time_before(table)}", params


def _orgs_losing_spans(store: SpanStore, rules: Iterable[_Rule], named: list[str],
                       global_cut: datetime | None) -> dict[str, int]:
    """The orgs that have spans about to go, each with its new floor (ns)."""
    spans = RETAINED_TABLES[0]
    floors: dict[str, int] = {}
    if global_cut is not None:
        rows = store.query_arrow(
            f"SELECT DISTINCT org_id FROM {SPANS_TABLE} WHERE start_time <"
            " toDateTime({_cut:UInt32}, 'UTC')", {"_cut": _seconds(global_cut)}).to_pylist()
        for row in rows:
            floors[str(row["org_id"])] = _seconds(global_cut) * 1_000_000_000
    for rule in rules:
        where, params = _rule_where(spans, rule, named)
        rows = store.query_arrow(f"SELECT DISTINCT org_id FROM {SPANS_TABLE} WHERE {where}",
                                 params).to_pylist()
        for row in rows:
            ns = _seconds(rule.cutoff) * 1_000_000_000
            org = str(row["org_id"])
            floors[org] = max(floors.get(org, 0), ns)
    return floors


def enforce_retention(store: SpanStore, defaults: Retention,
                      overrides: Mapping[str, Mapping[str, int]], *,
                      now: datetime | None = None, audit: Any = None,
                      floor_settle_s: float = 0.0) -> RetentionRun:
    """One run of the retention job over the span store (and the audit log).

    Args:
        store: a single-node span store (chDB or one ClickHouse server).
        defaults: the installation's retention (:func:`retention_defaults`).
        overrides: org id → the values its override sets (``ControlStore.retention.all()``).
        now: the time the cut-offs are taken from (default: now, UTC).
        audit: the :class:`~mentatlab.storage.control.audit.AuditLog` to trim (None: not
            trimmed); it must have a signing key.
        floor_settle_s: seconds to wait after raising floors before deleting, so a resolver
            that caches them (``FLOORS_REFRESH_S``) sees them first.

    Returns:
        Counts of what went.

    Raises:
        StoreError: a statement failed (the next run does the rest: every step is
            idempotent).
        ConfigError: audit trimming is due and the audit log has no signing key.
    """
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    run = RetentionRun()
    plans: dict[Kind, tuple[list[_Rule], datetime | None, list[str]]] = {}
    for kind in ("span", "aggregate"):
        rules, global_cut = _rules(defaults, overrides, kind, now)
        plans[kind] = (rules, global_cut, _named(overrides, kind))
    span_rules, span_cut, span_named = plans["span"]
    floors = _orgs_losing_spans(store, span_rules, span_named, span_cut)
    run.floors_raised = raise_floors(store, floors)
    if run.floors_raised and floor_settle_s > 0:
        time.sleep(floor_settle_s)
    for table in RETAINED_TABLES:
        rules, global_cut, named = plans[table.kind]
        if global_cut is not None:
            dropped = _drop_partitions(store, table, global_cut)
            if dropped:
                run.partitions_dropped[table.name] = dropped
            # What is left of the partitions straddling the cut-off (months, trace_facts).
            rules = [_Rule(None, global_cut, every=True), *rules]
        for rule in rules:
            where, params = _rule_where(table, rule, named)
            num = int(store.query_arrow(f"SELECT count() AS n FROM {table.name} WHERE {where}",
                                        params).column("n")[0].as_py())
            if num:
                store.execute(f"DELETE FROM {table.name} WHERE {where}", params)
                run.rows_deleted[table.name] = run.rows_deleted.get(table.name, 0) + num
    longest = 0 if span_cut is None else (now.date() - span_cut.date()).days
    run.ttl_days = longest + 1 if longest else 0
    apply_retention(store, run.ttl_days, materialize=False)
    if audit is not None:
        run.audit_trimmed = _trim_audit(audit, defaults, overrides, now)
    run.seconds = time.perf_counter() - started
    if run.partitions_dropped or run.rows_deleted or run.audit_trimmed:
        _log.info("retention: dropped %s, deleted %s, audit entries trimmed %s in %.2f s",
                  run.partitions_dropped, run.rows_deleted, run.audit_trimmed, run.seconds)
    return run


def _trim_audit(audit: Any, defaults: Retention, overrides: Mapping[str, Mapping[str, int]],
                now: datetime) -> int:
    """Trim the audit chain where the longest audit retention ends; entries trimmed."""
    years = [defaults.audit_years, *(v["audit_years"] for v in overrides.values()
                                     if "audit_years" in v)]
    if 0 in years:
        return 0
    cutoff = cutoff_of(365 * max(years), now)
    assert cutoff is not None
    trimmed: int = audit.trim(before=cutoff)
    return trimmed
