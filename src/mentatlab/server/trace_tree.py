"""A trace's spans as a tree with costs rolled up (exact decimals, as strings)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from mentatlab.server.serialize import jsonable

__all__ = ["build_trace_answer"]


def build_trace_answer(trace_id: str, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Nest N span objects (canonical JSON) by ``parent_span_id``.

    Each node gets ``children`` (by start time) and ``subtree_cost`` (its own
    ``total_cost`` plus its descendants', USD string). A span whose parent is not in the
    trace is a root. The answer carries ``total_cost`` (sum over spans), ``num_spans``,
    ``duration_ms`` (first start to last end) and ``roots``.
    """
    nodes = {r["span_id"]: {**r, "children": []} for r in rows}
    roots: list[dict[str, Any]] = []
    for node in sorted(nodes.values(), key=lambda n: str(n.get("start_time", ""))):
        parent = nodes.get(node.get("parent_span_id") or "")
        if parent is not None and parent is not node:
            parent["children"].append(node)
        else:
            roots.append(node)

    def roll_up(node: dict[str, Any], depth: int) -> Decimal:
        own = Decimal(str(node.get("total_cost") or "0"))
        if depth > 10_000:  # a cycle in parent ids cannot recurse forever
            return own
        total = own + sum((roll_up(c, depth + 1) for c in node["children"]), Decimal(0))
        node["subtree_cost"] = jsonable(total)
        return total

    total_cost = sum((roll_up(r, 0) for r in roots), Decimal(0))
    starts = [str(r.get("start_time")) for r in rows if r.get("start_time")]
    ends = [str(r.get("end_time")) for r in rows if r.get("end_time")]
    duration_ms = max((float(r.get("duration_ms") or 0.0) for r in roots), default=0.0)
    return {"ok": True, "trace_id": trace_id, "num_spans": len(rows),
            "total_cost": jsonable(total_cost), "start_time": min(starts, default=None),
            "end_time": max(ends, default=None), "duration_ms": duration_ms,
            "roots": roots}
