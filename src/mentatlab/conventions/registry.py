"""The ordered list of conventions and the one function that applies them to a span.

Precedence (first convention that yields a value for a field wins; inside a convention,
the earlier row wins):

1. ``mentat``: MentatLab's own ``mentat.*`` attributes (the producer says exactly what it means)
2. ``langfuse``: an explicit Langfuse observation type/model/usage
3. ``openinference``: OpenInference span kind and ``llm.*`` counts
4. ``genai``: OTel GenAI semantic conventions, new then old names
5. ``openllmetry``: OpenLLMetry/Traceloop extras and older spellings
6. ``vercel_ai``: Vercel AI SDK ``ai.*``
7. ``logfire``: Logfire / Pydantic AI (raw usage JSON, ``model_name``)
8. ``other``: Genkit, Google ADK, LiveKit, Strands, OpenLIT, and finally the span name

Explicit type markers (Langfuse type, OpenInference span kind) outrank
``gen_ai.operation.name`` because they are what a mixed-convention span was last
translated into (the same precedence Langfuse uses). JSON blobs sit low: a dedicated
attribute always beats a value dug out of a JSON string.

Applying the tables walks the span's attributes once (a dict lookup per attribute) over
an index built at import, so the cost is proportional to the attributes present, not to
the number of rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mentatlab.conventions import (
    genai,
    langfuse,
    logfire,
    mentat,
    openinference,
    openllmetry,
    other,
    vercel_ai,
)
from mentatlab.conventions.base import BadValue, Convention, Rule
from mentatlab.model.raw import RawSpan

__all__ = [
    "CONVENTIONS",
    "RESOURCE_KEYS",
    "extract_fields",
    "extract_resource_fields",
    "render_markdown",
]

CONVENTIONS: tuple[Convention, ...] = (
    mentat.CONVENTION,
    langfuse.CONVENTION,
    openinference.CONVENTION,
    genai.CONVENTION,
    openllmetry.CONVENTION,
    vercel_ai.CONVENTION,
    logfire.CONVENTION,
    other.CONVENTION,
)
"""Every convention, highest precedence first."""

RESOURCE_KEYS: dict[str, str] = {
    **{f"mentat.{field}": field for field in mentat.SPAN_FIELDS
       if field in ("org_id", "workspace_id", "project_id", "user_id", "customer_id",
                    "department", "service_name", "agent_id", "agent_version", "runtime",
                    "workflow_id", "workflow_version", "flow_id", "run_id", "session_id",
                    "prompt_version")},
    "service.name": "service_name",
    "service.version": "agent_version",
    "process.runtime.name": "runtime",
    "gen_ai.agent.id": "agent_id",
    "gen_ai.agent.name": "agent_id",
    "gen_ai.agent.version": "agent_version",
    "user.id": "user_id",
    "enduser.id": "user_id",
    "session.id": "session_id",
}
"""Resource attribute → tenancy/agent field (earlier keys win). Span attributes win over
the resource, and ``RawSpan.tenancy`` wins over both."""

_Index = dict[str, tuple[tuple[int, Rule], ...]]


def _build_index(conventions: tuple[Convention, ...]) -> _Index:
    index: dict[str, list[tuple[int, Rule]]] = {}
    priority = 0
    for convention in conventions:
        for rule in convention.rules:
            index.setdefault(rule.key, []).append((priority, rule))
            priority += 1
    return {key: tuple(rules) for key, rules in index.items()}


_INDEX = _build_index(CONVENTIONS)
_NAME_RULES = _INDEX.get("@name", ())
_SCOPE_RULES = _INDEX.get("@scope", ())


def extract_fields(span: RawSpan) -> dict[str, Any]:
    """Canonical fields found in one span's attributes, name and scope, by precedence.

    Returns:
        ``{field: value}`` with coerced values (tokens int, seconds float, str...).

    Raises:
        BadValue: a mapped token count or resource quantity is not a valid number
            (the caller rejects the span); ``reason`` and ``key`` say which and why.
    """
    priorities: dict[str, int] = {}
    out: dict[str, Any] = {}
    get_rules = _INDEX.get
    for key, value in span.attributes.items():
        rules = get_rules(key)
        if rules is not None:
            _apply(rules, key, value, span, priorities, out)
    if span.name and _NAME_RULES:
        _apply(_NAME_RULES, "@name", span.name, span, priorities, out)
    if span.scope_name and _SCOPE_RULES:
        _apply(_SCOPE_RULES, "@scope", span.scope_name, span, priorities, out)
    return out


def _apply(rules: tuple[tuple[int, Rule], ...], key: str, value: Any, span: RawSpan,
           priorities: dict[str, int], out: dict[str, Any]) -> None:
    """Run the rules of one attribute; keep each field's highest-precedence value."""
    for priority, rule in rules:
        try:
            found = rule.extract(value, span)
        except BadValue as exc:
            raise BadValue(exc.reason, key) from None
        if found is None:
            continue
        for field, field_value in found:
            held = priorities.get(field)
            if held is None or priority < held:
                priorities[field] = priority
                out[field] = field_value


def extract_resource_fields(resource: Mapping[str, Any]) -> dict[str, str]:
    """Tenancy and agent fields found in resource attributes (see :data:`RESOURCE_KEYS`)."""
    out: dict[str, str] = {}
    for key, field in RESOURCE_KEYS.items():
        if field in out:
            continue
        value = resource.get(key)
        if isinstance(value, str) and value:
            out[field] = value
    return out


def render_markdown() -> str:
    """The mapping tables as Markdown, one table per convention in precedence order."""
    lines: list[str] = []
    for number, convention in enumerate(CONVENTIONS, start=1):
        lines += [f"### {number}. `{convention.name}`", "", f"Source: {convention.source}", "",
                  "| attribute | canonical field(s) | note |", "| --- | --- | --- |"]
        for rule in convention.rules:
            fields = ", ".join(f"`{f}`" for f in rule.fields)
            lines.append(f"| `{rule.key}` | {fields} | {rule.note} |")
        lines.append("")
    lines += ["### Resource attributes", "", "| resource attribute | canonical field |",
              "| --- | --- |"]
    lines += [f"| `{key}` | `{field}` |" for key, field in RESOURCE_KEYS.items()]
    return "\n".join(lines) + "\n"
