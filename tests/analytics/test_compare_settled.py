"""compare_versions over settled traces (trace_facts) gives test_compare.py's answers.

The same constructed traces as test_compare.py, on both backends: all settled; some
settled and the rest still in the unsettled tail (read from raw spans); and a trace
settled once and then touched again (in the tail, counted once).
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from itertools import count

import pyarrow as pa
import pytest
import test_compare
from test_compare import ACME, RANGE

from mentatlab.analytics.compare import Comparison, compare_versions
from mentatlab.analytics.query import QueryParams
from mentatlab.model.schema import spans_to_arrow
from mentatlab.model.span import CanonicalSpan, SpanStatus
from mentatlab.resolver.settle import Settler
from mentatlab.storage.base import SpanStore

S = 1_000_000_000


def check(c: Comparison) -> None:
    """test_compare.py's hand-worked sides."""
    a, b = c.a, c.b
    assert (a.num_units, a.num_successes, b.num_units, b.num_successes) == (6, 5, 7, 5)
    assert (a.latency_p50_ms, a.latency_p95_ms, a.latency_p99_ms) == pytest.approx(
        (350, 575, 595))
    assert (b.latency_p50_ms, b.latency_p95_ms, b.latency_p99_ms) == pytest.approx(
        (450, 720, 744))
    assert a.total_cost == Decimal("0.021") and b.total_cost == Decimal("0.056")
    assert (a.total_tokens, b.total_tokens) == (2160, 147)
    assert c.num_mixed == 1 and (a.num_sampled, b.num_sampled) == (6, 7)
    assert c.tests["latency_ms"].p_value == pytest.approx(0.445, abs=1e-3)


def facts_count(store: SpanStore) -> int:
    return int(store.query_arrow("SELECT count() AS n FROM trace_facts FINAL")
               .column("n")[0].as_py())


def run(store: SpanStore) -> Comparison:
    return compare_versions(store, QueryParams(RANGE, filters=ACME), "prompt_version",
                            "v1", "v2")


def build() -> list[CanonicalSpan]:
    """test_compare.py's traces, numbered from 1 (trace n starts n minutes into RANGE)."""
    test_compare._numbers = count(1)
    return test_compare.build()


def stamped(spans: list[CanonicalSpan], ns: int) -> pa.Table:
    """``spans`` as committed at ``ns`` (the writer stamps every commit)."""
    return spans_to_arrow([replace(s, ingested_at_ns=ns) for s in spans])


def test_all_settled(store: SpanStore) -> None:
    store.append_batch(stamped(build(), 10 * S))
    Settler(store, 1.0).run_pass(10**18, now_ns=20 * S)
    assert facts_count(store) == 17
    check(run(store))


def test_settled_and_unsettled_tail(store: SpanStore) -> None:
    spans = build()
    early = [s for s in spans if int(s.trace_id, 16) % 2]
    late = [s for s in spans if not int(s.trace_id, 16) % 2]
    store.append_batch(stamped(early, 10 * S))
    Settler(store, 1.0).run_pass(10**18, now_ns=20 * S)
    assert facts_count(store) == len({s.trace_id for s in early}) > 0
    store.append_batch(stamped(late, 30 * S))  # not settled yet: read from raw spans
    check(run(store))


def test_settled_trace_touched_again_counts_once(store: SpanStore) -> None:
    spans = build()
    store.append_batch(stamped(spans, 10 * S))
    Settler(store, 1.0).run_pass(10**18, now_ns=20 * S)
    # re-send the first trace (v1, 100 ms, ok) with a later stamp: it is in the tail now
    first = [s for s in spans if s.trace_id == spans[0].trace_id]
    store.append_batch(stamped(first, 30 * S))
    check(run(store))
    # fail it: the tail's raw spans decide (5 - 1 successes on side A)
    failed = [replace(s, status=SpanStatus.ERROR) for s in first]
    store.append_batch(stamped(failed, 40 * S))
    assert run(store).a.num_successes == 4
    Settler(store, 1.0).run_pass(10**18, now_ns=50 * S)  # settled again: same answer
    assert run(store).a.num_successes == 4 and facts_count(store) == 17
