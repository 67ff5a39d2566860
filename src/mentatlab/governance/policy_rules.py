"""Checking policy specs, the built-in policies, snapshots and the pre-action check.

* :func:`check_spec`: a user's spec, checked field by field (CEL compiled, names and
  values against :mod:`mentatlab.governance.policies`); every error names its field.
* :data:`BUILTIN_POLICIES`: the five policies every installation ships (ids
  ``builtin.*``), installation-wide, ``log`` action, all enabled but the tool allowlist
  (it needs an allowlist to mean anything).
* :func:`snapshot_of`: the enforced versions as a :class:`PolicySnapshot`.
* :func:`check_action`: ``POST /api/v1/policies/check``: evaluate the would-be span with
  the same compiled set as ingest, then apply the break-glass overrides in force.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import orjson

from mentatlab.alerting.notifiers import parse_channel
from mentatlab.errors import ValidationError
from mentatlab.governance.policies import (
    ACTIONS,
    COMPLIANCE_TAGS,
    SCOPES,
    SEVERITIES,
    Decision,
    PolicyRule,
    PolicySnapshot,
    check_condition,
    compiled_set,
    evaluate_spans,
)
from mentatlab.model.span import CanonicalSpan
from mentatlab.pipeline.tool_args import ARGUMENT_KEYS
from mentatlab.storage.control.policies import OverrideInfo, PolicyInfo, PolicySpec

__all__ = [
    "BUILTIN_POLICIES",
    "CheckDecision",
    "CheckResult",
    "MAX_PARAMS_BYTES",
    "check_action",
    "check_spec",
    "override_covers",
    "rule_of",
    "snapshot_of",
]

MAX_PARAMS_BYTES = 65_536
"""Largest ``params`` object accepted, as JSON bytes."""
_TAG_ALIASES = {t.lower().replace(" ", "").replace("_", "").replace("-", ""): t
                for t in COMPLIANCE_TAGS}


def _tag(text: str) -> str:
    key = text.lower().replace(" ", "").replace("_", "").replace("-", "")
    tag = _TAG_ALIASES.get(key)
    if tag is None:
        raise ValidationError("compliance_tags",
                              f"Expected tags among {list(COMPLIANCE_TAGS)}, got {text!r}")
    return tag


def check_spec(spec: PolicySpec) -> PolicySpec:
    """``spec`` checked and normalised (tags in their canonical spelling, sorted).

    Raises:
        ValidationError: naming the field: ``name`` (1..200 characters), ``condition``
            (CEL syntax with line/column and a caret, an unknown name or span field, a
            type error on a span of zero values), ``action``,
            ``scope``, ``scope_value`` (required unless global, empty when global),
            ``severity``, ``compliance_tags``, ``params`` (a JSON object of at most
            :data:`MAX_PARAMS_BYTES`), ``channels`` (``kind:target``).
    """
    if not 1 <= len(spec.name) <= 200:
        raise ValidationError("name", "Expected 1 to 200 characters")
    if not isinstance(spec.params, dict):
        raise ValidationError("params", "Expected a JSON object")
    check_condition(spec.condition, spec.params)
    if spec.action not in ACTIONS:
        raise ValidationError("action", f"Expected one of {list(ACTIONS)}, got {spec.action!r}")
    if spec.scope not in SCOPES:
        raise ValidationError("scope", f"Expected one of {list(SCOPES)}, got {spec.scope!r}")
    if spec.scope == "global" and spec.scope_value:
        raise ValidationError("scope_value", "Expected no scope_value for a global scope")
    if spec.scope != "global" and not spec.scope_value:
        raise ValidationError("scope_value", f"Expected the {spec.scope} this policy applies to")
    if spec.severity not in SEVERITIES:
        raise ValidationError("severity",
                              f"Expected one of {list(SEVERITIES)}, got {spec.severity!r}")
    tags = tuple(sorted({_tag(t) for t in spec.compliance_tags}))
    if not isinstance(spec.params, dict):
        raise ValidationError("params", "Expected a JSON object")
    try:
        size = len(orjson.dumps(spec.params))
    except TypeError as exc:
        raise ValidationError("params", f"Expected JSON values: {exc}") from None
    if size > MAX_PARAMS_BYTES:
        raise ValidationError("params", f"Expected at most {MAX_PARAMS_BYTES} bytes of JSON")
    for channel in spec.channels:
        parse_channel(channel, "channels")
    return replace(spec, compliance_tags=tags)


def rule_of(info: PolicyInfo) -> PolicyRule:
    """The evaluable form of one stored version."""
    spec = info.spec
    return PolicyRule(info.id, info.version, spec.name, spec.condition, spec.action,
                      spec.scope, spec.scope_value, spec.org_id, spec.severity,
                      orjson.dumps(spec.params).decode())


def snapshot_of(infos: Iterable[PolicyInfo]) -> PolicySnapshot:
    """The snapshot of the enforced versions among ``infos``."""
    return PolicySnapshot.of(rule_of(i) for i in infos if i.enforced)


# --- built-in policies -------------------------------------------------------------------

_INPUT_KEYS = ["gen_ai.input.messages", "gen_ai.prompt", "gen_ai.system_instructions",
               "input.value", "ai.prompt", "ai.prompt.messages", "traceloop.entity.input",
               "llm.input_messages", "prompt"]
_OUTPUT_KEYS = ["gen_ai.output.messages", "gen_ai.completion", "output.value",
                "ai.response.", "traceloop.entity.output", "llm.output_messages",
                "completion", "final_result"]
_INJECTION_PATTERN = (
    r"(?i)(ignore|disregard|forget|override)\s+(all\s+|any\s+)?(of\s+)?(the\s+|your\s+)?"
    r"(previous|prior|above|earlier|preceding)\s+(instructions|prompts?|rules|directions)"
    r"|you\s+are\s+now\s+(in\s+)?(dan|developer\s+mode|jailbroken)"
    r"|(reveal|print|show|repeat)\s+(me\s+)?(your|the)\s+(system\s+prompt|hidden\s+instructions)"
    r"|<\|im_start\|>|\[/?INST\]|###\s*system\s*:")
_SECRET_PATTERN = (
    r"sk-(ant-|proj-)?[A-Za-z0-9_-]{20,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{36}"
    r"|xox[abprs]-[A-Za-z0-9-]{10,}|(sk|rk)_live_[A-Za-z0-9]{20,}"
    r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----")

BUILTIN_POLICIES: Sequence[tuple[str, PolicySpec]] = (
    ("builtin.tool_allowlist", PolicySpec(
        name="Unauthorized tool use (tool allowlist per workflow)",
        description=("A tool call in a workflow whose allowlist (params.allowlist: "
                     "workflow id → tool names) does not name the tool. Workflows not in "
                     "the allowlist are not checked. Disabled until an allowlist is set."),
        condition=("span.operation == \"tool\" && span.workflow_id in params.allowlist"
                   " && !(span.tool_name in params.allowlist[span.workflow_id])"),
        action="log", severity="high", compliance_tags=("EU AI Act", "SOC 2"),
        params={"allowlist": {}}, enabled=False)),
    ("builtin.resource_consumption", PolicySpec(
        name="Excessive resource consumption",
        description=("A span (an agent run's roll-up included) over a token, duration or "
                     "CPU limit (params)."),
        condition=("span.total_tokens > params.max_tokens"
                   " || span.duration_ms > params.max_duration_ms"
                   " || span.cpu_core_seconds > params.max_cpu_core_seconds"),
        action="log", severity="medium", compliance_tags=("SOC 2",),
        params={"max_tokens": 200_000, "max_duration_ms": 600_000,
                "max_cpu_core_seconds": 3_600})),
    ("builtin.pii_in_output", PolicySpec(
        name="PII in model output",
        description=("The PII stage found personal data in a model output attribute "
                     "(pii_findings whose key, or event attribute key "
                     "'event:<i>:<key>', starts with one of params.output_keys)."),
        condition=("pii_findings.exists(f, params.output_keys.exists(k,"
                   " f.key.startsWith(k) || (f.key.startsWith(\"event:\")"
                   " && f.key.contains(\":\" + k))))"),
        action="log", severity="medium", compliance_tags=("GDPR", "HIPAA", "EU AI Act"),
        params={"output_keys": _OUTPUT_KEYS})),
    ("builtin.prompt_injection", PolicySpec(
        name="Prompt-injection markers in inputs",
        description=("An input attribute (params.input_keys) matches a known "
                     "prompt-injection phrasing (params.pattern, RE2)."),
        condition=("params.input_keys.exists(k, k in attributes"
                   " && type(attributes[k]) == string"
                   " && re_search(attributes[k], params.pattern))"),
        action="log", severity="high", compliance_tags=("EU AI Act", "SOC 2"),
        params={"input_keys": _INPUT_KEYS, "pattern": _INJECTION_PATTERN})),
    ("builtin.secrets_in_tool_args", PolicySpec(
        name="Secrets in tool arguments",
        description=("A tool call whose arguments hold a secret: a PII finding of a "
                     "secret category on an argument attribute, or an argument matching "
                     "a key format (params.pattern)."),
        condition=("span.operation == \"tool\" && (pii_findings.exists(f,"
                   " f.category in params.categories && f.key in params.argument_keys)"
                   " || params.argument_keys.exists(k, k in attributes"
                   " && type(attributes[k]) == string"
                   " && re_search(attributes[k], params.pattern)))"),
        action="log", severity="high", compliance_tags=("SOC 2", "GDPR"),
        params={"argument_keys": list(ARGUMENT_KEYS),
                "categories": ["SECRET", "API_KEY", "PRIVATE_KEY", "JWT", "AWS_ACCESS_KEY"],
                "pattern": _SECRET_PATTERN})),
)
"""``(id, spec)`` of the shipped policies: installation-wide, action ``log`` (recorded
only) until an admin raises it; ``builtin.tool_allowlist`` disabled until it has an
allowlist."""


# --- the pre-action check ----------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class CheckDecision:
    """A policy the would-be action matched."""

    policy_id: str
    version: int
    action: str
    name: str
    severity: str
    overridden: bool
    """True when a break-glass override in force lets it pass."""
    override_id: str = ""


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The answer to one check: allowed unless a ``block`` match is not overridden."""

    allow: bool
    decisions: tuple[CheckDecision, ...]


