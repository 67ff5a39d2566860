"""The per-org "spans retained since" watermark: below it, spans may be gone for good.

The retention job (:mod:`mentatlab.governance.retention`) writes an org's floor *before*
it deletes that org's older spans, and the floor only moves forward. Everything that
derives from spans respects it, so an expired period's aggregates are final:

* the attribution resolver (:mod:`mentatlab.resolver.resolver`) computes its differences
  only for ``start_time >= floor`` (and ledger minutes ``>= floor``): a late span or a
  rebuild never turns the absence of expired spans into negative differences;
* a reprice (``POST /api/v1/reprice``) refuses a range that starts below the floor (409).

Floors are rows of the span store's ``resolver_state`` table (``name`` =
``retained_since:<org_id>``, ``through_ns`` = the floor in ns since the epoch, UTC), so they
live with the data they describe, on both backends, with no migration. Floors are whole
UTC days: a ledger minute is below the floor exactly when its spans are.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from mentatlab.storage.aggregates import RESOLVER_STATE_TABLE
from mentatlab.storage.base import SpanStore

__all__ = ["FLOOR_PREFIX", "floor_condition", "floor_filters", "floor_of", "raise_floors",
           "read_floors"]

FLOOR_PREFIX = "retained_since:"
"""``resolver_state.name`` prefix of the floors; the rest is the org id."""


def read_floors(store: SpanStore) -> dict[str, int]:
    """Every org's floor: org id → ns since the epoch (orgs without one are absent).

    Raises:
        StoreError: the query failed.
    """
    rows = store.query_arrow(
        f"SELECT substring(name, {len(FLOOR_PREFIX) + 1}) AS org_id,"
        f" max(through_ns) AS floor_ns FROM {RESOLVER_STATE_TABLE}"
        " WHERE startsWith(name, {p:String}) GROUP BY name",
        {"p": FLOOR_PREFIX}).to_pylist()
    return {str(r["org_id"]): int(r["floor_ns"]) for r in rows}


def raise_floors(store: SpanStore, floors: Mapping[str, int]) -> dict[str, int]:
    """Move the floors of some orgs forward (a lower value than the current one is ignored).

    Args:
        store: the span store.
        floors: org id → new floor (ns since the epoch, a whole UTC day).

    Returns:
        The floors actually raised.

    Raises:
        StoreError: the write failed.
    """
    current = read_floors(store)
    raised = {org: ns for org, ns in floors.items() if ns > current.get(org, 0)}
    for org, ns in raised.items():
        store.execute(
            f"INSERT INTO {RESOLVER_STATE_TABLE} (name, through_ns, complete, version)"
            " VALUES ({n:String}, {w:Int64}, 1, {v:UInt64})",
            {"n": FLOOR_PREFIX + org, "w": ns, "v": time.time_ns()})
    return raised


def floor_of(floors: Mapping[str, int], org_id: str | None) -> int:
    """The floor of ``org_id`` (ns); None (every org): the highest floor of any org; 0: none."""
    if org_id is None:
        return max(floors.values(), default=0)
    return floors.get(org_id, 0)


def floor_filters(floors: Mapping[str, int]) -> tuple[str, str, dict[str, object]]:
    """SQL conditions keeping only what is at or above each org's floor.

    Returns:
        ``(spans_condition, ledger_condition, params)``: the first on ``spans`` columns
        (``org_id``, ``start_time``), the second on ledger columns (``org_id``,
        ``minute``); both ``1`` when there is no floor.
    """
    if not floors:
        return "1", "1", {}
    orgs = sorted(floors)
    return (f"toUnixTimestamp64Nano(start_time) >= {_FLOOR}", floor_condition("minute"),
            {"_fo": orgs, "_fn": [floors[o] for o in orgs]})


_FLOOR = "transform(org_id, {_fo:Array(String)}, {_fn:Array(Int64)}, toInt64(0))"


def floor_condition(column: str) -> str:
    """Condition ``column`` (a ``DateTime`` of a table with ``org_id``) is at/above the floor.

    Takes the parameters :func:`floor_filters` returns.
    """
    return f"toInt64(toUnixTimestamp({column})) * 1000000000 >= {_FLOOR}"
