"""Small calls in bursts, for ``batching``: the window of the SQL it replaces, on numpy.

A small call is *in a burst* when the previous or the next small call of its group (by
start time, in ms) starts at most ``gap_ms`` from it: what ``lagInFrame``/``leadInFrame``
over ``ORDER BY t_ms`` per group gave. Only start times decide it (calls starting in the
same ms are both in, whatever their order), so a stable sort by (group, ms) is the
window. The calls come as lists in the census rows, so no second scan of the spans:
their start ms alone for :func:`burst_counts` (what ``batching`` reads: the few groups it
returns get their sums from the window query), or ``(t_ms, input, output, cache read,
token cost, other)`` for :func:`burst_groups`, whose sums are exact (integers,
``Decimal`` money through Arrow).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["burst_counts", "burst_groups"]


def burst_counts(small_ms: pa.ChunkedArray | pa.Array, row_keys: Sequence[Hashable | None],
                 gap_ms: int, min_burst: int) -> dict[Any, int]:
    """Per group with at least ``min_burst`` calls in bursts: how many.

    The marks of :func:`burst_groups` from the calls' start times alone (``small_ms``: per
    census row, the list of its small calls' start ms), for a caller that reads the sums
    of the few groups returned elsewhere.
    """
    marked = _marks(small_ms, row_keys, gap_ms)
    if marked is None:
        return {}
    groups, g, _order, burst = marked
    num_burst = np.bincount(g[burst], minlength=len(groups))
    return {groups[n]: int(num_burst[n]) for n in np.flatnonzero(num_burst >= min_burst)}


def _taken(lists: pa.ChunkedArray | pa.Array, row_keys: Sequence[Hashable | None]) -> pa.Array:
    taken = pa.array([i for i, key in enumerate(row_keys) if key is not None], pa.int64())
    out = lists.take(taken)
    return out.combine_chunks() if isinstance(out, pa.ChunkedArray) else out


def _marks(lists: pa.ChunkedArray | pa.Array, row_keys: Sequence[Hashable | None],
           gap_ms: int) -> tuple[list[Any], np.ndarray, np.ndarray, np.ndarray] | None:
    """(groups, group index per call in time order, that order, burst mark per call)."""
    taken = [i for i, key in enumerate(row_keys) if key is not None]
    if not taken:
        return None
    groups = sorted({row_keys[i] for i in taken}, key=repr)
    index = {key: n for n, key in enumerate(groups)}
    lists = _taken(lists, row_keys)
    lengths = pc.list_value_length(lists).fill_null(0).to_numpy(zero_copy_only=False)
    calls = pc.list_flatten(lists)
    if not len(calls):
        return None
    group = np.repeat(np.array([index[row_keys[i]] for i in taken], np.int64), lengths)
    if pa.types.is_struct(calls.type):
        calls = calls.field(0)
    t_ms = calls.to_numpy(zero_copy_only=False).astype(np.int64)
    order = np.lexsort((t_ms, group))
    g, t = group[order], t_ms[order]
    near_prev = np.zeros(len(g), bool)
    near_prev[1:] = (g[1:] == g[:-1]) & (t[1:] - t[:-1] <= gap_ms)
    near_next = np.zeros(len(g), bool)
    near_next[:-1] = near_prev[1:]
    return groups, g, order, near_prev | near_next


def burst_groups(smalls: pa.ChunkedArray | pa.Array, row_keys: Sequence[Hashable | None],
                 gap_ms: int, min_burst: int) -> dict[Any, dict[str, Any]]:
    """Per group with at least ``min_burst`` calls in bursts: its counts and burst sums.

    Args:
        smalls: per census row, the list of its small calls (struct fields in order:
            start ms, input tokens, output tokens, cache-read tokens, token cost, other).
        row_keys: per census row, its group (None: the row is left out).
        gap_ms: most ms between neighbours in a burst.
        min_burst: fewest burst calls of a group returned.

    Returns:
        ``{group: {num_small, num_burst, input_tokens, output_tokens, cache_read_tokens,
        token_cost, num_other}}`` (sums over the burst calls; ``num_other`` counts burst
        calls flagged other).
    """
    marked = _marks(smalls, row_keys, gap_ms)
    if marked is None:
        return {}
    groups, g, order, burst = marked
    calls = pc.list_flatten(_taken(smalls, row_keys))
    num_small = np.bincount(g, minlength=len(groups))
    num_burst = np.bincount(g[burst], minlength=len(groups))
    out: dict[Any, dict[str, Any]] = {}
    for n in np.flatnonzero(num_burst >= min_burst):
        rows = pa.array(order[burst & (g == n)], pa.int64())
        picked = calls.take(rows)
        out[groups[n]] = {
            "num_small": int(num_small[n]), "num_burst": int(num_burst[n]),
            "input_tokens": int(pc.sum(picked.field(1)).as_py() or 0),
            "output_tokens": int(pc.sum(picked.field(2)).as_py() or 0),
            "cache_read_tokens": int(pc.sum(picked.field(3)).as_py() or 0),
            "token_cost": pc.sum(picked.field(4)).as_py(),
            "num_other": int(pc.sum(pc.cast(picked.field(5), pa.int64())).as_py() or 0),
        }
    return out
