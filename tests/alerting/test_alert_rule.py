"""What an alert rule may say, and the calendar periods of budgets."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from mentatlab.alerting.alert_rule import METRICS, check_rule
from mentatlab.alerting.budget import crossed_thresholds, period_range
from mentatlab.alerting.evaluator import measure_metric
from mentatlab.alerting.notifiers import parse_channel
from mentatlab.analytics.overview import Overview
from mentatlab.errors import ValidationError
from mentatlab.storage.control import AlertRuleSpec

HOOK = ("webhook:https://hooks.example.com/x",)


def budget(**fields: Any) -> AlertRuleSpec:
    return AlertRuleSpec(**{"name": "b", "kind": "budget", "metric": "", "period": "month",
                            "limit_amount": Decimal(100), "channels": HOOK, **fields})


def threshold(**fields: Any) -> AlertRuleSpec:
    return AlertRuleSpec(**{"name": "t", "kind": "threshold", "metric": "error_rate",
                            "op": ">", "threshold": Decimal("0.05"), "window_s": 300,
                            "channels": HOOK, **fields})


def test_a_budget_is_normalized() -> None:
    spec = check_rule(budget(name="  team ", filters={"project": "p1"}, org_id="acme",
                             thresholds=(Decimal(1), Decimal("0.5"), Decimal(1)),
                             threshold=Decimal(3), window_s=99))
    assert spec.name == "team" and spec.metric == "cost"
    assert spec.filters == {"project_id": "p1", "org_id": "acme"}
    assert spec.thresholds == (Decimal("0.5"), Decimal(1))
    assert spec.threshold is None and spec.window_s == 0  # fields of the other kind cleared
    assert check_rule(budget()).thresholds == (Decimal("0.5"), Decimal("0.8"), Decimal(1))


def test_a_threshold_rule_is_normalized() -> None:
    spec = check_rule(threshold(period="day", limit_amount=Decimal(5),
                                channels=(" email:ops@example.org ",)))
    assert spec.period == "" and spec.limit_amount is None
    assert spec.channels == ("email:ops@example.org",)


@pytest.mark.parametrize(("spec", "field", "words"), [
    (budget(name=""), "name", "1..200"),
    (budget(kind="forecast"), "kind", "forecast"),
    (budget(channels=()), "channels", "at least one"),
    (budget(channels=("pager:x",)), "channels[0]", "pager"),
    (budget(period="week"), "period", "week"),
    (budget(limit_amount=Decimal(0)), "limit_amount", "> 0"),
    (budget(limit_amount=None), "limit_amount", "None"),
    (budget(thresholds=(Decimal(80),)), "thresholds", "80"),
    (budget(metric="latency_p95_ms"), "metric", "latency_p95_ms"),
    (budget(filters={"colour": "red"}), "filters.colour", "colour"),
    (budget(filters={"project_id": ""}), "filters.project_id", "non-empty"),
    (budget(org_id="acme", filters={"org_id": "other"}), "filters.org_id", "other"),
    (threshold(metric="cpu"), "metric", "cpu"),
    (threshold(op="=="), "op", "=="),
    (threshold(threshold=None), "threshold", "None"),
    (threshold(threshold=Decimal("NaN")), "threshold", "NaN"),
    (threshold(window_s=10), "window_s", "10"),
])
def test_bad_rules_name_the_field(spec: AlertRuleSpec, field: str, words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        check_rule(spec)
    assert caught.value.field == field
    assert words in caught.value.reason


def test_periods_are_calendar_utc() -> None:
    december = period_range("month", datetime(2026, 12, 31, 23, 59, tzinfo=UTC))
    assert (december.start, december.end) == (datetime(2026, 12, 1, tzinfo=UTC),
                                               datetime(2027, 1, 1, tzinfo=UTC))
    february = period_range("month", datetime(2028, 2, 29, 5, tzinfo=UTC))
    assert february.end == datetime(2028, 3, 1, tzinfo=UTC)
    day = period_range("day", datetime(2026, 12, 6, 0, 0, tzinfo=UTC))
    assert (day.start, day.end) == (datetime(2026, 12, 6, tzinfo=UTC),
                                    datetime(2026, 12, 7, tzinfo=UTC))
    with pytest.raises(ValueError, match="week"):
        period_range("week", datetime(2026, 12, 6, tzinfo=UTC))


def test_crossed_thresholds_compare_exactly() -> None:
    fractions = (Decimal("0.8"), Decimal("0.5"), Decimal(1))
    assert crossed_thresholds(Decimal("79.999999"), Decimal(100), fractions) == [Decimal("0.5")]
    assert crossed_thresholds(Decimal("80.000000"), Decimal(100), fractions) == [
        Decimal("0.5"), Decimal("0.8")]
    assert crossed_thresholds(Decimal(0), Decimal(100), fractions) == []


def test_every_metric_a_rule_may_name_is_measured() -> None:
    overview = Overview(spend=Decimal("1.250000000000"), requests=7, num_spans=8, num_traces=2,
                        input_tokens=100, output_tokens=20, cached_tokens=5, error_spans=2,
                        success_rate=0.75, latency_p50_ms=10.0, latency_p95_ms=95.5,
                        latency_p99_ms=99.25)
    expected = {"cost": Decimal("1.25"), "requests": 7, "spans": 8, "errors": 2,
                "error_rate": Decimal("0.25"), "tokens": 120,
                "latency_p95_ms": Decimal("95.5"), "latency_p99_ms": Decimal("99.25")}
    assert set(expected) == set(METRICS)
    assert {m: measure_metric(m, overview) for m in METRICS} == expected
    with pytest.raises(ValueError, match="cpu"):
        measure_metric("cpu", overview)


def test_channels_are_shown_without_secrets() -> None:
    slack = parse_channel("slack:https://hooks.slack.com/services/T1/B1/secret-token")
    assert slack.redacted() == "slack:https://hooks.slack.com"
    hook = parse_channel("webhook:http://127.0.0.1:8080/hook?token=secret")
    assert hook.redacted() == "webhook:http://127.0.0.1:8080"
    assert parse_channel("email:a@x.org,b@y.org").redacted() == "email:a@x.org,b@y.org"
