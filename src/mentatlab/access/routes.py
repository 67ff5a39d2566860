"""Which permission each route needs: the route half of the permission matrix, as data.

The server checks every request against this table (:func:`mentatlab.server.auth.authorize`
looks the matched route up here), so a route missing from it cannot be called at all and
``tests/access/test_permission_matrix.py`` fails. docs/security.md prints the table.

``PUBLIC`` routes need no credential; ``SIGNED_IN`` routes need any valid credential.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

from mentatlab.access.roles import Permission

__all__ = ["PUBLIC", "ROUTE_PERMISSIONS", "SIGNED_IN", "Need", "need_of"]

PUBLIC: Final = "public"
SIGNED_IN: Final = "signed_in"
Need = Permission | Literal["public", "signed_in"]

_P = Permission
ROUTE_PERMISSIONS: Mapping[tuple[str, str], Need] = {
    # ingest
    ("POST", "/v1/traces"): _P.INGEST,
    ("POST", "/api/v1/events"): _P.INGEST,
    # usage aggregates (billing sees these)
    ("GET", "/api/v1/overview"): _P.READ_USAGE,
    ("GET", "/api/v1/cost"): _P.READ_USAGE,
    ("GET", "/api/v1/unpriced"): _P.READ_USAGE,
    ("GET", "/api/v1/analytics/compare"): _P.READ_USAGE,
    ("GET", "/api/v1/analytics/graph"): _P.READ_USAGE,
    ("GET", "/api/v1/analytics/regressions"): _P.READ_USAGE,
    ("GET", "/api/v1/analytics/adoption"): _P.READ_USAGE,
    # cost views (issue 16): aggregates of cost and usage, no span payloads
    ("GET", "/api/v1/analytics/tokens"): _P.READ_USAGE,
    ("GET", "/api/v1/analytics/attribution"): _P.READ_USAGE,
    ("GET", "/api/v1/analytics/unit-economics"): _P.READ_USAGE,
    ("GET", "/api/v1/analytics/provider-models"): _P.READ_USAGE,
    # governance (issue 17): PII finding counts, never values
    ("GET", "/api/v1/governance/pii"): _P.READ_USAGE,
    ("GET", "/api/v1/prices"): _P.READ_USAGE,
    # span payloads
    ("GET", "/api/v1/traces"): _P.READ_SPANS,
    ("GET", "/api/v1/analytics/bottlenecks"): _P.READ_SPANS,  # span names (issue 16)
    ("GET", "/api/v1/traces/{trace_id}"): _P.READ_SPANS,
    ("GET", "/api/v1/traces/{trace_id}/spans/{span_id}"): _P.READ_SPANS,
    # lists trace and span ids, agent and tool names: an engineer's view, as the traces
    ("GET", "/api/v1/analytics/reliability"): _P.READ_SPANS,
    ("GET", "/api/v1/traces/{trace_id}/replay"): _P.READ_SPANS,
    ("GET", "/api/v1/spans"): _P.READ_SPANS,
    ("WS", "/api/v1/live"): _P.READ_SPANS,
    ("WS", "/api/v1/live/stats"): _P.READ_USAGE,
    # alerting
    ("GET", "/api/v1/alert-rules"): _P.READ_ALERTS,
    ("GET", "/api/v1/alert-rules/{rule_id}"): _P.READ_ALERTS,
    ("GET", "/api/v1/alerts"): _P.READ_ALERTS,
    ("POST", "/api/v1/alert-rules"): _P.MANAGE_ALERTS,
    ("PATCH", "/api/v1/alert-rules/{rule_id}"): _P.MANAGE_ALERTS,
    ("DELETE", "/api/v1/alert-rules/{rule_id}"): _P.MANAGE_ALERTS,
    # administration
    ("POST", "/api/v1/reprice"): _P.REPRICE,
    ("GET", "/api/v1/keys"): _P.MANAGE_KEYS,
    ("POST", "/api/v1/keys"): _P.MANAGE_KEYS,
    ("DELETE", "/api/v1/keys/{key_id}"): _P.MANAGE_KEYS,
    ("POST", "/api/v1/keys/{key_id}/rotate"): _P.MANAGE_KEYS,
    ("GET", "/api/v1/members"): _P.MANAGE_MEMBERS,
    ("POST", "/api/v1/members"): _P.MANAGE_MEMBERS,
    ("DELETE", "/api/v1/members/{user_id}"): _P.MANAGE_MEMBERS,
    ("GET", "/api/v1/orgs"): _P.MANAGE_ORGS,
    ("POST", "/api/v1/orgs"): _P.MANAGE_ORGS,
    ("GET", "/api/v1/audit"): _P.READ_AUDIT,
    # governance (issue 17): compliance officers' reads
    ("GET", "/api/v1/governance/decisions"): _P.READ_AUDIT,
    ("GET", "/governance"): _P.READ_AUDIT,
    ("GET", "/api/v1/quotas"): _P.MANAGE_SETTINGS,
    ("PUT", "/api/v1/quotas"): _P.MANAGE_SETTINGS,
    ("DELETE", "/api/v1/quotas"): _P.MANAGE_SETTINGS,
    # retention and erasure (issue 17): an org's admin, the installation's for longer retention
    ("GET", "/api/v1/governance/retention"): _P.MANAGE_SETTINGS,
    ("PUT", "/api/v1/governance/retention"): _P.MANAGE_SETTINGS,
    ("POST", "/api/v1/governance/erasures"): _P.MANAGE_SETTINGS,
    ("GET", "/api/v1/me"): SIGNED_IN,
    # sign-in (routes/auth.py)
    ("GET", "/auth/login"): PUBLIC,
    ("GET", "/auth/callback"): PUBLIC,
    ("POST", "/auth/key"): PUBLIC,
    ("POST", "/auth/logout"): SIGNED_IN,
    # operations and documentation
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/static/{path}"): PUBLIC,  # a Mount (no dependency runs): the UI's files
    # dashboard pages (ui/pages.py): refused callers get a sign-in (401) or 403 page
    ("GET", "/"): _P.READ_USAGE,
    ("GET", "/cost"): _P.READ_USAGE,
    ("GET", "/models"): _P.READ_USAGE,
    ("GET", "/graph"): _P.READ_USAGE,
    ("GET", "/ops"): _P.READ_SPANS,
    ("GET", "/reliability"): _P.READ_SPANS,
    ("GET", "/bottlenecks"): _P.READ_SPANS,
    ("GET", "/traces"): _P.READ_SPANS,
    ("GET", "/traces/{trace_id}"): _P.READ_SPANS,
    ("GET", "/alerts"): _P.READ_ALERTS,
    ("GET", "/settings"): SIGNED_IN,
    # optimization recommendations (issue 16): aggregates with sample trace ids as links
    ("GET", "/api/v1/recommendations"): _P.READ_USAGE,
    ("GET", "/savings"): _P.READ_USAGE,
    # performance (issue 16: latency percentiles, peer ranks; routes/latency.py, ui/pages.py)
    ("GET", "/api/v1/analytics/latency"): _P.READ_USAGE,
    ("GET", "/api/v1/analytics/peers"): _P.READ_USAGE,
    ("GET", "/performance"): _P.READ_USAGE,
    ("GET", "/metrics/tenants"): _P.READ_USAGE,  # RED per org/project; never anonymous
    # ingest health of the process (issue 18): what /metrics exports, for the Ops view
    ("GET", "/api/v1/system/ingest"): _P.READ_SPANS,
    ("GET", "/product"): _P.READ_USAGE,
    # oversight and security signals (issue 17, routes/governance_signals.py): approval ids
    # and evidence span ids are an engineer's view; findings name keys and access: audit
    ("GET", "/api/v1/governance/approvals"): _P.READ_SPANS,
    ("GET", "/api/v1/governance/versions"): _P.READ_USAGE,
    ("POST", "/api/v1/governance/versions"): _P.MANAGE_VERSIONS,
    ("GET", "/api/v1/governance/versions/unregistered"): _P.READ_SPANS,
    ("GET", "/api/v1/governance/signals"): _P.READ_AUDIT,
    # guardrail policies (issue 17, server/routes/policies.py)
    ("GET", "/api/v1/policies"): _P.READ_ALERTS,
    ("GET", "/api/v1/policies/{policy_id}"): _P.READ_ALERTS,
    ("POST", "/api/v1/policies"): _P.MANAGE_SETTINGS,
    ("PATCH", "/api/v1/policies/{policy_id}"): _P.MANAGE_SETTINGS,
    ("DELETE", "/api/v1/policies/{policy_id}"): _P.MANAGE_SETTINGS,
    ("POST", "/api/v1/policies/{policy_id}/overrides"): _P.MANAGE_SETTINGS,
    ("POST", "/api/v1/policies/check"): _P.INGEST,  # the SDK's key asks before acting
    ("POST", "/api/v1/policies/simulate"): _P.READ_SPANS,  # reads stored spans
    # compliance evidence reports (issue 17, routes/governance_report.py)
    ("GET", "/api/v1/governance/report"): _P.READ_AUDIT,
}
"""``(method, path template)`` → what the caller needs. ``WS`` is a WebSocket route."""


def need_of(method: str, path: str) -> Need | None:
    """What route ``(method, path template)`` needs; None when it is not in the table.

    ``HEAD`` needs what ``GET`` needs.
    """
    need = ROUTE_PERMISSIONS.get((method, path))
    if need is None and method == "HEAD":
        need = ROUTE_PERMISSIONS.get(("GET", path))
    return need
