"""Guardrail policies as code: the policy model, CEL conditions and their evaluation.

A policy is a CEL condition over one canonical span, a scope, an action and compliance
metadata (docs/decisions/0018-guardrail-policies.md, docs/governance.md). This module is
pure: no store, no network. The control store keeps policies
(:mod:`mentatlab.storage.control.policies`), the ingest stage applies them
(:mod:`mentatlab.pipeline.policies`), ``POST /api/v1/policies/check`` and the simulation
evaluate them through the same :func:`evaluate_spans`.

CEL engine: the compiled ``common-expression-language`` bindings (module ``cel``, the
Rust CEL interpreter): a small rule over a span activation evaluates in ~2 µs once
compiled against ~150 µs for ``cel-python`` (decision 0018 has the figures).

**Activation** (the names a condition may use, :data:`ACTIVATION_NAMES`):

* ``span``: a map of the span's scalar fields (:data:`SPAN_FIELDS`): ids, ``name``,
  ``kind``, ``status``, tenancy (``org_id``, ``project_id``, ``user_id``,
  ``customer_id``...), attribution (``agent_id``, ``workflow_id``, ``run_id``...; the
  *inherited* values once the attribution stage or the resolver filled them),
  ``operation`` (``chat``, ``tool``, ``agent``...), ``tool_name``, models, token counts
  (int; ``0`` when not reported), resources, ``duration_ms``, ``error_type``/
  ``error_category`` (costs are not in it: the stage runs before pricing);
* ``attributes``: the span's attributes, key → value as stored (strings, numbers,
  booleans, lists); a missing key is an evaluation error, so guard with ``"k" in
  attributes``;
* ``resource``: the resource attributes, key → value;
* ``events``: a list of ``{"name": string, "time_ns": int, "attributes": map}``;
* ``pii_findings``: a list of ``{"category", "key", "offset", "length", "confidence"}``
  (filled by the PII stage, which runs before this one);
* ``inherited``: the attribution groups taken from an ancestor, by their id field name
  (``["agent_id", "workflow_id"]``);
* ``params``: the policy's own parameters (a JSON object), e.g. a tool allowlist.

A condition that fails at evaluation (a missing key, a type mismatch) does not match and
is counted (:attr:`PolicyEvaluation.num_errors`).
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from operator import attrgetter
from typing import Any, Final, NamedTuple

# isort: split
from mentatlab.governance import _cel_without_repl  # noqa: F401  (before cel: no REPL)

# isort: split
import cel
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import re2

from mentatlab.errors import ValidationError
from mentatlab.model.span import INHERITED_GROUPS, CanonicalSpan

__all__ = [
    "ACTIONS",
    "ACTIVATION_NAMES",
    "COMPLIANCE_TAGS",
    "Decision",
    "PAYLOAD_KEYS",
    "POLICY_DECISION_ACTIONS",
    "PolicyEvaluation",
    "PolicyRule",
    "PolicySet",
    "PolicySnapshot",
    "SCOPES",
    "SEVERITIES",
    "SPAN_FIELDS",
    "apply_decisions",
    "check_condition",
    "compile_condition",
    "compiled_set",
    "evaluate_spans",
    "rule_applies",
]

ACTIONS: Final = ("block", "alert", "redact", "log")
"""What a match does, strongest first (``block`` drops the payload, ``redact`` masks it,
``alert`` notifies, ``log`` only records)."""
SCOPES: Final = ("global", "org", "project", "agent", "tool")
"""Where a policy applies: every span of its owner, or the spans of one org, project,
agent (``agent_id``, inherited included) or tool (``tool_name``)."""
SEVERITIES: Final = ("low", "medium", "high", "critical")
"""A policy's severity, lowest first."""
COMPLIANCE_TAGS: Final = ("GDPR", "HIPAA", "EU AI Act", "SOC 2")
"""Compliance frameworks a policy may be tagged with."""
POLICY_DECISION_ACTIONS: Final[Mapping[str, str]] = {
    "block": "block", "blocked": "block", "deny": "block", "denied": "block",
    "reject": "block", "rejected": "block", "redact": "redact", "redacted": "redact",
    "alert": "alert", "warn": "alert", "warning": "alert", "flag": "alert",
    "flagged": "alert",
}
"""A producer's own ``policy_result`` word (``agent.policy.decision`` events,
``mentat.policy_result``) → the action recorded; any other word (``allow``, ``pass``...)
is recorded as ``log``."""

SPAN_FIELDS: Final = (
    "trace_id", "span_id", "parent_span_id", "name", "kind", "status", "status_message",
    "org_id", "workspace_id", "project_id", "user_id", "customer_id", "department",
    "service_name", "agent_id", "agent_version", "runtime", "workflow_id",
    "workflow_version", "flow_id", "run_id", "session_id", "step", "prompt_version",
    "operation", "operation_name", "tool_name", "attempt", "is_retry", "is_fallback",
    "provider", "request_model", "response_model", "input_tokens", "output_tokens",
    "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "total_tokens",
    "cpu_core_seconds", "memory_gb_seconds", "gpu_seconds", "network_bytes_in",
    "network_bytes_out", "storage_bytes", "duration_ms", "error_type", "error_category",
    "error_class",
)
"""Keys of the ``span`` map: canonical fields of :class:`CanonicalSpan` (token counts
``0`` when not reported). Costs are left out: the stage runs before ``price``, and the
simulation over stored (priced) spans must see what ingest saw."""
ACTIVATION_NAMES: Final = frozenset({"span", "attributes", "resource", "events",
                                     "pii_findings", "inherited", "params"})
"""Top-level names a condition may use (``params`` is replaced by the policy's parameters
when it is compiled). Functions: CEL's standard ones and ``re_search(text, pattern)``."""

