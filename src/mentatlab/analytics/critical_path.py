"""The critical path of one trace, and each span's self time, computed over its spans.

Definitions (all times in ms in the answers, ns inside):

* **Effective interval.** Each span is read as ``[start, end]`` and clamped to its
  parent's effective interval: ``start' = min(max(start, parent.start'), parent.end')``
  and ``end' = max(min(end, parent.end'), start')``. Clocks of different services
  disagree (clock skew): a child that starts before its parent or ends after it is cut to
  the part the parent covers; a child wholly outside its parent keeps zero length and
  cannot be on the path. The parent's own time is the only one we can relate to its
  caller, so it wins.
* **Open spans** (a ``*.started`` native event not yet completed, stored with
  ``end == start`` and ``mentat.span.open``) have no end. One is taken to run until the
  trace's *horizon*, the latest start or end of any span of the trace: it had not
  finished when the trace was last heard from, and that is all we know. An open span
  therefore tends to be on the critical path, which is what a reader of a live trace
  wants (it is what the run is waiting on).
* **Roots.** A span whose parent is missing from the trace (an orphan), is itself, or is
  caught in a parent cycle is a root (:func:`resolve_parents`, the same rule as the
  trace tree and timeline). With several roots, a virtual root spanning
  ``[min root start', max root end']`` is their parent; it is never listed.
* **Critical path.** The chain of spans that set the trace's end-to-end duration, found
  backwards from the end (the "last finishing child" walk of Jaeger's critical-path view,
  https://github.com/jaegertracing/jaeger-ui/pull/1582, and of Uber's CRISP, Zhang et al.,
  USENIX ATC 2022, https://www.usenix.org/conference/atc22/presentation/zhang-zhizhou):
  start at the root with a bound ``t = end'``; among its children not yet considered,
  take the one whose ``end'`` is latest with ``end' <= t`` (ties: the earlier start,
  which explains more of the time, then row order) and non-zero length; the time
  ``[child.end', t]`` is the parent's own, the child is walked the same way inside
  ``[child.start', child.end']``, then ``t = child.start'``; children ending after ``t``
  ran in parallel with a later one and did not hold the parent up. When no child fits,
  ``[parent.start', t]`` is the parent's own. The path is every span so walked. A child
  of zero length holds nothing up and is never taken (a root of zero length is: a trace
  of one instantaneous span has that span as its path).
* **``critical_path_ms``** of a span: the time during which that span itself (not one of
  its children) was the one on the path. Over a trace they add up to the roots'
  ``[first start', last end']`` less the gaps on the path where no root was running.
  That is the trace's ``duration_ms`` unless clock skew put a child outside its root.
  A span on the path whose children cover all its time contributes 0.
* **``self_time_ms``** of a span: its effective interval less the union of its
  children's effective intervals (parallel children count once).

:func:`compute_critical_path` is a pure function over row-aligned columns, O(n log n):
a 5,000-span trace takes a few ms (``bench/critical_path.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["CriticalPath", "compute_critical_path", "resolve_parents"]

_NS_PER_MS = 1e6


@dataclass(frozen=True, slots=True)
class CriticalPath:
    """The critical path of one trace, row-aligned with the columns it was computed from."""

    rows: tuple[int, ...]
    """Rows on the critical path, root first, each after its parent, siblings by start."""
    self_time_ms: list[float]
    """Per row: time not covered by any child (children clamped to the span), in ms."""
    critical_path_ms: list[float]
    """Per row: the span's own contribution to the critical path, in ms (0 off the path)."""


def resolve_parents(span_ids: Sequence[str], parent_span_ids: Sequence[str]) -> list[int]:
    """Each row's parent row (-1 for a root), with orphans and parent cycles made roots.

    A span whose parent is empty, absent from the trace or itself is a root. Spans caught
    in a parent cycle (A → B → A) are reached from no root: walking the rows in order, the
    first unreached one becomes a root and its descendants hang under it. Pass rows in the
    trace tree's order (start time, then span id) to cut cycles where the tree does.

    Args:
        span_ids: N span ids (unique).
        parent_span_ids: N parent span ids, ``""`` for none.

    Returns:
        N parent rows.

    Raises:
        ValueError: the two columns differ in length.
    """
    if len(span_ids) != len(parent_span_ids):
        raise ValueError(f"Expected columns of one length, got {len(span_ids)} span ids and "
                         f"{len(parent_span_ids)} parent ids")
    index = {span_id: row for row, span_id in enumerate(span_ids)}
    parent = [-1] * len(span_ids)
    children: list[list[int]] = [[] for _ in span_ids]
    for row, up_id in enumerate(parent_span_ids):
        up = index.get(up_id, -1) if up_id else -1
        if up != row and up >= 0:
            parent[row] = up
            children[up].append(row)
    placed = [False] * len(span_ids)

    def place(top: int) -> None:
        stack = [top]
        while stack:
            row = stack.pop()
            if not placed[row]:
                placed[row] = True
                stack.extend(children[row])

    for row in range(len(span_ids)):
        if parent[row] < 0:
            place(row)
    for row in range(len(span_ids)):
        if not placed[row]:  # in a parent cycle: cut it here
            parent[row] = -1
            place(row)
    return parent


