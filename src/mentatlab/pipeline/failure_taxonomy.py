"""The failure taxonomy as data: ``failure_taxonomy.toml`` loaded and validated once.

The file (shipped in this package; format in its header comment and in
``docs/decisions/0009-failure-taxonomy.md``) lists the classes (``provider``, ``model``,
``tooling``, ``workflow``, ``governance``) with their error types, and the ordered rules
that assign an error type to a failed span. :mod:`mentatlab.pipeline.classify` applies
them to Arrow columns. Patterns are RE2 (the engine of ``pyarrow.compute``), checked
here by compiling each one through pyarrow.
"""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from mentatlab.errors import ConfigError

__all__ = ["CLASSES", "UNKNOWN_CLASS", "FailureRule", "FailureTaxonomy",
           "default_failure_taxonomy", "load_failure_taxonomy", "parse_failure_taxonomy"]

CLASSES: tuple[str, ...] = ("provider", "model", "tooling", "workflow", "governance")
"""The failure classes of DESIGN.md; the file may not invent others."""
UNKNOWN_CLASS = "unknown"
"""Class of a failure no rule matched (it keeps the producer's error type)."""
STATUSES: frozenset[str] = frozenset({"error", "timeout"})
"""Span statuses a rule's ``statuses`` may name (``ok`` spans are never classified)."""

_RULE_KEYS = frozenset({"error_type", "names", "codes", "message", "http_statuses",
                        "statuses", "tool_only", "any"})
_NAME = re.compile(r"^[a-z0-9_]+$")


@dataclass(frozen=True, slots=True)
class FailureRule:
    """One rule: the error type it assigns and the evidence that triggers it."""

    error_type: str
    """Error type assigned (a value listed under one class)."""
    names: tuple[str, ...] = ()
    """Lower-case exception / ``error.type`` class names, module stripped."""
    codes: tuple[str, ...] = ()
    """Provider error codes, matched as whole words in the failure text."""
    message: str = ""
    """RE2 pattern searched in the lower-cased failure text; ``""`` for none."""
    http_statuses: tuple[int, ...] = ()
    """HTTP status codes (100–599) that match."""
    statuses: tuple[str, ...] = ()
    """Span statuses (``error``, ``timeout``) that match on their own."""
    tool_only: bool = False
    """Only tool-execution spans (operation ``tool``) may match."""
    any: bool = False
    """Every failed span passing the filters matches (a catch-all)."""

    @property
    def text_pattern(self) -> str:
        """The RE2 pattern of ``message`` and ``codes`` together; ``""`` when neither."""
        parts = [self.message] if self.message else []
        if self.codes:
            words = "|".join(re.escape(c) for c in self.codes)
            parts.append(f"(?:^|[^a-z0-9_])(?:{words})(?:[^a-z0-9_]|$)")
        return "|".join(f"(?:{p})" for p in parts)


@dataclass(frozen=True, slots=True)
class FailureTaxonomy:
    """The validated taxonomy: every error type's class and the rules in order."""

    class_of: dict[str, str]
    """Error type → class, for every type the file lists."""
    rules: tuple[FailureRule, ...]
    """Rules in file order; the first match wins."""


def _fail(where: str, reason: str) -> ConfigError:
    return ConfigError(f"failure taxonomy: {where}: {reason}")


def _strings(value: Any, where: str, pattern: re.Pattern[str] | None = None) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(where, f"Expected a list of strings, got {value!r}")
    if pattern is not None:
        for v in value:
            if not pattern.match(v):
                raise _fail(where, f"Expected lower-case letters, digits or '_', got {v!r}")
    return tuple(value)


def _check_re2(pattern: str, where: str) -> None:
    try:
        pc.match_substring_regex(pa.array([""], pa.string()), pattern=pattern)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise _fail(where, f"Expected an RE2 pattern, got {pattern!r} ({exc})") from None


