"""Regressions on constructed traces, on both backends, with the answers worked out by hand.

The window is ``[T0, T0 + 2h)``, so the look-back ``L`` is 2 h. Every trace is one chat
span of an agent (org acme, model gpt-4o, cost 0.001 USD, 10 + 5 tokens, status ok)
carrying a ``prompt_version``. Five agents, one story each:

* ``slow``: 8 traces of v1 before T0 (100, 110, ..., 170 ms); v2 first seen at T0 + 10 min,
  8 traces of 300, ..., 370 ms. Every v2 trace is slower: U_a = 0, r = −1, exact
  two-sided p = 2 / C(16, 8) = 2 / 12870. A latency regression.
* ``same``: v1 as above; v2 at T0 + 11 min of 105, ..., 175 ms: U_a = 0+1+...+7 = 28,
  r = 2·28/64 − 1 = −0.125 (slightly slower), p ≈ 0.65: not significant, not reported.
* ``fast``: v1 as above; v2 at T0 + 12 min of 10, ..., 80 ms: U_a = 64, r = 1, p = 2 / 12870,
  better: significant but not a regression.
* ``few``: v1 as above; v2 at T0 + 13 min with 3 traces of 900 ms: fewer than 5 values,
  compare computes no test: not reported, with compare's reason.
* ``new``: only v2 (and its model gpt-4o, first seen with it), no earlier value: skipped,
  no baseline.

Every trace succeeds (success rate: not computed, no variance); cost and tokens are all
equal (Mann-Whitney over ties: p = 1, r = 0, "same"). The computed tests are latency, cost
and tokens of slow, same and fast: 9 p-values. Benjamini–Hochberg over them: the two
smallest (2/12870 each) get 2/12870 · 9/2 = 9/12870; the rest are capped at 1 or above p.
A globex trace of agent ``slow`` with v3 in the window must not reach acme's answer.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import count

import pytest
from scipy.stats import mannwhitneyu

from mentatlab.analytics.compare import MIN_SAMPLE_PER_SIDE
from mentatlab.analytics.query import EARLIEST_TIME, LATEST_TIME, QueryParams, TimeRange
from mentatlab.analytics.regressions import find_regressions
from mentatlab.errors import ValidationError
from mentatlab.model.span import CanonicalSpan, Operation, SpanStatus
from mentatlab.storage.base import SpanStore

T0 = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)
WINDOW = TimeRange(T0, T0 + timedelta(hours=2))
ACME = {"org_id": "acme"}
BASE_MS = [100 + 10 * i for i in range(8)]
_numbers = count(1)


def _trace(agent: str, version: str, start: datetime, ms: int, org: str = "acme"
           ) -> CanonicalSpan:
    t = next(_numbers)
    return CanonicalSpan(
        trace_id=f"{t:032x}", span_id=f"{t:016x}", parent_span_id="", name="chat",
        kind="client", start_time=start, end_time=start + timedelta(milliseconds=ms),
        duration_ms=float(ms), status=SpanStatus.OK, operation=Operation.CHAT,
        org_id=org, project_id="p", service_name="svc", ingested_at_ns=1, agent_id=agent,
        provider="openai", request_model="gpt-4o", prompt_version=version,
        input_tokens=10, output_tokens=5, token_cost=Decimal("0.001"),
        total_cost=Decimal("0.001"))  # type: ignore[arg-type]


def build() -> list[CanonicalSpan]:
    spans: list[CanonicalSpan] = []
    stories = {"slow": [300 + 10 * i for i in range(8)],
               "same": [105 + 10 * i for i in range(8)],
               "fast": [10 + 10 * i for i in range(8)],
               "few": [900, 900, 900]}
    for n, (agent, new_ms) in enumerate(stories.items()):
        for k, ms in enumerate(BASE_MS):  # v1 from T0 − 60 min, every 5 min
            spans.append(_trace(agent, "v1", T0 - timedelta(minutes=60 - 5 * k - n), ms))
        first = T0 + timedelta(minutes=10 + n)
        for k, ms in enumerate(new_ms):
            spans.append(_trace(agent, "v2", first + timedelta(minutes=5 * k), ms))
    for k in range(6):
        spans.append(_trace("new", "v2", T0 + timedelta(minutes=14 + 5 * k), 100))
    spans.append(_trace("slow", "v3", T0 + timedelta(minutes=30), 5000, org="globex"))
    return spans


@pytest.fixture(scope="module")
def spans() -> list[CanonicalSpan]:
    """Overrides the conftest dataset: ``loaded`` holds these spans (and resent copies)."""
    return build()


def _by_agent(result: object) -> dict[tuple[str, str], object]:
    return {(v.agent_id, v.field): v for v in result.versions}  # type: ignore[attr-defined]


def test_new_versions_and_baselines(loaded: SpanStore) -> None:
    r = find_regressions(loaded, QueryParams(WINDOW, filters=ACME))
    got = [(v.agent_id, v.field, v.version, v.first_seen, v.baseline) for v in r.versions]
    assert got == [
        ("slow", "prompt_version", "v2", T0 + timedelta(minutes=10), "v1"),
        ("same", "prompt_version", "v2", T0 + timedelta(minutes=11), "v1"),
        ("fast", "prompt_version", "v2", T0 + timedelta(minutes=12), "v1"),
        ("few", "prompt_version", "v2", T0 + timedelta(minutes=13), "v1"),
        ("new", "model", "gpt-4o", T0 + timedelta(minutes=14), None),  # field order: model
        ("new", "prompt_version", "v2", T0 + timedelta(minutes=14), None),  # < prompt_version
    ]
    assert r.lookback_ms == 2 * 3600 * 1000
    by = _by_agent(r)
    slow = by[("slow", "prompt_version")]
    assert (slow.num_baseline_traces, slow.num_version_traces) == (8, 8)  # type: ignore[attr-defined]
    for key in (("new", "prompt_version"), ("new", "model")):
        assert "no baseline" in by[key].skipped_reason  # type: ignore[attr-defined]


def test_worse_detected_same_and_better_not(loaded: SpanStore) -> None:
    r = find_regressions(loaded, QueryParams(WINDOW, filters=ACME))
    assert r.num_tests == 9  # latency, cost, tokens of slow, same and fast
    assert [(v.agent_id, m.metric) for v, m in r.regressions] == [("slow", "latency_ms")]
    _, lat = r.regressions[0]
    assert lat.test == "mann-whitney-u" and (lat.n_baseline, lat.n_version) == (8, 8)
    assert lat.p_value == pytest.approx(2 / 12870, rel=1e-9)  # exact: 2 / C(16, 8)
    assert lat.p_adjusted == pytest.approx(9 / 12870, rel=1e-9)  # BH: p · 9 / 2
    assert lat.effect_size == -1.0 and lat.direction == "worse"
    # p95 by linear interpolation: rank 0.95·7 = 6.65 → 160 + 6.5 and 360 + 6.5
    assert lat.baseline_value == pytest.approx(166.5)
    assert lat.version_value == pytest.approx(366.5)

    by = _by_agent(r)
    same = {m.metric: m for m in by[("same", "prompt_version")].checks}  # type: ignore[attr-defined]
    want = mannwhitneyu(BASE_MS, [105 + 10 * i for i in range(8)], alternative="two-sided")
    assert same["latency_ms"].p_value == pytest.approx(want.pvalue)
    assert same["latency_ms"].effect_size == pytest.approx(-0.125)  # 2·28/64 − 1
    assert same["latency_ms"].direction == "worse" and not same["latency_ms"].regression
    assert same["latency_ms"].p_adjusted == pytest.approx(min(1.0, want.pvalue * 9 / 3))
    fast = {m.metric: m for m in by[("fast", "prompt_version")].checks}  # type: ignore[attr-defined]
    assert fast["latency_ms"].direction == "better" and fast["latency_ms"].effect_size == 1.0
    assert fast["latency_ms"].p_adjusted == pytest.approx(9 / 12870, rel=1e-9)
    assert not fast["latency_ms"].regression
    for check in (*same.values(), *fast.values()):
        assert not check.regression
    cost = {m.metric: m for m in by[("slow", "prompt_version")].checks}  # type: ignore[attr-defined]
    assert cost["cost_per_success"].direction == "same" and cost["cost_per_success"].p_value == 1
    assert cost["cost_per_success"].baseline_value == Decimal("0.001")
    assert not cost["success_rate"].computed and "succeeded" in cost["success_rate"].reason


def test_too_few_samples_not_reported_with_reason(loaded: SpanStore) -> None:
    r = find_regressions(loaded, QueryParams(WINDOW, filters=ACME))
    few = _by_agent(r)[("few", "prompt_version")]
    assert few.skipped_reason is None and few.num_version_traces == 3  # type: ignore[attr-defined]
    for check in few.checks:  # type: ignore[attr-defined]
        assert not check.computed and not check.regression and check.p_adjusted is None
        assert f"at least {MIN_SAMPLE_PER_SIDE}" in check.reason


def test_field_choice_scope_and_cap(loaded: SpanStore) -> None:
    only_model = find_regressions(loaded, QueryParams(WINDOW, filters=ACME), ["model"])
    assert [(v.agent_id, v.version) for v in only_model.versions] == [("new", "gpt-4o")]
    assert only_model.num_tests == 0 and only_model.regressions == ()
    globex = find_regressions(loaded, QueryParams(WINDOW, filters={"org_id": "globex"}),
                              ["prompt_version"])
    # globex's first v3 span has no earlier globex value: skipped; acme's v1 is not its baseline
    assert [(v.agent_id, v.version, v.baseline) for v in globex.versions] == [
        ("slow", "v3", None)]
    capped = find_regressions(loaded, QueryParams(WINDOW, filters=ACME), ["prompt_version"],
                              max_versions=1)
    assert capped.num_tests == 3 and len(capped.regressions) == 1
    assert [v.skipped_reason is None for v in capped.versions] == [True, False, False, False,
                                                                    False]
    later = find_regressions(loaded, QueryParams(
        TimeRange(T0 + timedelta(minutes=20), T0 + timedelta(hours=2)), filters=ACME))
    assert later.versions == ()  # every value was first seen before the window


@pytest.mark.parametrize(("fields", "max_versions", "bad"), [
    (["prompt"], 20, "field"), (["name"], 20, "field"), (None, 0, "max_versions"),
    (None, 21, "max_versions")])
def test_bad_input_names_the_field(loaded: SpanStore, fields: list[str] | None,
                                   max_versions: int, bad: str) -> None:
    with pytest.raises(ValidationError) as err:
        find_regressions(loaded, QueryParams(WINDOW, filters=ACME), fields,
                         max_versions=max_versions)
    assert err.value.field == bad


def test_the_widest_range_the_store_holds(loaded: SpanStore) -> None:
    # every value is new in it: the v1s have no earlier value (skipped), the v2s still
    # compare with them; the look-back stops at the store's earliest time
    r = find_regressions(loaded, QueryParams(TimeRange(EARLIEST_TIME, LATEST_TIME),
                                             filters=ACME), ["prompt_version"])
    assert [(v.agent_id, m.metric) for v, m in r.regressions] == [("slow", "latency_ms")]
    assert {v.agent_id for v in r.versions if v.version == "v1" and v.baseline is None} == {
        "slow", "same", "fast", "few"}
