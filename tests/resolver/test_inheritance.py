"""Inherited attribution and roll-up usage through the resolver, in every arrival order.

One agent trace, sent in four parts in each of the 24 orders (each part followed by a
resolver pass, as if it arrived in a later request), plus all at once, on both backends.
After the last part, cost by agent and the unattributed cost must equal the values worked
out by hand below, to the last decimal, from the aggregates and from raw spans alike.

The trace (org ``acme``)::

    R  invoke_agent  agent "triage" (own attribute), customer "cust-1", gpt-4o,
       reports 1000 in / 200 out (a roll-up of what runs below it)
    ├── L1  chat gpt-4o          300 in / 50 out                  → triage, cust-1
    ├── T   execute_tool          0.2 core-s of CPU                → triage, cust-1
    └── S   invoke_agent  agent "research" (own, from its resource), gpt-4o-mini,
        │   reports 400 in / 100 out
        └── L2  chat gpt-4o-mini  250 in / 60 out                  → research, cust-1

Prices (pricing.toml rows, so the arithmetic is independent of genai-prices updates):
gpt-4o 2.50 / 10.00 USD per million input / output tokens, gpt-4o-mini 0.15 / 0.60,
CPU 0.05 USD per core-hour.

* L1 = 300 × 2.5e-6 + 50 × 10e-6 = 0.00125
* T  = 0.2 / 3600 × 0.05 = 0.000002777777777777… → 0.000002777778 (12 places, half even)
* L2 = 250 × 0.15e-6 + 60 × 0.6e-6 = 0.0000735
* S unattributed = (400 − 250) in, (100 − 60) out of gpt-4o-mini = 0.0000465
* R: below it L1 (300/50) and S's subtree max(400/100, 250/60) = 400/100, so 700/150;
  unattributed (1000 − 700) in, (200 − 150) out of gpt-4o = 0.00075 + 0.0005 = 0.00125
* triage = 0.00125 + 0.000002777778 + 0.00125 = 0.002502777778, of which 0.00125
  unattributed; research = 0.0000735 + 0.0000465 = 0.00012, of which 0.0000465.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from mentatlab.analytics import QueryParams, TimeRange, cost_by, get_trace
from mentatlab.model.schema import spans_to_arrow
from mentatlab.model.span import CanonicalSpan, Operation, SpanStatus
from mentatlab.pipeline.price import Price
from mentatlab.pricing.catalog import PriceCatalog
from mentatlab.pricing.pricing_file import parse_pricing
from mentatlab.resolver.resolver import Resolver
from mentatlab.storage.base import SpanStore

PRICE = Price(PriceCatalog(), parse_pricing({
    "models": [
        {"provider": "openai", "model": "gpt-4o", "input_per_mtok": "2.50",
         "output_per_mtok": "10.00"},
        {"provider": "openai", "model": "gpt-4o-mini", "input_per_mtok": "0.15",
         "output_per_mtok": "0.60"},
    ],
    "infrastructure": {"cpu_per_core_hour": "0.05"},
}))
T0 = (datetime.now(UTC) - timedelta(hours=3)).replace(minute=10, second=0, microsecond=0)
WINDOW = TimeRange(T0 - timedelta(hours=1), T0 + timedelta(hours=1))
TRIAGE = Decimal("0.002502777778")
TRIAGE_UNATTRIBUTED = Decimal("0.00125")
RESEARCH = Decimal("0.00012")
RESEARCH_UNATTRIBUTED = Decimal("0.0000465")
PARTS = ("root", "llm_and_tool", "sub_agent", "sub_llm")


def agent_trace(trace: int, project: str) -> dict[str, list[CanonicalSpan]]:
    """The trace above, split into the four parts it arrives in (ids unique per trace)."""

    def span(n: int, parent: int | None, offset_ms: int, **kw: object) -> CanonicalSpan:
        fields: dict[str, object] = dict(
            trace_id=f"{trace:032x}", span_id=f"{trace:08x}{n:08x}",
            parent_span_id=f"{trace:08x}{parent:08x}" if parent is not None else "",
            name=f"span{n}", kind="internal", status=SpanStatus.OK,
            start_time=T0 + timedelta(milliseconds=offset_ms),
            end_time=T0 + timedelta(milliseconds=offset_ms + 100), duration_ms=100.0,
            org_id="acme", project_id=project, provider="openai")
        fields.update(kw)
        return CanonicalSpan(**fields)  # type: ignore[arg-type]

    agent = dict(operation=Operation.AGENT, operation_name="invoke_agent", usage_is_rollup=True)
    return {
        "root": [span(1, None, 0, agent_id="triage", customer_id="cust-1",
                      request_model="gpt-4o", input_tokens=1000, output_tokens=200, **agent)],
        "llm_and_tool": [
            span(2, 1, 10, operation=Operation.CHAT, request_model="gpt-4o", input_tokens=300,
                 output_tokens=50),
            span(3, 1, 20, operation=Operation.TOOL, tool_name="search", provider="",
                 cpu_core_seconds=0.2)],
        "sub_agent": [span(4, 1, 30, agent_id="research", request_model="gpt-4o-mini",
                           input_tokens=400, output_tokens=100, **agent)],
        "sub_llm": [span(5, 4, 40, operation=Operation.CHAT, request_model="gpt-4o-mini",
                         input_tokens=250, output_tokens=60)],
    }


def send(store: SpanStore, spans: list[CanonicalSpan]) -> None:
    """Price the spans (as ingest does) and commit them with a fresh stamp."""
    priced = PRICE([replace(s) for s in spans])
    store.append_batch(spans_to_arrow([replace(s, ingested_at_ns=time.time_ns())
                                       for s in priced]))


def by_agent(store: SpanStore, project: str, *, use_aggregates: bool
             ) -> dict[str, tuple[Decimal, Decimal]]:
    rows = cost_by(store, QueryParams(WINDOW, filters={"project_id": project},
                                      group_by=["agent_id"]), use_aggregates=use_aggregates)
    return {r.keys["agent_id"]: (r.total_cost, r.unattributed_cost) for r in rows}


ORDERS = [*itertools.permutations(PARTS), ("all at once",)]


def test_every_arrival_order_ends_in_the_hand_computed_attribution(store: SpanStore) -> None:
    resolver = Resolver(store, PRICE)
    resolver.run_pass(time.time_ns())  # the empty store's first pass
    for number, order in enumerate(ORDERS, start=1):
        parts = agent_trace(number, f"order{number}")
        batches = [[s for p in PARTS for s in parts[p]]] if order == ("all at once",) else [
            parts[p] for p in order]
        for batch in batches:
            send(store, batch)
            resolver.run_pass(time.time_ns())
    want = {"triage": (TRIAGE, TRIAGE_UNATTRIBUTED),
            "research": (RESEARCH, RESEARCH_UNATTRIBUTED)}
    for number, order in enumerate(ORDERS, start=1):
        project = f"order{number}"
        assert by_agent(store, project, use_aggregates=True) == want, order
        assert by_agent(store, project, use_aggregates=False) == want, order
    # Totals over every order: 25 traces, nothing counted twice.
    rows = cost_by(store, QueryParams(WINDOW, group_by=["agent_id", "customer_id"]))
    assert {(r.keys["agent_id"], r.keys["customer_id"]): r.total_cost for r in rows} == {
        ("triage", "cust-1"): TRIAGE * len(ORDERS), ("research", "cust-1"): RESEARCH * len(ORDERS)}


def test_resolved_spans_say_what_they_inherited(store: SpanStore) -> None:
    resolver = Resolver(store, PRICE)
    parts = agent_trace(7, "p")
    for part in reversed(PARTS):  # every child before its parent
        send(store, parts[part])
        resolver.run_pass(time.time_ns())
    detail = get_trace(store, f"{7:032x}")
    assert detail is not None
    spans = {}
    stack = list(detail.roots)
    while stack:
        node = stack.pop()
        spans[node.span.name] = node.span
        stack.extend(node.children)
    assert {n: (s.agent_id, s.customer_id, s.inherited) for n, s in spans.items()} == {
        "span1": ("triage", "cust-1", 0),
        "span2": ("triage", "cust-1", 0b100001),  # agent (bit 0) and customer (bit 5)
        "span3": ("triage", "cust-1", 0b100001),
        "span4": ("research", "cust-1", 0b100000),  # its own agent, the root's customer
        "span5": ("research", "cust-1", 0b100001),
    }
    assert spans["span1"].unattributed_input_tokens == 300
    assert spans["span1"].unattributed_output_tokens == 50
    assert spans["span1"].unattributed_cost == TRIAGE_UNATTRIBUTED
    assert spans["span1"].total_cost == TRIAGE_UNATTRIBUTED
    assert spans["span4"].unattributed_cost == RESEARCH_UNATTRIBUTED
    assert spans["span2"].revision == 1 and spans["span1"].revision >= 1
    assert detail.total_cost == TRIAGE + RESEARCH


@pytest.mark.parametrize("late", ["sub_agent", "root"])
def test_a_late_ancestor_moves_cost_that_was_already_counted(store: SpanStore,
                                                              late: str) -> None:
    resolver = Resolver(store, PRICE)
    parts = agent_trace(3, "late")
    for part in PARTS:
        if part != late:
            send(store, parts[part])
    resolver.run_pass(time.time_ns())
    before = by_agent(store, "late", use_aggregates=True)
    assert "" in before  # some spans have no agent until their ancestor arrives
    send(store, parts[late])
    resolver.run_pass(time.time_ns())
    assert by_agent(store, "late", use_aggregates=True) == {
        "triage": (TRIAGE, TRIAGE_UNATTRIBUTED), "research": (RESEARCH, RESEARCH_UNATTRIBUTED)}
