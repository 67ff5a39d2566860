"""Critical path, self time and critical-path time on constructed traces worked out by hand.

Times are written in ms from the trace's start (``_ms`` turns them into ns); each test's
comment walks the algorithm of ``mentatlab.analytics.critical_path`` backwards from the end.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from dataset import build_spans

from mentatlab.analytics.critical_path import (
    CriticalPath,
    compute_critical_path,
    resolve_parents,
)
from mentatlab.analytics.trace_timeline import get_trace_timeline
from mentatlab.analytics.traces import get_trace
from mentatlab.model.schema import spans_to_arrow
from mentatlab.model.span import CanonicalSpan
from mentatlab.storage.base import SpanStore

_BASE_NS = 1_700_000_000_000_000_000


def _path(spans: dict[str, tuple[str, float, float | None]]) -> tuple[list[str], CriticalPath]:
    """``{name: (parent name or "", start ms, end ms or None for open)}`` → (names, result)."""
    names = list(spans)
    parent = resolve_parents(names, [spans[n][0] for n in names])
    start = [_BASE_NS + int(spans[n][1] * 1e6) for n in names]
    ends_ms = [spans[n][2] for n in names]
    end = [_BASE_NS + int((e if e is not None else spans[n][1]) * 1e6)  # open: end == start
           for n, e in zip(names, ends_ms, strict=True)]
    is_open = [e is None for e in ends_ms]
    return names, compute_critical_path(parent, start, end, is_open)


def _by_name(names: list[str], values: list[float]) -> dict[str, float]:
    return {n: round(v, 6) for n, v in zip(names, values, strict=True)}


def test_sequential_children_share_the_path_with_the_gaps_of_their_parent() -> None:
    # t=100: B ends last (90) → root owns 90..100, B owns 50..90; t=50: A (40) → root owns
    # 40..50, A owns 10..40; t=10: no child left → root owns 0..10
    names, cp = _path({"root": ("", 0, 100), "A": ("root", 10, 40), "B": ("root", 50, 90)})
    assert [names[r] for r in cp.rows] == ["root", "A", "B"]
    assert _by_name(names, cp.critical_path_ms) == {"root": 30, "A": 30, "B": 40}
    assert _by_name(names, cp.self_time_ms) == {"root": 30, "A": 30, "B": 40}


def test_parallel_branches_follow_the_last_finishing_one() -> None:
    # t=100: A ends last (90) → root owns 90..100; inside A (bound 90): A2 ends last (80) →
    # A owns 80..90, A2 owns 30..80, t=30; A1 ended at 50 > 30 (it ran beside A2) → skipped;
    # A owns 0..30. Back in root: t=0, B (ends 60) is skipped. Sum 10 + 40 + 50 = 100.
    names, cp = _path({"root": ("", 0, 100), "A": ("root", 0, 90), "A1": ("A", 10, 50),
                       "A2": ("A", 30, 80), "B": ("root", 0, 60)})
    assert [names[r] for r in cp.rows] == ["root", "A", "A2"]
    assert _by_name(names, cp.critical_path_ms) == {"root": 10, "A": 40, "A1": 0, "A2": 50,
                                                    "B": 0}
    # self time: root less A∪B = [0, 90] → 10; A less A1∪A2 = [10, 80] → 20
    assert _by_name(names, cp.self_time_ms) == {"root": 10, "A": 20, "A1": 40, "A2": 50,
                                                "B": 60}
    assert sum(cp.critical_path_ms) == pytest.approx(100)


def test_overlapping_children_only_the_one_waited_for_is_on_the_path() -> None:
    # Y ends at the root's end → root owns nothing after it, Y owns 50..100; t=50: X ends at
    # 60 > 50, so Y did not wait for X → X is off the path and the root owns 0..50 (its self
    # time, 0, tells that nobody was idle)
    names, cp = _path({"root": ("", 0, 100), "X": ("root", 0, 60), "Y": ("root", 50, 100)})
    assert [names[r] for r in cp.rows] == ["root", "Y"]
    assert _by_name(names, cp.critical_path_ms) == {"root": 50, "X": 0, "Y": 50}
    assert _by_name(names, cp.self_time_ms) == {"root": 0, "X": 60, "Y": 50}


def test_equal_ends_take_the_child_that_started_first() -> None:
    names, cp = _path({"root": ("", 0, 100), "short": ("root", 60, 100),
                       "long": ("root", 20, 100)})
    assert [names[r] for r in cp.rows] == ["root", "long"]
    assert _by_name(names, cp.critical_path_ms) == {"root": 20, "short": 0, "long": 80}


def test_skewed_clocks_are_clamped_to_the_parent() -> None:
    # root [100, 200]; C [90, 150] → [100, 150]; D [180, 230] → [180, 200];
    # E [300, 310] lies wholly after the root → [200, 200], zero length, never on the path.
    # t=200: E has no length; D (200) → root owns nothing, D owns 180..200; t=180: C (150)
    # → root owns 150..180, C owns 100..150.
    names, cp = _path({"root": ("", 100, 200), "C": ("root", 90, 150),
                       "D": ("root", 180, 230), "E": ("root", 300, 310)})
    assert [names[r] for r in cp.rows] == ["root", "C", "D"]
    assert _by_name(names, cp.critical_path_ms) == {"root": 30, "C": 50, "D": 20, "E": 0}
    assert _by_name(names, cp.self_time_ms) == {"root": 30, "C": 50, "D": 20, "E": 0}
    assert sum(cp.critical_path_ms) == pytest.approx(100), "the root's duration, skew cut"


def test_orphans_are_roots_under_a_virtual_root() -> None:
    # roots: R [0, 50], O (parent missing) [60, 100] with O1 [70, 90], P [10, 30].
    # Virtual root [0, 100]: O ends last → inside O, O1 → O owns 90..100 and 60..70, O1
    # owns 70..90; t=60: R (50) → the gap 50..60 belongs to no span, R owns 0..50; t=0: P
    # is skipped. 50 + 20 + 20 = 100 less the 10 ms gap.
    names, cp = _path({"R": ("", 0, 50), "O": ("f" * 16, 60, 100), "O1": ("O", 70, 90),
                       "P": ("", 10, 30)})
    assert [names[r] for r in cp.rows] == ["R", "O", "O1"], "root first, then by start"
    assert _by_name(names, cp.critical_path_ms) == {"R": 50, "O": 20, "O1": 20, "P": 0}
    assert _by_name(names, cp.self_time_ms) == {"R": 50, "O": 20, "O1": 20, "P": 20}


def test_parent_cycles_are_cut_at_their_first_row() -> None:
    assert resolve_parents(["a", "b", "c", "d"], ["b", "a", "a", "a"]) == [-1, 0, 0, 0]
    assert resolve_parents(["a", "b"], ["a", ""]) == [-1, -1], "its own parent"
    with pytest.raises(ValueError, match="cycle"):
        compute_critical_path([1, 0], [0, 0], [1, 1])


def test_open_spans_run_to_the_traces_horizon() -> None:
    # horizon = latest start or finished end = 80 (B1's end). R (open) → [0, 80];
    # B (open) → [50, 80]. t=80: B (80) → inside B, B1 (80) owns 60..80, B owns 50..60;
    # t=50: A (40) → R owns 40..50, A owns 10..40; R owns 0..10.
    names, cp = _path({"R": ("", 0, None), "A": ("R", 10, 40), "B": ("R", 50, None),
                       "B1": ("B", 60, 80)})
    assert [names[r] for r in cp.rows] == ["R", "A", "B", "B1"]
    assert _by_name(names, cp.critical_path_ms) == {"R": 20, "A": 30, "B": 10, "B1": 20}
    assert _by_name(names, cp.self_time_ms) == {"R": 20, "A": 30, "B": 10, "B1": 20}


def test_a_single_span_is_its_own_critical_path() -> None:
    names, cp = _path({"only": ("", 5, 47)})
    assert cp.rows == (0,) and cp.critical_path_ms == [42] and cp.self_time_ms == [42]
    _, instant = _path({"event": ("", 5, 5)})
    assert instant.rows == (0,) and instant.critical_path_ms == [0]
    assert compute_critical_path([], [], []) == CriticalPath((), [], [])


def test_a_deep_chain_does_not_recurse() -> None:
    depth = 5000  # deeper than Python's recursion limit
    parent = [-1, *range(depth - 1)]
    cp = compute_critical_path(parent, list(range(depth)), [2 * depth - i for i in range(depth)])
    assert cp.rows == tuple(range(depth))
    assert sum(cp.critical_path_ms) == pytest.approx(2 * depth / 1e6)


def test_misshapen_columns_are_refused() -> None:
    with pytest.raises(ValueError, match="one length"):
        compute_critical_path([-1], [0, 1], [1])
    with pytest.raises(ValueError, match="parent rows"):
        compute_critical_path([3], [0], [1])
    with pytest.raises(ValueError, match="one length"):
        resolve_parents(["a"], [])


def test_both_views_read_the_path_from_either_store(store: SpanStore) -> None:
    # the open-span case above, stored: R open at 0, A [10, 40], B open at 50, B1 [60, 80]
    # (plus a skewed child of A, [5, 45] → [10, 40], whose self time shows the clamp)
    model = build_spans()[0]
    base = model.start_time

    def span(span_id: str, parent: str, start_ms: int, end_ms: int | None) -> CanonicalSpan:
        start = base + timedelta(milliseconds=start_ms)
        end = base + timedelta(milliseconds=end_ms) if end_ms is not None else start
        return replace(model, trace_id="cd" * 16, span_id=span_id, parent_span_id=parent,
                       start_time=start, end_time=end,
                       duration_ms=(end - start).total_seconds() * 1000,
                       attributes='{"mentat.span.open": true}' if end_ms is None else "{}")

    spans = [span("0" * 16, "", 0, None), span("a" * 16, "0" * 16, 10, 40),
             span("b" * 16, "0" * 16, 50, None), span("c" * 16, "b" * 16, 60, 80),
             span("d" * 16, "a" * 16, 5, 45)]
    store.append_batch(spans_to_arrow(spans))
    timeline = get_trace_timeline(store, "cd" * 16)
    tree = get_trace(store, "cd" * 16)
    assert timeline is not None and tree is not None
    assert timeline.critical_path == tree.critical_path == ("0" * 16, "a" * 16, "d" * 16,
                                                            "b" * 16, "c" * 16)
    columns = timeline.columns
    critical = dict(zip(columns["span_id"], columns["critical_path_ms"], strict=True))
    assert critical == pytest.approx({"0" * 16: 20, "a" * 16: 0, "d" * 16: 30,
                                      "b" * 16: 10, "c" * 16: 20})
    own = dict(zip(columns["span_id"], columns["self_time_ms"], strict=True))
    assert own == pytest.approx({"0" * 16: 20, "a" * 16: 0, "d" * 16: 30, "b" * 16: 10,
                                 "c" * 16: 20})
    root = tree.roots[0]
    assert (root.critical_path_ms, root.self_time_ms) == pytest.approx((20, 20))
