"""Classify: put failed spans into the failure taxonomy, on Arrow columns.

The taxonomy is data (``failure_taxonomy.toml``, :mod:`mentatlab.pipeline.failure_taxonomy`;
rule order and categories in ``docs/decisions/0009-failure-taxonomy.md``). A span is failed
when its status is ``error`` or ``timeout`` or it carries an ``error_type``. For failed
spans, :func:`classify_table` reads, as whole columns (``pyarrow.compute``, RE2):

* the producer's ``error.type`` (already in ``error_type`` after normalization);
* the last ``exception`` event's ``exception.type`` and ``exception.message`` (OTel
  exception semantic conventions), found in the ``events`` JSON text;
* the HTTP status: ``http.response.status_code`` (``http.status_code`` before semconv
  1.21) in the ``attributes`` JSON text, else an ``error.type`` that is a number (the
  semconv allows ``"500"``), else ``error code: NNN`` in the text (what the OpenAI and
  Anthropic Python SDKs put in their exception messages);
* the status message and the span status, and whether the span is a tool execution.

Rules are tried in file order; the first match sets ``error_category`` (the taxonomy
value) and ``error_class``; a producer type that is already a taxonomy value is its own
category. A failure no rule matches has category and class ``"unknown"``.
``error_type`` stays the producer's value (the OTel ``error.type``, else the exception
class name without its module), else the category when only a status or HTTP code says
what failed, else ``"unknown"`` (decision 0009). ``error_message_hash`` is the first 16 hex
chars of the SHA-256 of the message with numbers, hex ids and quoted values masked, so one
kind of failure hashes alike across spans.
"""

from __future__ import annotations

import hashlib
import re

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from mentatlab.model.span import CanonicalSpan, Operation, SpanStatus
from mentatlab.pipeline.failure_taxonomy import (
    UNKNOWN_CLASS,
    FailureTaxonomy,
    default_failure_taxonomy,
)

__all__ = ["INPUT_COLUMNS", "Classify", "classify_table", "hash_error_message"]

INPUT_COLUMNS: tuple[str, ...] = ("status", "status_message", "error_type", "operation",
                                  "attributes", "events")
"""Columns :func:`classify_table` reads (string columns of ``SPAN_SCHEMA``)."""

# Greedy ``^.*`` so the LAST exception event wins (the one that ended the span).
_EXC_TYPE = r'^.*"exception\.type":\s*"(?P<v>(?:[^"\\]|\\.)*)"'
_EXC_MESSAGE = r'^.*"exception\.message":\s*"(?P<v>(?:[^"\\]|\\.)*)"'
_HTTP_ATTR = r'"http\.(?:response\.)?status_code":\s*"?(?P<v>[1-5][0-9][0-9])(?:[^0-9]|$)'
_HTTP_TYPE = r"^(?P<v>[1-5][0-9][0-9])$"
_HTTP_TEXT = r"error code:? (?P<v>[1-5][0-9][0-9])(?:[^0-9]|$)"
_MODULE = r"^.*[.:]"

_MASKS = (
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<uuid>"),
    (re.compile(r"\b(?=[0-9a-f]*\d)[0-9a-f]{8,}\b"), "<hex>"),
    (re.compile(r"\d+(?:\.\d+)?"), "<n>"),
    (re.compile(r"'[^']*'|\"[^\"]*\""), "<v>"),
    (re.compile(r"\s+"), " "),
)


def hash_error_message(message: str) -> str:
    """A short stable hash (SHA-256, 16 hex chars) of a masked, lower-cased message."""
    text = message.strip().lower()
    for pattern, replacement in _MASKS:
        text = pattern.sub(replacement, text)
    return hashlib.sha256(text.strip().encode()).hexdigest()[:16]


def _string(table: pa.Table, name: str) -> pa.Array:
    return table.column(name).combine_chunks().cast(pa.string()).fill_null("")


def _extract(strings: pa.Array, pattern: str) -> pa.Array:
    """The ``v`` group of ``pattern`` in each string; null where it does not match."""
    return pc.struct_field(pc.extract_regex(strings, pattern=pattern), [0])


def _unescape(value: str) -> str:
    """A JSON string body (escapes kept by the regex) as the text it encodes."""
    if "\\" not in value:
        return value
    try:
        decoded = orjson.loads(f'"{value}"')
    except orjson.JSONDecodeError:
        return value
    return decoded if isinstance(decoded, str) else value


def _short_name(names: pa.Array) -> pa.Array:
    return pc.utf8_lower(pc.utf8_trim_whitespace(pc.replace_substring_regex(
        names, pattern=_MODULE, replacement="")))