def _children_and_order(parent: Sequence[int]) -> tuple[list[list[int]], list[int], list[int]]:
    """(children per row, roots, top-down order); raises ValueError on a bad or cyclic column."""
    num = len(parent)
    children: list[list[int]] = [[] for _ in range(num)]
    roots: list[int] = []
    for row, up in enumerate(parent):
        if up < 0:
            roots.append(row)
        elif up >= num or up == row:
            raise ValueError(f"Expected parent rows in -1..{num - 1} other than the row, "
                             f"got {up} for row {row}")
        else:
            children[up].append(row)
    order = list(roots)
    for row in order:  # grows while read: breadth-first, parents before children
        order.extend(children[row])
    if len(order) != num:
        raise ValueError("Expected a forest, got a parent cycle (see resolve_parents)")
    return children, roots, order


def _self_time_ns(lo: int, hi: int, kids: list[tuple[int, int]]) -> int:
    """Length of ``[lo, hi]`` less the union of ``kids`` (each inside it), in ns."""
    covered = 0
    run_start = run_end = lo
    for start, end in sorted(kids):
        if start > run_end:
            covered += run_end - run_start
            run_start = start
        run_end = max(run_end, end)
    covered += run_end - run_start
    return hi - lo - covered


def compute_critical_path(parent: Sequence[int], start_ns: Sequence[int],
                          end_ns: Sequence[int],
                          is_open: Sequence[bool] | None = None) -> CriticalPath:
    """The critical path, self times and critical-path times of one trace's N spans.

    See the module docstring for the definitions (clamping, open spans, virtual root).

    Args:
        parent: N parent rows, -1 for a root (a forest: :func:`resolve_parents` makes one).
        start_ns: N start times, ns (any epoch, one clock).
        end_ns: N end times, ns.
        is_open: N flags, True for a span that has not ended (its end is ignored).

    Returns:
        The path's rows and per-row times in ms; empty for N = 0.

    Raises:
        ValueError: columns of different lengths, a parent row out of range, or a cycle.
    """
    num = len(parent)
    opened = list(is_open) if is_open is not None else [False] * num
    if not len(start_ns) == len(end_ns) == len(opened) == num:
        raise ValueError(f"Expected columns of one length, got parent {num}, start "
                         f"{len(start_ns)}, end {len(end_ns)}, is_open {len(opened)}")
    if num == 0:
        return CriticalPath((), [], [])
    children, roots, order = _children_and_order(parent)
    horizon = max(max(start_ns), max((e for e, o in zip(end_ns, opened, strict=True)
                                      if not o), default=min(start_ns)))
    # effective intervals, parents first; the virtual root is row ``num``
    lo = [0] * (num + 1)
    hi = [0] * (num + 1)
    for row in order:
        start = int(start_ns[row])
        end = horizon if opened[row] else max(int(end_ns[row]), start)
        up = parent[row]
        if up >= 0:
            start = min(max(start, lo[up]), hi[up])
            end = max(min(end, hi[up]), start)
        lo[row], hi[row] = start, end
    lo[num] = min(lo[r] for r in roots)
    hi[num] = max(hi[r] for r in roots)
    children.append(roots)

    self_ms = [_self_time_ns(lo[r], hi[r], [(lo[c], hi[c]) for c in children[r]]) / _NS_PER_MS
               for r in range(num)]
    critical_ns = [0] * (num + 1)
    on_path = [False] * (num + 1)
    # last finishing child first; ties: earlier start, then row
    by_end = [sorted(kids, key=lambda c: (-hi[c], lo[c], c)) for kids in children]
    # iterative walk (agent traces can be deeper than the recursion limit):
    # frames of [row, next child to consider, bound t]
    stack: list[list[int]] = [[num, 0, hi[num]]]
    while stack:
        frame = stack[-1]
        row, i, bound = frame
        kids = by_end[row]
        # a zero-length child holds nothing up; a zero-length root is still the trace
        while i < len(kids) and not (hi[kids[i]] <= bound
                                     and (hi[kids[i]] > lo[kids[i]] or row == num)):
            i += 1
        if i == len(kids):
            critical_ns[row] += bound - lo[row]
            stack.pop()
            continue
        child = kids[i]
        critical_ns[row] += bound - hi[child]
        frame[1], frame[2] = i + 1, lo[child]
        on_path[child] = True
        stack.append([child, 0, hi[child]])
    return CriticalPath(_path_rows(children, on_path, lo, num), self_ms,
                        [ns / _NS_PER_MS for ns in critical_ns[:num]])


def _path_rows(children: list[list[int]], on_path: list[bool], lo: list[int],
               virtual: int) -> tuple[int, ...]:
    """Pre-order of the path (a subtree under the virtual root), siblings by start."""
    out: list[int] = []
    stack = [virtual]
    while stack:
        row = stack.pop()
        if row != virtual:
            out.append(row)
        kids = sorted((c for c in children[row] if on_path[c]), key=lambda c: (lo[c], c))
        stack.extend(reversed(kids))
    return tuple(out)
