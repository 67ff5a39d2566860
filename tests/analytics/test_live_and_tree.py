"""The live-tail cursor and the trace tree, on both span-store backends."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from dataset import build_spans

from mentatlab.analytics import get_trace, list_spans_since
from mentatlab.analytics.traces import _build_tree
from mentatlab.model.schema import spans_to_arrow
from mentatlab.storage.base import SpanStore
from mentatlab.storage.writer import SpanWriter


def test_live_tail_cursor_never_skips_or_repeats(store: SpanStore) -> None:
    spans = build_spans()[:40]
    writer = SpanWriter(store, max_buffer_spans=1000, max_batch_spans=1000, dedup_cache_spans=100)
    try:
        for chunk in (spans[:12], spans[12:20], spans[20:40]):  # 3 commits: 12, 8, 20 spans
            writer.write(spans_to_arrow(chunk))
    finally:
        writer.close()
    seen: list[str] = []
    cursor = 0
    sizes = []
    for _ in range(10):
        page = list_spans_since(store, cursor, limit=10)
        if page.table.num_rows == 0:
            assert page.next_ingested_after_ns == cursor
            break
        sizes.append(page.table.num_rows)
        seen.extend(page.table.column("span_id").to_pylist())
        cursor = page.next_ingested_after_ns
    assert sorted(seen) == sorted(s.span_id for s in spans) and len(seen) == len(set(seen))
    assert sizes == [12, 8, 20]  # a commit is never split across pages
    acme = list_spans_since(store, 0, {"org_id": "acme"}, limit=1000)
    assert acme.table.num_rows == sum(s.org_id == "acme" for s in spans)


def test_tree_keeps_orphans_and_breaks_cycles() -> None:
    base = build_spans()[:4]  # root s0, children s1 s2 s3
    root, a, b, c = base
    orphan = replace(c, parent_span_id="ffffffffffffffff")
    x = replace(a, span_id="00000000000000aa", parent_span_id="00000000000000bb",
                total_cost=Decimal(1))
    y = replace(b, span_id="00000000000000bb", parent_span_id="00000000000000aa",
                total_cost=Decimal(2))
    roots = _build_tree([root, a, b, orphan, x, y])
    names = sorted(n.span.span_id for n in roots)
    assert root.span_id in names and orphan.span_id in names
    flat: list[str] = []
    stack = list(roots)
    while stack:
        node = stack.pop()
        flat.append(node.span.span_id)
        stack.extend(node.children)
    assert sorted(flat) == sorted(s.span_id for s in [root, a, b, orphan, x, y])  # each once
    cycle_root = next(n for n in roots if n.span.span_id in {x.span_id, y.span_id})
    assert cycle_root.subtree_cost == Decimal(3)


def test_deep_trace_does_not_recurse(store: SpanStore) -> None:
    root = build_spans()[0]
    chain = [root]
    for i in range(1, 3000):
        chain.append(replace(root, span_id=f"{i:016x}", parent_span_id=chain[-1].span_id,
                             name=f"d{i}", total_cost=Decimal("0.001")))
    store.append_batch(spans_to_arrow(chain))
    detail = get_trace(store, root.trace_id)
    assert detail is not None and detail.num_spans == 3000
    assert detail.roots[0].subtree_cost == root.total_cost + Decimal("2.999")


def test_live_tail_caps_an_oversized_commit(store: SpanStore) -> None:
    spans = build_spans()[:30]
    store.append_batch(spans_to_arrow(spans))  # bypasses the writer: one stamp for 30 rows
    page = list_spans_since(store, 0, limit=5, max_commit_rows=12)
    assert page.table.num_rows == 12 and page.next_ingested_after_ns == 1
    assert list_spans_since(store, page.next_ingested_after_ns).table.num_rows == 0