def classify_table(table: pa.Table,
                   taxonomy: FailureTaxonomy | None = None) -> pa.Table:
    """Classify N failed spans given as columns.

    Args:
        table: N rows with the string columns :data:`INPUT_COLUMNS` (``SPAN_SCHEMA``
            names; ``status`` is ``error`` or ``timeout``, ``operation`` as normalized).
        taxonomy: the rules; the shipped ``failure_taxonomy.toml`` when None.

    Returns:
        N rows: ``error_type``, ``error_category`` and ``error_class`` (strings),
        ``exception_message`` (the last exception event's message, JSON-escaped as stored,
        ``""`` when none).
    """
    taxonomy = taxonomy or default_failure_taxonomy()
    n = table.num_rows
    producer = _string(table, "error_type")
    events = _string(table, "events")
    exc_type = _extract(events, _EXC_TYPE).fill_null("")
    exc_message = _extract(events, _EXC_MESSAGE).fill_null("")
    text = pc.utf8_lower(pc.binary_join_element_wise(
        producer, exc_type, _string(table, "status_message"), exc_message, " "))
    producer_short = _short_name(producer)
    exc_short = _short_name(exc_type)
    http = pc.coalesce(_extract(_string(table, "attributes"), _HTTP_ATTR),
                       _extract(producer, _HTTP_TYPE), _extract(text, _HTTP_TEXT)
                       ).cast(pa.int32())
    status = _string(table, "status")
    is_tool = pc.equal(_string(table, "operation"), Operation.TOOL.value)
    types = pa.array(sorted(taxonomy.class_of), pa.string())

    # A producer that already speaks the taxonomy keeps its value.
    chosen = pc.if_else(pc.is_in(producer_short, value_set=types), producer_short,
                        pa.nulls(n, pa.string()))
    for rule in taxonomy.rules:
        open_rows = pc.is_null(chosen)
        if not pc.any(open_rows).as_py():
            break
        if rule.any:
            hit = open_rows
        else:
            names = pa.array(rule.names, pa.string())
            hit = pc.or_(pc.is_in(producer_short, value_set=names),
                         pc.is_in(exc_short, value_set=names))
            if rule.text_pattern:
                hit = pc.or_(hit, pc.match_substring_regex(text, pattern=rule.text_pattern))
            if rule.http_statuses:
                hit = pc.or_(hit, pc.fill_null(pc.is_in(
                    http, value_set=pa.array(rule.http_statuses, pa.int32())), False))
            if rule.statuses:
                hit = pc.or_(hit, pc.is_in(status, value_set=pa.array(rule.statuses)))
        if rule.tool_only:
            hit = pc.and_(hit, is_tool)
        chosen = pc.if_else(pc.and_(hit, open_rows), rule.error_type, chosen)

    matched = pc.is_valid(chosen)
    category = pc.fill_null(chosen, UNKNOWN_CLASS)
    # The producer's own words first (the OTel conformance floor: error.type, else the
    # exception type); the category only when nothing but a status or code said it.
    error_type = pc.if_else(pc.not_equal(producer, ""), producer,
                            pc.if_else(pc.not_equal(exc_type, ""),
                                       pc.replace_substring_regex(exc_type, pattern=_MODULE,
                                                                  replacement=""),
                                       category))
    classes = pa.array(list(taxonomy.class_of.values()), pa.string())
    keys = pa.array(list(taxonomy.class_of), pa.string())
    error_class = pc.if_else(matched, pc.take(classes, pc.index_in(chosen, value_set=keys)),
                             UNKNOWN_CLASS)
    return pa.table({"error_type": error_type, "error_category": category,
                     "error_class": error_class, "exception_message": exc_message})


class Classify:
    """Processor ``classify``: failure type, class and message hash of failed spans.

    Sets ``error_type``, ``error_category``, ``error_class`` and ``error_message_hash``
    with one Arrow pass
    (:func:`classify_table`) per batch.
    """

    name = "classify"

    def __init__(self, taxonomy: FailureTaxonomy | None = None) -> None:
        """Use ``taxonomy``, or the shipped one (loaded once per process) when None.

        Raises:
            ConfigError: the shipped taxonomy file is invalid (a packaging bug).
        """
        self.taxonomy = taxonomy or default_failure_taxonomy()

    def __call__(self, spans: list[CanonicalSpan]) -> list[CanonicalSpan]:
        """Classify a batch of N spans in place; spans that did not fail are untouched."""
        failed = [s for s in spans if s.status is not SpanStatus.OK or s.error_type]
        if not failed:
            return spans
        table = pa.table({name: pa.array([str(getattr(s, name)) for s in failed], pa.string())
                          for name in INPUT_COLUMNS})
        result = classify_table(table, self.taxonomy)
        columns = zip(result.column("error_type").to_pylist(),
                      result.column("error_category").to_pylist(),
                      result.column("error_class").to_pylist(),
                      result.column("exception_message").to_pylist(), strict=True)
        for span, (error_type, category, error_class, exc_message) in zip(failed, columns,
                                                                         strict=True):
            message = span.status_message or _unescape(exc_message)
            span.error_type = error_type
            span.error_category = category
            span.error_class = error_class
            span.error_message_hash = hash_error_message(message) if message else ""
        return spans