def override_covers(override: OverrideInfo, span: CanonicalSpan) -> bool:
    """Whether ``override``'s org and scope cover ``span``."""
    if override.org_id and override.org_id != span.org_id:
        return False
    value = {"global": None, "org": span.org_id, "project": span.project_id,
             "agent": span.agent_id, "tool": span.tool_name}.get(override.scope, "")
    return value is None or value == override.scope_value


def check_action(snapshot: PolicySnapshot, span: CanonicalSpan,
                 overrides: Sequence[OverrideInfo], now: datetime) -> CheckResult:
    """Evaluate the would-be ``span`` as ingest would, then apply the overrides in force.

    Returns:
        ``allow`` False when a ``block`` policy matched and no override in force at
        ``now`` covers it; every match in ``decisions``.
    """
    evaluation = evaluate_spans(compiled_set(snapshot), [span])
    rules: Mapping[tuple[str, int], PolicyRule] = {(r.id, r.version): r for r in snapshot.rules}
    out: list[CheckDecision] = []
    allow = True
    for decision in evaluation.decisions.get(0, []):
        rule = rules[(decision.policy_id, decision.version)]
        grant = next((o for o in overrides if o.policy_id == decision.policy_id
                      and o.active(now) and override_covers(o, span)), None)
        out.append(_check_decision(decision, rule, grant))
        if decision.action == "block" and grant is None:
            allow = False
    return CheckResult(allow, tuple(out))


def _check_decision(decision: Decision, rule: PolicyRule, grant: OverrideInfo | None
                    ) -> CheckDecision:
    return CheckDecision(decision.policy_id, decision.version, decision.action, rule.name,
                         rule.severity, grant is not None, grant.id if grant else "")
