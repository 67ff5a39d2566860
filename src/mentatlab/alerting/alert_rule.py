"""Alert rules: what a rule may say, checked before it is stored.

Three kinds:

* ``budget``: spend (``total_cost``, the spans' currency, USD by default) of a calendar
  period (``day`` or ``month``, UTC) against ``limit_amount``; each fraction in
  ``thresholds`` (default 50 %, 80 %, 100 %) notifies once per period when crossed.
* ``threshold``: a metric of the last ``window_s`` seconds compared with ``threshold``
  by ``op``; notifies when it starts to hold (``firing``) and when it stops
  (``resolved``), like a Prometheus alerting rule without a ``for`` delay.
* ``security_signal``: the security findings (:mod:`mentatlab.analytics.security_signals`)
  of the last ``window_s`` seconds whose kind is ``metric`` (one of
  :data:`~mentatlab.analytics.security_signals.SIGNAL_KINDS`, or ``any``) and whose
  severity is at least ``threshold`` (1 ``low``, 2 ``medium``, 3 ``high``; default 2);
  each finding notifies once per subject and rule window (docs/alerting.md).

Both are scoped by equality ``filters`` on canonical span columns (the analytics filter
names, e.g. ``project_id``, ``agent_id``, ``model``). A rule of an org is always limited
to that org's spans.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable, Mapping
from decimal import Decimal

from mentatlab.alerting.notifiers import parse_channel
from mentatlab.analytics.query import FILTER_COLUMNS, NAME_ALIASES
from mentatlab.analytics.security_signals import SEVERITIES, SIGNAL_KINDS
from mentatlab.errors import ValidationError
from mentatlab.storage.control.alerts import AlertRuleSpec

__all__ = [
    "DEFAULT_BUDGET_THRESHOLDS",
    "KINDS",
    "MAX_WINDOW_S",
    "METRICS",
    "MIN_WINDOW_S",
    "OPS",
    "PERIODS",
    "SIGNAL_METRICS",
    "check_rule",
    "min_severity_of",
]

KINDS = ("budget", "threshold", "security_signal")
PERIODS = ("day", "month")
METRICS: Mapping[str, str] = {
    "cost": "spend in the window (total_cost, the spans' currency, USD by default)",
    "requests": "LLM calls in the window",
    "spans": "spans in the window",
    "errors": "spans with status error or timeout in the window",
    "error_rate": "errors / spans in the window, 0..1 (0 without spans)",
    "tokens": "input plus output tokens in the window",
    "latency_p95_ms": "95th percentile span duration in the window, ms",
    "latency_p99_ms": "99th percentile span duration in the window, ms",
}
"""Metrics a ``threshold`` rule may watch, with their units (budgets watch ``cost``)."""
OPS: Mapping[str, Callable[[Decimal, Decimal], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
"""Comparisons of a ``threshold`` rule: ``value <op> threshold`` fires."""
SIGNAL_METRICS: tuple[str, ...] = ("any", *SIGNAL_KINDS)
"""What a ``security_signal`` rule may watch: one kind of finding, or ``any``."""
DEFAULT_BUDGET_THRESHOLDS = (Decimal("0.5"), Decimal("0.8"), Decimal("1"))
MIN_WINDOW_S = 60
MAX_WINDOW_S = 31 * 86_400
_MAX_BUDGET_FRACTION = Decimal(10)


def _check_filters(spec: AlertRuleSpec) -> dict[str, str]:
    filters: dict[str, str] = {}
    for name, value in spec.filters.items():
        column = NAME_ALIASES.get(name, name)
        if column not in FILTER_COLUMNS:
            raise ValidationError(f"filters.{name}",
                                  f"Expected one of {sorted(FILTER_COLUMNS)}, got {name!r}")
        if not isinstance(value, str) or not value:
            raise ValidationError(f"filters.{name}", f"Expected a non-empty string, got {value!r}")
        filters[column] = value
    if spec.org_id:
        if filters.get("org_id", spec.org_id) != spec.org_id:
            raise ValidationError("filters.org_id", f"A rule of org {spec.org_id!r} watches only "
                                  f"that org, got org_id={filters['org_id']!r}")
        filters["org_id"] = spec.org_id
    return filters


def _check_budget(spec: AlertRuleSpec) -> dict[str, object]:
    if spec.period not in PERIODS:
        raise ValidationError("period", f"Expected one of {list(PERIODS)}, got {spec.period!r}")
    if spec.limit_amount is None or not spec.limit_amount.is_finite() or spec.limit_amount <= 0:
        raise ValidationError("limit_amount", f"Expected an amount > 0, got {spec.limit_amount}")
    thresholds = spec.thresholds or DEFAULT_BUDGET_THRESHOLDS
    for fraction in thresholds:
        if not fraction.is_finite() or not 0 < fraction <= _MAX_BUDGET_FRACTION:
            raise ValidationError("thresholds", f"Expected fractions of the limit in (0, 10], "
                                  f"e.g. 0.8 for 80 %, got {fraction}")
    if spec.metric not in ("", "cost"):
        raise ValidationError("metric", f"A budget watches cost, got {spec.metric!r}")
    return {"metric": "cost", "thresholds": tuple(sorted(set(thresholds))), "op": ">=",
            "threshold": None, "window_s": 0}


def _check_threshold(spec: AlertRuleSpec) -> dict[str, object]:
    if spec.metric not in METRICS:
        raise ValidationError("metric", f"Expected one of {list(METRICS)}, got {spec.metric!r}")
    if spec.op not in OPS:
        raise ValidationError("op", f"Expected one of {list(OPS)}, got {spec.op!r}")
    if spec.threshold is None or not spec.threshold.is_finite():
        raise ValidationError("threshold", f"Expected a number, got {spec.threshold}")
    if not MIN_WINDOW_S <= spec.window_s <= MAX_WINDOW_S:
        raise ValidationError("window_s", f"Expected {MIN_WINDOW_S}..{MAX_WINDOW_S} seconds, "
                              f"got {spec.window_s}")
    return {"period": "", "limit_amount": None, "thresholds": ()}


def _check_security_signal(spec: AlertRuleSpec) -> dict[str, object]:
    metric = spec.metric or "any"
    if metric not in SIGNAL_METRICS:
        raise ValidationError("metric", f"Expected one of {list(SIGNAL_METRICS)}, "
                                        f"got {spec.metric!r}")
    threshold = Decimal(2) if spec.threshold is None else spec.threshold
    if threshold not in (1, 2, 3):
        raise ValidationError("threshold", "Expected the lowest severity that notifies: "
                              f"1 (low), 2 (medium) or 3 (high), got {spec.threshold}")
    if not MIN_WINDOW_S <= spec.window_s <= MAX_WINDOW_S:
        raise ValidationError("window_s", f"Expected {MIN_WINDOW_S}..{MAX_WINDOW_S} seconds, "
                              f"got {spec.window_s}")
    return {"metric": metric, "op": ">=", "threshold": Decimal(int(threshold)), "period": "",
            "limit_amount": None, "thresholds": ()}


def min_severity_of(spec: AlertRuleSpec) -> str:
    """The lowest severity a checked ``security_signal`` rule notifies (``medium``...)."""
    return SEVERITIES[int(spec.threshold or 2) - 1]


def check_rule(spec: AlertRuleSpec) -> AlertRuleSpec:
    """``spec`` checked and normalized.

    Filter aliases are resolved, the org's own filter added, the fields the kind does not
    use cleared, and channels put in canonical ``kind:target`` form.

    Raises:
        ValidationError: the field that breaks a rule above, and why.
    """
    name = spec.name.strip()
    if not 1 <= len(name) <= 200:
        raise ValidationError("name", f"Expected 1..200 characters, got {len(name)}")
    if spec.kind not in KINDS:
        raise ValidationError("kind", f"Expected one of {list(KINDS)}, got {spec.kind!r}")
    if not spec.channels:
        raise ValidationError("channels", "Expected at least one channel, e.g. "
                              "'webhook:https://hooks.example.com/mentat'")
    channels = tuple(str(parse_channel(c, f"channels[{i}]")) for i, c in enumerate(spec.channels))
    kind_fields = (_check_budget(spec) if spec.kind == "budget"
                   else _check_security_signal(spec) if spec.kind == "security_signal"
                   else _check_threshold(spec))
    return dataclasses.replace(spec, name=name, filters=_check_filters(spec), channels=channels,
                               **kind_fields)  # type: ignore[arg-type]
