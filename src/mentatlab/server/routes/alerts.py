"""Alert rules (budgets and thresholds) and the alerts they recorded.

A caller scoped to an org creates rules for that org only (a project-scoped key: for its
project only), and sees only the rules and alerts of its scope. Money values are strings (exact
decimals); times are ISO-8601 UTC. Channel URLs are shown as ``scheme://host[:port]``
(webhook URLs often carry a secret token).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from mentatlab.access.principal import Principal, Scope
from mentatlab.alerting.alert_rule import check_rule
from mentatlab.alerting.notifiers import parse_channel
from mentatlab.analytics.query import NAME_ALIASES
from mentatlab.errors import FieldError
from mentatlab.server.audit_trail import audit
from mentatlab.server.deps import Caller
from mentatlab.server.errors import ApiError, error_responses
from mentatlab.server.openapi_links import links_to
from mentatlab.server.params import MAX_LIST_ITEMS, Int64, Money, Number, Text
from mentatlab.server.serialize import jsonable
from mentatlab.server.state import control_store
from mentatlab.storage.control import AlertInfo, AlertRuleInfo, AlertRuleSpec

__all__ = ["AlertRuleRequest", "RuleUpdate", "router"]

router = APIRouter(prefix="/api/v1", tags=["alerts"])


class AlertRuleRequest(BaseModel):
    """A new alert rule (docs/alerting.md).

    A ``budget`` needs ``period`` and ``limit_amount``; a ``threshold`` rule needs
    ``metric``, ``op``, ``threshold`` and ``window_s``.
    """

    name: str = Field(min_length=1, max_length=200)
    kind: str = Field(max_length=32, description="`budget`, `threshold` or `security_signal`")
    org_id: str = Field(default="", max_length=64, description="Org the rule watches; empty = "
                        "every org (only with an unscoped key). An org-scoped key's org is used.")
    filters: dict[Text, Text] = Field(
        default_factory=dict, max_length=MAX_LIST_ITEMS, description="Equality filters on "
        "canonical span fields, e.g. `{\"project_id\": \"p1\"}`.")
    channels: list[Text] = Field(
        default_factory=list, max_length=MAX_LIST_ITEMS, description="Where to notify: "
        "`webhook:https://…`, `slack:https://hooks.slack.com/…`, `email:a@x.org,b@y.org`.")
    period: str = Field(default="", max_length=32,
                        description="Budget period: `day` or `month` (UTC).")
    limit_amount: Money | None = Field(default=None, description="Budget limit (USD or "
                                       "the spans' currency).")
    thresholds: list[Number] = Field(
        default_factory=list, max_length=MAX_LIST_ITEMS, description="Budget fractions "
        "that notify; default [0.5, 0.8, 1].")
    metric: str = Field(default="", max_length=32, description="Threshold metric: cost, "
                        "requests, spans, errors, error_rate, tokens, latency_p95_ms, "
                        "latency_p99_ms; security_signal: any, prompt_injection_burst, "
                        "blocked_action, new_tool, new_key.")
    op: str = Field(default=">=", max_length=2, description="`>`, `>=`, `<` or `<=`.")
    threshold: Number | None = Field(default=None, description="Value compared with the "
                                     "metric (its unit); security_signal: the lowest "
                                     "severity that notifies, 1 low, 2 medium (default), "
                                     "3 high.")
    window_s: Int64 = Field(default=300, description="Threshold window in seconds (60..31 days).")
    enabled: bool = True


class RuleUpdate(BaseModel):
    """A change to a rule.

    ``enabled`` alone turns it on or off; any other field given replaces that part of its
    definition (``kind`` and ``org_id`` stay; null = unchanged).
    """

    enabled: bool | None = None
    name: str | None = Field(default=None, min_length=1, max_length=200)
    filters: dict[Text, Text] | None = Field(default=None, max_length=MAX_LIST_ITEMS)
    channels: list[Text] | None = Field(default=None, max_length=MAX_LIST_ITEMS,
                                        description="Replaces every channel (shown redacted "
                                        "when listed, so omit it to keep them).")
    period: str | None = Field(default=None, max_length=32)
    limit_amount: Money | None = None
    thresholds: list[Number] | None = Field(default=None, max_length=MAX_LIST_ITEMS)
    metric: str | None = Field(default=None, max_length=32)
    op: str | None = Field(default=None, max_length=2)
    threshold: Number | None = None
    window_s: Int64 | None = None


def _shown_channel(channel: str) -> str:
    return parse_channel(channel).redacted()


def _rule_json(rule: AlertRuleInfo) -> dict[str, Any]:
    spec = jsonable(rule.spec)
    spec["channels"] = [_shown_channel(c) for c in rule.spec.channels]
    return {"id": rule.id, **spec, "state": rule.state, "state_since": jsonable(rule.state_since),
            "last_value": jsonable(rule.last_value),
            "last_evaluated_at": jsonable(rule.last_evaluated_at),
            "created_at": jsonable(rule.created_at)}


def _alert_json(alert: AlertInfo) -> dict[str, Any]:
    out: dict[str, Any] = jsonable(alert)
    for delivery in out["deliveries"]:
        delivery["channel"] = _shown_channel(delivery["channel"])
    return out


def _rule_scope(org_id: str, filters: dict[str, str]) -> Scope:
    """Where a rule lies: its org (and project filter); a global rule is installation-wide."""
    return Scope(org_id or None, filters.get("project_id") if org_id else None)


def _action(rule: AlertRuleInfo, verb: str) -> str:
    """The audit action of a change to ``rule``: ``budget.<verb>`` or ``alert_rule.<verb>``."""
    return f"{'budget' if rule.spec.kind == 'budget' else 'alert_rule'}.{verb}"


def _visible(caller: Principal, rule: AlertRuleInfo) -> bool:
    return caller.scope.covers(_rule_scope(rule.spec.org_id, dict(rule.spec.filters)))


async def _rule_or_404(request: Request, caller: Principal, rule_id: str) -> AlertRuleInfo:
    rule: AlertRuleInfo | None = await anyio.to_thread.run_sync(
        control_store(request).alerts.get_rule, rule_id)
    if rule is None or not _visible(caller, rule):
        raise ApiError(404, "No such alert rule", [FieldError("rule_id", f"Unknown {rule_id!r}")])
    return rule


@router.post("/alert-rules", summary="Create an alert rule or budget",
             responses={**error_responses(401, 403, 422, 503), **links_to(
                 "/api/v1/alert-rules/{rule_id}", ("get", "patch", "delete"), "rule_id",
                 "/rule/id")})
async def create_rule(request: Request, body: AlertRuleRequest, caller: Caller
                      ) -> dict[str, Any]:
    """Create a rule; it is evaluated from the next run of the alert evaluator."""
    org_id = body.org_id or caller.org_id or ""
    caller.require_scope(Scope(org_id or None), "org_id")
    filters = caller.scope_filters(
        {NAME_ALIASES.get(k, k): v for k, v in body.filters.items()}, prefix="filters.")
    if not org_id:
        filters.pop("org_id", None)
    spec = check_rule(AlertRuleSpec(
        name=body.name, kind=body.kind, metric=body.metric, org_id=org_id, op=body.op,
        threshold=body.threshold, window_s=body.window_s, period=body.period,
        limit_amount=body.limit_amount, thresholds=tuple(body.thresholds), filters=filters,
        channels=tuple(body.channels), enabled=body.enabled))
    rule = await anyio.to_thread.run_sync(control_store(request).alerts.create_rule, spec)
    await audit(request, caller, _action(rule, "created"), org_id=org_id or None,
                target=rule.id, details={"name": rule.spec.name})
    return {"ok": True, "rule": _rule_json(rule)}


@router.get("/alert-rules", summary="Alert rules and budgets, with their state",
            responses=error_responses(401, 403, 429, 503))
async def list_rules(request: Request, caller: Caller) -> dict[str, Any]:
    """Every rule the key may see, by org and name, with its last measured value."""
    rules = await anyio.to_thread.run_sync(control_store(request).alerts.list_rules,
                                           caller.org_id)
    return {"ok": True, "rules": [_rule_json(r) for r in rules if _visible(caller, r)]}


@router.get("/alert-rules/{rule_id}", summary="One alert rule",
            responses=error_responses(401, 403, 404, 429, 503))
async def get_rule(request: Request, rule_id: str, caller: Caller) -> dict[str, Any]:
    """One rule with its state."""
    return {"ok": True, "rule": _rule_json(await _rule_or_404(request, caller, rule_id))}


@router.patch("/alert-rules/{rule_id}", summary="Change, enable or disable an alert rule",
              responses=error_responses(401, 403, 404, 422, 503))
async def update_rule(request: Request, rule_id: str, body: RuleUpdate, caller: Caller
                      ) -> dict[str, Any]:
    """Turn a rule on or off, or change its definition; answers the rule.

    ``{"enabled": false}`` alone disables it (re-enabled rules start from ``ok``). Any
    other field replaces that part of the rule, checked as on creation (422 naming the
    field), and the rule starts again from ``ok``.
    """
    existing = await _rule_or_404(request, caller, rule_id)
    given = {name: getattr(body, name) for name in sorted(body.model_fields_set)
             if getattr(body, name) is not None}
    if not given:
        raise ApiError(422, "Invalid request", [FieldError(
            "enabled", "Expected enabled, or a field of the rule to change")])
    alerts = control_store(request).alerts
    if set(given) == {"enabled"}:
        rule = await anyio.to_thread.run_sync(alerts.set_enabled, rule_id, given["enabled"])
    else:
        rule = await anyio.to_thread.run_sync(
            alerts.update_rule, rule_id, _changed_spec(caller, existing, given))
    if rule is None:  # deleted meanwhile
        raise ApiError(404, "No such alert rule", [FieldError("rule_id", f"Unknown {rule_id!r}")])
    details = {"enabled": body.enabled} if set(given) == {"enabled"} else {"changed": list(given)}
    await audit(request, caller, _action(rule, "updated"), org_id=rule.spec.org_id or None,
                target=rule_id, details=details)
    return {"ok": True, "rule": _rule_json(rule)}


def _changed_spec(caller: Principal, rule: AlertRuleInfo, given: dict[str, Any]
                  ) -> AlertRuleSpec:
    """``rule``'s definition with the fields ``given`` replaced, checked.

    Raises:
        ValidationError: (422) the field that breaks a rule of :func:`check_rule`.
        Forbidden: (403) a filter outside the caller's scope.
    """
    changes = dict(given)
    if "filters" in changes:
        filters = caller.scope_filters(
            {NAME_ALIASES.get(k, k): v for k, v in changes["filters"].items()}, prefix="filters.")
        if not rule.spec.org_id:
            filters.pop("org_id", None)
        changes["filters"] = filters
    for name in ("channels", "thresholds"):
        if name in changes:
            changes[name] = tuple(changes[name])
    return check_rule(dataclasses.replace(rule.spec, **changes))


@router.delete("/alert-rules/{rule_id}", summary="Delete an alert rule and its alerts",
               responses=error_responses(401, 404, 503))
async def delete_rule(request: Request, rule_id: str, caller: Caller) -> dict[str, Any]:
    """Delete a rule, its alerts and their pending deliveries."""
    rule = await _rule_or_404(request, caller, rule_id)
    await anyio.to_thread.run_sync(control_store(request).alerts.delete_rule, rule_id)
    await audit(request, caller, _action(rule, "deleted"), org_id=rule.spec.org_id or None,
                target=rule_id, details={"name": rule.spec.name})
    return {"ok": True, "deleted": rule_id}


@router.get("/alerts", summary="Recorded alerts, newest first",
            responses=error_responses(401, 403, 422, 429, 503))
async def list_alerts(
    request: Request,
    caller: Caller,
    rule_id: Annotated[str | None, Query(description="Only this rule's alerts.")] = None,
    state: Annotated[str | None, Query(pattern="^(firing|resolved)$",
                                       description="`firing` or `resolved`.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Alerts with their delivery status per channel (``pending``, ``sent``, ``failed``)."""
    control = control_store(request)
    if rule_id is not None:
        await _rule_or_404(request, caller, rule_id)
    alerts = await anyio.to_thread.run_sync(lambda: control.alerts.list_alerts(
        caller.org_id, rule_id=rule_id, state=state, limit=limit))
    mine = [a for a in alerts if caller.scope.covers(_rule_scope(a.org_id, a.filters))]
    return {"ok": True, "alerts": [_alert_json(a) for a in mine]}
