"""Version comparison on constructed traces, on both backends.

Side A (``prompt_version = v1``, org acme): 6 traces lasting 100, 200, ..., 600 ms; the
600 ms one fails. Side B (``v2``): 7 traces lasting 150, 250, ..., 750 ms; the 650 and
750 ms ones fail. One acme trace has spans of both (mixed), one globex trace is v1, two
acme traces are v3. Each trace: an agent root (usage rollup, repeating its child's
tokens) and one chat call carrying the prompt version, cost and tokens.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import count

import pytest
from scipy.stats import mannwhitneyu
from statsmodels.stats.proportion import (
    proportion_effectsize,
    proportions_ztest,
)

from mentatlab.analytics.compare import (
    ALPHA,
    MIN_SAMPLE_PER_SIDE,
    compare_versions,
    mann_whitney,
    two_proportions,
)
from mentatlab.analytics.query import QueryParams, TimeRange
from mentatlab.errors import ValidationError
from mentatlab.model.span import CanonicalSpan, Operation, SpanStatus
from mentatlab.storage.base import SpanStore

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
RANGE = TimeRange(T0, T0 + timedelta(hours=1))
ACME = {"org_id": "acme"}
_numbers = count(1)


def _trace(ms: int, versions: tuple[str, ...], cost: Decimal, input_tokens: int,
           output_tokens: int, *, ok: bool = True, org: str = "acme",
           model: str = "gpt-4o") -> list[CanonicalSpan]:
    t = next(_numbers)
    start = T0 + timedelta(minutes=t)
    trace_id, root_id = f"{t:032x}", f"{t:08x}{0:08x}"
    status = SpanStatus.OK if ok else SpanStatus.ERROR
    common = dict(trace_id=trace_id, kind="internal", org_id=org, project_id="p",
                  service_name="svc", ingested_at_ns=1)
    root = CanonicalSpan(span_id=root_id, parent_span_id="", name="run", start_time=start,
                         end_time=start + timedelta(milliseconds=ms), duration_ms=float(ms),
                         status=status, operation=Operation.AGENT, agent_id="triage",
                         usage_is_rollup=True, input_tokens=input_tokens * len(versions),
                         output_tokens=output_tokens * len(versions),
                         **common)  # type: ignore[arg-type]
    calls = [CanonicalSpan(
        span_id=f"{t:08x}{n + 1:08x}", parent_span_id=root_id, name="chat",
        start_time=start + timedelta(milliseconds=10),
        end_time=start + timedelta(milliseconds=ms - 10), duration_ms=float(ms - 20),
        status=status, operation=Operation.CHAT, provider="openai", request_model=model,
        prompt_version=v, input_tokens=input_tokens, output_tokens=output_tokens,
        token_cost=cost, total_cost=cost, **common)  # type: ignore[arg-type]
        for n, v in enumerate(versions)]
    return [root, *calls]


def build() -> list[CanonicalSpan]:
    spans: list[CanonicalSpan] = []
    for i in range(6):  # A: 100..600 ms, cost 0.001*(i+1), tokens 100*(i+1) + 10
        spans += _trace(100 * (i + 1), ("v1",), Decimal("0.001") * (i + 1), 100 * (i + 1), 10,
                        ok=i != 5)
    for i in range(7):  # B: 150..750 ms, cost 0.002*(i+1), tokens 5*(i+1) + 1
        spans += _trace(150 + 100 * i, ("v2",), Decimal("0.002") * (i + 1), 5 * (i + 1), 1,
                        ok=i < 5, model="claude-sonnet-4")
    spans += _trace(999, ("v1", "v2"), Decimal("1"), 1, 1)  # mixed: on neither side
    spans += _trace(50, ("v1",), Decimal("5"), 1, 1, org="globex")  # another org
    spans += _trace(70, ("v3",), Decimal("0.5"), 1, 1)
    spans += _trace(80, ("v3",), Decimal("0.5"), 1, 1)
    return spans


@pytest.fixture(scope="module")
def spans() -> list[CanonicalSpan]:
    """Overrides the conftest dataset: ``loaded`` holds these spans (and resent copies)."""
    return build()


LAT_A = [100.0, 200, 300, 400, 500, 600]
LAT_B = [150.0, 250, 350, 450, 550, 650, 750]


def test_sides_worked_out_by_hand(loaded: SpanStore) -> None:
    c = compare_versions(loaded, QueryParams(RANGE, filters=ACME), "prompt_version", "v1", "v2")
    a, b = c.a, c.b
    assert (a.value, a.num_units, a.num_successes, b.num_units, b.num_successes) == (
        "v1", 6, 5, 7, 5)
    assert a.success_rate == pytest.approx(5 / 6) and b.success_rate == pytest.approx(5 / 7)
    # linear interpolation: A rank 0.5*5 = 2.5 → 300 + 0.5*100; 0.95*5 = 4.75 → 500 + 75
    assert (a.latency_p50_ms, a.latency_p95_ms, a.latency_p99_ms) == pytest.approx(
        (350, 575, 595))
    # B: 0.5*6 = 3 → 450; 0.95*6 = 5.7 → 650 + 70; 0.99*6 = 5.94 → 650 + 94
    assert (b.latency_p50_ms, b.latency_p95_ms, b.latency_p99_ms) == pytest.approx(
        (450, 720, 744))
    # cost of every trace (the failed one too) over successes: 0.021 / 5, 0.056 / 5
    assert a.total_cost == Decimal("0.021") and b.total_cost == Decimal("0.056")
    assert a.cost_per_success == Decimal("0.0042") and b.cost_per_success == Decimal("0.0112")
    # tokens without the rollup root: (2100 + 60) / 5 and (140 + 7) / 5
    assert (a.total_tokens, a.tokens_per_success) == (2160, 432.0)
    assert (b.total_tokens, b.tokens_per_success) == (147, 29.4)
    assert c.num_mixed == 1 and (a.num_sampled, b.num_sampled) == (6, 7)


def test_p_values_equal_scipy_and_statsmodels(loaded: SpanStore) -> None:
    c = compare_versions(loaded, QueryParams(RANGE, filters=ACME), "prompt_version", "v1", "v2")
    lat = c.tests["latency_ms"]
    want = mannwhitneyu(LAT_A, LAT_B, alternative="two-sided")
    assert lat.computed and (lat.n_a, lat.n_b) == (6, 7)
    assert lat.statistic == want.statistic and lat.p_value == pytest.approx(want.pvalue,
                                                                          rel=1e-12)
    assert lat.effect_size == pytest.approx(2 * want.statistic / 42 - 1)
    assert lat.significant is False and want.pvalue > ALPHA  # p ≈ 0.445

    rate = c.tests["success_rate"]
    z, p = proportions_ztest([5, 5], [6, 7])
    assert rate.test == "two-proportion-z" and (rate.n_a, rate.n_b) == (6, 7)
    assert rate.statistic == pytest.approx(z) and rate.p_value == pytest.approx(p)
    assert rate.effect_size == pytest.approx(proportion_effectsize(5 / 6, 5 / 7))
    assert rate.significant is False  # p ≈ 0.61

    cost = c.tests["cost_per_success"]  # successful traces only
    want = mannwhitneyu([0.001, 0.002, 0.003, 0.004, 0.005],
                        [0.002, 0.004, 0.006, 0.008, 0.010], alternative="two-sided")
    assert (cost.n_a, cost.n_b) == (5, 5)
    assert cost.statistic == want.statistic and cost.p_value == pytest.approx(want.pvalue)
    tokens = c.tests["tokens_per_success"]
    want = mannwhitneyu([110, 210, 310, 410, 510], [6, 11, 16, 21, 26], alternative="two-sided")
    assert tokens.statistic == want.statistic == 25  # every A above every B
    assert tokens.p_value == pytest.approx(want.pvalue) == pytest.approx(2 / 252)  # exact
    assert tokens.effect_size == 1.0 and tokens.significant is True


def test_scope_and_filters(loaded: SpanStore) -> None:
    unscoped = compare_versions(loaded, QueryParams(RANGE), "prompt_version", "v1", "v2")
    assert unscoped.a.num_units == 7  # the globex v1 trace joins
    with pytest.raises(ValidationError) as err:  # globex has no v2
        compare_versions(loaded, QueryParams(RANGE, filters={"org_id": "globex"}),
                         "prompt_version", "v1", "v2")
    assert err.value.field == "b"
    # a non-tenancy condition picks traces having a span that meets it
    with pytest.raises(ValidationError) as err:  # no v1 trace calls claude
        compare_versions(loaded, QueryParams(RANGE, filters={
            "org_id": "acme", "model": "claude-sonnet-4"}), "prompt_version", "v2", "v1")
    assert err.value.field == "b"
    agent = compare_versions(loaded, QueryParams(RANGE, filters={"agent": "triage", **ACME}),
                             "prompt_version", "v1", "v2")
    assert (agent.a.num_units, agent.b.num_units) == (6, 7)


def test_model_field(loaded: SpanStore) -> None:
    c = compare_versions(loaded, QueryParams(RANGE, filters=ACME), "model", "gpt-4o",
                         "claude-sonnet-4")
    # gpt-4o: the 6 v1 traces, the mixed one and the two v3 ones; claude: the 7 v2 traces
    assert (c.a.num_units, c.b.num_units, c.num_mixed) == (9, 7, 0)
    assert c.b.latency_p50_ms == pytest.approx(450)


def test_too_few_and_sample_cap(loaded: SpanStore) -> None:
    c = compare_versions(loaded, QueryParams(RANGE, filters=ACME), "prompt_version", "v1", "v3")
    assert c.b.num_units == 2 and c.b.cost_per_success == Decimal("0.5")
    for test in c.tests.values():
        assert not test.computed and test.p_value is None and test.significant is None
        assert f"at least {MIN_SAMPLE_PER_SIDE}" in (test.reason or "")
    capped = compare_versions(loaded, QueryParams(RANGE, filters=ACME), "prompt_version", "v1",
                              "v2", max_sample=3)
    assert (capped.a.num_sampled, capped.b.num_sampled) == (3, 3)
    assert capped.a.num_units == 6 and capped.a.latency_p50_ms == pytest.approx(350)
    again = compare_versions(loaded, QueryParams(RANGE, filters=ACME), "prompt_version", "v1",
                             "v2", max_sample=3)
    assert again == capped  # the sample is deterministic


@pytest.mark.parametrize(("field", "a", "b", "bad"), [
    ("prompt", "v1", "v2", "field"),
    ("name", "v1", "v2", "field"),
    ("prompt_version", "v1", "v1", "b"),
    ("prompt_version", "", "v2", "a"),
    ("prompt_version", "v1", "", "b"),
    ("prompt_version", "v9", "v2", "a"),
    ("prompt_version", "v1", "v9", "b"),
])
def test_bad_input_names_the_field(loaded: SpanStore, field: str, a: str, b: str,
                                   bad: str) -> None:
    with pytest.raises(ValidationError) as err:
        compare_versions(loaded, QueryParams(RANGE, filters=ACME), field, a, b)
    assert err.value.field == bad


def test_no_variance_is_not_computed() -> None:
    all_ok = two_proportions(5, 5, 7, 7)
    assert not all_ok.computed and "succeeded" in (all_ok.reason or "")
    same = mann_whitney([1.0] * 5, [1.0] * 6)
    # scipy gives U = 15, p = 1 for all ties: computed, no effect
    assert same.computed and same.p_value == 1.0 and same.effect_size == 0.0
    assert not mann_whitney([1.0] * 4, [2.0] * 9).computed
