"""Sample trace ids of recommendation groups, without sorting every span's id.

A recommendation shows :data:`NUM_SAMPLES` traces: the first distinct ids among the 10
lowest trace ids of its group's spans (``groupArraySorted(10)(trace_id)``, one per span).
Sorting every span's id made the grouped queries slow; ids are random hex, so the
grouped queries sort only those below a cut (:func:`low_ids_sql`, :func:`sample_cut`) and
a group with too few of them is read again (:func:`lowest_trace_ids`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from mentatlab.analytics.query import FINAL_SETTINGS, SqlParts
from mentatlab.storage.base import SpanStore

__all__ = ["COUNT_CAP", "NUM_SAMPLES", "SAMPLE_TARGET", "keys_in", "low_ids_sql",
           "lowest_trace_ids", "sample_cut", "samples_of"]

NUM_SAMPLES: Final = 3
"""Sample trace ids per recommendation (the lowest ids, deterministic)."""
SAMPLE_TARGET: Final = 20_000
"""About how many spans' ids the grouped queries sort for sample traces (:func:`sample_cut`)."""
COUNT_CAP: Final = 256 * SAMPLE_TARGET // 2
"""Most spans of the range counted (``num_spans``): enough to choose a cut."""


def sample_cut(num_spans: int) -> str:
    """The cut below which trace ids are sorted for samples, for ``num_spans`` spans.

    Ids are random hex: ``k/256`` of them are below ``f"{k:02x}"``; ``k`` is chosen so that
    about :data:`SAMPLE_TARGET` are ("g": every hex id, for small ranges).
    """
    k = math.ceil(256 * SAMPLE_TARGET / max(num_spans, 1))
    return "g" if k >= 256 else f"{k:02x}"


def samples_of(value: Any) -> list[str]:
    """The first :data:`NUM_SAMPLES` distinct ids of a sorted id list (``groupArraySorted``)."""
    out: list[str] = []
    for item in value or ():
        if item and item not in out:
            out.append(str(item))
    return out[:NUM_SAMPLES]


def keys_in(parts: SqlParts, key_exprs: Sequence[str], keys: Iterable[tuple[str, ...]]
             ) -> str:
    """A condition keeping the rows whose key is one of ``keys``.

    Each key column is tested on its own, so other combinations of the wanted values pass
    too: callers keep the groups they asked for.
    """
    keys = list(keys)
    return " AND ".join(
        f"{e} IN {parts.bind(sorted({k[i] for k in keys}), 'Array(String)')}"
        for i, e in enumerate(key_exprs))


def lowest_trace_ids(store: SpanStore, where: str, binds: Mapping[str, Any],
                      key_exprs: Sequence[str], keys: Iterable[tuple[str, ...]]
                      ) -> dict[tuple[str, ...], list[str]]:
    """The sample trace ids of the groups ``keys`` of the spans meeting ``where``.

    ``_samples(groupArraySorted(10)(trace_id))`` of each group, read for the groups asked
    only: the fallback of a group with too few ids below the cut (see
    :func:`low_ids_sql`).

    Args:
        store: the span store.
        where: conditions over ``spans FINAL`` (binds in ``binds``).
        binds: the bound parameters of ``where``.
        key_exprs: the SQL expression of each key column (all strings).
        keys: the groups wanted, as tuples of ``key_exprs`` values.
    """
    wanted = set(keys)
    if not wanted:
        return {}
    parts = SqlParts(binds=dict(binds))
    in_keys = keys_in(parts, key_exprs, wanted)
    columns = ", ".join(f"toString({e}) AS k{i}" for i, e in enumerate(key_exprs))
    sql = f"""SELECT {columns}, groupArraySorted(10)(trace_id) AS samples
FROM spans FINAL
WHERE {where} AND {in_keys}
GROUP BY {', '.join(f'k{i}' for i in range(len(key_exprs)))} {FINAL_SETTINGS}"""
    out: dict[tuple[str, ...], list[str]] = {}
    for row in store.query_arrow(sql, parts.binds).to_pylist():
        key = tuple(row[f"k{i}"] for i in range(len(key_exprs)))
        if key in wanted:  # not another combination of the wanted values
            out[key] = samples_of(row["samples"])
    return out


def low_ids_sql(parts: SqlParts, cut: str, condition: str = "1", column: str = "trace_id"
                ) -> str:
    """Aggregates ``low_ids`` and ``num_low``: the rows' lowest ids below the cut, and how many.

    ``low_ids`` holds up to 10 trace ids below ``cut`` (:func:`sample_cut`) of the rows meeting
    ``condition``; ``num_low`` counts those rows.
    Sorting every span's id (``groupArraySorted(10)(trace_id)``) is what made the grouped
    queries slow; ids are random hex, so a known share of them is below the cut and only
    those are sorted. When ``num_low >= min(10, rows)`` the 10 lowest ids below the cut are the
    10 lowest of the group (finer groups merge by sorting their lists together); otherwise
    :func:`lowest_trace_ids` reads the group again.

    ``column`` (default ``trace_id``) may be another column holding each row's id where it
    is below the cut, else ``''`` (``llm_calls.trace_low``); ``''`` never counts.
    """
    low = f"{column} < {parts.bind(cut, 'String')} AND {condition}"
    if column != "trace_id":
        low = f"{column} != '' AND {low}"
    return f"groupArraySortedIf(10)({column}, {low}) AS low_ids, toInt64(countIf({low})) AS num_low"
