"""Attribution over traces, on columns: inherited fields and unattributed usage.

Pure functions over an Arrow table of spans (one row per span, :data:`INPUT_COLUMNS`); no
Python object per span. Both results depend only on the rows given, so they are computed
twice: by the pipeline's ``attribute`` processor (:class:`Attribute`) over each received
batch, which settles every trace that arrives whole; and by the attribution resolver
after the store (``mentatlab.resolver``) over whole traces whenever one changes, in any
arrival order, writing only what differs. Resolving a part of a trace never gives a value
that the whole trace would not (a chain of parents inside the part is the same chain in
the whole), so the resolver only ever completes what the batch started.

Inheritance (``model/span.py``): for each group of :data:`INHERITED_GROUPS`, a span keeps
its own values when the group's id (its first field) is set on the span or its resource,
i.e. stored with the group's ``inherited`` bit clear; a span without one takes the whole
group from its nearest ancestor that has its own, following ``parent_span_id`` inside the
trace and only across spans of the same ``org_id``. A lone version (``service.version``
mapped to ``agent_version`` by a resource) does not make a group the span's own: it is
replaced with the ancestor's id and version when there is one (an id is never paired
with another agent's version), and kept otherwise. Found by pointer jumping:
``O(log depth)`` vector steps. A parent cycle (malformed input) inherits nothing.

Roll-up usage: a roll-up span's usage (``usage_is_rollup``, an agent or workflow run) is
compared, per token kind, with what its descendants carry (LLM calls' own usage, nested
roll-ups counted as the larger of their own usage and their descendants'); the part no
descendant carries is ``unattributed_<kind>_tokens``, ``max(0, own - descendants)``, so a
total never counts usage twice. Cache reads are capped at the unattributed input and cache
writes at what remains (a cache count can never exceed the input it is part of).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from mentatlab.model.span import INHERITED_GROUPS, CanonicalSpan

__all__ = ["INHERITED_FIELDS", "INPUT_COLUMNS", "TOKEN_KINDS", "Attribute", "Resolution",
           "resolve_traces"]

INHERITED_FIELDS: tuple[str, ...] = tuple(f for group in INHERITED_GROUPS for f in group)
"""Every inheritable field, in group order."""
TOKEN_KINDS: tuple[str, ...] = ("input", "output", "cache_read", "cache_write")
"""Token kinds compared between a roll-up span and its descendants."""
INPUT_COLUMNS: tuple[str, ...] = (
    "trace_id", "span_id", "parent_span_id", "org_id", *INHERITED_FIELDS, "inherited",
    "usage_is_rollup", *(f"{k}_tokens" for k in TOKEN_KINDS),
    *(f"unattributed_{k}_tokens" for k in TOKEN_KINDS))
"""Columns :func:`resolve_traces` reads (a ``SELECT`` of ``spans FINAL``)."""

_MAX_STEPS = 64
"""Pointer-jumping rounds: chains up to 2**64 deep resolve; only cycles remain."""

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Resolution:
    """What the rows should hold, and which rows differ from what they hold.

    Every column has one value per input row, in input order.
    """

    columns: dict[str, pa.Array]
    """New values of every inheritable field, ``inherited`` (uint8) and the
    ``unattributed_<kind>_tokens`` (uint64)."""
    differs: dict[str, BoolArray]
    """Per column of ``columns`` that changes anywhere: True where it differs from the
    row's stored value (columns that change nowhere are left out)."""
    changed: BoolArray
    """True where any of ``columns`` differs from the row's stored value."""


