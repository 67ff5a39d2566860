"""list_recommendations over settled traces gives the answer of raw spans, on both backends.

test_recommendations.py's spans: never settled (raw spans only) against all settled
(``context_trimming`` reads only the sessions ``trace_facts`` bounds at ``MIN_RUNS`` runs or
more), half settled with the rest in the unsettled tail, and a settled session touched
again. And sample traces whose ids are above the sorting cut (read again without it).
"""

from __future__ import annotations

from dataclasses import asdict, replace
from datetime import timedelta
from decimal import Decimal
from itertools import count
from typing import Any

import pyarrow as pa
import pytest
import test_recommendations
from test_recommendations import ACME, RANGE

from mentatlab.analytics import recommendations, session_runs
from mentatlab.analytics.query import QueryParams
from mentatlab.analytics.recommendations import list_recommendations
from mentatlab.model.schema import spans_to_arrow
from mentatlab.model.span import CanonicalSpan
from mentatlab.pipeline.price import Price
from mentatlab.resolver.settle import Settler
from mentatlab.storage.base import SpanStore

S = 1_000_000_000


@pytest.fixture(autouse=True)
def _long_range(monkeypatch: pytest.MonkeyPatch) -> None:
    """Count the range as long: sessions are bounded from ``trace_facts`` (not read raw)."""
    monkeypatch.setattr(recommendations._Reader, "num_spans", lambda _self: 10**9)


def build() -> list[CanonicalSpan]:
    """test_recommendations.py's spans, numbered from 1."""
    test_recommendations._ids = count(1)
    return test_recommendations.build()


def stamped(spans: list[CanonicalSpan], ns: int) -> pa.Table:
    """``spans`` as committed at ``ns`` (the writer stamps every commit)."""
    return spans_to_arrow([replace(s, ingested_at_ns=ns) for s in spans])


def answer(store: SpanStore) -> dict[str, Any]:
    return asdict(list_recommendations(store, QueryParams(RANGE, filters=ACME), Price()))


def raw_answer(store: SpanStore, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The answer as if the store was never settled (every call read from raw spans)."""
    with monkeypatch.context() as m:
        m.setattr(session_runs, "read_settle_state", lambda _store: None)
        return answer(store)


def test_all_settled(store: SpanStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.append_batch(stamped(build(), 10 * S))
    raw = raw_answer(store, monkeypatch)
    assert {r["kind"] for r in raw["recommendations"]} == {
        "cheaper_model", "prompt_caching", "context_trimming", "batching", "failing_retries"}
    Settler(store, 1.0).run_pass(10**18, now_ns=20 * S)
    assert answer(store) == raw


def test_settled_and_unsettled_tail(store: SpanStore, monkeypatch: pytest.MonkeyPatch
                                    ) -> None:
    spans = build()
    early = [s for s in spans if int(s.trace_id, 16) % 2]
    late = [s for s in spans if not int(s.trace_id, 16) % 2]
    store.append_batch(stamped(early, 10 * S))
    Settler(store, 1.0).run_pass(10**18, now_ns=20 * S)
    store.append_batch(stamped(late, 30 * S))  # not settled yet: read from raw spans
    assert answer(store) == raw_answer(store, monkeypatch)


def test_settled_session_touched_again(store: SpanStore, monkeypatch: pytest.MonkeyPatch
                                       ) -> None:
    spans = build()
    store.append_batch(stamped(spans, 10 * S))
    Settler(store, 1.0).run_pass(10**18, now_ns=20 * S)
    # one more run of a growing session, after it settled: in the tail, it counts
    one = next(s for s in spans if s.session_id == "chat-s0")
    more = replace(one, trace_id=f"{10**6:032x}", span_id=f"{10**6:016x}",
                   start_time=one.start_time + timedelta(hours=5),
                   end_time=one.end_time + timedelta(hours=5), input_tokens=3500)
    store.append_batch(stamped([more], 30 * S))
    (rec,) = [r for r in answer(store)["recommendations"] if r["kind"] == "context_trimming"]
    assert rec["evidence"]["num_runs"] == 16
    assert answer(store) == raw_answer(store, monkeypatch)
    Settler(store, 1.0).run_pass(10**18, now_ns=50 * S)  # settled: the same answer
    (again,) = [r for r in answer(store)["recommendations"]
                if r["kind"] == "context_trimming"]
    assert again == rec


def test_samples_above_the_cut(store: SpanStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ids not below the cut: each group's lowest ids are read again without it."""
    spans = [replace(s, trace_id=f"f{s.trace_id[1:]}") for s in build()]
    store.append_batch(stamped(spans, 10 * S))
    monkeypatch.setattr(recommendations, "sample_cut", lambda _num_spans: "01")
    got = answer(store)
    recs = {r["kind"]: r for r in got["recommendations"]}
    assert recs["cheaper_model"]["sample_trace_ids"] == [f"f{n:031x}" for n in range(1, 4)]
    assert recs["cheaper_model"]["saving_in_window"] == Decimal("0.90")
    monkeypatch.setattr(recommendations, "sample_cut", lambda _num_spans: "g")  # one pass
    assert answer(store) == got
