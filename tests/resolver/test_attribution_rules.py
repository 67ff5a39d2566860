"""The columnar attribution core against a plain recursive reference, on random traces.

``resolve_traces`` works on columns by pointer jumping; the reference below walks parent
links one span at a time, exactly as docs/decisions/0004 states the rules. Hypothesis
builds forests (several traces, orgs, lone versions, missing parents, parent cycles,
roll-up spans with usage) and shuffles the rows: the answers must agree, in any row order.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from mentatlab.model.span import INHERITED_GROUPS
from mentatlab.pipeline.attribution import INPUT_COLUMNS, TOKEN_KINDS, resolve_traces

Row = dict[str, Any]


def table_of(rows: list[Row]) -> pa.Table:
    columns: dict[str, list[Any]] = {c: [] for c in INPUT_COLUMNS}
    for row in rows:
        for c in INPUT_COLUMNS:
            default: Any = 0 if c.startswith(("unattributed", "inherited")) else (
                None if c.endswith("_tokens") else False if c == "usage_is_rollup" else "")
            columns[c].append(row.get(c, default))
    types = {c: pa.uint64() if c.endswith("_tokens") else pa.uint8() if c == "inherited"
             else pa.bool_() if c == "usage_is_rollup" else pa.string() for c in INPUT_COLUMNS}
    return pa.table({c: pa.array(v, types[c]) for c, v in columns.items()})


def reference(rows: list[Row]) -> list[Row]:
    """The rules, one span at a time (recursion over parent links, cycle-safe)."""
    by_key = {(r["trace_id"], r["span_id"]): r for r in rows}

    def parent_of(row: Row) -> Row | None:
        parent = by_key.get((row["trace_id"], row.get("parent_span_id", "")))
        if parent is None or parent is row or parent.get("org_id", "") != row.get("org_id", ""):
            return None
        return parent

    def source(row: Row, bit: int, group: tuple[str, ...]) -> Row | None:
        seen: set[int] = set()
        node: Row | None = row
        while node is not None and id(node) not in seen:
            seen.add(id(node))
            if node.get(group[0], "") and not node.get("inherited", 0) >> bit & 1:
                return node
            node = parent_of(node)
        return None

    def usage(row: Row) -> list[int]:
        return [row.get(f"{k}_tokens") or 0 for k in TOKEN_KINDS]

    children: dict[int, list[Row]] = {}
    for row in rows:
        parent = parent_of(row)
        if parent is not None:
            children.setdefault(id(parent), []).append(row)

    def on_cycle(row: Row) -> bool:
        seen: set[int] = set()
        node: Row | None = row
        while node is not None:
            if id(node) in seen:
                return True
            seen.add(id(node))
            node = parent_of(node)
        return False

    def subtree(row: Row, stack: frozenset[int]) -> tuple[list[int], list[int]]:
        """(carried by the subtree incl. row, carried strictly below row)."""
        below = [0] * len(TOKEN_KINDS)
        for child in children.get(id(row), []):
            if id(child) in stack or on_cycle(child):
                continue
            carried, _ = subtree(child, stack | {id(child)})
            below = [a + b for a, b in zip(below, carried, strict=True)]
        own = usage(row)
        if row.get("usage_is_rollup"):
            return [max(a, b) for a, b in zip(own, below, strict=True)], below
        return [a + b for a, b in zip(own, below, strict=True)], below

    out = []
    for row in rows:
        new: Row = {}
        bits = 0
        for bit, group in enumerate(INHERITED_GROUPS):
            own = row.get(group[0], "") and not row.get("inherited", 0) >> bit & 1
            found = None if own else source(row, bit, group)
            if found is not None:
                bits |= 1 << bit
                new.update({f: found.get(f, "") for f in group})
            elif row.get("inherited", 0) >> bit & 1 and not own:
                new.update({f: "" for f in group})
            else:
                new.update({f: row.get(f, "") for f in group})
        new["inherited"] = bits
        gap = [0] * len(TOKEN_KINDS)
        if row.get("usage_is_rollup") and not on_cycle(row):
            _, below = subtree(row, frozenset({id(row)}))
            gap = [max(0, a - b) for a, b in zip(usage(row), below, strict=True)]
        elif row.get("usage_is_rollup"):
            gap = usage(row)
        gap[2] = min(gap[2], gap[0])
        gap[3] = min(gap[3], gap[0] - gap[2])
        new.update({f"unattributed_{k}_tokens": v for k, v in zip(TOKEN_KINDS, gap, strict=True)})
        out.append(new)
    return out


def resolved_rows(rows: list[Row]) -> list[Row]:
    result = resolve_traces(table_of(rows))
    return [{name: result.columns[name][i].as_py() for name in result.columns}
            for i in range(len(rows))]


@st.composite
def forests(draw: st.DrawFn) -> list[Row]:
    rows: list[Row] = []
    for trace in range(draw(st.integers(1, 3))):
        num = draw(st.integers(1, 9))
        for n in range(num):
            parent = draw(st.one_of(st.just(""), st.integers(0, num + 1).map(str)))
            row: Row = {"trace_id": f"t{trace}", "span_id": str(n), "parent_span_id": parent,
                        "org_id": draw(st.sampled_from(["acme", "acme", "acme", "globex"]))}
            for group in INHERITED_GROUPS:
                if draw(st.integers(0, 3)) == 0:
                    row[group[0]] = draw(st.sampled_from(["a", "b", "c"]))
                if len(group) > 1 and draw(st.integers(0, 4)) == 0:
                    row[group[1]] = draw(st.sampled_from(["v1", "v2"]))
            row["inherited"] = draw(st.integers(0, 127)) if draw(st.integers(0, 5)) == 0 else 0
            row["usage_is_rollup"] = draw(st.booleans())
            for kind in TOKEN_KINDS:
                row[f"{kind}_tokens"] = draw(st.one_of(st.none(), st.integers(0, 500)))
            rows.append(row)
    return rows


@settings(max_examples=300, deadline=None)
@given(rows=forests(), seed=st.randoms(use_true_random=False))
def test_columns_agree_with_the_reference_in_any_row_order(rows: list[Row], seed: Any) -> None:
    shuffled = list(rows)
    seed.shuffle(shuffled)
    assert resolved_rows(shuffled) == reference(shuffled)


def test_nearest_ancestor_wins_within_the_org_and_groups_go_together() -> None:
    rows = [
        {"trace_id": "t", "span_id": "r", "org_id": "o", "agent_id": "A", "agent_version": "1",
         "customer_id": "c1"},
        {"trace_id": "t", "span_id": "b", "parent_span_id": "r", "org_id": "o",
         "agent_id": "B"},
        {"trace_id": "t", "span_id": "x", "parent_span_id": "b", "org_id": "o",
         "agent_version": "lone"},
        {"trace_id": "t", "span_id": "y", "parent_span_id": "b", "org_id": "other"},
    ]
    got = resolved_rows(rows)
    assert [(g["agent_id"], g["agent_version"], g["customer_id"]) for g in got] == [
        ("A", "1", "c1"), ("B", "", "c1"), ("B", "", "c1"), ("", "", "")]
    assert [g["inherited"] for g in got] == [0, 0b100000, 0b100001, 0]


def test_a_rollup_reports_only_what_no_descendant_carries() -> None:
    rows = [
        {"trace_id": "t", "span_id": "agent", "usage_is_rollup": True, "input_tokens": 500,
         "output_tokens": 90, "cache_read_tokens": 300},
        {"trace_id": "t", "span_id": "chat", "parent_span_id": "agent", "input_tokens": 100,
         "output_tokens": 100, "cache_read_tokens": 80},
    ]
    agent = resolved_rows(rows)[0]
    assert [agent[f"unattributed_{k}_tokens"] for k in TOKEN_KINDS] == [400, 0, 220, 0]
    alone = resolved_rows(rows[:1])[0]  # no descendant carries anything: all of it
    assert [alone[f"unattributed_{k}_tokens"] for k in TOKEN_KINDS] == [500, 90, 300, 0]


def test_the_attribute_processor_settles_a_batch_and_leaves_a_lone_child_alone() -> None:
    from datetime import UTC, datetime

    from mentatlab.model.span import CanonicalSpan, SpanStatus
    from mentatlab.pipeline.attribution import Attribute

    at = datetime(2026, 12, 1, tzinfo=UTC)

    def span(sid: str, parent: str = "", **kw: Any) -> CanonicalSpan:
        return CanonicalSpan(trace_id="t" * 32, span_id=sid, parent_span_id=parent, name=sid,
                             kind="internal", start_time=at, end_time=at, duration_ms=0.0,
                             status=SpanStatus.OK, **kw)

    lone = [span("child", "absent")]
    assert Attribute()(lone)[0].agent_id == ""  # its parent is in no batch yet
    batch = Attribute()([span("chat", "agent", input_tokens=30, output_tokens=5),
                         span("agent", agent_id="triage", usage_is_rollup=True,
                              input_tokens=100, output_tokens=20)])
    assert (batch[0].agent_id, batch[0].inherited) == ("triage", 1)
    assert (batch[1].unattributed_input_tokens, batch[1].unattributed_output_tokens) == (70, 15)