def _rule(raw: Any, where: str, class_of: dict[str, str]) -> FailureRule:
    if not isinstance(raw, dict):
        raise _fail(where, f"Expected a table, got {raw!r}")
    unknown = sorted(set(raw) - _RULE_KEYS)
    if unknown:
        raise _fail(f"{where}.{unknown[0]}", f"Expected one of {sorted(_RULE_KEYS)}")
    error_type = raw.get("error_type")
    if error_type not in class_of:
        raise _fail(f"{where}.error_type",
                    f"Expected an error type listed under [classes], got {error_type!r}")
    statuses = _strings(raw.get("statuses", []), f"{where}.statuses")
    bad = sorted(set(statuses) - STATUSES)
    if bad:
        raise _fail(f"{where}.statuses", f"Expected some of {sorted(STATUSES)}, got {bad[0]!r}")
    http = raw.get("http_statuses", [])
    if not isinstance(http, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) and 100 <= v <= 599 for v in http):
        raise _fail(f"{where}.http_statuses",
                    f"Expected a list of HTTP status codes (100-599), got {http!r}")
    flags = {}
    for flag in ("tool_only", "any"):
        flags[flag] = raw.get(flag, False)
        if not isinstance(flags[flag], bool):
            raise _fail(f"{where}.{flag}", f"Expected true or false, got {flags[flag]!r}")
    message = raw.get("message", "")
    if not isinstance(message, str):
        raise _fail(f"{where}.message", f"Expected a string, got {message!r}")
    rule = FailureRule(error_type, _strings(raw.get("names", []), f"{where}.names", _NAME),
                       _strings(raw.get("codes", []), f"{where}.codes", _NAME), message,
                       tuple(http), statuses, flags["tool_only"], flags["any"])
    if not (rule.names or rule.codes or rule.message or rule.http_statuses or rule.statuses
            or rule.any):
        raise _fail(where, "Expected at least one of names, codes, message, http_statuses, "
                           "statuses or any = true")
    if rule.text_pattern:
        _check_re2(rule.text_pattern, f"{where}.message")
    return rule


def parse_failure_taxonomy(text: str, source: str = "failure_taxonomy.toml") -> FailureTaxonomy:
    """Parse and validate the text of a taxonomy file.

    Args:
        text: TOML text with ``[classes]`` and ``[[rules]]`` (format in the shipped file).
        source: file name used in error messages.

    Raises:
        ConfigError: the text is not TOML, a class is not one of :data:`CLASSES`, an error
            type is listed twice or under no class, or a rule has an unknown key, a bad
            value, an invalid RE2 pattern or no evidence; the message names the field
            (``rules[3].message``).
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _fail(source, f"Expected TOML ({exc})") from None
    classes = data.get("classes")
    if not isinstance(classes, dict) or not classes:
        raise _fail("classes", "Expected a [classes] table")
    class_of: dict[str, str] = {}
    for name, types in classes.items():
        if name not in CLASSES:
            raise _fail(f"classes.{name}", f"Expected one of {list(CLASSES)}")
        for error_type in _strings(types, f"classes.{name}", _NAME):
            if error_type in class_of:
                raise _fail(f"classes.{name}", f"{error_type!r} is already listed under "
                                               f"{class_of[error_type]!r}")
            class_of[error_type] = name
    rules = data.get("rules")
    if not isinstance(rules, list) or not rules:
        raise _fail("rules", "Expected at least one [[rules]] table")
    extra = sorted(set(data) - {"classes", "rules"})
    if extra:
        raise _fail(extra[0], "Expected only [classes] and [[rules]]")
    return FailureTaxonomy(class_of, tuple(_rule(r, f"rules[{i}]", class_of)
                                           for i, r in enumerate(rules)))


def load_failure_taxonomy(path: Path | None = None) -> FailureTaxonomy:
    """Load and validate a taxonomy file; the shipped one when ``path`` is None.

    Raises:
        ConfigError: the file cannot be read or is invalid (see :func:`parse_failure_taxonomy`).
    """
    if path is None:
        text = resources.files("mentatlab.pipeline").joinpath("failure_taxonomy.toml").read_text()
        return parse_failure_taxonomy(text)
    try:
        text = path.read_text()
    except OSError as exc:
        raise _fail(str(path), f"Expected a readable file ({exc.strerror})") from None
    return parse_failure_taxonomy(text, str(path))


@functools.cache
def default_failure_taxonomy() -> FailureTaxonomy:
    """The shipped taxonomy, loaded and validated once per process."""
    return load_failure_taxonomy()
