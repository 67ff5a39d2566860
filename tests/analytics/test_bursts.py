"""burst_groups (numpy) marks the bursts the window query marks, on both backends.

Edge gaps: exactly BURST_GAP_MS (in), one ms more (out), calls starting in the same ms
(both in), sub-ms offsets (the ms decides), two groups interleaved in time.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from test_recommendations import T0, _span

from mentatlab.analytics.bursts import burst_groups
from mentatlab.analytics.query import QueryParams, TimeRange
from mentatlab.analytics.recommendations import (
    BURST_GAP_MS,
    _batching_sql,
    _Pricer,
    _Reader,
    _where,
)
from mentatlab.model.schema import spans_to_arrow
from mentatlab.pipeline.price import Price
from mentatlab.storage.base import SpanStore

_COLUMNS = ("num_small", "num_burst", "input_tokens", "output_tokens", "cache_read_tokens",
            "token_cost", "num_other")


def _small(ms: float, agent: str, i: int) -> Any:
    start = T0 + timedelta(milliseconds=ms)
    return _span(start, agent=agent, provider="openai", request_model="gpt-4o-mini",
                 input_tokens=100 + i, output_tokens=10, cache_read_tokens=i % 3,
                 token_cost=Decimal("0.000001") * (i + 1), total_cost=Decimal("0.000001"),
                 price_source="genai-prices@0.2.5:x" if i % 5 else "pricing.toml")


def test_numpy_marks_equal_the_window_query(store: SpanStore) -> None:
    gaps = [0, BURST_GAP_MS, BURST_GAP_MS + 1, 0.4, 0.7, 5000, 3000, BURST_GAP_MS + 1]
    spans, t = [], 0.0
    for i in range(300):
        t += gaps[i % len(gaps)]
        spans.append(_small(t, "a", i))
        spans.append(_small(t + 333.3, "b", i))
    store.append_batch(spans_to_arrow(spans))
    params = QueryParams(TimeRange(T0, T0 + timedelta(days=3)), filters={"org_id": "acme"})
    reader = _Reader(store, params, _Pricer(Price(), params.time_range.end))
    keys = [(r["org_id"], r["project_id"], r["agent_id"], str(r["operation"]), r["provider"],
             r["response_model"] or r["request_model"]) if r["llm"] else None
            for r in reader.census()]
    assert reader.smalls is not None
    got = burst_groups(reader.smalls, keys, BURST_GAP_MS, 1)
    parts = _where(params)
    want = {tuple(str(r[c]) for c in ("org_id", "project_id", "agent_id", "op", "provider",
                                      "model")): {c: r[c] for c in _COLUMNS}
            for r in store.query_arrow(_batching_sql(parts.where), parts.binds).to_pylist()}
    assert got == want and len(want) == 2
    assert all(0 < g["num_burst"] < g["num_small"] for g in got.values())