PAYLOAD_KEYS: Final = frozenset({
    "gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions",
    "gen_ai.prompt", "gen_ai.completion", "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result", "gen_ai.tool.definitions", "input.value", "output.value",
    "tool_arguments", "tool_response", "ai.prompt", "ai.prompt.messages",
    "ai.response.text", "ai.response.object", "ai.response.toolCalls", "ai.toolCall.args",
    "ai.toolCall.result", "traceloop.entity.input", "traceloop.entity.output",
    "gcp.vertex.agent.tool_call_args", "gcp.vertex.agent.tool_response",
    "gcp.vertex.agent.llm_request", "gcp.vertex.agent.llm_response", "all_messages_events",
    "final_result", "prompt", "completion",
})
"""Attributes that carry a payload (messages, inputs and outputs, tool arguments and
results); ``block`` drops them, ``redact`` masks them. Keys starting with one of
:data:`PAYLOAD_PREFIXES` count too."""
PAYLOAD_PREFIXES: Final = ("gen_ai.prompt.", "gen_ai.completion.", "llm.input_messages",
                           "llm.output_messages", "input.", "output.")
REDACTED_VALUE: Final = "<REDACTED:POLICY>"
"""What ``redact`` puts in place of a payload value."""

_INHERITED_NAMES = tuple(group[0] for group in INHERITED_GROUPS)
_SPAN_FIELD_SET = frozenset(SPAN_FIELDS)


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """One enforced version of a policy: what the ingest stage and the check API evaluate.

    Picklable and hashable by value: a :class:`PolicySnapshot` of rules is what the server
    hands to ingest worker processes.
    """

    id: str
    version: int
    name: str
    condition: str
    action: str
    """One of :data:`ACTIONS`."""
    scope: str = "global"
    """One of :data:`SCOPES`."""
    scope_value: str = ""
    """The org, project, agent or tool id of a non-global scope."""
    org_id: str = ""
    """The owner: its spans only; ``""`` for an installation-wide policy (every org)."""
    severity: str = "medium"
    params_json: str = "{}"
    """The policy's parameters as JSON object text (``params`` in the condition)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """One match of one policy version on one span."""

    policy_id: str
    version: int
    action: str


@dataclass(frozen=True, slots=True)
class PolicySnapshot:
    """The set of enforced rules at one moment, with a digest of their content.

    The server builds it from the control store and passes it with each batch; a process
    compiles a digest once (:func:`compiled_set`).
    """

    rules: tuple[PolicyRule, ...] = ()
    digest: str = ""

    @classmethod
    def of(cls, rules: Iterable[PolicyRule]) -> PolicySnapshot:
        """A snapshot of ``rules`` (sorted by id), its digest the SHA-256 of their content."""
        ordered = tuple(sorted(rules, key=lambda r: (r.id, r.version)))
        text = orjson.dumps([[r.id, r.version, r.name, r.condition, r.action, r.scope,
                              r.scope_value, r.org_id, r.severity, r.params_json]
                             for r in ordered])
        return cls(ordered, hashlib.sha256(text).hexdigest()[:32])


_LOOP_VARIABLE = re.compile(
    r"(?:\.(?:all|exists|exists_one|existsOne|map|filter)|\bcel\.bind)\(\s*([A-Za-z_]\w*)\s*,")
"""A comprehension's (or ``cel.bind``'s) own variable: the parser lists it as a name."""
_PARAMS_NAME = re.compile(
    r'("(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\')'
    r'|(?<![\w.])params\b(?:\s*\.\s*(\w+))?')
"""A string literal (kept) or the name ``params`` (replaced by the policy's parameters)."""
_SPAN_NAME = re.compile(r'("(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\')'
                        r'|(?<![\w.])span\b(\s*\.\s*(\w+))?')
_TYPE_NAMES = frozenset({"bool", "bytes", "double", "int", "uint", "string", "list", "map",
                         "null_type", "type", "timestamp", "duration"})
_POSITION = re.compile(r"<input>:(\d+):(\d+): (.*?)(?:\n|$)")


def compile_condition(condition: str, params: Any = None) -> Any:
    """Compile a CEL condition, or say which part of it is wrong.

    With ``params`` (a JSON value), every ``params`` name outside string literals is
    replaced by the value as a CEL literal, so a policy's parameters cost nothing per
    evaluation (converting a Python value into CEL on each call costs ~10 µs).

    Returns:
        The compiled program (``cel.Program``): ``program.execute(activation)``.

    Raises:
        ValidationError: (field ``condition``) the text is empty, does not parse (the
            reason gives ``line L, column C`` and a caret excerpt), or names something
            outside :data:`ACTIVATION_NAMES` (with its position).
    """
    if not condition.strip():
        raise ValidationError("condition", "Expected a CEL expression, got an empty text")
    try:
        program = cel.compile(condition)
    except (ValueError, RuntimeError) as exc:
        raise ValidationError("condition", _syntax_reason(condition, str(exc))) from None
    if params is not None:
        inlined = _inline_params(condition, params)
        try:
            program = cel.compile(inlined)
        except (ValueError, RuntimeError) as exc:
            raise ValidationError("params", f"Expected values CEL can hold: {exc}") from None
    unknown = sorted(set(program.variables()) - ACTIVATION_NAMES - {"re_search"}
                     - _TYPE_NAMES - set(_LOOP_VARIABLE.findall(condition)))
    if unknown:
        name = unknown[0]
        match = re.search(rf"(?<![\w.]){re.escape(name)}\b", condition)
        offset = match.start() if match else 0
        line, column = _line_column(condition, offset)
        raise ValidationError("condition", (
            f"Unknown name {name!r} at line {line}, column {column}: expected one of "
            f"{sorted(ACTIVATION_NAMES)}\n{_caret(condition, line, column)}"))
    return program


def _inline_params(condition: str, params: Any) -> str:
    """``condition`` with its ``params`` names replaced by CEL literals.

    Every ``params`` name outside string literals becomes the parameters' value as a CEL
    literal (``params.x`` the value of ``x`` alone).
    """
    whole = f"({orjson.dumps(params).decode()})"

    def literal(match: re.Match[str]) -> str:
        if match.group(1):
            return match.group(1)
        name = match.group(2)
        if name is not None and isinstance(params, dict) and name in params:
            return f"({orjson.dumps(params[name]).decode()})"  # only what is read
        return whole if name is None else f"{whole}.{name}"

    return _PARAMS_NAME.sub(literal, condition)


SPAN_VARIABLE_PREFIX: Final = "span__"
"""Prefix of the top-level variables that stand for ``span.<field>`` in the evaluated
form of a condition (:func:`_flatten_span`)."""


def _flatten_span(text: str) -> tuple[str, frozenset[str]] | None:
    """``text`` with each ``span.<field>`` read as the top-level variable ``span__<field>``.

    CEL converts a Python map entry by entry on every activation (~0.8 µs per entry with
    the compiled bindings, against ~0.1 µs for a top-level variable), so the ingest stage
    hands the fields a rule reads as variables of their own. Same values, same result: the
    rewrite is refused (None) when ``span`` is used in any other way (``span["f"]``,
    ``has(span.f)``, passed whole, a comprehension variable named ``span``), when a field
    is not in :data:`SPAN_FIELDS`, or when the text already holds the prefix.

    Returns:
        The rewritten text and the fields it reads, or None.
    """
    if SPAN_VARIABLE_PREFIX in text or "span" in _LOOP_VARIABLE.findall(text) or \
            re.search(r"[(,]\s*span\s*,", _STRINGS.sub('""', text)):
        return None  # ``span`` may be bound to something else (a comprehension variable)
    fields: set[str] = set()
    refused = False

    def variable(match: re.Match[str]) -> str:
        nonlocal refused
        if match.group(1):
            return match.group(1)
        name = match.group(3)
        if name is None or name not in _SPAN_FIELD_SET:
            refused = True
            return match.group(0)
        fields.add(name)
        return f"{SPAN_VARIABLE_PREFIX}{name}"

    flat = _SPAN_NAME.sub(variable, text)
    if refused or re.search(r"\bhas\s*\(", _STRINGS.sub('""', flat)):
        return None
    return flat, frozenset(fields)


_ZERO_SPAN: dict[str, Any] = {
    name: (0.0 if name in ("duration_ms", "cpu_core_seconds", "memory_gb_seconds",
                           "gpu_seconds")
           else 1 if name == "attempt" else False if name in ("is_retry", "is_fallback")
           else 0 if name.endswith(("_tokens", "_bytes", "_in", "_out")) else "")
    for name in SPAN_FIELDS}
"""A span of typed zero values: what :func:`check_condition` evaluates a condition on."""


def check_condition(condition: str, params: Any = None) -> Any:
    """Compile ``condition`` and check what can be checked without a span.

    As :func:`compile_condition`, and: every ``span.<field>`` is a field of
    :data:`SPAN_FIELDS`, and an evaluation on a span of typed zero values (no attributes,
    no findings) raises no type error (``span.input_tokens > "x"``). Parts that a
    short-circuit skips on that span, and attribute values (their types vary by
    producer), are checked only when spans arrive.

    Returns:
        The compiled program.

    Raises:
        ValidationError: (field ``condition``) as :func:`compile_condition`; an unknown
            ``span`` field (with its position); a type error.
    """
    program = compile_condition(condition, params)
    for match in _SPAN_NAME.finditer(condition):
        name = match.group(3)
        if match.group(1) or name is None or name in _SPAN_FIELD_SET:
            continue
        line, column = _line_column(condition, match.start(3))
        raise ValidationError("condition", (
            f"Unknown span field {name!r} at line {line}, column {column}: see "
            f"docs/governance.md for the fields\n{_caret(condition, line, column)}"))
    context = cel.Context()
    context.update({"re_search": re_search, "span": _ZERO_SPAN, "attributes": {},
                    "resource": {}, "events": [], "pii_findings": [], "inherited": []})
    try:
        program.execute(context)
    except TypeError as exc:
        raise ValidationError("condition", f"CEL type error: {str(exc).split('. ')[0]}"
                              " (evaluated on a span of zero values)") from None
    except Exception:  # noqa: BLE001 — a missing key or value: only spans can tell
        pass
    return program


def _line_column(text: str, offset: int) -> tuple[int, int]:
    before = text[:offset]
    line = before.count("\n") + 1
    return line, offset - (before.rfind("\n") + 1) + 1


def _caret(text: str, line: int, column: int) -> str:
    lines = text.split("\n")
    source = lines[line - 1] if 0 < line <= len(lines) else ""
    return f"| {source}\n| {' ' * (column - 1)}^"


def _syntax_reason(condition: str, message: str) -> str:
    match = _POSITION.search(message)
    if match is None:
        return f"Expected a valid CEL expression: {message.splitlines()[0]}"
    line, column = int(match.group(1)), int(match.group(2))  # 1-based already
    what = match.group(3).strip()
    return (f"CEL syntax error at line {line}, column {column}: {what}\n"
            f"{_caret(condition, line, column)}")


def rule_applies(rule: PolicyRule, span: CanonicalSpan) -> bool:
    """Whether ``rule``'s owner and scope cover ``span`` (the cheap pre-filter)."""
    if rule.org_id and rule.org_id != span.org_id:
        return False
    scope = rule.scope
    if scope == "global":
        return True
    if scope == "org":
        return span.org_id == rule.scope_value
    if scope == "project":
        return span.project_id == rule.scope_value
    if scope == "agent":
        return span.agent_id == rule.scope_value
    return span.tool_name == rule.scope_value


@dataclass(frozen=True, slots=True)
class _Compiled:
    rule: PolicyRule
    program: Any
    names: frozenset[str]
    """Activation names the condition uses."""
    span_fields: frozenset[str] | None
    """The ``span`` keys it reads (None: the whole map)."""
    attribute_keys: frozenset[str] | None
    """The attribute keys it can read (None: it may read any)."""
    needs: tuple[tuple[str, Any], ...]
    """Necessary conditions checked in Python before any CEL (:func:`necessary_checks`)."""
    span_variables: frozenset[str] = frozenset()
    """``span`` fields ``program`` reads as top-level ``span__<field>`` variables
    (:func:`_flatten_span`); empty when it reads the ``span`` map (or no field)."""
    pattern_need: tuple[tuple[str, ...], str] | None = None
    """``(keys, pattern)``: the rule can match only if one of these attributes is a string
    the RE2 ``pattern`` occurs in (:func:`pattern_need_of`); checked for a whole batch at
    once."""
    rank: tuple[int, int] = (0, 0)
    """Its place among a span's candidates (scope kind, then order within the scope)."""

    def may_match(self, span: CanonicalSpan) -> bool:
        """False when a necessary condition fails: the rule cannot match ``span``."""
        return bool(_admit(self.needs, [span], [0], {}))


def _admit(needs: Sequence[tuple[str, Any]], spans: Sequence[CanonicalSpan],
           indices: list[int], columns: dict[str, list[Any]]) -> list[int]:
    """The spans among ``indices`` that pass every one of ``needs``, a batch at a time.

    ``columns`` caches a batch's ``span`` field values by name, as the activation holds
    them (None → 0, an enum → its string), shared by the rules of one batch.
    """
    for kind, arg in needs:
        if not indices:
            break
        if kind == "eq":
            column = _column(columns, spans, arg[0])
            indices = [i for i in indices if column[i] == arg[1]]
        elif kind == "any_key":
            if len(arg) == 1:
                indices = [i for i in indices if arg[0] in spans[i].attributes]
            else:
                indices = [i for i in indices
                           if any(key in spans[i].attributes for key in arg)]
        elif kind == "pii":
            indices = [i for i in indices if spans[i].pii_findings not in ("", "[]")]
        elif kind == "any":
            tests = [(_column(columns, spans, name), test) for name, test in arg]
            if len(tests) == 1:
                column, test = tests[0]
                indices = [i for i in indices if test(column[i])]
            else:
                indices = [i for i in indices if any(test(c[i]) for c, test in tests)]
    return indices


def _column(columns: dict[str, list[Any]], spans: Sequence[CanonicalSpan],
            name: str) -> list[Any]:
    found = columns.get(name)
    if found is None:
        found = list(map(attrgetter(name), spans))
        if not set(map(type, found)) <= _PLAIN_TYPES:  # None, an enum: as the activation
            found = [0 if v is None else str(v) if isinstance(v, StrEnum) else v
                     for v in found]
        columns[name] = found
    return found


_PLAIN_TYPES: Final = frozenset({int, float, str, bool})


def _conjuncts(condition: str) -> list[str]:
    """The top-level ``&&`` operands of ``condition`` (outside brackets and strings)."""
    return _operands(condition, "&&")


def _outside_strings(text: str, start: int = 0) -> Iterator[tuple[int, int]]:
    """``(index, bracket depth before it)`` of each character outside string literals.

    From ``start``; quotes, what they hold and its backslash escapes are skipped.
    """
    depth, i, quote = 0, start, ""
    while i < len(text):
        char = text[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        else:
            yield i, depth
            if char in "([{":
                depth += 1
            elif char in ")]}":
                depth -= 1
        i += 1


def _operands(condition: str, operator: str) -> list[str]:
    """The top-level operands of ``operator`` (``&&``, ``||``) in ``condition``."""
    parts: list[str] = []
    start = 0
    for i, depth in _outside_strings(condition):
        if depth == 0 and i >= start and condition.startswith(operator, i):
            parts.append(condition[start:i])
            start = i + 2
    parts.append(condition[start:])
    return [p.strip() for p in parts]


_EQ_CONJUNCT = re.compile(r'^span\.(\w+)\s*==\s*"([\w .:/@-]*)"$')
_KEY_CONJUNCT = re.compile(r'^"([\w.:/@-]+)"\s+in\s+attributes$')
_LIST_KEYS = re.compile(r'^params\.(\w+)\.exists\(\s*(\w+)\s*,\s*\2\s+in\s+attributes\s*(&&|\))')
_KEY_LITERAL = re.compile(r'"([\w.:/@-]+)"\s+in\s+attributes\b|\battributes\["([\w.:/@-]+)"\]')


def _json_key(key: str) -> str:
    return f'"{key}":'


def necessary_checks(condition: str, params: Any) -> tuple[tuple[str, Any], ...]:
    """Cheap necessary conditions of ``condition``: all must hold for it to match.

    Cheap necessary conditions of ``condition`` (all must hold for it to match), from
    its top-level ``&&`` operands: ``span.F == "lit"``; ``"key" in attributes`` (the key
    text occurs in the attributes JSON); ``params.L.exists(k, k in attributes && ...)``
    (one of the listed keys occurs); ``pii_findings.exists(...)`` (findings not empty) —
    each only when it is the whole operand; and ``("any", ((field, can_be_true), ...))``
    for an operand that is a comparison of span fields with literals or an ``||`` of
    them (:func:`_atom`; parameters inlined first).
    """
    needs: list[tuple[str, Any]] = []
    for part in _conjuncts(condition):
        if (match := _EQ_CONJUNCT.match(part)) and match.group(1) in _SPAN_FIELD_SET:
            needs.append(("eq", (match.group(1), match.group(2))))
        elif match := _KEY_CONJUNCT.match(part):
            needs.append(("any_key", (_json_key(match.group(1)),)))
        elif (match := _LIST_KEYS.match(part)) and isinstance(params, dict) and \
                _closing(part, part.index("(")) == len(part) - 1:
            keys = params.get(match.group(1))
            if isinstance(keys, list) and keys and all(
                    isinstance(k, str) and re.fullmatch(r"[\w.:/@-]+", k) for k in keys):
                needs.append(("any_key", tuple(_json_key(k) for k in keys)))
        elif part.startswith("pii_findings.exists(") and \
                _closing(part, part.index("(")) == len(part) - 1:
            needs.append(("pii", None))
    if isinstance(params, dict) and "span" not in _LOOP_VARIABLE.findall(condition) and \
            not re.search(r"[(,]\s*span\s*,", _STRINGS.sub('""', condition)):
        for part in _conjuncts(_inline_params(condition, params)):
            if _EQ_CONJUNCT.match(part):
                continue  # an ``eq`` need already
            atoms = [_atom(d) for d in _disjuncts(_unwrap(part))]
            if atoms and all(a is not None for a in atoms):
                needs.append(("any", tuple(a for a in atoms if a is not None)))
    return tuple(needs)


def _unwrap(text: str) -> str:
    """``text`` without brackets around the whole of it."""
    text = text.strip()
    while text.startswith("(") and _closing(text, 0) == len(text) - 1:
        text = text[1:-1].strip()
    return text


def _disjuncts(condition: str) -> list[str]:
    """The top-level ``||`` operands of ``condition``.

    [] when it has a top-level ``&&`` (``a && b || c`` is not a plain disjunction).
    """
    if len(_operands(condition, "&&")) > 1:
        return []
    return [_unwrap(part) for part in _operands(condition, "||")]


_NUMBER = r"\(?\s*(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)\s*\)?"
_FIELD = r"span\s*\.\s*(\w+)"
_STRING = r"\(?\s*(?:\"([^\"\\\n]*)\"|'([^'\\\n]*)')\s*\)?"
_CMP_RIGHT = re.compile(rf"^{_FIELD}\s*(<=|>=|==|<|>)\s*{_NUMBER}$")
_CMP_LEFT = re.compile(rf"^{_NUMBER}\s*(<=|>=|==|<|>)\s*{_FIELD}$")
_STR_EQ = re.compile(rf"^{_FIELD}\s*==\s*{_STRING}$")
_STR_CALL = re.compile(rf"^{_FIELD}\s*\.\s*(startsWith|endsWith|contains)\s*\(\s*{_STRING}\s*\)$")
_IN_LIST = re.compile(rf"^{_FIELD}\s+in\s+\(?\s*\[([^\[\]]*)\]\s*\)?$")
_LIST_ITEM = re.compile(r'^\s*(?:"([^"\\\n]*)"|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?))\s*$')
_FLIP = {"<": ">", ">": "<", "<=": ">=", ">=": "<=", "==": "=="}
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda a, b: a < b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b, "==": lambda a, b: a == b}


def _number(text: str) -> int | float:
    return int(text) if re.fullmatch(r"-?\d+", text) else float(text)


def _is_number(value: Any) -> bool:
    return type(value) is int or type(value) is float


def _atom(text: str) -> tuple[str, Callable[[Any], bool]] | None:
    """A comparison of one ``span`` field with literals, as ``(field, can_be_true)``.

    ``can_be_true(value)`` is False only when the comparison is false for that value in
    CEL as in Python (numbers against numbers, strings against strings); for any other
    type it is True (CEL decides). None when ``text`` is not such a comparison.
    """
    if match := _CMP_RIGHT.match(text):
        name, op, literal = match.group(1), match.group(2), _number(match.group(3))
    elif match := _CMP_LEFT.match(text):
        name, op, literal = match.group(3), _FLIP[match.group(2)], _number(match.group(1))
    elif match := _STR_EQ.match(text):
        name, wanted = match.group(1), match.group(2) if match.group(2) is not None \
            else match.group(3)
        if name not in _SPAN_FIELD_SET:
            return None
        return name, lambda v: type(v) is not str or v == wanted
    elif match := _STR_CALL.match(text):
        name, call = match.group(1), match.group(2)
        part = match.group(3) if match.group(3) is not None else match.group(4)
        if name not in _SPAN_FIELD_SET:
            return None
        method = {"startsWith": str.startswith, "endsWith": str.endswith,
                  "contains": str.__contains__}[call]
        return name, lambda v: type(v) is not str or method(v, part)
    elif match := _IN_LIST.match(text):
        name = match.group(1)
        items = [_LIST_ITEM.match(x) for x in match.group(2).split(",")] \
            if match.group(2).strip() else []
        if name not in _SPAN_FIELD_SET or not all(items):
            return None
        texts = [m.group(1) for m in items if m is not None and m.group(1) is not None]
        numbers = tuple(_number(m.group(2)) for m in items
                        if m is not None and m.group(1) is None)
        if len(texts) == len(items):
            strings = frozenset(texts)
            return name, lambda v: type(v) is not str or v in strings
        if len(numbers) == len(items) and all(abs(x) < _EXACT for x in numbers):
            return name, lambda v: not _is_number(v) or not abs(v) < _EXACT or v in numbers
        return None
    else:
        return None
    if name not in _SPAN_FIELD_SET or not abs(literal) < _EXACT:
        return None
    compare = _COMPARE[op]
    return name, lambda v: not _is_number(v) or not abs(v) < _EXACT or compare(v, literal)


_EXACT: Final = 2**53
"""Numbers gated in Python stay below this: an int and a double compare alike in Python
(exactly) and in CEL (which may round the int to a double) only where every int is a
double."""


_EXISTS_HEAD = re.compile(r"^params\.(\w+)\.exists\(\s*(\w+)\s*,")
_KEY_TEXT = re.compile(r"[\w.:/@-]+")


def _closing(text: str, open_at: int) -> int:
    """Index of the bracket closing the one at ``open_at`` (outside strings); -1 if none."""
    for i, depth in _outside_strings(text, open_at):
        if depth == 1 and text[i] in ")]}":
            return i
    return -1


def pattern_need_of(condition: str, params: Any) -> tuple[tuple[str, ...], str] | None:
    """A regular-expression necessary condition of ``condition``, checked per batch.

    From a top-level ``&&`` operand ``params.L.exists(k, ... && re_search(attributes[k],
    params.P) && ...)`` (``re_search`` one of the ``&&`` operands of the body; ``L`` a
    list of attribute keys, ``P`` a string): the rule can match a span only if one of
    the keys of ``L`` holds a string in which the RE2 pattern ``P`` occurs (the built-in
    prompt-injection policy has this form).

    Returns:
        ``(keys, pattern)``, or None when the condition has no such operand.
    """
    if not isinstance(params, dict):
        return None
    for part in _conjuncts(condition):
        head = _EXISTS_HEAD.match(part)
        if head is None or _closing(part, head.group(0).rfind("(")) != len(part) - 1:
            continue
        keys, variable = params.get(head.group(1)), re.escape(head.group(2))
        if not (isinstance(keys, list) and keys and all(
                isinstance(k, str) and _KEY_TEXT.fullmatch(k) for k in keys)):
            continue
        searched = re.compile(
            rf"^re_search\(\s*attributes\[\s*{variable}\s*\]\s*,\s*params\.(\w+)\s*\)$")
        for operand in _conjuncts(part[head.end():-1]):
            found = searched.match(operand)
            pattern = params.get(found.group(1)) if found else None
            if isinstance(pattern, str):
                return tuple(keys), pattern
    return None


def _pattern_admitted(need: tuple[tuple[str, ...], str], spans: Sequence[CanonicalSpan],
                      indices: Sequence[int]) -> set[int]:
    """The spans among ``indices`` that pass ``need`` (:func:`pattern_need_of`).

    The strings of all spans go through one RE2 search over an Arrow column
    (``pyarrow.compute.match_substring_regex``, the engine of :func:`re_search`); a
    pattern Arrow refuses, or a value it cannot hold, admits every span that has one of
    the keys (CEL then decides, as without the pre-filter). ``indices`` passed the
    rule's cheap checks (:meth:`_Compiled.may_match`) already.
    """
    keys, pattern = need
    owners: list[int] = []
    texts: list[str] = []
    for index in indices:
        attributes = _loads(spans[index].attributes, {})
        if not isinstance(attributes, dict):
            continue
        for key in keys:
            value = attributes.get(key)
            if isinstance(value, str):
                owners.append(index)
                texts.append(value)
    if not texts:
        return set()
    try:
        hits = pc.match_substring_regex(pa.array(texts, pa.string()), pattern).to_pylist()
    except (pa.ArrowException, ValueError, TypeError, OverflowError):
        return set(owners)
    return {owner for owner, hit in zip(owners, hits, strict=True) if hit}


def attribute_keys_of(condition: str, params: Any) -> frozenset[str] | None:
    """The attribute keys ``condition`` can read; None when it may read any.

    The attribute keys ``condition`` can read, when it reads attributes only by literal
    keys or by a variable ranging over a ``params`` list of keys; None otherwise.
    """
    keys: set[str] = set()
    rest = condition
    for match in re.finditer(r"params\.(\w+)\.exists\(\s*(\w+)\s*,", condition):
        listed = params.get(match.group(1)) if isinstance(params, dict) else None
        if not isinstance(listed, list) or not all(isinstance(k, str) for k in listed):
            continue
        var = re.escape(match.group(2))
        pattern = rf"\b{var}\s+in\s+attributes\b|\battributes\[\s*{var}\s*\]"
        if re.search(pattern, rest):
            keys.update(listed)
            rest = re.sub(pattern, "", rest)
    for match in _KEY_LITERAL.finditer(rest):
        keys.add(match.group(1) or match.group(2))
    rest = _KEY_LITERAL.sub("", rest)
    if re.search(r"(?<![\w.])attributes\b", _STRINGS.sub('""', rest)):
        return None
    return frozenset(keys)


_STRINGS = re.compile(r'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'')


def span_fields_of(condition: str) -> frozenset[str] | None:
    """The ``span.<field>`` keys ``condition`` reads; None when it may read any.

    The ``span.<field>`` keys ``condition`` reads; None when it uses ``span`` otherwise
    (``span["x"]``, ``span`` passed whole), or names a field not in :data:`SPAN_FIELDS`.
    """
    fields: set[str] = set()
    for match in _SPAN_NAME.finditer(condition):
        if match.group(1):
            continue
        name = match.group(3)
        if name is None or name not in _SPAN_FIELD_SET:
            return None
        fields.add(name)
    return frozenset(fields)


@dataclass(slots=True)
class PolicySet:
    """A compiled :class:`PolicySnapshot`, indexed by scope for the pre-filter."""

    digest: str
    by_scope: dict[tuple[str, str], list[_Compiled]] = field(default_factory=dict)
    invalid: list[str] = field(default_factory=list)
    """Ids of rules whose condition no longer compiles (skipped)."""

    @property
    def empty(self) -> bool:
        """True when no rule is in force."""
        return not self.by_scope

    def candidates(self, span: CanonicalSpan) -> list[_Compiled]:
        """The rules whose owner and scope cover ``span``, in snapshot order."""
        by_scope = self.by_scope
        out: list[_Compiled] = []
        for key in (("global", ""), ("org", span.org_id), ("project", span.project_id),
                    ("agent", span.agent_id), ("tool", span.tool_name)):
            found = by_scope.get(key)
            if found:
                org = span.org_id
                out.extend(c for c in found if not c.rule.org_id or c.rule.org_id == org)
        return out


def build_set(snapshot: PolicySnapshot) -> PolicySet:
    """Compile every rule of ``snapshot`` (a rule that fails to compile is skipped)."""
    out = PolicySet(snapshot.digest)
    for rule in snapshot.rules:
        try:
            params = orjson.loads(rule.params_json or "{}")
            program = compile_condition(rule.condition, params)
        except (ValidationError, orjson.JSONDecodeError):
            out.invalid.append(rule.id)
            continue
        names = frozenset(program.variables()) & ACTIVATION_NAMES
        span_fields = span_fields_of(rule.condition)
        span_variables: frozenset[str] = frozenset()
        flat = _flatten_span(_inline_params(rule.condition, params))
        if flat is not None and span_fields is not None and flat[1] == span_fields:
            try:
                program, span_variables = cel.compile(flat[0]), flat[1]
                names -= {"span"}
                span_fields = frozenset()
            except (ValueError, RuntimeError):  # keep the ``span`` map form
                pass
        key = (rule.scope, "" if rule.scope == "global" else rule.scope_value)
        scoped = out.by_scope.setdefault(key, [])
        scoped.append(_Compiled(
            rule, program, names, span_fields, attribute_keys_of(rule.condition, params),
            necessary_checks(rule.condition, params), span_variables,
            pattern_need_of(rule.condition, params),
            (SCOPES.index(rule.scope) if rule.scope in SCOPES else len(SCOPES), len(scoped))))
    return out


_CACHE: OrderedDict[str, PolicySet] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 8


def compiled_set(snapshot: PolicySnapshot) -> PolicySet:
    """The compiled form of ``snapshot``, compiled once per digest in this process."""
    with _CACHE_LOCK:
        found = _CACHE.get(snapshot.digest)
        if found is not None:
            _CACHE.move_to_end(snapshot.digest)
            return found
    built = build_set(snapshot)
    with _CACHE_LOCK:
        _CACHE[snapshot.digest] = built
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return built


def _span_map(span: CanonicalSpan, fields: Iterable[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in fields:
        value = getattr(span, name)
        if value is None:
            value = 0
        elif isinstance(value, StrEnum):
            value = str(value)
        out[name] = value
    return out


def _loads(text: str, default: Any) -> Any:
    if not text:
        return default
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return default


_REGEX_CACHE: dict[str, Any] = {}


def re_search(text: Any, pattern: Any) -> bool:
    """CEL function ``re_search(text, pattern)``: whether RE2 ``pattern`` occurs in ``text``.

    CEL function ``re_search(text, pattern)``: whether RE2 ``pattern`` occurs in
    ``text`` (compiled once per pattern; CEL's own ``matches`` compiles on every call,
    ~0.5 ms). False when ``text`` is not a string.

    Raises:
        ValueError: ``pattern`` is not a valid RE2 expression (the evaluation fails).
    """
    if not isinstance(text, str) or not isinstance(pattern, str):
        return False
    regex = _REGEX_CACHE.get(pattern)
    if regex is None:
        if len(_REGEX_CACHE) > 1024:
            _REGEX_CACHE.clear()
        try:
            regex = _REGEX_CACHE[pattern] = re2.compile(pattern)
        except re2.error as exc:
            raise ValueError(f"Invalid RE2 pattern {pattern!r}: {exc}") from None
    return regex.search(text) is not None


def _context(span: CanonicalSpan, names: frozenset[str], fields: frozenset[str] | None,
             keys: frozenset[str] | None, variables: frozenset[str] = frozenset()) -> Any:
    """The CEL context of ``span``, narrowed to what the rules read.

    The CEL context of ``span``: only the names, ``span`` fields and attribute keys the
    rules read, as converting each value into CEL (~2 µs an entry) is what an evaluation
    mostly costs; ``variables`` are the ``span`` fields read as top-level
    ``span__<field>`` variables (:func:`_flatten_span`).
    """
    values: dict[str, Any] = {"re_search": re_search}
    for name in variables:
        value = getattr(span, name)
        values[SPAN_VARIABLE_PREFIX + name] = (
            0 if value is None else str(value) if isinstance(value, StrEnum) else value)
    if "span" in names:
        values["span"] = _span_map(span, SPAN_FIELDS if fields is None else fields)
    if "attributes" in names:
        attributes = _loads(span.attributes, {})
        if keys is not None and isinstance(attributes, dict):
            attributes = {k: attributes[k] for k in keys if k in attributes}
        values["attributes"] = attributes
    if "resource" in names:
        values["resource"] = _loads(span.resource, {})
    if "events" in names:
        events = _loads(span.events, [])
        values["events"] = [e for e in events if isinstance(e, dict)]
    if "pii_findings" in names:
        values["pii_findings"] = _loads(span.pii_findings, [])
    if "inherited" in names:
        values["inherited"] = [n for i, n in enumerate(_INHERITED_NAMES)
                               if span.inherited & (1 << i)]
    context = cel.Context()
    try:
        context.update(values)
    except (ValueError, TypeError, OverflowError):  # a value CEL cannot hold (a lone
        return None  # surrogate, a huge number): the span's rules count as errors
    return context


class _Plan(NamedTuple):
    """What the activation of spans with one set of candidate rules holds."""

    names: frozenset[str]
    fields: frozenset[str] | None
    keys: frozenset[str] | None
    variables: frozenset[str]

    @classmethod
    def of(cls, candidates: Sequence[_Compiled]) -> _Plan:
        """The union of what ``candidates`` read (None: the whole map)."""
        fields: frozenset[str] | None = frozenset()
        keys: frozenset[str] | None = frozenset()
        variables: frozenset[str] = frozenset()
        for compiled in candidates:
            fields = (None if fields is None or compiled.span_fields is None
                      else fields | compiled.span_fields)
            keys = (None if keys is None or compiled.attribute_keys is None
                    else keys | compiled.attribute_keys)
            variables |= compiled.span_variables
        return cls(frozenset().union(*(c.names for c in candidates)), fields, keys, variables)


@dataclass(slots=True)
class PolicyEvaluation:
    """What :func:`evaluate_spans` found in a batch."""

    decisions: dict[int, list[Decision]] = field(default_factory=dict)
    """Index of a span in the batch → its matches (spans that matched nothing are absent)."""
    num_evaluated: int = 0
    """Condition evaluations run (span × candidate rule)."""
    num_errors: int = 0
    """Evaluations that failed (a missing key, a type mismatch): counted as no match."""


def _candidates_by_span(policy_set: PolicySet, spans: Sequence[CanonicalSpan]
                        ) -> list[list[_Compiled]]:
    """For each of N spans, the rules to evaluate on it (in ``candidates`` order).

    Rules in scope (by distinct owner: org, project, agent, tool) that pass their cheap
    necessary conditions, checked rule by rule over the batch (:func:`_admit`), then the
    regular-expression gate over the batch's strings (:func:`_pattern_admitted`).
    """
    owners: dict[tuple[str, str, str, str], list[int]] = {}
    for index, span in enumerate(spans):
        owners.setdefault((span.org_id, span.project_id, span.agent_id, span.tool_name),
                          []).append(index)
    in_scope: dict[int, tuple[_Compiled, list[int]]] = {}
    for indices in owners.values():
        for compiled in policy_set.candidates(spans[indices[0]]):
            in_scope.setdefault(id(compiled), (compiled, []))[1].extend(indices)
    per_span: list[list[_Compiled]] = [[] for _ in spans]
    columns: dict[str, list[Any]] = {}
    for compiled, indices in sorted(in_scope.values(), key=lambda item: item[0].rank):
        if len(owners) > 1:
            indices.sort()
        admitted = _admit(compiled.needs, spans, indices, columns)
        if admitted and compiled.pattern_need is not None:
            passed = _pattern_admitted(compiled.pattern_need, spans, admitted)
            admitted = [i for i in admitted if i in passed]
        for index in admitted:
            per_span[index].append(compiled)
    return per_span


def evaluate_spans(policy_set: PolicySet, spans: Sequence[CanonicalSpan]
                   ) -> PolicyEvaluation:
    """Evaluate every rule of ``policy_set`` whose scope covers each span.

    Pure: spans are not changed (see :func:`apply_decisions`). First for the whole batch:
    the scope index gives each rule its spans, and each rule's cheap necessary conditions
    (:func:`necessary_checks`, :func:`pattern_need_of`) drop the spans it cannot match
    (:func:`_candidates_by_span`). Then per span with candidates left: the activation is
    built once with only the names, fields and keys they read, and each condition runs
    once. A span no rule can match costs no CEL at all.

    Returns:
        The decisions by span index, with evaluation and error counts.
    """
    result = PolicyEvaluation()
    if policy_set.empty:
        return result
    per_span = _candidates_by_span(policy_set, spans)
    plans: dict[tuple[int, ...], _Plan] = {}
    for index, span in enumerate(spans):
        candidates = per_span[index]
        if not candidates:
            continue
        key = tuple(map(id, candidates))
        plan = plans.get(key)
        if plan is None:
            plan = plans[key] = _Plan.of(candidates)
        names, fields, keys, variables = plan
        context = _context(span, names, fields, keys, variables)
        if context is None:
            result.num_evaluated += len(candidates)
            result.num_errors += len(candidates)
            continue
        matched: list[Decision] = []
        for compiled in candidates:
            result.num_evaluated += 1
            try:
                hit = compiled.program.execute(context)
            except Exception:  # noqa: BLE001 — CEL raises KeyError/TypeError/ValueError...
                result.num_errors += 1
                continue
            if hit is True:
                rule = compiled.rule
                matched.append(Decision(rule.id, rule.version, rule.action))
        if matched:
            result.decisions[index] = matched
    return result


def _is_payload(key: str) -> bool:
    return key in PAYLOAD_KEYS or key.startswith(PAYLOAD_PREFIXES)


def _strip_payload(attributes: dict[str, Any], drop: bool) -> bool:
    changed = False
    for key in [k for k in attributes if _is_payload(k)]:
        if drop:
            del attributes[key]
        else:
            attributes[key] = REDACTED_VALUE
        changed = True
    return changed


def apply_decisions(span: CanonicalSpan, decisions: Sequence[Decision]) -> None:
    """Record ``decisions`` on ``span`` and apply ``block``/``redact`` to its payload.

    Appends to ``policy_ids``/``policy_versions``/``policy_actions`` (one entry each per
    decision). ``block`` drops every payload attribute (:data:`PAYLOAD_KEYS`) from the
    span and its events; ``redact`` replaces their values with :data:`REDACTED_VALUE`.
    The span's other fields (ids, attribution, tokens, costs) are kept.
    """
    if not decisions:
        return
    span.policy_ids = (*span.policy_ids, *(d.policy_id for d in decisions))
    span.policy_versions = (*span.policy_versions, *(d.version for d in decisions))
    span.policy_actions = (*span.policy_actions, *(d.action for d in decisions))
    actions = {d.action for d in decisions}
    if "block" in actions or "redact" in actions:
        drop = "block" in actions
        attributes = _loads(span.attributes, {})
        if isinstance(attributes, dict) and _strip_payload(attributes, drop):
            span.attributes = orjson.dumps(attributes).decode()
        events = _loads(span.events, [])
        if isinstance(events, list):
            changed = False
            for event in events:
                attrs = event.get("attributes") if isinstance(event, dict) else None
                if isinstance(attrs, dict):
                    changed = _strip_payload(attrs, drop) or changed
            if changed:
                span.events = orjson.dumps(events).decode()


def decision_action(result: str) -> str:
    """The action a producer's own ``policy_result`` word stands for.

    The action a producer's own ``policy_result`` word stands for (see
    :data:`POLICY_DECISION_ACTIONS`).
    """
    return POLICY_DECISION_ACTIONS.get(result.strip().lower(), "log")


__all__ += ["PAYLOAD_PREFIXES", "REDACTED_VALUE", "build_set", "decision_action"]
