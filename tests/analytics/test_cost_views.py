"""Cost views on hand-made traces, on both backends, from raw spans and from the aggregates.

Prices (pricing.toml entries): ``m-big`` (openai) $2 input, $8 output, $0.5 cache read per
million tokens; ``m-small`` (anthropic) $1 input, $5 output, no cache price.

====  =================  ========  ======  =========================================  ======
trace org/project        agent     user    LLM calls (input incl. cache / read / out      cost
                                            incl. reasoning / reasoning, ms, status)
====  =================  ========  ======  =========================================  ======
1     acme/web           planner   u1/s1   A m-big 10000/4000/1000/200 100 ok: .022   .026
                                           B m-small 2000/0/400/0 300 ok: .004
2     acme/web           writer    u1/s2   C m-big 5000/1000/500/0 200 error: .0125   .0125
3     acme/api           planner   u2/s3   D m-small 3000/0/600/0 400 ok: .006;       .0075
                                           root roll-up: 1000 in + 100 out no call
                                           carries (unattributed, m-small): .0015
4     globex/web         bot       -/s9    E m-big 1000/0/100/0 50 ok (the root): .0028 .0028
====  =================  ========  ======  =========================================  ======

A: 6000 x 2 + 4000 x .5 + 800 x 8 + 200 x 8 (per M) = .012 + .002 + .0064 + .0016 = .022,
saving 4000 x (2 - .5)/M = .006; C: .008 + .0005 + .004, saving .0015.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest

from mentatlab.analytics.aggregate_read import plan_read
from mentatlab.analytics.cost_views import (
    AttributionNode,
    attribution_tree,
    parse_levels,
    provider_models,
    token_waterfall,
    unit_economics,
)
from mentatlab.analytics.query import QueryParams, TimeRange
from mentatlab.errors import ValidationError
from mentatlab.model.schema import spans_to_arrow
from mentatlab.model.span import CanonicalSpan, Operation, SpanStatus
from mentatlab.pipeline.price import Price
from mentatlab.pricing.pricing_file import ModelRate, PricingConfig
from mentatlab.resolver.resolver import Resolver
from mentatlab.storage.base import SpanStore

D = Decimal
# recent (the minute tier keeps 8 days) and on whole hours: the hour tier serves it all
T0 = (datetime.now(UTC) - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
RANGE = TimeRange(T0, T0 + timedelta(hours=2))
PRICE = Price(pricing=PricingConfig(models=(
    ModelRate("openai", "m-big", D(2), D(8), cache_read_per_mtok=D("0.5")),
    ModelRate("anthropic", "m-small", D(1), D(5)))))


def _span(trace: int, n: int, parent: int | None, ms: float, *, org: str, project: str,
          agent: str, user: str, session: str, model: str = "", ok: bool = True,
          **fields: object) -> CanonicalSpan:
    start = T0 + timedelta(minutes=10 * trace, seconds=n)
    provider = {"m-big": "openai", "m-small": "anthropic", "": ""}[model]
    return CanonicalSpan(
        trace_id=f"{trace:032x}", span_id=f"{trace:08x}{n:08x}",
        parent_span_id="" if parent is None else f"{trace:08x}{parent:08x}",
        name="call" if model else "run", kind="internal", start_time=start,
        end_time=start + timedelta(milliseconds=ms), duration_ms=ms,
        status=SpanStatus.OK if ok else SpanStatus.ERROR, org_id=org, project_id=project,
        agent_id=agent, user_id=user, session_id=session, provider=provider,
        request_model=model, operation=Operation.CHAT if model else Operation.AGENT,
        ingested_at_ns=1, **fields)  # type: ignore[arg-type]


def build() -> list[CanonicalSpan]:
    web = dict(org="acme", project="web")
    t1 = dict(web, agent="planner", user="u1", session="s1")
    t2 = dict(web, agent="writer", user="u1", session="s2")
    t3 = dict(org="acme", project="api", agent="planner", user="u2", session="s3")
    t4 = dict(org="globex", project="web", agent="bot", user="", session="s9")
    spans = [
        _span(1, 1, None, 500, usage_is_rollup=True, input_tokens=12_000,
              cache_read_tokens=4_000, output_tokens=1_400, reasoning_tokens=200, **t1),
        _span(1, 2, 1, 100, model="m-big", input_tokens=10_000, cache_read_tokens=4_000,
              output_tokens=1_000, reasoning_tokens=200, **t1),
        _span(1, 3, 1, 300, model="m-small", input_tokens=2_000, output_tokens=400, **t1),
        _span(2, 1, None, 400, usage_is_rollup=True, input_tokens=5_000,
              cache_read_tokens=1_000, output_tokens=500, ok=False, **t2),
        _span(2, 2, 1, 200, model="m-big", input_tokens=5_000, cache_read_tokens=1_000,
              output_tokens=500, ok=False, **t2),
        _span(3, 1, None, 600, model="m-small", usage_is_rollup=True, input_tokens=4_000,
              output_tokens=700, unattributed_input_tokens=1_000,
              unattributed_output_tokens=100, **t3),
        _span(3, 2, 1, 400, model="m-small", input_tokens=3_000, output_tokens=600, **t3),
        _span(4, 1, None, 50, model="m-big", input_tokens=1_000, output_tokens=100, **t4),
    ]
    return PRICE(spans)


@pytest.fixture(params=["raw", "aggregates"])
def priced(request: pytest.FixtureRequest, store: SpanStore) -> SpanStore:
    spans = build()
    store.append_batch(spans_to_arrow(spans))
    store.append_batch(spans_to_arrow([replace(s, ingested_at_ns=2) for s in spans[::3]]))
    if request.param == "aggregates":
        Resolver(store, PRICE).run_pass(time.time_ns())
        plan = plan_read(store, RANGE.start, RANGE.end, {"org_id", "project_id", "agent_id",
                                                         "model"})
        assert plan is not None and [s.table for s in plan.sides] == ["agg_cost_hour"]
    else:
        assert plan_read(store, RANGE.start, RANGE.end, set()) is None
    return store


def test_the_spans_are_priced_as_the_table_says() -> None:
    costs = {(int(s.trace_id, 16), int(s.span_id[8:], 16)): (s.token_cost, s.unattributed_cost)
             for s in build()}
    assert costs == {(1, 1): (0, 0), (1, 2): (D("0.022"), 0), (1, 3): (D("0.004"), 0),
                     (2, 1): (0, 0), (2, 2): (D("0.0125"), 0), (3, 1): (0, D("0.0015")),
                     (3, 2): (D("0.006"), 0), (4, 1): (D("0.0028"), 0)}


def test_token_waterfall_and_cache_savings(priced: SpanStore) -> None:
    w = token_waterfall(priced, QueryParams(RANGE))
    assert [(k.kind, k.tokens, k.cost) for k in w.kinds] == [
        ("input", 16_000, D("0.027")),         # 6000 + 2000 + 4000 + 3000 + 1000 uncached
        ("cache_read", 5_000, D("0.0025")),    # A .002 + C .0005
        ("cache_write", 0, D(0)),
        ("output", 2_400, D("0.0162")),        # 800x8 + 400x5 + 500x8 + 600x5 + 100x8 (/M)
        ("reasoning", 200, D("0.0016")),
        ("request", 5, D(0)),                  # 5 LLM calls, no request fee
        ("unattributed", 1_100, D("0.0015")),  # trace 3's roll-up
    ]
    assert w.token_cost == D("0.0473") == sum((k.cost for k in w.kinds[:6]), D(0))
    assert w.cache_savings == D("0.0075")  # .006 + .0015
    assert (w.input_tokens, w.output_tokens, w.cache_read_tokens, w.requests) == (
        21_000, 2_600, 5_000, 5)
    only_globex = token_waterfall(priced, QueryParams(RANGE, filters={"org_id": "globex"}))
    assert only_globex.token_cost == D("0.0028") and only_globex.cache_savings == 0


def _flat(node: AttributionNode, depth: int = 0) -> list[tuple[int, str, Decimal, int]]:
    out = [(depth, node.key, node.total_cost, node.num_spans)]
    for child in node.children:
        out += _flat(child, depth + 1)
    return out


def _adds_up(node: AttributionNode) -> None:
    if node.children:
        assert node.total_cost == sum((c.total_cost for c in node.children), D(0))
        assert node.num_spans == sum(c.num_spans for c in node.children)
        assert node.unattributed_cost == sum((c.unattributed_cost for c in node.children), D(0))
        for child in node.children:
            _adds_up(child)


def test_attribution_tree_adds_up_to_the_cent_in_the_callers_order(priced: SpanStore) -> None:
    tree = attribution_tree(priced, QueryParams(RANGE),
                            parse_levels("org,project_id,agent,model"))
    assert tree.levels == ("org_id", "project_id", "agent_id", "model")
    assert _flat(tree.root) == [
        (0, "", D("0.0488"), 8),
        (1, "acme", D("0.046"), 7),
        (2, "web", D("0.0385"), 5),
        (3, "planner", D("0.026"), 3),
        (4, "m-big", D("0.022"), 1), (4, "m-small", D("0.004"), 1), (4, "", D(0), 1),
        (3, "writer", D("0.0125"), 2),
        (4, "m-big", D("0.0125"), 1), (4, "", D(0), 1),
        (2, "api", D("0.0075"), 2),
        (3, "planner", D("0.0075"), 2),
        (4, "m-small", D("0.0075"), 2),  # .006 + the roll-up's unattributed .0015
        (1, "globex", D("0.0028"), 1),
        (2, "web", D("0.0028"), 1), (3, "bot", D("0.0028"), 1), (4, "m-big", D("0.0028"), 1),
    ]
    assert tree.root.total_cost == sum((s.total_cost for s in build()), D(0))
    assert tree.root.unattributed_cost == D("0.0015")
    _adds_up(tree.root)
    # another order, another tree, the same total
    by_model = attribution_tree(priced, QueryParams(RANGE), parse_levels("model,user"))
    assert [(n.key, n.total_cost) for n in by_model.root.children] == [
        ("m-big", D("0.0373")), ("m-small", D("0.0115")), ("", D(0))]
    assert [(n.key, n.total_cost) for n in by_model.root.children[0].children] == [
        ("u1", D("0.0345")), ("", D("0.0028"))]
    assert by_model.root.total_cost == D("0.0488")
    _adds_up(by_model.root)


@pytest.mark.parametrize(("text", "reason"), [
    ("", "got none"), ("org,project,agent,model,user,tool", "at most 5"),
    ("org,agent_name", "'agent_name'"), ("org,org_id", "'org_id' twice"),
    ("model,model", "twice")])
def test_bad_levels_name_the_field(text: str, reason: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_levels(text)
    assert caught.value.field == "levels" and reason in caught.value.reason


def test_unit_economics(priced: SpanStore) -> None:
    u = unit_economics(priced, QueryParams(RANGE))
    assert (u.num_traces, u.num_successful_traces, u.total_cost) == (4, 3, D("0.0488"))
    assert u.cost_per_trace == D("0.0122")
    assert u.cost_per_successful_trace == D("0.016266666667")  # .0488 / 3, half-even
    assert (u.num_users, u.user_cost, u.cost_per_user) == (2, D("0.046"), D("0.023"))
    assert (u.num_sessions, u.session_cost, u.cost_per_session) == (4, D("0.0488"),
                                                                    D("0.0122"))
    assert unit_economics(priced, QueryParams(RANGE), use_aggregates=False) == u
    acme = unit_economics(priced, QueryParams(RANGE, filters={"org": "acme"}))
    assert (acme.num_traces, acme.num_successful_traces, acme.total_cost) == (3, 2, D("0.046"))
    assert acme == unit_economics(priced, QueryParams(RANGE, filters={"org": "acme"}),
                                  use_aggregates=False)
    none = unit_economics(priced, QueryParams(RANGE, filters={"org_id": "initech"}))
    assert (none.num_traces, none.cost_per_successful_trace, none.cost_per_user) == (
        0, None, None)


def test_provider_model_matrix(priced: SpanStore) -> None:
    rows = provider_models(priced, QueryParams(RANGE))
    assert [(r.provider, r.model, r.total_cost, r.requests, r.error_requests) for r in rows] == [
        ("openai", "m-big", D("0.0373"), 3, 1), ("anthropic", "m-small", D("0.010"), 2, 0)]
    big, small = rows
    assert big.error_rate == pytest.approx(1 / 3) and small.error_rate == 0
    # linear interpolation between closest ranks: 50, 100, 200 -> p95 at rank 1.9 = 190
    assert (big.latency_p50_ms, big.latency_p95_ms) == pytest.approx((100, 190))
    assert (small.latency_p50_ms, small.latency_p95_ms) == pytest.approx((350, 395))
    assert big.latency_p95_ms == pytest.approx(np.percentile([100, 200, 50], 95))
    assert (big.input_tokens, big.output_tokens) == (16_000, 1_600)
