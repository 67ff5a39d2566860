"""Security signals: findings a security officer should look at, with a severity.

Four kinds, each over a window ``[start, end)`` (whole minutes) and the caller's filters:

``prompt_injection_burst``
    Spans whose policy decisions include the built-in ``builtin.prompt_injection`` policy
    (``has(policy_ids, 'builtin.prompt_injection')``), per (org, project, agent). A marker
    is *in a burst* when at least :data:`BURST_MIN_MARKERS` markers of the same subject
    start within :data:`BURST_WINDOW_S` seconds of each other (a sliding window starting
    at each marker). One finding per subject with any marker in a burst: ``count`` = its
    markers in bursts; severity ``high`` when one window held at least
    :data:`BURST_HIGH_MARKERS`, else ``medium``. Isolated markers are the policy's own
    business (its ``alert``/``log`` action), not a burst.
``blocked_action``
    Spans with a ``block`` decision (``has(policy_actions, 'block')``), per (org, project,
    agent, blocking policy id): ``low`` below :data:`BLOCKED_MEDIUM`, ``medium`` below
    :data:`BLOCKED_HIGH`, else ``high`` (counts of spans in the window).
``new_tool``
    A tool (``tool_name`` of tool-execution spans, from ``gen_ai.tool.name`` and the other
    conventions) that an agent (``agent_id``, inherited from ancestors) used in the window
    and never in the :data:`DEFAULT_BASELINE_DAYS` days before it: ``medium`` when the
    agent used other tools in that baseline, ``low`` when it used none (a new agent: every
    tool is new).
``new_key``
    An API key whose first authenticated use (``api_keys.first_used_at``) lies in the
    window (:func:`new_key_findings`, fed by :mod:`mentatlab.governance.key_use`):
    ``high`` when the audit log has no record of its creation (``key.created`` or
    ``key.rotated``: it did not come through the API or ``mentatctl``), ``medium`` for an
    ``admin`` or installation-wide key, ``low`` otherwise.

The policy columns (``policy_ids``, ``policy_versions``, ``policy_actions``: span-store
migration 9, docs/decisions/0018) may be missing on a store that predates them: the two
policy signals then report themselves in ``SignalReport.unavailable`` and find nothing.

Evidence ids are strings: ``<trace_id>:<span_id>`` for spans, ``key:<id>`` for keys.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from mentatlab.analytics.query import FINAL_SETTINGS, QueryParams, SqlParts, build_where
from mentatlab.errors import ValidationError
from mentatlab.storage.base import SpanStore

__all__ = [
    "BLOCKED_HIGH",
    "BLOCKED_MEDIUM",
    "BURST_HIGH_MARKERS",
    "BURST_MIN_MARKERS",
    "BURST_WINDOW_S",
    "DEFAULT_BASELINE_DAYS",
    "NUM_EVIDENCE",
    "PROMPT_INJECTION_POLICY",
    "SEVERITIES",
    "SIGNAL_KINDS",
    "Finding",
    "KeyUse",
    "SignalReport",
    "find_signals",
    "new_key_findings",
    "severity_rank",
]

SIGNAL_KINDS: Final = ("prompt_injection_burst", "blocked_action", "new_tool", "new_key")
"""Every kind of finding."""
SEVERITIES: Final = ("low", "medium", "high")
"""Severities, lowest first."""
PROMPT_INJECTION_POLICY: Final = "builtin.prompt_injection"
BURST_WINDOW_S: Final = 300
"""Seconds within which markers make a burst."""
BURST_MIN_MARKERS: Final = 3
"""Fewest markers of one subject within :data:`BURST_WINDOW_S` that make a burst."""
BURST_HIGH_MARKERS: Final = 10
"""Markers within one :data:`BURST_WINDOW_S` that make a burst ``high``."""
BLOCKED_MEDIUM: Final = 5
"""Blocked spans of one subject and policy in the window from which it is ``medium``."""
BLOCKED_HIGH: Final = 20
"""... and ``high``."""
DEFAULT_BASELINE_DAYS: Final = 30
"""Days before the window that ``new_tool`` compares with."""
MAX_BASELINE_DAYS: Final = 365
NUM_EVIDENCE: Final = 5
"""Evidence ids per finding (the earliest, or the lowest ids)."""
_MAX_MARKERS: Final = 1_000_000
_POLICY_COLUMNS: Final = ("policy_ids", "policy_actions")


def severity_rank(severity: str) -> int:
    """1 for ``low``, 2 ``medium``, 3 ``high``.

    Raises:
        ValidationError: an unknown severity (field ``severity``).
    """
    if severity not in SEVERITIES:
        raise ValidationError("severity", f"Expected one of {list(SEVERITIES)}, got "
                                          f"{severity!r}")
    return SEVERITIES.index(severity) + 1


@dataclass(frozen=True, slots=True)
class Finding:
    """One security finding."""

    kind: str
    """One of :data:`SIGNAL_KINDS`."""
    severity: str
    """``low``, ``medium`` or ``high`` (thresholds in the module docstring)."""
    subject: dict[str, str]
    """What it is about: ``org_id``, ``project_id``, ``agent_id``, ``policy_id``,
    ``tool_name`` or ``key_id`` (and the key's ``name``/``prefix``/``role``)."""
    first_seen: datetime
    last_seen: datetime
    count: int
    """Markers in bursts, blocked spans, spans using the new tool, or 1 (a key)."""
    evidence: list[str]
    """Up to :data:`NUM_EVIDENCE` ids: ``trace_id:span_id`` or ``key:<id>``."""
    summary: str
    """One human line."""

    @property
    def subject_key(self) -> str:
        """The subject as one stable string (``agent_id=a,org_id=o``), for fingerprints."""
        return ",".join(f"{k}={v}" for k, v in sorted(self.subject.items()))


@dataclass(frozen=True, slots=True)
class SignalReport:
    """The findings of a window, highest severity first, then by count."""

    start: datetime
    end: datetime
    findings: list[Finding] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)
    """Kinds that could not be computed → why (a store without the policy columns)."""


