"""Spans for the oversight and security signal tests: attributes, tools, policy decisions.

``add_policy_columns`` applies to a store the same ``ALTER`` as span-store migration 9 of
the policies part (docs/decisions/0018; the contract of helper notes 17): the parallel
arrays ``policy_ids``, ``policy_versions``, ``policy_actions``. ``set_decisions`` then
writes a newer version of given spans carrying decisions, as the pipeline would have
stored them (``INSERT … SELECT`` with a larger ``ingested_at_ns``; reads use ``FINAL``).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from mentatlab.model.schema import spans_to_arrow
from mentatlab.model.span import CanonicalSpan, Operation, SpanStatus
from mentatlab.storage.base import SpanStore

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
_ids = itertools.count(1)


def make_span(start: datetime, *, duration: timedelta = timedelta(milliseconds=20),
              attributes: Mapping[str, Any] | None = None, org: str = "acme",
              project: str = "p1", agent: str = "", tool: str = "", trace: str | None = None,
              **kw: Any) -> CanonicalSpan:
    """One span starting at ``start``; tool spans get operation ``tool``."""
    n = next(_ids)
    fields: dict[str, Any] = dict(
        trace_id=trace or f"{n:032x}", span_id=f"{n:016x}", parent_span_id="", name="step",
        kind="internal", start_time=start, end_time=start + duration,
        duration_ms=duration / timedelta(milliseconds=1), status=SpanStatus.OK, org_id=org,
        project_id=project, agent_id=agent, tool_name=tool,
        operation=Operation.TOOL if tool else Operation.OTHER, ingested_at_ns=n,
        attributes=orjson.dumps(dict(attributes)).decode() if attributes else "")
    fields.update(kw)
    return CanonicalSpan(**fields)


def append(store: SpanStore, spans: Sequence[CanonicalSpan]) -> None:
    store.append_batch(spans_to_arrow(list(spans)))


POLICY_COLUMNS = (("policy_ids", "Array(LowCardinality(String))"),
                  ("policy_versions", "Array(UInt32)"),
                  ("policy_actions", "Array(LowCardinality(String))"))


def add_policy_columns(store: SpanStore) -> None:
    """The columns of span-store migration 9 (policies part), on a store without them."""
    for name, kind in POLICY_COLUMNS:
        store.execute(f"ALTER TABLE spans ADD COLUMN IF NOT EXISTS {name} {kind}")


def drop_policy_columns(store: SpanStore) -> None:
    """A store from before migration 9 (once the columns exist in ``SPAN_COLUMNS``)."""
    for name, _ in POLICY_COLUMNS:
        store.execute(f"ALTER TABLE spans DROP COLUMN IF EXISTS {name}")


def has_policy_columns(store: SpanStore) -> bool:
    names = store.query_arrow("SELECT name FROM system.columns WHERE database ="
                              " currentDatabase() AND table = 'spans'").column("name")
    return {"policy_ids", "policy_actions"} <= set(names.to_pylist())


def set_decisions(store: SpanStore, decisions: Mapping[str, Sequence[tuple[str, str]]]
                  ) -> None:
    """Give each span (by span id) policy decisions ``[(policy id, action), ...]``."""
    for span_id, pairs in decisions.items():
        store.execute(
            "INSERT INTO spans SELECT * REPLACE ({ids:Array(String)} AS policy_ids,"
            " {versions:Array(UInt32)} AS policy_versions,"
            " {actions:Array(String)} AS policy_actions,"
            " ingested_at_ns + 1000000000 AS ingested_at_ns)"
            " FROM spans FINAL WHERE span_id = {sid:String}",
            {"ids": [p for p, _ in pairs], "versions": [1] * len(pairs),
             "actions": [a for _, a in pairs], "sid": span_id})