def resolve_traces(table: pa.Table) -> Resolution:
    """Resolve attribution and roll-up usage of every span in ``table``.

    Args:
        table: every current span of the traces to resolve (N rows), with
            :data:`INPUT_COLUMNS` (rows of different traces may be interleaved); a group
            whose id column is absent, or the token columns when absent, are left alone.

    Returns:
        The resolved columns (N values each) and the mask of rows that change.
    """
    n = table.num_rows
    parent = _parent_rows(table)
    columns: dict[str, pa.Array] = {}
    differs: dict[str, BoolArray] = {}
    stored_bits = table.column("inherited").to_numpy(zero_copy_only=False).astype(np.int64)
    new_bits = np.zeros(n, dtype=np.int64)
    for bit, group in enumerate(INHERITED_GROUPS):
        stored_inherited = stored_bits >> bit & 1 == 1
        if group[0] not in table.column_names:
            continue  # the caller knows nobody has the group
        if not stored_inherited.any() and not pc.any(
                pc.not_equal(_text(table, group[0]), "")).as_py():
            for name in group:  # nobody has the group: nothing to inherit or to clear
                columns[name] = _text(table, name)
            continue
        values, inherited = _inherit_group(table, group, stored_inherited, parent)
        new_bits |= inherited.astype(np.int64) << bit
        for name in group:
            columns[name] = values[name]
            differs[name] = ~_equal(values[name], table.column(name))
    columns["inherited"] = pa.array(new_bits.astype(np.uint8), pa.uint8())
    differs["inherited"] = new_bits != stored_bits
    has_usage = "input_tokens" in table.column_names
    unattributed = _unattributed(table, parent) if has_usage else []
    for kind, values_u in zip(TOKEN_KINDS if has_usage else (), unattributed, strict=True):
        name = f"unattributed_{kind}_tokens"
        stored = table.column(name).to_numpy(zero_copy_only=False).astype(np.int64)
        columns[name] = pa.array(values_u.astype(np.uint64), pa.uint64())
        differs[name] = values_u != stored
    differs = {name: mask for name, mask in differs.items() if mask.any()}
    changed = np.zeros(n, dtype=bool)
    for mask in differs.values():
        changed |= mask
    return Resolution(columns, differs, changed)


def _text(table: pa.Table, name: str) -> pa.Array:
    return table.column(name).combine_chunks().cast(pa.string())


def _parent_rows(table: pa.Table) -> IntArray:
    """Row index of each row's parent in ``table`` (same trace, same org), else -1."""
    n = table.num_rows
    trace = _text(table, "trace_id")
    span_keys = pc.binary_join_element_wise(trace, _text(table, "span_id"), ":")
    parent_ids = _text(table, "parent_span_id")
    parent_keys = pc.binary_join_element_wise(trace, parent_ids, ":")
    encoded = pa.chunked_array([span_keys, parent_keys]).combine_chunks().dictionary_encode()
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    row_of_code = np.full(len(encoded.dictionary), -1, dtype=np.int64)
    row_of_code[codes[:n]] = np.arange(n, dtype=np.int64)
    parent = row_of_code[codes[n:]]
    rows = np.arange(n, dtype=np.int64)
    orgs = _codes(_text(table, "org_id"))
    no_parent = pc.equal(parent_ids, "").to_numpy(zero_copy_only=False)
    valid = (parent >= 0) & ~no_parent & (parent != rows)
    safe = np.where(valid, parent, 0)
    valid &= orgs[safe] == orgs
    return np.where(valid, parent, -1)


def _codes(array: pa.Array) -> IntArray:
    encoded = array.dictionary_encode()
    return np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)


def _nearest_source(own: BoolArray, parent: IntArray) -> IntArray:
    """For each row, the nearest row on its ancestor chain (itself included) with ``own``.

    Rows whose chain ends without one (or runs into a parent cycle) get a row without
    ``own``; callers check ``own[result]``.
    """
    rows = np.arange(len(own), dtype=np.int64)
    source = np.where(own | (parent < 0), rows, parent)
    for _ in range(_MAX_STEPS):
        following = source[source]
        if np.array_equal(following, source):
            break
        source = following
    return source


def _inherit_group(table: pa.Table, group: tuple[str, ...], stored_inherited: BoolArray,
                   parent: IntArray) -> tuple[dict[str, pa.Array], BoolArray]:
    """New values of one group's fields and which rows take them from an ancestor."""
    texts = {name: _text(table, name) for name in group}
    present = pc.not_equal(texts[group[0]], "").to_numpy(zero_copy_only=False)
    own = present & ~stored_inherited
    source = _nearest_source(own, parent)
    found = own[source]
    inherited = found & ~own
    # A row with its own id keeps its values, and so does one with nothing to inherit (a
    # lone version stays); a row that inherits takes its source's; values a row had
    # inherited before, from an ancestor no longer there, are cleared.
    rows = np.arange(len(own))
    take_from = np.where(inherited, source, np.where(stored_inherited & ~own, -1, rows))
    values: dict[str, pa.Array] = {}
    for name, array in texts.items():
        # rows without a source get "" (appended at the end of the taken values)
        padded = pa.concat_arrays([array, pa.array([""], pa.string())])
        index = np.where(take_from >= 0, take_from, len(array))
        values[name] = padded.take(pa.array(index, pa.int64()))
    return values, inherited