@dataclass(frozen=True, slots=True)
class KeyUse:
    """What :func:`new_key_findings` needs to know of one API key (never its secret)."""

    key_id: str
    org_id: str | None
    project_id: str | None
    name: str
    prefix: str
    role: str
    created_at: datetime
    first_used_at: datetime | None
    creation_audited: bool
    """Whether the audit log records its creation (``key.created``/``key.rotated``)."""


def _policy_columns_present(store: SpanStore) -> bool:
    table = store.query_arrow(
        "SELECT name FROM system.columns WHERE database = currentDatabase()"
        " AND table = 'spans' AND name IN ('policy_ids', 'policy_actions')")
    return len(set(table.column("name").to_pylist())) == len(_POLICY_COLUMNS)


def _dt(ns: int) -> datetime:
    return (datetime.fromtimestamp(ns // 10**9, UTC)
            + timedelta(microseconds=(ns % 10**9) // 1000))


def _subject(row: Mapping[str, Any], names: Sequence[str]) -> dict[str, str]:
    return {n: str(row[n]) for n in names}


def _injection_bursts(store: SpanStore, parts: SqlParts) -> list[Finding]:
    sql = f"""
SELECT org_id, project_id, agent_id, toUnixTimestamp64Nano(start_time) AS t,
       concat(trace_id, ':', span_id) AS id
FROM spans FINAL
WHERE {parts.where} AND has(policy_ids, '{PROMPT_INJECTION_POLICY}')
ORDER BY org_id, project_id, agent_id, t, id
LIMIT {_MAX_MARKERS}
{FINAL_SETTINGS}"""
    by: dict[tuple[str, str, str], list[tuple[int, str]]] = {}
    for r in store.query_arrow(sql, parts.binds).to_pylist():
        by.setdefault((r["org_id"], r["project_id"], r["agent_id"]), []).append(
            (int(r["t"]), str(r["id"])))
    window_ns = BURST_WINDOW_S * 10**9
    findings: list[Finding] = []
    for (org, project, agent), markers in by.items():
        times = [t for t, _ in markers]
        in_burst = [False] * len(times)
        peak = 0
        for i, t in enumerate(times):
            j = bisect.bisect_right(times, t + window_ns - 1, lo=i)  # [t, t + window)
            if j - i >= BURST_MIN_MARKERS:
                in_burst[i:j] = [True] * (j - i)
            peak = max(peak, j - i)
        picked = [m for m, hit in zip(markers, in_burst, strict=True) if hit]
        if not picked:
            continue
        severity = "high" if peak >= BURST_HIGH_MARKERS else "medium"
        findings.append(Finding(
            "prompt_injection_burst", severity,
            {"org_id": org, "project_id": project, "agent_id": agent},
            _dt(picked[0][0]), _dt(picked[-1][0]), len(picked),
            [i for _, i in picked[:NUM_EVIDENCE]],
            f"{len(picked)} prompt-injection markers in bursts (up to {peak} within "
            f"{BURST_WINDOW_S // 60} min) for agent {agent or '(none)'!r}"))
    return findings


def _blocked_actions(store: SpanStore, parts: SqlParts) -> list[Finding]:
    sql = f"""
SELECT org_id, project_id, agent_id,
       arrayJoin(arrayDistinct(arrayFilter((p, a) -> a = 'block', policy_ids, policy_actions)))
           AS policy_id,
       count() AS n, min(start_time) AS first_seen, max(start_time) AS last_seen,
       groupArraySorted({NUM_EVIDENCE})(concat(trace_id, ':', span_id)) AS evidence
FROM spans FINAL
WHERE {parts.where} AND has(policy_actions, 'block')
GROUP BY org_id, project_id, agent_id, policy_id
{FINAL_SETTINGS}"""
    findings = []
    for r in store.query_arrow(sql, parts.binds).to_pylist():
        n = int(r["n"])
        severity = "high" if n >= BLOCKED_HIGH else "medium" if n >= BLOCKED_MEDIUM else "low"
        subject = _subject(r, ("org_id", "project_id", "agent_id", "policy_id"))
        findings.append(Finding(
            "blocked_action", severity, subject, r["first_seen"], r["last_seen"], n,
            [str(e) for e in r["evidence"]],
            f"{n} actions of agent {subject['agent_id'] or '(none)'!r} blocked by policy "
            f"{subject['policy_id']!r}"))
    return findings


def _new_tools(store: SpanStore, params: QueryParams, baseline_days: int) -> list[Finding]:
    window = params.time_range
    now_parts = build_where(window, params.filters)
    now_sql = f"""
SELECT org_id, agent_id, tool_name, count() AS n, min(start_time) AS first_seen,
       max(start_time) AS last_seen,
       groupArraySorted({NUM_EVIDENCE})(concat(trace_id, ':', span_id)) AS evidence
FROM spans FINAL
WHERE {now_parts.where} AND tool_name != '' AND agent_id != ''
GROUP BY org_id, agent_id, tool_name
{FINAL_SETTINGS}"""
    used = store.query_arrow(now_sql, now_parts.binds).to_pylist()
    if not used:
        return []
    floor = datetime(1900, 1, 1, tzinfo=UTC)
    base_start = max(floor, window.start - timedelta(days=baseline_days))
    before: set[tuple[str, str, str]] = set()
    if base_start < window.start:
        base_parts = build_where(None, params.filters)
        ts = "DateTime64(9, 'UTC')"
        base_parts.conditions.append(f"start_time >= {base_parts.bind(base_start, ts)}")
        base_parts.conditions.append(f"start_time < {base_parts.bind(window.start, ts)}")
        # a set of (agent, tool) pairs needs no FINAL: a stale version can only add a pair
        # (hide a finding), never invent one
        base_sql = (f"SELECT DISTINCT org_id, agent_id, tool_name FROM spans WHERE "
                    f"{base_parts.where} AND tool_name != '' AND agent_id != ''")
        before = {(str(r["org_id"]), str(r["agent_id"]), str(r["tool_name"]))
                  for r in store.query_arrow(base_sql, base_parts.binds).to_pylist()}
    known_agents = {(org, agent) for org, agent, _ in before}
    findings = []
    for r in used:
        key = (str(r["org_id"]), str(r["agent_id"]), str(r["tool_name"]))
        if key in before:
            continue
        known = key[:2] in known_agents
        findings.append(Finding(
            "new_tool", "medium" if known else "low",
            {"org_id": key[0], "agent_id": key[1], "tool_name": key[2]},
            r["first_seen"], r["last_seen"], int(r["n"]), [str(e) for e in r["evidence"]],
            f"agent {key[1]!r} used tool {key[2]!r} for the first time in {baseline_days} days"
            + ("" if known else " (no tool use by this agent before)")))
    return findings


def new_key_findings(keys: Iterable[KeyUse], start: datetime, end: datetime
                     ) -> list[Finding]:
    """``new_key`` findings: keys first used in ``[start, end)`` (UTC).

    Severity: ``high`` without an audited creation, ``medium`` for an admin or
    installation-wide key, ``low`` otherwise.
    """
    findings = []
    for key in keys:
        used = key.first_used_at
        if used is None or not start <= used < end:
            continue
        if not key.creation_audited:
            severity, why = "high", "its creation is not in the audit log"
        elif key.role == "admin" or key.org_id is None:
            severity, why = "medium", "an admin or installation-wide key"
        else:
            severity, why = "low", f"a {key.role} key"
        subject = {"key_id": key.key_id, "org_id": key.org_id or "",
                   "project_id": key.project_id or "", "name": key.name,
                   "prefix": key.prefix, "role": key.role}
        findings.append(Finding(
            "new_key", severity, subject, used, used, 1, [f"key:{key.key_id}"],
            f"API key {key.prefix}… ({key.name!r}) used for the first time: {why}"))
    return findings


def find_signals(store: SpanStore, params: QueryParams, *, keys: Iterable[KeyUse] = (),
                 kinds: Sequence[str] = SIGNAL_KINDS, min_severity: str = "low",
                 baseline_days: int = DEFAULT_BASELINE_DAYS) -> SignalReport:
    """Every finding of ``kinds`` over ``params.time_range`` at or above ``min_severity``.

    Args:
        store: the span store.
        params: the window (whole minutes) and equality filters, the caller's scope
            included (``new_key`` is scoped by the keys passed in).
        keys: the API keys to judge for ``new_key`` (:func:`mentatlab.governance.key_use.
            key_uses`); none: no ``new_key`` findings.
        kinds: which of :data:`SIGNAL_KINDS`.
        min_severity: leave out findings below it.
        baseline_days: days before the window ``new_tool`` compares with (1..365).

    Raises:
        ValidationError: an unknown kind or severity, or ``baseline_days`` out of range.
        QueryTimeout, StoreError: the store failed.
    """
    for kind in kinds:
        if kind not in SIGNAL_KINDS:
            raise ValidationError("kind", f"Expected one of {list(SIGNAL_KINDS)}, got {kind!r}")
    floor = severity_rank(min_severity)
    if not 1 <= baseline_days <= MAX_BASELINE_DAYS:
        raise ValidationError("baseline_days", f"Expected 1..{MAX_BASELINE_DAYS}, got "
                                               f"{baseline_days}")
    window = params.time_range
    findings: list[Finding] = []
    unavailable: dict[str, str] = {}
    policy_kinds = [k for k in ("prompt_injection_burst", "blocked_action") if k in kinds]
    if policy_kinds and not _policy_columns_present(store):
        for kind in policy_kinds:
            unavailable[kind] = ("the span store has no policy decision columns yet "
                                 "(policy_ids, policy_actions: span-store migration 9)")
        policy_kinds = []
    if "prompt_injection_burst" in policy_kinds:
        findings += _injection_bursts(store, build_where(window, params.filters))
    if "blocked_action" in policy_kinds:
        findings += _blocked_actions(store, build_where(window, params.filters))
    if "new_tool" in kinds:
        findings += _new_tools(store, params, baseline_days)
    if "new_key" in kinds:
        findings += new_key_findings(keys, window.start, window.end)
    kept = [f for f in findings if severity_rank(f.severity) >= floor]
    kept.sort(key=lambda f: (-severity_rank(f.severity), -f.count, f.kind, f.subject_key))
    return SignalReport(window.start, window.end, kept, unavailable)
