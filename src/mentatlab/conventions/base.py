"""Building blocks of convention mapping tables: rules, value coercion, JSON paths.

A convention is DATA: an ordered tuple of :class:`Rule` rows, each reading one attribute
key (or the pseudo keys ``@name`` = span name and ``@scope`` = instrumentation scope
name) and yielding canonical fields. :mod:`mentatlab.conventions.registry` orders the
conventions; for every canonical field the first rule (in that order) that yields a
value wins.

Besides the canonical field names of :class:`~mentatlab.model.span.CanonicalSpan`, rules
may yield these working fields that normalization consumes:

* ``input_cache_excluded_tokens``: cache tokens a cache-EXCLUSIVE producer left out of its
  input count; normalization adds them to ``input_tokens`` (tokens).
* ``error_hint``: ``"error"`` when a convention marks the span failed outside the OTLP
  status (Langfuse ``level=ERROR``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from mentatlab.model.raw import RawSpan

__all__ = [
    "MAX_BYTES_PER_SPAN",
    "MAX_RESOURCE_SECONDS",
    "MAX_TOKENS_PER_SPAN",
    "BadValue",
    "Convention",
    "Extract",
    "Rule",
    "as_bool",
    "as_bytes_count",
    "as_seconds",
    "as_str",
    "as_tokens",
    "attr",
    "coerce_field",
    "computed",
    "json_blob",
    "json_path",
    "load_json",
    "mapped",
]

MAX_TOKENS_PER_SPAN = 100_000_000
"""A token count above this (tokens) on one span is refused as absurd."""
MAX_RESOURCE_SECONDS = 1e9
"""A resource quantity above this (core-s, GB-s, GPU-s: about 32 years of one unit) on one
span is refused as absurd; it also keeps every cost inside ``Decimal(38, 12)``."""
MAX_BYTES_PER_SPAN = 10**15
"""A byte count above this (1 PB) on one span is refused as absurd (the column is UInt64)."""

Extract = Callable[[Any, RawSpan], "tuple[tuple[str, Any], ...] | None"]
"""``(attribute value, span) -> ((field, value), ...)`` or None when nothing applies."""


class BadValue(ValueError):
    """Raised by a coercer when a value must reject the whole span (bad token count)."""

    def __init__(self, reason: str, key: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        """Why the value was refused, naming the value."""
        self.key = key
        """The attribute key that held it (set by the registry)."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of a convention table: attribute ``key`` → canonical ``fields``."""

    key: str
    """Attribute key; ``@name`` and ``@scope`` read the span name and scope name."""
    fields: tuple[str, ...]
    """Canonical fields the rule can yield (for the docs and the index)."""
    extract: Extract
    """Turns the attribute value into ``(field, value)`` pairs."""
    note: str = ""
    """One line for docs/conventions.md."""


@dataclass(frozen=True, slots=True)
class Convention:
    """One attribute convention: a name, where it comes from, and its ordered rules."""

    name: str
    """Short identifier, e.g. ``"genai"``."""
    source: str
    """Where the names come from (spec URL or library), for docs/conventions.md."""
    rules: tuple[Rule, ...]
    """Rows in precedence order (earlier wins for the same field)."""


# --------------------------------------------------------------------------- coercers


def as_str(value: Any) -> str | None:
    """A non-empty string (numbers are formatted), else None."""
    if isinstance(value, str):
        text = value.strip()
        return text or None
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return str(value)
    return None


def as_tokens(value: Any) -> int:
    """A token count (tokens) from an int, integral float or numeric string.

    Raises:
        BadValue: the value is not a number, is negative, or exceeds
            :data:`MAX_TOKENS_PER_SPAN`.
    """
    if type(value) is int and 0 <= value <= MAX_TOKENS_PER_SPAN:
        return value  # the common case, first
    if isinstance(value, bool):
        raise BadValue(f"Expected a token count, got boolean {value!r}")
    if isinstance(value, int):
        count = value
    else:
        try:
            number = float(value.strip()) if isinstance(value, str) else float(value)
        except (TypeError, ValueError):
            raise BadValue(f"Expected a token count, got {value!r}") from None
        if not math.isfinite(number):
            raise BadValue(f"Expected a finite token count, got {value!r}")
        count = round(number)
    if count < 0:
        raise BadValue(f"Expected a token count >= 0, got {value!r}")
    if count > MAX_TOKENS_PER_SPAN:
        raise BadValue(f"Expected at most {MAX_TOKENS_PER_SPAN} tokens per span, got {value!r}")
    return count


