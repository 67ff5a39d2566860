"""What a compliance report reads: one small function per evidence section.

Each reader takes the installation's parts (settings, span store, control store) and
returns a plain JSON-ready dict, so the report builder (:mod:`mentatlab.governance.report`)
never reaches into another part's tables. Retention, PII redaction and guardrail policies
are built by other parts of issue 17 at the same time: their readers here read what this
build has (settings, the span columns of the shared contract, audit entries) and say
``"available": false`` for what it has not; the integrator swaps in the real read
functions (each reader's docstring names what it needs).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mentatlab.storage.base import SpanStore

if TYPE_CHECKING:
    from mentatlab.settings import Settings
    from mentatlab.storage.control import ControlStore

__all__ = [
    "Period",
    "read_access",
    "read_audit_chain",
    "read_encryption",
    "read_erasures",
    "read_pii_findings",
    "read_pii_mode",
    "read_policies",
    "read_policy_decisions",
    "read_retention",
    "span_columns",
]

Period = tuple[datetime, datetime]
"""``(start, end)``: UTC, end exclusive."""
_TS = "DateTime64(9, 'UTC')"
_AUDIT_PAGE = 1000


def span_columns(store: SpanStore) -> frozenset[str]:
    """The columns of the ``spans`` table as this store has them (migrations differ).

    Raises:
        StoreError: the store failed.
    """
    table = store.query_arrow(
        "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = 'spans'")
    return frozenset(table.column("name").to_pylist())


def _span_where(period: Period, org_id: str | None) -> tuple[str, dict[str, Any]]:
    where = f"start_time >= {{start:{_TS}}} AND start_time < {{end:{_TS}}}"
    params: dict[str, Any] = {"start": period[0], "end": period[1]}
    if org_id is not None:
        where += " AND org_id = {org:String}"
        params["org"] = org_id
    return where, params


def read_retention(settings: Settings, control: ControlStore, org_id: str | None
                   ) -> dict[str, Any]:
    """Retention in force: spans and aggregates (days), audit log (years), its history.

    ``org_id``'s values (its override over the settings; the settings' defaults when None),
    whether the retention job runs (``retention_interval_s``), audit checkpoints, and the
    ``governance.retention_set`` audit entries as the history of the per-org values.
    """
    from mentatlab.governance.retention import retention_defaults, retention_for

    values = (retention_defaults(settings) if org_id is None
              else retention_for(control, settings, org_id))
    changes = control.audit.entries(org_id=org_id, all_orgs=org_id is None,
                                    action="governance.retention_set", limit=_AUDIT_PAGE)
    return {
        "available": True,
        "span_retention_days": values.span_days,
        "aggregate_retention_days": values.aggregate_days,
        "audit_retention_years": values.audit_years,
        "job_interval_s": settings.retention_interval_s,
        "audit_checkpoint_every": settings.audit_checkpoint_every,
        "audit_checkpoints_signed": settings.audit_signing_key_file is not None,
        "changes": [{"seq": e.seq, "at": e.at.isoformat(), "details": dict(e.details)}
                    for e in changes],
        "in_force": values.span_days > 0 and settings.retention_interval_s > 0,
    }


def read_pii_mode(settings: Settings, org_id: str | None) -> dict[str, Any]:
    """PII redaction mode (``off|detect|redact|hash|drop``) in force, and its overrides.

    The overrides (``pii_mode_overrides``) are those of ``org_id`` and its projects (every
    org's when None).
    """
    from mentatlab.governance.pii_config import PiiConfig

    config = PiiConfig.from_settings(settings)
    overrides = [{"org_id": org, "project_id": project or None, "mode": str(mode)}
                 for (org, project), mode in sorted(config.overrides.items())
                 if org_id is None or org == org_id]
    mode = str(config.mode_for(org_id, "")) if org_id is not None else str(config.mode)
    modes = {mode, *(o["mode"] for o in overrides)}
    return {"available": True, "mode": mode, "overrides": overrides,
            "forward_pii": settings.forward_pii,
            "in_force": mode in ("redact", "hash", "drop"),
            "detects": modes != {"off"}}


def read_policies(control: ControlStore, org_id: str | None) -> dict[str, Any]:
    """Guardrail policies of ``org_id`` with the installation-wide ones (all when None).

    Each: id, version, action, scope, severity, compliance tags, whether enforced; and the
    ``policy.*`` audit entries counted by action.
    """
    from mentatlab.storage.control.policies import list_policies

    changes = control.audit.entries(org_id=org_id, all_orgs=org_id is None,
                                    action="policy.*", limit=_AUDIT_PAGE)
    by_action = dict(Counter(e.action for e in changes))
    policies = [_policy_json(p) for p in list_policies(control, org_id)]
    return {"available": True, "policies": policies, "changes": by_action,
            "in_force": any(p["enforced"] for p in policies)}


def _policy_json(info: Any) -> dict[str, Any]:
    spec = info.spec
    return {"id": info.id, "version": info.version, "name": spec.name,
            "action": spec.action, "scope": spec.scope, "scope_value": spec.scope_value,
            "severity": spec.severity, "compliance_tags": list(spec.compliance_tags),
            "builtin": info.builtin, "enforced": info.enforced}


def read_encryption(settings: Settings, store: SpanStore, control: ControlStore
                    ) -> dict[str, Any]:
    """Encryption at rest: the span store's disk, the control store's secrets, TLS.

    ClickHouse servers encrypt with their own disks (MentatLab holds no key there): the
    report lists the server's disks whose type or name says ``encrypted``.
    """
    keys = settings.encryption_keys()
    from mentatlab.storage.chdb_store import ChdbSpanStore

    embedded = isinstance(store, ChdbSpanStore)
    span: dict[str, Any] = {"backend": "chdb" if embedded else "clickhouse"}
    if isinstance(store, ChdbSpanStore):
        span["encrypted"] = store.encrypted
        span["algorithm"] = "AES_256_CTR" if span["encrypted"] else None
    else:
        disks = store.query_arrow("SELECT name, type, path FROM system.disks").to_pylist()
        encrypted = [d["name"] for d in disks
                     if "encrypt" in f"{d['type']} {d['name']}".lower()]
        span["encrypted"] = None  # the server's business: see docs/scale-out.md
        span["server_encrypted_disks"] = encrypted
    counts = control.alerts.count_secrets()
    return {
        "available": True,
        "key_configured": keys is not None,
        "key_ids": list(keys.key_ids()) if keys is not None else [],
        "span_store": span,
        "control_secrets": {"num_secrets": counts.num_secrets,
                            "num_encrypted": counts.num_encrypted,
                            "num_current_key": counts.num_current_key},
        "tls": settings.tls_enabled,
        "in_force": bool(span["encrypted"] or span.get("server_encrypted_disks"))
        and counts.num_encrypted == counts.num_secrets,
    }


def read_access(settings: Settings, control: ControlStore, org_id: str | None
                ) -> dict[str, Any]:
    """Access control: whether auth is required, members by role, active keys by role."""
    orgs = [org_id] if org_id is not None else [o.id for o in control.list_orgs()]
    members: Counter[str] = Counter()
    for org in orgs:
        members.update(m.role for m in control.identities.members(org))
    keys = control.list_api_keys(org_id, include_revoked=False)
    return {
        "available": True,
        "auth_required": settings.auth_required,
        "oidc": bool(settings.oidc_issuer),
        "num_orgs": len(orgs),
        "members_by_role": dict(sorted(members.items())),
        "num_members": sum(members.values()),
        "active_keys_by_role": dict(sorted(Counter(k.role for k in keys).items())),
        "num_active_keys": len(keys),
        "in_force": settings.auth_required,
    }


def read_policy_decisions(store: SpanStore, period: Period, org_id: str | None,
                          columns: frozenset[str]) -> dict[str, Any]:
    """Policy decisions on spans in ``period``, by action and by policy.

    Reads the span-store migration 9 columns ``policy_ids``/``policy_actions``; on an
    older store (columns absent) the section says ``"available": false``.

    Raises:
        StoreError: the store failed.
    """
    if not {"policy_ids", "policy_actions"} <= columns:
        return {"available": False, "by_action": {}, "by_policy": {}, "num_spans_blocked": 0,
                "note": "This span store has no policy decision columns (span migration 9)"}
    where, params = _span_where(period, org_id)
    rows = store.query_arrow(
        "SELECT pid, action, count() AS n FROM spans FINAL"
        " ARRAY JOIN policy_ids AS pid, policy_actions AS action"
        f" WHERE {where} GROUP BY pid, action ORDER BY pid, action", params).to_pylist()
    blocked = store.query_arrow(
        f"SELECT count() AS n FROM spans FINAL WHERE {where} AND has(policy_actions, 'block')",
        params).column("n")[0].as_py()
    by_action: Counter[str] = Counter()
    by_policy: Counter[str] = Counter()
    for row in rows:
        by_action[row["action"]] += row["n"]
        by_policy[row["pid"]] += row["n"]
    return {"available": True, "by_action": dict(sorted(by_action.items())),
            "by_policy": dict(sorted(by_policy.items())), "num_spans_blocked": int(blocked)}


def read_pii_findings(store: SpanStore, period: Period, org_id: str | None,
                      columns: frozenset[str]) -> dict[str, Any]:
    """PII findings on spans in ``period``: findings by category, spans with findings.

    ``pii_findings`` is a JSON array of ``{"category", "key", "offset", "length",
    "confidence"}`` (never the value).

    Raises:
        StoreError: the store failed.
    """
    if "pii_findings" not in columns:
        return {"available": False, "by_category": {}, "num_spans_with_findings": 0}
    where, params = _span_where(period, org_id)
    where += " AND pii_findings NOT IN ('', '[]')"
    rows = store.query_arrow(
        "SELECT JSONExtractString(finding, 'category') AS category, count() AS n"
        " FROM spans FINAL ARRAY JOIN JSONExtractArrayRaw(pii_findings) AS finding"
        f" WHERE {where} GROUP BY category ORDER BY category", params).to_pylist()
    spans = store.query_arrow(f"SELECT count() AS n FROM spans FINAL WHERE {where}",
                              params).column("n")[0].as_py()
    return {"available": True, "by_category": {r["category"]: r["n"] for r in rows},
            "num_spans_with_findings": int(spans)}


def read_erasures(control: ControlStore, period: Period, org_id: str | None
                  ) -> dict[str, Any]:
    """Erasure receipts (``governance.erased`` audit entries) in ``period``.

    Each: seq, hash, target and the removed counts (ids and counts only, never personal
    values).
    """
    entries = control.audit.entries(org_id=org_id, all_orgs=org_id is None,
                                    action="governance.erased", since=period[0],
                                    until=period[1], limit=_AUDIT_PAGE)
    receipts = [{"seq": e.seq, "at": e.at.isoformat(), "hash": e.hash, "target": e.target,
                 "field": e.details.get("field"), "counts": dict(e.details.get("counts", {})),
                 "total": e.details.get("total", 0)}
                for e in reversed(entries)]
    return {"available": True, "num_receipts": len(receipts), "receipts": receipts}


def read_audit_chain(control: ControlStore, period: Period, org_id: str | None
                     ) -> dict[str, Any]:
    """The audit chain the report is built from.

    Its head (seq, hash), whether it verifies, and the period's entries by action.

    Raises:
        StoreError: the control store failed.
    """
    head = control.audit.entries(all_orgs=True, limit=1)
    verified = control.audit.verify()
    actions: Counter[str] = Counter()
    cursor: int | None = None
    while True:
        page = control.audit.entries(org_id=org_id, all_orgs=org_id is None, since=period[0],
                                     until=period[1], before_seq=cursor, limit=_AUDIT_PAGE)
        actions.update(e.action for e in page)
        if len(page) < _AUDIT_PAGE:
            break
        cursor = page[-1].seq
    return {
        "head_seq": head[0].seq if head else 0,
        "head_hash": head[0].hash if head else "",
        "intact": verified.ok,
        "num_entries": verified.entries,
        "num_problems": len(verified.problems),
        "num_checkpoints": verified.checkpoints,
        "num_signed_checkpoints": verified.signed_checkpoints,
        "entries_in_period_by_action": dict(sorted(actions.items())),
    }
