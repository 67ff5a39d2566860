"""Settled calls (``llm_calls``) plus the unsettled tail give the raw answer, both backends.

provider x model and the recommendations census read ``llm_calls`` for the settled traces
and raw spans for the tail (analytics/settled_calls.py). Over test_recommendations.py's
spans: all settled; half settled with the rest in the tail; a settled trace touched again
(a call re-sent with another status and cost, a late call, a call that became a usage
roll-up) before and after it settles again; and a store the settle job never ran on.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from test_recommendations import ACME, RANGE
from test_recommendations_settled import build, stamped

from mentatlab.analytics import recommendations, session_runs, settled_calls
from mentatlab.analytics.cost_views import provider_models
from mentatlab.analytics.query import QueryParams, SqlParts
from mentatlab.analytics.recommendations import list_recommendations
from mentatlab.model.span import SpanStatus
from mentatlab.pipeline.price import Price
from mentatlab.resolver.settle import Settler
from mentatlab.storage.base import SpanStore

S = 1_000_000_000
PARAMS = QueryParams(RANGE, filters=ACME)


@pytest.fixture(autouse=True)
def _long_range(monkeypatch: pytest.MonkeyPatch) -> None:
    """Count the range as long (the census's sample cut then reads ``trace_low``)."""
    monkeypatch.setattr(recommendations._Reader, "num_spans", lambda _self: 10**9)


def answer(store: SpanStore) -> dict[str, Any]:
    return {"provider_models": [asdict(r) for r in provider_models(store, PARAMS)],
            "recommendations": asdict(list_recommendations(store, PARAMS, Price()))}


def raw_answer(store: SpanStore, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The answer as if the store was never settled (every call read from raw spans)."""
    with monkeypatch.context() as m:
        m.setattr(session_runs, "read_settle_state", lambda _store: None)
        m.setattr(settled_calls, "read_settle_state", lambda _store: None)
        return answer(store)


def settled_rows(store: SpanStore) -> int:
    return int(store.query_arrow("SELECT count() AS n FROM llm_calls FINAL WHERE llm"
                                 ).column("n")[0].as_py())


def test_all_settled(store: SpanStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.append_batch(stamped(build(), 10 * S))
    raw = raw_answer(store, monkeypatch)
    assert raw["provider_models"] and raw["recommendations"]["recommendations"]
    assert answer(store) == raw  # never settled: raw spans
    Settler(store, 1.0).run_pass(10**18, now_ns=20 * S)
    assert settled_rows(store) == sum(r["requests"] for r in raw["provider_models"])
    assert answer(store) == raw


def test_settled_and_unsettled_tail(store: SpanStore, monkeypatch: pytest.MonkeyPatch
                                    ) -> None:
    spans = build()
    store.append_batch(stamped([s for s in spans if int(s.trace_id, 16) % 2], 10 * S))
    Settler(store, 1.0).run_pass(10**18, now_ns=20 * S)
    store.append_batch(stamped([s for s in spans if not int(s.trace_id, 16) % 2], 30 * S))
    assert answer(store) == raw_answer(store, monkeypatch)


def test_trace_touched_again(store: SpanStore, monkeypatch: pytest.MonkeyPatch) -> None:
    spans = build()
    store.append_batch(stamped(spans, 10 * S))
    Settler(store, 1.0).run_pass(10**18, now_ns=20 * S)
    before = answer(store)
    calls = [s for s in spans if s.request_model or s.response_model]
    first, second, third = calls[0], calls[1], calls[-1]
    # a settled call re-sent failed and dearer, a late call in its trace, a call of another
    # settled trace that is now a usage roll-up, and one without a model (neither is a
    # call any more: the second has no row of its own to replace the old one with but for
    # the settle job's rewrite of every span that had a row)
    resent = replace(first, status=SpanStatus.ERROR, total_cost=first.total_cost + Decimal(1))
    late = replace(first, span_id=f"{10**6:016x}",
                   start_time=first.start_time + timedelta(seconds=1),
                   end_time=first.end_time + timedelta(seconds=2))
    rollup = replace(second, usage_is_rollup=True)
    unmodelled = replace(third, request_model="", response_model="", is_retry=False)
    store.append_batch(stamped([resent, late, rollup, unmodelled], 30 * S))
    tail = answer(store)
    assert tail != before
    assert tail == raw_answer(store, monkeypatch)
    Settler(store, 1.0).run_pass(10**18, now_ns=50 * S)  # settled again: replaced rows
    assert answer(store) == tail
    assert settled_rows(store) == sum(r["requests"] for r in tail["provider_models"])


def test_filter_llm_calls_lacks_reads_raw(store: SpanStore) -> None:
    store.append_batch(stamped(build(), 10 * S))
    Settler(store, 1.0).run_pass(10**18, now_ns=20 * S)
    params = QueryParams(RANGE, filters={**ACME, "session_id": "chat-s0"})
    assert settled_calls.calls_from(store, params, SqlParts(), ["llm"]) is None
    assert settled_calls.calls_from(store, PARAMS, SqlParts(), ["llm"]) is not None