def _equal(new: pa.Array, stored: pa.ChunkedArray) -> BoolArray:
    result = pc.equal(new, stored.combine_chunks().cast(pa.string()))
    return np.asarray(result.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def _tokens(table: pa.Table, name: str) -> IntArray:
    column = table.column(name).combine_chunks().cast(pa.int64())
    return np.asarray(column.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)


def _depths(parent: IntArray) -> tuple[IntArray, IntArray]:
    """Depth of every row (roots 0) and the parent array with cycles cut.

    List ranking by pointer jumping; rows whose chain never reaches a root (a cycle, or
    below one) become roots.
    """
    ancestor = parent.copy()
    depth = (parent >= 0).astype(np.int64)
    for _ in range(_MAX_STEPS):
        moving = ancestor >= 0
        if not moving.any():
            break
        step = ancestor[moving]
        next_depth = depth.copy()
        next_depth[moving] = depth[moving] + depth[step]
        next_ancestor = ancestor.copy()
        next_ancestor[moving] = ancestor[step]
        depth, ancestor = next_depth, next_ancestor
    cyclic = ancestor >= 0
    if cyclic.any():
        parent = np.where(cyclic, -1, parent)
        return _depths(parent)
    return depth, parent


def _unattributed(table: pa.Table, parent: IntArray) -> list[IntArray]:
    """``unattributed_<kind>_tokens`` of every row (0 for spans that are not roll-ups)."""
    n = table.num_rows
    rollup = table.column("usage_is_rollup").to_numpy(zero_copy_only=False).astype(bool)
    if not rollup.any():
        return [np.zeros(n, dtype=np.int64) for _ in TOKEN_KINDS]
    usage = np.stack([_tokens(table, f"{k}_tokens") for k in TOKEN_KINDS], axis=1)
    depth, parent = _depths(parent)
    below = np.zeros_like(usage)
    subtree = np.zeros_like(usage)
    for level in range(int(depth.max()), -1, -1):
        rows = np.flatnonzero(depth == level)
        own = usage[rows]
        under = below[rows]
        subtree[rows] = np.where(rollup[rows, None], np.maximum(own, under), own + under)
        parents = parent[rows]
        has_parent = parents >= 0
        np.add.at(below, parents[has_parent], subtree[rows[has_parent]])
    gap = np.where(rollup[:, None], np.maximum(usage - below, 0), 0)
    input_u, output_u, read_u, write_u = (gap[:, i] for i in range(len(TOKEN_KINDS)))
    read_u = np.minimum(read_u, input_u)
    write_u = np.minimum(write_u, input_u - read_u)
    return [input_u, output_u, read_u, write_u]


_TYPES = {"inherited": pa.uint8(), "usage_is_rollup": pa.bool_()}
_TREE_COLUMNS = ("trace_id", "span_id", "parent_span_id", "org_id", "inherited")
_USAGE_COLUMNS = ("usage_is_rollup", *(f"{k}_tokens" for k in TOKEN_KINDS),
                  *(f"unattributed_{k}_tokens" for k in TOKEN_KINDS))


class Attribute:
    """Processor ``attribute``: resolves attribution inside each batch, before pricing.

    A span whose parent (and so on up) is in the same batch takes the nearest one's
    agent, workflow, run, session, user, customer and prompt version; a roll-up span gets
    the usage its descendants in the batch do not carry as ``unattributed_*_tokens``,
    which ``price`` then prices. Traces that arrive whole are settled here, at no cost to
    the resolver; parts that arrive in other batches are completed by the resolver.
    """

    name = "attribute"

    def __call__(self, spans: list[CanonicalSpan]) -> list[CanonicalSpan]:
        """Resolve a batch of N spans in place; returns the same N span objects."""
        rollups = any(s.usage_is_rollup for s in spans)
        if not rollups and not any(s.parent_span_id for s in spans):
            return spans
        # Only the columns there is work for: groups someone in the batch has, and usage
        # when there is a roll-up (building columns from objects is most of the cost).
        names = [*_TREE_COLUMNS, *(f for g in INHERITED_GROUPS
                                   if any(getattr(s, g[0]) for s in spans) for f in g)]
        if rollups:
            names += _USAGE_COLUMNS
        get = operator.attrgetter(*names)
        columns = zip(*map(get, spans), strict=True)
        table = pa.table({name: pa.array(values, _TYPES.get(name)) for name, values
                          in zip(names, columns, strict=True)})
        resolution = resolve_traces(table)
        for name, mask in resolution.differs.items():
            rows = np.flatnonzero(mask)
            values = resolution.columns[name].take(pa.array(rows)).to_pylist()
            for i, value in zip(rows.tolist(), values, strict=True):
                setattr(spans[i], name, value)
        return spans