def _as_nonneg_number(value: Any, what: str, most: float) -> float:
    if isinstance(value, bool):
        raise BadValue(f"Expected {what}, got boolean {value!r}")
    try:
        number = float(value.strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        raise BadValue(f"Expected {what}, got {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise BadValue(f"Expected {what} >= 0, got {value!r}")
    if number > most:
        raise BadValue(f"Expected {what} of at most {most:g} per span, got {value!r}")
    return number


def as_seconds(value: Any) -> float:
    """A non-negative resource quantity in seconds (core-s, GB-s, GPU-s).

    Raises:
        BadValue: the value is not a finite number from 0 to :data:`MAX_RESOURCE_SECONDS`.
    """
    return _as_nonneg_number(value, "a resource quantity in seconds", MAX_RESOURCE_SECONDS)


def as_bytes_count(value: Any) -> int:
    """A non-negative byte count (bytes).

    Raises:
        BadValue: the value is not a finite number from 0 to :data:`MAX_BYTES_PER_SPAN`.
    """
    return round(_as_nonneg_number(value, "a byte count", MAX_BYTES_PER_SPAN))


def as_bool(value: Any) -> bool | None:
    """A boolean from a bool, 0/1 or ``"true"``/``"false"``; None when unrecognised."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no"):
            return False
    return None


def _as_attempt(value: Any) -> int | None:
    try:
        number = int(float(value))
    except (TypeError, ValueError):
        return None
    return number if 1 <= number <= 65535 else None


_TOKEN_FIELDS = frozenset({"input_tokens", "output_tokens", "cache_read_tokens",
                           "cache_write_tokens", "reasoning_tokens", "total_tokens",
                           "input_cache_excluded_tokens"})
_SECONDS_FIELDS = frozenset({"cpu_core_seconds", "memory_gb_seconds", "gpu_seconds"})
_BYTES_FIELDS = frozenset({"network_bytes_in", "network_bytes_out", "storage_bytes"})
_BOOL_FIELDS = frozenset({"is_retry", "is_fallback", "is_streaming", "usage_is_rollup"})


def coerce_field(field: str) -> Callable[[Any], Any]:
    """The coercer for a canonical field: tokens, seconds, bytes, bool, attempt or str."""
    if field in _TOKEN_FIELDS:
        return as_tokens
    if field in _SECONDS_FIELDS:
        return as_seconds
    if field in _BYTES_FIELDS:
        return as_bytes_count
    if field in _BOOL_FIELDS:
        return as_bool
    if field == "attempt":
        return _as_attempt
    return as_str


# --------------------------------------------------------------------------- rule factories


def attr(key: str, field: str, note: str = "") -> Rule:
    """Attribute ``key`` holds canonical ``field`` directly (coerced by the field's kind)."""
    coerce = coerce_field(field)
    if coerce is as_str:
        def extract_str(value: Any, span: RawSpan) -> tuple[tuple[str, Any], ...] | None:
            if type(value) is str and value and not value[0].isspace() \
                    and not value[-1].isspace():
                return ((field, value),)  # the common case without a call
            text = as_str(value)
            return None if text is None else ((field, text),)

        return Rule(key, (field,), extract_str, note)

    def extract(value: Any, span: RawSpan) -> tuple[tuple[str, Any], ...] | None:
        coerced = coerce(value)
        return None if coerced is None else ((field, coerced),)

    return Rule(key, (field,), extract, note)


def mapped(key: str, field: str, table: Mapping[str, Any], note: str = "",
           *, first_word: bool = False) -> Rule:
    """Attribute ``key`` holds a vocabulary value that ``table`` maps to ``field``.

    Matching is case-insensitive; with ``first_word`` only the text before the first
    space is looked up (``"ai.toolCall MyAgent.fn"`` → ``"ai.toolcall"``). Values the
    table lacks yield nothing.
    """
    lowered = {k.lower(): v for k, v in table.items()}

    def extract(value: Any, span: RawSpan) -> tuple[tuple[str, Any], ...] | None:
        if not isinstance(value, str):
            return None
        text = value.strip().lower()
        if first_word:
            text = text.split(" ", 1)[0]
        hit = lowered.get(text)
        return None if hit is None else ((field, hit),)

    return Rule(key, (field,), extract, note)


def computed(key: str, fields: tuple[str, ...], fn: Extract, note: str = "") -> Rule:
    """A rule whose extraction is a small named function (conditional or combined values)."""
    return Rule(key, fields, fn, note)


def load_json(value: Any) -> Any:
    """A parsed JSON document from a string/bytes attribute (a dict passes through), else None."""
    if isinstance(value, dict):
        return value
    if not isinstance(value, (str, bytes)) or not value:
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return None


def json_path(doc: Any, path: str) -> Any:
    """The value at dotted ``path`` inside a parsed JSON document, else None."""
    node = doc
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
        if node is None:
            return None
    return node


def _blob_tokens(value: Any) -> int | None:
    try:
        return as_tokens(value)
    except BadValue:
        return None


def json_blob(key: str, paths: Mapping[str, tuple[str, ...]], note: str = "",
              *, sums: Mapping[str, tuple[str, ...]] | None = None) -> Rule:
    """Attribute ``key`` is a JSON string; each field is read from alternative paths.

    For every ``field: (path, ...)`` the first path holding a positive value wins, else the
    first holding any value (two spellings of one counter, one of them 0). ``sums`` maps a
    field to paths whose values are ADDED, when the first path is present (e.g. Anthropic's
    cache-exclusive ``input_tokens`` + cache read + cache creation). Unparseable JSON and
    unusable values yield nothing: a malformed blob never rejects a span.
    """
    sums = dict(sums or {})
    kinds = {field: coerce_field(field) for field in (*paths, *sums)}

    def pick(doc: Any, field: str, alternatives: tuple[str, ...]) -> Any:
        coerce = kinds[field]
        first: Any = None
        for path in alternatives:
            raw = json_path(doc, path)
            if raw is None:
                continue
            value = _blob_tokens(raw) if coerce is as_tokens else _safe(coerce, raw)
            if value is None:
                continue
            if first is None:
                first = value
            if value:
                return value
        return first

    def extract(value: Any, span: RawSpan) -> tuple[tuple[str, Any], ...] | None:
        doc = load_json(value)
        if not isinstance(doc, dict) or not doc:
            return None
        out: list[tuple[str, Any]] = []
        for field, alternatives in paths.items():
            found = pick(doc, field, alternatives)
            if found is not None:
                out.append((field, found))
        for field, parts in sums.items():
            head = _blob_tokens(json_path(doc, parts[0]))
            if head is None:
                continue
            total = head + sum(_blob_tokens(json_path(doc, p)) or 0 for p in parts[1:])
            out.append((field, total))
        return tuple(out) or None

    return Rule(key, (*paths, *sums), extract, note)


def _safe(coerce: Callable[[Any], Any], raw: Any) -> Any:
    try:
        return coerce(raw)
    except BadValue:
        return None
