"""Peer comparison on constructed runs, on both backends.

Each run is one trace: the agent's root span (its own id, ``operation_name`` given) and one
chat call inheriting the id, carrying the cost and tokens; the run lasts the root's
duration. Org acme (runs as (ms, USD, tokens, ok)):

* ``triage`` (invoke_agent): (100, 0.01, 100, ok), (300, 0.03, 300, ok), (200, 0.02, 200,
  error) → cost per success 0.06/2 = 0.03, tokens per success 600/2 = 300, p50 200;
* ``writer`` (invoke_agent): (400, 0.02, 1000, ok), (600, 0.02, 1000, ok) → 0.02, 1000, 500;
* ``planner`` (invoke_agent): (50, 0.10, 50, ok) → 0.10, 50, 50;
* ``failing`` (invoke_agent): (70, 0.01, 10, error) → no success, p50 70;
* ``summarizer`` (chat: its root is a chat call) (80, 0.005, 20, ok), alone in its type.

Org globex: a ``writer`` run that must not count under the acme filter.

Ranks (kind="mean": (#below + #at-or-below) / 2n × 100), invoke_agent:

* cost per success over {0.03, 0.02, 0.10}: triage (1+2)/6 = 50, writer (0+1)/6 = 16.67,
  planner (2+3)/6 = 83.33; failing unranked;
* p50 over {200, 500, 50, 70}: triage (2+3)/8 = 62.5, writer 87.5, planner 12.5, failing 37.5;
* tokens per success over {300, 1000, 50}: 50, 83.33, 16.67.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import count

import pytest
from scipy.stats import percentileofscore

from mentatlab.analytics.peers import percentile_ranks, rank_peers
from mentatlab.analytics.query import QueryParams, TimeRange
from mentatlab.model.span import CanonicalSpan, Operation, SpanStatus
from mentatlab.storage.base import SpanStore

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
RANGE = TimeRange(T0, T0 + timedelta(hours=1))
ACME = {"org_id": "acme"}
_n = count(1)


def _run(agent: str, ms: int, cost: str, tokens: int, ok: bool = True, *,
         op: tuple[Operation, str] = (Operation.AGENT, "invoke_agent"),
         org: str = "acme") -> list[CanonicalSpan]:
    t = next(_n)
    start = T0 + timedelta(minutes=t)
    status = SpanStatus.OK if ok else SpanStatus.ERROR
    common = dict(trace_id=f"{t:032x}", kind="internal", org_id=org, project_id="p",
                  service_name="svc", ingested_at_ns=1, agent_id=agent)
    root_id = f"{t:08x}{0:08x}"
    root = CanonicalSpan(span_id=root_id, parent_span_id="", name=agent, start_time=start,
                         end_time=start + timedelta(milliseconds=ms), duration_ms=float(ms),
                         status=SpanStatus.OK, operation=op[0], operation_name=op[1],
                         **common)  # type: ignore[arg-type]
    call = CanonicalSpan(span_id=f"{t:08x}{1:08x}", parent_span_id=root_id, name="chat",
                         start_time=start + timedelta(milliseconds=1),
                         end_time=start + timedelta(milliseconds=ms - 1),
                         duration_ms=float(ms - 2), status=status, operation=Operation.CHAT,
                         operation_name="chat", request_model="gpt-4o", provider="openai",
                         input_tokens=tokens - tokens // 10, output_tokens=tokens // 10,
                         token_cost=Decimal(cost), total_cost=Decimal(cost), inherited=1,
                         **common)  # type: ignore[arg-type]
    return [root, call]


def build() -> list[CanonicalSpan]:
    return [
        *_run("triage", 100, "0.01", 100), *_run("triage", 300, "0.03", 300),
        *_run("triage", 200, "0.02", 200, ok=False),
        *_run("writer", 400, "0.02", 1000), *_run("writer", 600, "0.02", 1000),
        *_run("planner", 50, "0.10", 50),
        *_run("failing", 70, "0.01", 10, ok=False),
        *_run("summarizer", 80, "0.005", 20, op=(Operation.CHAT, "chat")),
        *_run("writer", 9000, "9", 9, org="globex"),
        # initech: the type of most runs; a tie goes to the alphabetically first type
        *_run("mostly", 10, "0.01", 10, org="initech"),
        *_run("mostly", 10, "0.01", 10, org="initech"),
        *_run("mostly", 10, "0.01", 10, org="initech", op=(Operation.CHAT, "chat")),
        *_run("tied", 10, "0.01", 10, org="initech"),
        *_run("tied", 10, "0.01", 10, org="initech", op=(Operation.RETRIEVAL, "")),
    ]


@pytest.fixture(scope="module")
def spans() -> list[CanonicalSpan]:
    """Overrides the conftest dataset: ``loaded`` holds these spans (and resent copies)."""
    return build()


def _by_agent(store: SpanStore) -> dict[str, object]:
    return {a.agent_id: a for a in rank_peers(store, QueryParams(RANGE, filters=ACME))}


def test_agents_and_types_by_hand(loaded: SpanStore) -> None:
    agents = _by_agent(loaded)
    assert {k: (a.operation_type, a.num_runs, a.num_successes)  # type: ignore[attr-defined]
            for k, a in agents.items()} == {
        "triage": ("invoke_agent", 3, 2), "writer": ("invoke_agent", 2, 2),
        "planner": ("invoke_agent", 1, 1), "failing": ("invoke_agent", 1, 0),
        "summarizer": ("chat", 1, 1)}
    triage = agents["triage"].ranks  # type: ignore[attr-defined]
    assert triage["cost_per_success"].value == Decimal("0.03")
    assert triage["tokens_per_success"].value == 300.0
    assert triage["latency_p50_ms"].value == pytest.approx(200)
    assert agents["writer"].ranks["latency_p50_ms"].value == pytest.approx(500)  # type: ignore[attr-defined]
    assert agents["writer"].total_cost == Decimal("0.04")  # type: ignore[attr-defined]


def test_ranks_worked_out_by_hand(loaded: SpanStore) -> None:
    agents = _by_agent(loaded)

    def rank(agent: str, metric: str) -> float | None:
        return agents[agent].ranks[metric].percentile_rank  # type: ignore[attr-defined,no-any-return]

    assert [rank(a, "cost_per_success") for a in ("triage", "writer", "planner")] == \
        pytest.approx([50, 100 / 6, 500 / 6])
    assert rank("failing", "cost_per_success") is None
    assert agents["failing"].ranks["cost_per_success"].num_peers == 3  # type: ignore[attr-defined]
    assert [rank(a, "latency_p50_ms") for a in ("triage", "writer", "planner", "failing")] == \
        pytest.approx([62.5, 87.5, 12.5, 37.5])
    assert [rank(a, "tokens_per_success") for a in ("triage", "writer", "planner")] == \
        pytest.approx([50, 500 / 6, 100 / 6])
    alone = agents["summarizer"].ranks  # type: ignore[attr-defined]
    assert [alone[m].percentile_rank for m in alone] == [50, 50, 50]
    assert alone["latency_p50_ms"].num_peers == 1


def test_operation_type_is_the_majority_then_alphabetical(loaded: SpanStore) -> None:
    agents = rank_peers(loaded, QueryParams(RANGE, filters={"org_id": "initech"}))
    # tied: invoke_agent once, retrieval (no operation_name: the coarse operation) once
    assert {a.agent_id: a.operation_type for a in agents} == {
        "mostly": "invoke_agent", "tied": "invoke_agent"}


def test_percentile_ranks_are_scipy_mean_kind() -> None:
    values = [3.0, 1.0, 3.0, 7.0]
    assert percentile_ranks(values) == [percentileofscore(values, v, kind="mean")
                                        for v in values]
    # 3: 1 of 4 below (25), 3 at or below (75) → 50; ties share a rank
    assert percentile_ranks(values) == [50, 12.5, 50, 87.5]


def test_empty_range(loaded: SpanStore) -> None:
    later = TimeRange(T0 + timedelta(days=1), T0 + timedelta(days=2))
    assert rank_peers(loaded, QueryParams(later)) == []
